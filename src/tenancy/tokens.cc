#include "tenancy/tokens.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/files.h"
#include "common/ids.h"

namespace kiln::tenancy {
namespace {

constexpr size_t kMinEnvKeyChars = 32;
constexpr const char* kFingerprintSetting = "token_key_fingerprint";

std::string trimmed(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ')) s.pop_back();
  return s;
}

// Writes a new key file, or reads the one another process wrote first (O_EXCL decides).
Result<std::string> createKeyFile(const std::string& path) {
  std::string secret = randomToken(32);
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0 && errno == EEXIST) return readFile(path);
  if (fd < 0) return errnoStatus("create " + path, errno);
  const std::string line = secret + "\n";
  bool ok = ::write(fd, line.data(), line.size()) == static_cast<ssize_t>(line.size());
  ok = ::fsync(fd) == 0 && ok;
  const int err = errno;
  ::close(fd);
  if (!ok) {
    ::unlink(path.c_str());
    return errnoStatus("write " + path, err);
  }
  return secret;
}

}  // namespace

Result<TokenKey> TokenKey::load(const std::string& dataDir, const std::string& envKey) {
  if (!envKey.empty()) {
    if (envKey.size() < kMinEnvKeyChars) {
      return invalidArgument(
          "KILN_TOKEN_KEY must be at least 32 characters (e.g. `openssl rand "
          "-hex 32`)");
    }
    return TokenKey(envKey, "KILN_TOKEN_KEY");
  }
  const std::string path = dataDir + "/token.key";
  auto contents = readFile(path);
  std::string secret;
  if (contents) {
    secret = trimmed(*contents);
  } else {
    ASSIGN_OR_RETURN(std::string created, createKeyFile(path));
    secret = trimmed(created);
  }
  if (secret.size() < kMinEnvKeyChars) {
    return invalidArgument(path +
                           " holds no token key (at least 32 characters): restore it, "
                           "or remove it to make a new one (every token then has to be "
                           "made again)");
  }
  return TokenKey(secret, path);
}

std::string TokenKey::hash(std::string_view token) const { return hmacSha256Hex(secret_, token); }

std::string TokenKey::fingerprint() const {
  return hmacSha256Hex(secret_, "kiln token key fingerprint v1").substr(0, 32);
}

Status checkStoreKey(store::Store& store, const TokenKey& key) {
  ASSIGN_OR_RETURN(std::string stored, store.ensureSetting(kFingerprintSetting, key.fingerprint()));
  if (stored == key.fingerprint()) return Status::ok();
  return invalidArgument(
      "the store's API tokens are hashed with another token key than this node's (from " +
      key.source() +
      "): every node sharing a store needs the same key. Set KILN_TOKEN_KEY to the fleet's key "
      "on every node (or restore the data dir's token.key)");
}

bool validTenantId(std::string_view id) {
  if (id.empty() || id.size() > 64) return false;
  for (size_t i = 0; i < id.size(); ++i) {
    const char c = id[i];
    const bool alnum = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
    if (!alnum && (i == 0 || (c != '.' && c != '_' && c != '-'))) return false;
  }
  return true;
}

bool validTokenName(std::string_view name) {
  if (name.size() > 128) return false;
  for (char c : name) {
    if (c < 0x20 || c > 0x7e) return false;
  }
  return true;
}

Result<IssuedToken> issueToken(store::Store& store, const TokenKey& key,
                               const std::string& tenantId, const std::string& name,
                               store::Role role, int64_t nowMs) {
  if (!validTenantId(tenantId)) {
    return invalidArgument(
        "tenant must be 1 to 64 of a-z, 0-9, '.', '_', '-' (starting with a "
        "letter or digit)");
  }
  if (!validTokenName(name)) {
    return invalidArgument("name must be at most 128 printable ASCII characters");
  }
  RETURN_IF_ERROR(store.ensureTenant(tenantId, tenantId));
  IssuedToken out;
  out.secret = "kiln_" + randomToken(24);
  out.token.id = "tok_" + randomToken(8);
  out.token.tenantId = tenantId;
  out.token.name = name;
  out.token.role = role;
  out.token.createdAt = nowMs;
  RETURN_IF_ERROR(store.addToken(key.hash(out.secret), out.token));
  return out;
}

nlohmann::json tokenJson(const store::ApiToken& t) {
  return {
      {"tokenId", t.id},
      {"tenant", t.tenantId},
      {"name", t.name},
      {"role", store::roleName(t.role)},
      {"createdAt", formatTimeMs(t.createdAt)},
      {"revokedAt", t.revokedAt ? nlohmann::json(formatTimeMs(t.revokedAt)) : nlohmann::json()}};
}

}  // namespace kiln::tenancy
