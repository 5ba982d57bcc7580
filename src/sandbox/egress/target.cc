#include "sandbox/egress/target.h"

#include <algorithm>
#include <cctype>

namespace kiln::sandbox::egress {
namespace {

bool startsWithNoCase(std::string_view s, std::string_view prefix) {
  return s.size() >= prefix.size() &&
         std::equal(prefix.begin(), prefix.end(), s.begin(), [](char a, char b) {
           return std::tolower(static_cast<unsigned char>(a)) == b;
         });
}

bool parsePort(std::string_view s, uint16_t* port) {
  if (s.empty() || s.size() > 5) return false;
  unsigned v = 0;
  for (char c : s) {
    if (!std::isdigit(static_cast<unsigned char>(c))) return false;
    v = v * 10 + static_cast<unsigned>(c - '0');
  }
  if (v < 1 || v > 65535) return false;
  *port = static_cast<uint16_t>(v);
  return true;
}

// host[:port] or [v6][:port]; *port keeps its default when the authority names none.
Status splitAuthority(std::string_view auth, ProxyTarget* t, bool portRequired) {
  if (auth.empty()) return invalidArgument("empty host");
  // "http://allowed.example@evil.example/" must not be read as allowed.example.
  if (auth.find('@') != std::string_view::npos) return invalidArgument("user info in the URL");
  std::string_view host = auth, port;
  if (auth[0] == '[') {
    size_t close = auth.find(']');
    if (close == std::string_view::npos) return invalidArgument("unclosed [ in host");
    host = auth.substr(1, close - 1);
    std::string_view rest = auth.substr(close + 1);
    if (!rest.empty()) {
      if (rest[0] != ':') return invalidArgument("junk after ] in host");
      port = rest.substr(1);
      if (port.empty()) return invalidArgument("empty port");
    }
  } else {
    size_t colon = auth.rfind(':');
    if (colon != std::string_view::npos) {
      if (auth.find(':') != colon) return invalidArgument("IPv6 host needs [brackets]");
      host = auth.substr(0, colon);
      port = auth.substr(colon + 1);
      if (port.empty()) return invalidArgument("empty port");
    }
  }
  if (host.empty()) return invalidArgument("empty host");
  if (!port.empty() && !parsePort(port, &t->port)) return invalidArgument("bad port");
  if (port.empty() && portRequired) return invalidArgument("CONNECT needs host:port");
  t->host = std::string(host);
  bool v6 = auth[0] == '[';
  t->hostHeader = v6 ? "[" + t->host + "]" : t->host;
  if (t->port != 80) t->hostHeader += ":" + std::to_string(t->port);
  return Status::ok();
}

}  // namespace

Result<ProxyTarget> parseProxyTarget(bool connect, std::string_view target) {
  ProxyTarget t;
  if (connect) {
    RETURN_IF_ERROR(splitAuthority(target, &t, true));
    return t;
  }
  if (startsWithNoCase(target, "https://")) {
    return invalidArgument("https:// URLs go through CONNECT (set HTTPS_PROXY)");
  }
  if (!startsWithNoCase(target, "http://")) {
    return invalidArgument("this is a proxy: the request target must be an absolute http:// URL");
  }
  std::string_view rest = target.substr(7);
  size_t end = rest.find_first_of("/?#");
  std::string_view auth = rest.substr(0, end);
  t.port = 80;
  RETURN_IF_ERROR(splitAuthority(auth, &t, false));
  std::string_view path = end == std::string_view::npos ? "" : rest.substr(end);
  path = path.substr(0, path.find('#'));  // a fragment never goes on the wire
  t.originForm = path.empty() || path[0] != '/' ? "/" + std::string(path) : std::string(path);
  return t;
}

}  // namespace kiln::sandbox::egress
