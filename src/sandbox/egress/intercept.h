// Interception of a CONNECT tunnel to a host of a proxy-mode secret: the proxy answers the
// sandbox's TLS with a leaf certificate of the node's InterceptCa, opens its own verified TLS
// connection to the real host, and relays HTTP/1.1 request by request, replacing each
// secret's placeholder with its value in the request line and headers (never the body); the
// responses are relayed as they come. Tunnels to every other host stay end-to-end TLS, and
// nothing is injected into plain-HTTP requests. Private to the egress module.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "common/asio.h"
#include "sandbox/egress/allowlist.h"
#include "sandbox/egress/intercept_ca.h"

namespace kiln::sandbox::egress {

// One proxy-mode secret of a sandbox, in the clear (in the proxy's memory only).
struct SecretRule {
  Allowlist hosts;  // where the value may go
  std::string placeholder;
  std::string value;
};

// What one listener intercepts: none when `rules` is empty.
struct Interception {
  std::shared_ptr<InterceptCa> ca;
  std::vector<SecretRule> rules;
  // The rules whose hosts name host:port (empty: tunnel untouched).
  std::vector<SecretRule> rulesFor(const std::string& host, uint16_t port) const;
};

// Replaces each rule's placeholder with its value in `text`; true if it changed.
bool injectSecrets(std::string& text, const std::vector<SecretRule>& rules);

// Serves the tunnel (the client already got "200 Connection established"); both sockets'
// executor must be one strand. Returns at once; `owner` is kept until the tunnel ends.
void startIntercept(asio::local::stream_protocol::socket client, asio::ip::tcp::socket upstream,
                    const std::string& host, std::vector<SecretRule> rules,
                    std::shared_ptr<asio::ssl::context> serverContext, std::shared_ptr<void> owner);

}  // namespace kiln::sandbox::egress
