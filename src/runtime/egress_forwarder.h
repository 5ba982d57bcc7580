// EgressForwarder: makes the host's egress proxy reachable as an HTTP proxy URL inside a
// sandbox in allowlist mode (and the host's model gateway as a base URL). Listens on
// 127.0.0.1:<port> in the sandbox's network namespace and relays every connection to the proxy's
// unix socket (bind-mounted in). Runs on its own thread for the life of the runtime.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "common/result.h"

namespace kiln::runtime {

inline constexpr uint16_t kEgressProxyPort = 3128;
// The ports an agent CLI's sandbox forwards to kiln on the host (`--forward PORT:PATH`): the
// model gateway (gateway/model_gateway.h) and the ACP client's stdio channel.
inline constexpr uint16_t kModelGatewayPort = 3129;
inline constexpr uint16_t kAcpChannelPort = 3130;

// Binds 127.0.0.1:port (so commands can connect as soon as this returns) and starts relaying.
Status startEgressForwarder(const std::string& proxySocket, uint16_t port = kEgressProxyPort);

// HTTP_PROXY, HTTPS_PROXY (both cases) = http://127.0.0.1:<port>; NO_PROXY = localhost,127.0.0.1.
// With `caBundle` (the proxy's ca.pem beside its socket, present when the job has proxy-mode
// secrets), also the variables that make TLS clients trust it: SSL_CERT_FILE (OpenSSL:
// curl, git, Python's ssl), CURL_CA_BUNDLE, REQUESTS_CA_BUNDLE, GIT_SSL_CAINFO and
// NODE_EXTRA_CA_CERTS.
std::vector<std::string> egressProxyEnv(uint16_t port = kEgressProxyPort,
                                        const std::string& caBundle = "");

}  // namespace kiln::runtime
