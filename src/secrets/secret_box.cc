#include "secrets/secret_box.h"

#include <fcntl.h>
#include <sodium.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <vector>

#include "common/files.h"
#include "common/unique_fd.h"

namespace kiln::secrets {
namespace {

constexpr std::string_view kPrefix = "v1:";

Status initSodium() {
  // sodium_init is thread-safe and idempotent; it fails only without a random source.
  if (sodium_init() < 0) return internalError("libsodium: sodium_init failed");
  return Status::ok();
}

std::string toBase64(const unsigned char* data, size_t n) {
  std::string out(sodium_base64_encoded_len(n, sodium_base64_VARIANT_ORIGINAL), '\0');
  sodium_bin2base64(out.data(), out.size(), data, n, sodium_base64_VARIANT_ORIGINAL);
  out.resize(std::strlen(out.c_str()));
  return out;
}

std::optional<std::string> fromBase64(std::string_view s) {
  std::string out(s.size(), '\0');
  size_t len = 0;
  if (sodium_base642bin(reinterpret_cast<unsigned char*>(out.data()), out.size(), s.data(),
                        s.size(), " \t\r\n", &len, nullptr, sodium_base64_VARIANT_ORIGINAL) != 0) {
    return std::nullopt;
  }
  out.resize(len);
  return out;
}

std::string trim(std::string s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.pop_back();
  return s;
}

// Writes a new key file with O_EXCL through a temporary name, so two processes starting on
// one data dir at once agree on one key (the loser reads the winner's).
Result<std::string> readOrCreateKeyFile(const std::string& path) {
  struct stat sb {};
  if (::stat(path.c_str(), &sb) != 0) {
    if (errno != ENOENT) return internalError("stat " + path + ": " + std::strerror(errno));
    const std::string tmp = path + ".tmp." + std::to_string(::getpid());
    UniqueFd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
    if (!fd.valid()) return internalError("create " + tmp + ": " + std::strerror(errno));
    const std::string line = newKeyBase64() + "\n";
    bool ok = ::write(fd.get(), line.data(), line.size()) == static_cast<ssize_t>(line.size()) &&
              ::fsync(fd.get()) == 0;
    fd.reset();
    int linked = ok ? ::link(tmp.c_str(), path.c_str()) : -1;
    int err = errno;
    ::unlink(tmp.c_str());
    if (!ok) return internalError("write " + tmp + ": " + std::strerror(err));
    if (linked != 0 && err != EEXIST) {
      return internalError("create " + path + ": " + std::strerror(err));
    }
    if (::stat(path.c_str(), &sb) != 0) {
      return internalError("stat " + path + ": " + std::strerror(errno));
    }
  }
  if ((sb.st_mode & 077) != 0) {
    return Status(Code::kUnprocessable,
                  path +
                      " is readable by group or others: chmod 600 it (it holds the key of "
                      "every stored secret)");
  }
  auto text = readFile(path);
  if (!text) return text.status().withContext("read the secrets key");
  return trim(*text);
}

Result<std::unique_ptr<SecretBox>> fromBase64Key(const std::string& b64, const std::string& from) {
  auto key = fromBase64(b64);
  if (!key || key->size() != crypto_secretbox_KEYBYTES) {
    return invalidArgument(from + " must be base64 of " +
                           std::to_string(crypto_secretbox_KEYBYTES) +
                           " bytes (make one with: head -c32 /dev/urandom | base64)");
  }
  return SecretBox::fromKey(*key);
}

}  // namespace

std::string newKeyBase64() {
  unsigned char key[crypto_secretbox_KEYBYTES];
  if (!initSodium()) std::abort();  // no random source: nothing kiln stores would be safe
  crypto_secretbox_keygen(key);
  std::string out = toBase64(key, sizeof key);
  sodium_memzero(key, sizeof key);
  return out;
}

Result<std::unique_ptr<SecretBox>> SecretBox::fromKey(std::string_view key) {
  RETURN_IF_ERROR(initSodium());
  if (key.size() != crypto_secretbox_KEYBYTES) {
    return invalidArgument("a secrets key is " + std::to_string(crypto_secretbox_KEYBYTES) +
                           " bytes");
  }
  return std::unique_ptr<SecretBox>(new SecretBox(std::string(key)));
}

Result<std::unique_ptr<SecretBox>> SecretBox::load(const std::string& dataDir) {
  RETURN_IF_ERROR(initSodium());
  if (const char* env = std::getenv(kKeyEnv); env != nullptr && *env != '\0') {
    return fromBase64Key(trim(env), std::string("$") + kKeyEnv);
  }
  const std::string path = dataDir + "/secrets.key";
  ASSIGN_OR_RETURN(std::string b64, readOrCreateKeyFile(path));
  return fromBase64Key(b64, path);
}

std::string SecretBox::seal(std::string_view plaintext) const {
  std::vector<unsigned char> buf(crypto_secretbox_NONCEBYTES + crypto_secretbox_MACBYTES +
                                 plaintext.size());
  unsigned char* nonce = buf.data();
  randombytes_buf(nonce, crypto_secretbox_NONCEBYTES);
  crypto_secretbox_easy(buf.data() + crypto_secretbox_NONCEBYTES,
                        reinterpret_cast<const unsigned char*>(plaintext.data()), plaintext.size(),
                        nonce, reinterpret_cast<const unsigned char*>(key_.data()));
  return std::string(kPrefix) + toBase64(buf.data(), buf.size());
}

Result<std::string> SecretBox::open(std::string_view sealed) const {
  if (sealed.substr(0, kPrefix.size()) != kPrefix) {
    return invalidArgument("a sealed secret starts with " + std::string(kPrefix));
  }
  auto raw = fromBase64(sealed.substr(kPrefix.size()));
  constexpr size_t kOverhead = crypto_secretbox_NONCEBYTES + crypto_secretbox_MACBYTES;
  if (!raw || raw->size() < kOverhead) return invalidArgument("a sealed secret is malformed");
  const auto* p = reinterpret_cast<const unsigned char*>(raw->data());
  std::string out(raw->size() - kOverhead, '\0');
  if (crypto_secretbox_open_easy(reinterpret_cast<unsigned char*>(out.data()),
                                 p + crypto_secretbox_NONCEBYTES,
                                 raw->size() - crypto_secretbox_NONCEBYTES, p,
                                 reinterpret_cast<const unsigned char*>(key_.data())) != 0) {
    return invalidArgument(
        "a sealed secret does not open with this node's key (every node of a fleet needs the "
        "same $KILN_SECRETS_KEY)");
  }
  return out;
}

}  // namespace kiln::secrets
