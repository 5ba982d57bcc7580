#include "sandbox/egress/intercept_ca.h"

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>

#include <boost/asio/ip/address.hpp>
#include <filesystem>
#include <fstream>

#include "common/files.h"

namespace kiln::sandbox::egress {
namespace {

constexpr long kCaDays = 3650;
constexpr long kLeafDays = 30;

std::string sslError(const std::string& what) {
  char buf[256];
  ERR_error_string_n(ERR_get_error(), buf, sizeof buf);
  return "egress CA: " + what + ": " + buf;
}

struct X509Free {
  void operator()(X509* x) const { X509_free(x); }
};
struct KeyFree {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
using X509Ptr = std::unique_ptr<X509, X509Free>;
using KeyPtr = std::unique_ptr<EVP_PKEY, KeyFree>;

bool addExt(X509* cert, X509* issuer, int nid, const std::string& value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str());
  if (ext == nullptr) return false;
  bool ok = X509_add_ext(cert, ext, -1) == 1;
  X509_EXTENSION_free(ext);
  return ok;
}

// A certificate for `key` named `cn`, valid from an hour ago for `days`, with a random serial.
X509Ptr newCert(EVP_PKEY* key, const std::string& cn, long days) {
  X509Ptr x(X509_new());
  unsigned char serial[16];
  RAND_bytes(serial, sizeof serial);
  serial[0] &= 0x7f;  // positive
  BIGNUM* bn = BN_bin2bn(serial, sizeof serial, nullptr);
  BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x.get()));
  BN_free(bn);
  X509_set_version(x.get(), 2);
  X509_gmtime_adj(X509_getm_notBefore(x.get()), -3600);
  X509_gmtime_adj(X509_getm_notAfter(x.get()), days * 86400);
  X509_set_pubkey(x.get(), key);
  X509_NAME* name = X509_get_subject_name(x.get());
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
                             reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1, 0);
  return x;
}

std::string toPem(X509* cert) {
  BIO* bio = BIO_new(BIO_s_mem());
  PEM_write_bio_X509(bio, cert);
  char* data = nullptr;
  long n = BIO_get_mem_data(bio, &data);
  std::string out(data, static_cast<size_t>(n));
  BIO_free(bio);
  return out;
}

Status writePrivate(const std::string& path, const std::string& text, mode_t mode) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    ::chmod(tmp.c_str(), mode);
    out << text;
    if (!out.flush()) return internalError("egress CA: write " + tmp);
  }
  ::chmod(tmp.c_str(), mode);
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) return internalError("egress CA: rename " + tmp + ": " + ec.message());
  return Status::ok();
}

Result<std::pair<KeyPtr, X509Ptr>> createCa(const std::string& dir) {
  KeyPtr key(EVP_EC_gen("P-256"));
  if (!key) return internalError(sslError("make a key"));
  X509Ptr cert = newCert(key.get(), "kiln egress CA", kCaDays);
  X509_set_issuer_name(cert.get(), X509_get_subject_name(cert.get()));
  if (!addExt(cert.get(), cert.get(), NID_basic_constraints, "critical,CA:TRUE,pathlen:0") ||
      !addExt(cert.get(), cert.get(), NID_key_usage, "critical,keyCertSign,cRLSign") ||
      !addExt(cert.get(), cert.get(), NID_subject_key_identifier, "hash") ||
      X509_sign(cert.get(), key.get(), EVP_sha256()) == 0) {
    return internalError(sslError("sign the CA"));
  }
  BIO* bio = BIO_new(BIO_s_mem());
  PEM_write_bio_PrivateKey(bio, key.get(), nullptr, nullptr, 0, nullptr, nullptr);
  char* data = nullptr;
  long n = BIO_get_mem_data(bio, &data);
  std::string keyPem(data, static_cast<size_t>(n));
  BIO_free(bio);
  // The key first: a certificate without its key is never left behind.
  RETURN_IF_ERROR(writePrivate(dir + "/ca.key", keyPem, 0600));
  RETURN_IF_ERROR(writePrivate(dir + "/ca.pem", toPem(cert.get()), 0644));
  return std::pair{std::move(key), std::move(cert)};
}

Result<std::pair<KeyPtr, X509Ptr>> readCa(const std::string& dir) {
  ASSIGN_OR_RETURN(std::string keyPem, readFile(dir + "/ca.key"));
  ASSIGN_OR_RETURN(std::string certPem, readFile(dir + "/ca.pem"));
  BIO* kb = BIO_new_mem_buf(keyPem.data(), static_cast<int>(keyPem.size()));
  KeyPtr key(PEM_read_bio_PrivateKey(kb, nullptr, nullptr, nullptr));
  BIO_free(kb);
  BIO* cb = BIO_new_mem_buf(certPem.data(), static_cast<int>(certPem.size()));
  X509Ptr cert(PEM_read_bio_X509(cb, nullptr, nullptr, nullptr));
  BIO_free(cb);
  if (!key || !cert) return internalError(sslError("read " + dir + "/ca.key and ca.pem"));
  if (X509_check_private_key(cert.get(), key.get()) != 1) {
    return internalError("egress CA: " + dir + "/ca.pem does not match ca.key");
  }
  return std::pair{std::move(key), std::move(cert)};
}

}  // namespace

Result<std::shared_ptr<InterceptCa>> InterceptCa::loadOrCreate(const std::string& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return internalError("egress CA: create " + dir + ": " + ec.message());
  ::chmod(dir.c_str(), 0700);
  struct stat sb {};
  const bool exists = ::stat((dir + "/ca.key").c_str(), &sb) == 0;
  auto ca = exists ? readCa(dir) : createCa(dir);
  if (!ca) return ca.status();
  const std::string pem = toPem(ca->second.get());
  return std::shared_ptr<InterceptCa>(
      new InterceptCa(ca->first.release(), ca->second.release(), pem));
}

InterceptCa::~InterceptCa() {
  EVP_PKEY_free(key_);
  X509_free(cert_);
}

Result<std::shared_ptr<boost::asio::ssl::context>> InterceptCa::serverContext(
    const std::string& host) {
  std::lock_guard lock(mu_);
  if (auto it = leaves_.find(host); it != leaves_.end()) return it->second;
  KeyPtr key(EVP_EC_gen("P-256"));
  if (!key) return internalError(sslError("make a leaf key"));
  X509Ptr leaf = newCert(key.get(), host.substr(0, 64), kLeafDays);
  X509_set_issuer_name(leaf.get(), X509_get_subject_name(cert_));
  boost::system::error_code ec;
  boost::asio::ip::make_address(host, ec);
  const std::string san = (ec ? "DNS:" : "IP:") + host;
  if (!addExt(leaf.get(), cert_, NID_subject_alt_name, san) ||
      !addExt(leaf.get(), cert_, NID_basic_constraints, "critical,CA:FALSE") ||
      !addExt(leaf.get(), cert_, NID_key_usage, "critical,digitalSignature") ||
      !addExt(leaf.get(), cert_, NID_ext_key_usage, "serverAuth") ||
      !addExt(leaf.get(), cert_, NID_subject_key_identifier, "hash") ||
      !addExt(leaf.get(), cert_, NID_authority_key_identifier, "keyid:always") ||
      X509_sign(leaf.get(), key_, EVP_sha256()) == 0) {
    return internalError(sslError("sign a leaf for " + host));
  }
  SSL_CTX* raw = SSL_CTX_new(TLS_server_method());
  if (raw == nullptr) return internalError(sslError("server context for " + host));
  // The asio context owns (and frees) the SSL_CTX from here on.
  auto ctx = std::make_shared<boost::asio::ssl::context>(raw);
  if (SSL_CTX_set_min_proto_version(raw, TLS1_2_VERSION) != 1 ||
      SSL_CTX_use_certificate(raw, leaf.get()) != 1 ||
      SSL_CTX_use_PrivateKey(raw, key.get()) != 1) {
    return internalError(sslError("server context for " + host));
  }
  leaves_[host] = ctx;
  return ctx;
}

}  // namespace kiln::sandbox::egress
