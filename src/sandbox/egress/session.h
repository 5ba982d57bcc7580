// One client connection of the egress proxy: reads one request, decides, and either refuses it
// (403/400/502 with a text body) or connects upstream and hands both sockets to a relay.
// Private to the egress module.
#pragma once
#include <atomic>
#include <memory>
#include <string>

#include "common/asio.h"
#include "sandbox/egress/allowlist.h"
#include "sandbox/egress/intercept.h"

namespace kiln::sandbox::egress {

// What every connection of one listener shares. Immutable but for the counter.
struct ListenerConfig {
  std::string label;  // the sandbox, for logs
  Allowlist allow;
  Interception intercept;      // the sandbox's proxy-mode secrets, if any
  std::atomic<int> active{0};  // connections in setup or relaying
};

// Serves the connection on its socket's executor, which must be a strand. Returns at once.
void startSession(asio::local::stream_protocol::socket client,
                  std::shared_ptr<ListenerConfig> config);

}  // namespace kiln::sandbox::egress
