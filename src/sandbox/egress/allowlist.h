// Allowlist: which hosts a sandbox in `network: "allowlist"` mode may reach through the egress
// proxy, plus the addresses no sandbox may ever reach (cloud metadata, link-local). A value
// type; immutable after parse(), so safe to share across threads.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "common/asio.h"
#include "common/result.h"

namespace kiln::sandbox::egress {

// The outcome of one check, with the reason a refused request is told (and logged).
struct Verdict {
  bool allowed = false;
  std::string reason;
};

class Allowlist {
 public:
  // Entries: `host`, `*.domain` (any subdomain, not the domain itself), an IPv4 literal or a
  // bracketed IPv6 literal, each with an optional `:port` (without one, any port). Names are
  // case-insensitive; a trailing dot is ignored. A name ending in a number ("127.1", "0x7f")
  // is neither a name nor a literal and is refused. Fails with invalid_argument on a bad entry.
  static Result<Allowlist> parse(const std::vector<std::string>& entries);

  // Checks a requested host (a name or an IP literal, IPv6 with or without brackets) and port
  // against the entries and the always-refused names. Does not resolve.
  Verdict checkHost(const std::string& host, uint16_t port) const;

  // Checks the addresses an allowed host resolved to: none may be link-local/metadata, and a
  // loopback or unspecified address is allowed only when the host matched an exact entry (no
  // wildcard) or is a listed IP literal, so that DNS cannot turn a wildcard domain into a way
  // to the host's own services.
  Verdict checkResolved(const std::string& host, uint16_t port,
                        const std::vector<asio::ip::address>& addresses) const;

  bool empty() const { return entries_.empty(); }

 private:
  struct Entry {
    std::string host;  // lower-case; for a wildcard the suffix including the leading dot
    bool wildcard = false;
    bool ipLiteral = false;
    uint16_t port = 0;  // 0 = any
  };
  std::vector<Entry> entries_;
};

// Lower-cases, strips one trailing dot and the brackets of an IPv6 literal, and rewrites an IP
// literal in canonical form. Empty when the name is not a valid host name or literal.
std::string normalizeHost(const std::string& host);

// Addresses refused even when their host is listed: link-local (IPv4 169.254.0.0/16, IPv6
// fe80::/10, which hold the AWS/GCP/Azure metadata endpoints), AWS's fd00:ec2::254, Alibaba's
// 100.100.100.200, and IPv4-mapped IPv6 forms of these.
bool isMetadataAddress(const asio::ip::address& addr);
// Loopback or unspecified (0.0.0.0, ::), also in IPv4-mapped form.
bool isHostLocalAddress(const asio::ip::address& addr);

}  // namespace kiln::sandbox::egress
