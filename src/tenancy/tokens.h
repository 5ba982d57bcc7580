// API tokens: how they are made, hashed and checked (docs/api.md, "Tenants, tokens and roles").
// A token is "kiln_" + 48 hex characters and is shown once; the store keeps only its
// HMAC-SHA256 under the token key, so a copy of the database cannot be turned into tokens, nor
// checked against guessed ones, without the key. Every node sharing a store must hash with the
// same key: KILN_TOKEN_KEY for a fleet, else a key file in the single node's data dir; the store
// keeps the key's fingerprint and a node with another key refuses to start. Thread-safe (const).
#pragma once
#include <string>
#include <string_view>

#include "common/result.h"
#include "store/store.h"

namespace kiln::tenancy {

class TokenKey {
 public:
  // `envKey` (KILN_TOKEN_KEY, at least 32 characters) when set: a fleet gives every node the
  // same one. Else <dataDir>/token.key (32 random bytes as hex, mode 0600), created when
  // missing.
  static Result<TokenKey> load(const std::string& dataDir, const std::string& envKey);
  TokenKey(std::string secret, std::string source)
      : secret_(std::move(secret)), source_(std::move(source)) {}

  // The hex HMAC-SHA256 of a token: what the store keeps and looks tokens up by.
  std::string hash(std::string_view token) const;
  // Names the key without revealing it (an HMAC of a constant).
  std::string fingerprint() const;
  // "KILN_TOKEN_KEY" or the key file's path, for messages.
  const std::string& source() const { return source_; }
  const std::string& secret() const { return secret_; }

 private:
  std::string secret_;
  std::string source_;
};

// Checks that the store's tokens are hashed with `key`: records its fingerprint in a store
// that has none yet; FailedPrecondition (InvalidArgument) with what to do when the store holds
// another key's.
Status checkStoreKey(store::Store& store, const TokenKey& key);

// Tenant ids: 1 to 64 of [a-z0-9._-], starting with a letter or digit.
bool validTenantId(std::string_view id);
// Token names: up to 128 printable ASCII characters.
bool validTokenName(std::string_view name);

struct IssuedToken {
  store::ApiToken token;
  std::string secret;  // the bearer token itself: shown once, never stored
};

// A new token of `role` named `name` for `tenantId` (the tenant is created if new): its keyed
// hash is stored, the token returned once.
Result<IssuedToken> issueToken(store::Store& store, const TokenKey& key,
                               const std::string& tenantId, const std::string& name,
                               store::Role role, int64_t nowMs);

// The token JSON of docs/api.md: {tokenId, tenant, name, role, createdAt, revokedAt}.
nlohmann::json tokenJson(const store::ApiToken& t);

}  // namespace kiln::tenancy
