// What the namespace backend adds to a sandbox in `network: "allowlist"` mode: a listener of
// the egress proxy on <netDir>/px.sock (sandbox/ns/layout.h: <run>/<id>.net), that dir bind-mounted at /run/kiln inside, and
// `--egress-socket /run/kiln/px.sock` for the runtime (which then serves 127.0.0.1:3128 inside
// and sets the proxy variables of commands; docs/runtime.md, "Network").
#pragma once
#include <memory>
#include <string>

#include "common/result.h"
#include "sandbox/egress/proxy.h"
#include "sandbox/ns/contain.h"
#include "sandbox/sandbox.h"

namespace kiln::sandbox::egress {

inline constexpr const char* kInsideSocketDir = "/run/kiln";
inline constexpr const char* kInsideSocket = "/run/kiln/px.sock";
// With proxy-mode secrets: the host's CA bundle plus the proxy's intercepting CA, readable by
// the agent (the runtime points SSL_CERT_FILE and friends at it).
inline constexpr const char* kInsideCaBundle = "/run/kiln/ca.pem";

struct NsEgress {
  std::unique_ptr<EgressListener> listener;  // owned by the sandbox; closing it cuts egress

  // Adds the socket dir mount and the runtime flag to a plan built for newRoot.
  Status addTo(ContainPlan& plan) const;
  std::string hostDir;
};

// For network "allowlist": validates spec.allowHosts, creates netDir and starts listening;
// with spec.proxySecrets, also writes netDir/ca.pem (see kInsideCaBundle).
Result<NsEgress> prepareNsEgress(const SandboxSpec& spec, const std::string& netDir,
                                 EgressProxy& proxy);

}  // namespace kiln::sandbox::egress
