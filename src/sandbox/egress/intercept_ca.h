// InterceptCa: the node's own certificate authority for the egress proxy's interception of
// HTTPS to the hosts of a job's proxy-mode secrets (docs/architecture.md, "Secrets"). Its key
// and certificate live in <dataDir>/egress-ca/ (key 0600), made on first use; sandboxes that
// hold proxy-mode secrets trust it (/run/kiln/ca.pem). It signs a short-lived leaf
// certificate per intercepted host, cached. Thread-safe.
#pragma once
#include <openssl/ssl.h>

#include <boost/asio/ssl/context.hpp>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "common/result.h"

namespace kiln::sandbox::egress {

class InterceptCa {
 public:
  // Loads <dir>/ca.key and <dir>/ca.pem, or makes them (an EC P-256 key, 10 years).
  static Result<std::shared_ptr<InterceptCa>> loadOrCreate(const std::string& dir);
  ~InterceptCa();

  // The CA certificate, PEM.
  const std::string& certPem() const { return certPem_; }
  // A TLS server context presenting a leaf certificate for `host` (a DNS name, or an IP
  // literal: then an IP subjectAltName) signed by this CA; HTTP/1.1 only (no ALPN).
  Result<std::shared_ptr<boost::asio::ssl::context>> serverContext(const std::string& host);

 private:
  InterceptCa(EVP_PKEY* key, X509* cert, std::string pem)
      : key_(key), cert_(cert), certPem_(std::move(pem)) {}

  EVP_PKEY* key_;
  X509* cert_;
  const std::string certPem_;
  std::mutex mu_;
  std::map<std::string, std::shared_ptr<boost::asio::ssl::context>> leaves_;  // GUARDED_BY(mu_)
};

}  // namespace kiln::sandbox::egress
