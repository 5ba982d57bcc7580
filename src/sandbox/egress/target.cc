#include "sandbox/egress/target.h"

#include <algorithm>
#include <cctype>
#include <cstdlib>

#include "common/url.h"

namespace kiln::sandbox::egress {
namespace {

bool startsWithNoCase(std::string_view s, std::string_view prefix) {
  return s.size() >= prefix.size() &&
         std::equal(prefix.begin(), prefix.end(), s.begin(), [](char a, char b) {
           return std::tolower(static_cast<unsigned char>(a)) == b;
         });
}

// The host and port of a parsed target; the port stays 80 when the URL names none.
Status takeAuthority(const Url& url, ProxyTarget* t, bool portRequired) {
  // "http://allowed.example@evil.example/" must not be read as allowed.example.
  if (!url.userinfo.empty()) return invalidArgument("user info in the URL");
  if (url.port.empty()) {
    if (portRequired) return invalidArgument("CONNECT needs host:port");
    t->port = 80;
  } else {
    const int port = std::atoi(url.port.c_str());  // parseUrl checked: digits, <= 65535
    if (port < 1) return invalidArgument("bad port");
    t->port = static_cast<uint16_t>(port);
  }
  t->host = url.host;
  t->hostHeader = url.ipv6 ? "[" + t->host + "]" : t->host;
  if (t->port != 80) t->hostHeader += ":" + std::to_string(t->port);
  return Status::ok();
}

// Drops the "url: " of parseUrl's messages: they go into a 400 body of the proxy's own.
Status targetError(const Status& st) {
  const std::string& m = st.message();
  return invalidArgument(m.rfind("url: ", 0) == 0 ? m.substr(5) : m);
}

}  // namespace

Result<ProxyTarget> parseProxyTarget(bool connect, std::string_view target) {
  ProxyTarget t;
  if (connect) {
    // An authority alone: a path, query, fragment or user info makes it something else.
    if (target.empty() || target.find_first_of("/?#@\\") != std::string_view::npos) {
      return invalidArgument("CONNECT needs host:port");
    }
    Result<Url> url = parseUrl("http://" + std::string(target));
    if (!url) return targetError(url.status());
    RETURN_IF_ERROR(takeAuthority(*url, &t, true));
    return t;
  }
  if (startsWithNoCase(target, "https://")) {
    return invalidArgument("https:// URLs go through CONNECT (set HTTPS_PROXY)");
  }
  if (!startsWithNoCase(target, "http://")) {
    return invalidArgument("this is a proxy: the request target must be an absolute http:// URL");
  }
  Result<Url> url = parseUrl(target);
  if (!url) return targetError(url.status());
  RETURN_IF_ERROR(takeAuthority(*url, &t, false));
  // A fragment never goes on the wire.
  t.originForm = url->query.empty() ? url->path : url->path + "?" + url->query;
  return t;
}

}  // namespace kiln::sandbox::egress
