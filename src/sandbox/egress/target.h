// ProxyTarget: where a proxied request goes, parsed from its request line. CONNECT takes an
// authority (`host:port`); other methods an absolute http:// URI. Pure functions.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>

#include "common/result.h"

namespace kiln::sandbox::egress {

struct ProxyTarget {
  std::string host;  // as written, without brackets; checked by Allowlist::checkHost
  uint16_t port = 0;
  std::string originForm;  // plain HTTP only: the path and query sent upstream ("/" at least)
  std::string hostHeader;  // plain HTTP only: the Host header sent upstream
};

// Fails with invalid_argument and a message fit for a 400 body.
Result<ProxyTarget> parseProxyTarget(bool connect, std::string_view target);

}  // namespace kiln::sandbox::egress
