// SecretBox: the node's key for the secrets it stores (libsodium's crypto_secretbox:
// XSalsa20-Poly1305), and sealing/opening with it. Every node of a fleet that shares a database
// needs the same key: it comes from $KILN_SECRETS_KEY (base64 of 32 bytes) when that is set,
// else from <dataDir>/secrets.key, created 0600 on first start. Immutable after load(), so
// safe to share across threads.
#pragma once
#include <memory>
#include <string>
#include <string_view>

#include "common/result.h"

namespace kiln::secrets {

// The environment variable that holds a fleet's shared key (base64, 32 bytes).
inline constexpr const char* kKeyEnv = "KILN_SECRETS_KEY";

class SecretBox {
 public:
  // $KILN_SECRETS_KEY if set (InvalidArgument when it is not base64 of 32 bytes), else the key
  // file in `dataDir`, created with a fresh random key if missing. A key file readable by
  // group or others is refused (Unprocessable), as ssh refuses such a private key.
  static Result<std::unique_ptr<SecretBox>> load(const std::string& dataDir);
  // A box on a given 32-byte key (tests, tools).
  static Result<std::unique_ptr<SecretBox>> fromKey(std::string_view key);

  // "v1:" + base64(nonce || MAC || ciphertext), a fresh random nonce each time.
  std::string seal(std::string_view plaintext) const;
  // The plaintext; InvalidArgument when `sealed` is malformed or was not sealed with this key
  // (another node's key: the fleet's nodes must share $KILN_SECRETS_KEY).
  Result<std::string> open(std::string_view sealed) const;

 private:
  explicit SecretBox(std::string key) : key_(std::move(key)) {}
  std::string key_;
};

// A fresh key, base64 (what $KILN_SECRETS_KEY takes).
std::string newKeyBase64();

}  // namespace kiln::secrets
