#include "sandbox/egress/allowlist.h"

#include <algorithm>
#include <cctype>
#include <optional>

namespace kiln::sandbox::egress {
namespace {

// Names of metadata services, refused whatever they resolve to.
constexpr const char* kMetadataNames[] = {"metadata.google.internal", "metadata.goog"};

// getaddrinfo() reads "127.1", "2130706433" or "0x7f.1" as IPv4 addresses (inet_aton): a name
// whose last label is a number would slip past the rule that IP literals must be listed.
bool endsInNumber(const std::string& h) {
  std::string last = h.substr(h.rfind('.') + 1);
  if (last.rfind("0x", 0) == 0) return true;
  return !last.empty() && std::all_of(last.begin(), last.end(), ::isdigit);
}

bool validName(const std::string& h) {
  if (h.empty() || h.size() > 253 || endsInNumber(h)) return false;
  size_t label = 0;
  for (char c : h) {
    if (c == '.') {
      if (label == 0) return false;
      label = 0;
      continue;
    }
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_') return false;
    if (++label > 63) return false;
  }
  return label > 0;
}

bool parsePort(const std::string& s, uint16_t* port) {
  if (s.empty() || s.size() > 5 || !std::all_of(s.begin(), s.end(), ::isdigit)) return false;
  int v = std::stoi(s);
  if (v < 1 || v > 65535) return false;
  *port = static_cast<uint16_t>(v);
  return true;
}

// Splits `host[:port]`, `[v6][:port]` or a bare IPv6 literal.
bool splitHostPort(const std::string& entry, std::string* host, std::string* port) {
  if (!entry.empty() && entry[0] == '[') {
    size_t close = entry.find(']');
    if (close == std::string::npos) return false;
    *host = entry.substr(0, close + 1);
    std::string rest = entry.substr(close + 1);
    if (rest.empty()) return true;
    if (rest[0] != ':') return false;
    *port = rest.substr(1);
    return !port->empty();
  }
  size_t colon = entry.find(':');
  if (colon == std::string::npos || entry.find(':', colon + 1) != std::string::npos) {
    *host = entry;  // no port, or a bare IPv6 literal
    return true;
  }
  *host = entry.substr(0, colon);
  *port = entry.substr(colon + 1);
  return !port->empty();
}

bool isIpLiteral(const std::string& normalized) {
  boost::system::error_code ec;
  asio::ip::make_address(normalized, ec);
  return !ec;
}

// The IPv4 address embedded in an IPv4-mapped (::ffff:a.b.c.d) or NAT64 (64:ff9b::a.b.c.d)
// IPv6 address, if any.
std::optional<asio::ip::address_v4> embeddedV4(const asio::ip::address_v6& a) {
  if (a.is_v4_mapped()) return asio::ip::make_address_v4(asio::ip::v4_mapped, a);
  auto b = a.to_bytes();
  static constexpr unsigned char kNat64[12] = {0, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0};
  if (std::equal(kNat64, kNat64 + 12, b.begin())) {
    return asio::ip::address_v4({b[12], b[13], b[14], b[15]});
  }
  return std::nullopt;
}

bool metadataV4(const asio::ip::address_v4& a) {
  uint32_t ip = a.to_uint();
  return (ip >> 16) == ((169u << 8) | 254u) ||
         ip == ((100u << 24) | (100u << 16) | (100u << 8) | 200u);
}

bool hostLocalV4(const asio::ip::address_v4& a) {
  return a.is_loopback() || (a.to_uint() >> 24) == 0;
}

}  // namespace

std::string normalizeHost(const std::string& raw) {
  std::string h = raw;
  std::transform(h.begin(), h.end(), h.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  bool bracketed = h.size() >= 2 && h.front() == '[' && h.back() == ']';
  if (bracketed) h = h.substr(1, h.size() - 2);
  boost::system::error_code ec;
  asio::ip::address addr = asio::ip::make_address(h, ec);
  if (!ec) {
    // Brackets belong to IPv6 only; a scope id (fe80::1%eth0) names a host interface.
    if ((bracketed && !addr.is_v6()) || h.find('%') != std::string::npos) return "";
    return addr.to_string();
  }
  if (bracketed) return "";
  if (!h.empty() && h.back() == '.') h.pop_back();
  return validName(h) ? h : "";
}

bool isMetadataAddress(const asio::ip::address& addr) {
  if (addr.is_v4()) return metadataV4(addr.to_v4());
  const asio::ip::address_v6 a = addr.to_v6();
  if (auto v4 = embeddedV4(a)) return metadataV4(*v4);
  static const asio::ip::address_v6 kAwsV6 = asio::ip::make_address_v6("fd00:ec2::254");
  return a.is_link_local() || a == kAwsV6;
}

bool isHostLocalAddress(const asio::ip::address& addr) {
  if (addr.is_v4()) return hostLocalV4(addr.to_v4());
  const asio::ip::address_v6 a = addr.to_v6();
  if (auto v4 = embeddedV4(a)) return hostLocalV4(*v4);
  return a.is_loopback() || a.is_unspecified();
}

Result<Allowlist> Allowlist::parse(const std::vector<std::string>& entries) {
  Allowlist out;
  for (const std::string& raw : entries) {
    std::string host, port;
    Entry e;
    if (!splitHostPort(raw, &host, &port) || (!port.empty() && !parsePort(port, &e.port))) {
      return invalidArgument("allowlist: bad entry \"" + raw + "\" (want host[:port])");
    }
    if (host.rfind("*.", 0) == 0) {
      e.wildcard = true;
      host = host.substr(2);
    }
    e.host = normalizeHost(host);
    if (e.host.empty()) {
      return invalidArgument("allowlist: bad host in \"" + raw + "\"");
    }
    e.ipLiteral = isIpLiteral(e.host);
    if (e.wildcard && e.ipLiteral) {
      return invalidArgument("allowlist: a wildcard needs a domain: \"" + raw + "\"");
    }
    if (e.wildcard) e.host = "." + e.host;
    out.entries_.push_back(std::move(e));
  }
  return out;
}

Verdict Allowlist::checkHost(const std::string& host, uint16_t port) const {
  const std::string h = normalizeHost(host);
  if (h.empty()) return {false, "invalid host \"" + host + "\""};
  if (port == 0) return {false, "invalid port 0"};
  for (const char* name : kMetadataNames) {
    if (h == name) return {false, "\"" + h + "\" is a cloud metadata endpoint (always refused)"};
  }
  const bool literal = isIpLiteral(h);
  if (literal && isMetadataAddress(asio::ip::make_address(h))) {
    return {false, h + " is a link-local/metadata address (always refused)"};
  }
  for (const Entry& e : entries_) {
    if (e.port != 0 && e.port != port) continue;
    if (e.ipLiteral != literal) continue;
    bool match = e.wildcard ? h.size() > e.host.size() &&
                                  h.compare(h.size() - e.host.size(), e.host.size(), e.host) == 0
                            : h == e.host;
    if (match) return {true, "listed"};
  }
  return {false,
          "host " + h + " port " + std::to_string(port) + " is not in this sandbox's allowlist"};
}

Verdict Allowlist::checkResolved(const std::string& host, uint16_t port,
                                 const std::vector<asio::ip::address>& addresses) const {
  const std::string h = normalizeHost(host);
  const bool exact = std::any_of(entries_.begin(), entries_.end(), [&](const Entry& e) {
    return !e.wildcard && e.host == h && (e.port == 0 || e.port == port);
  });
  for (const asio::ip::address& addr : addresses) {
    if (isMetadataAddress(addr)) {
      return {false, h + " resolves to " + addr.to_string() +
                         ", a link-local/metadata address (always refused)"};
    }
    if (isHostLocalAddress(addr) && !exact) {
      return {false, h + " resolves to " + addr.to_string() +
                         ", a host-local address (allowed only for exactly listed hosts)"};
    }
  }
  return {true, "resolved"};
}

}  // namespace kiln::sandbox::egress
