// The egress proxy: the only way out of a sandbox in `network: "allowlist"` mode. An HTTP proxy
// on the host (CONNECT tunnels for HTTPS, absolute-URI forwarding for plain HTTP) with one
// listening unix socket per sandbox, each checked against that sandbox's Allowlist. It resolves
// names itself and refuses metadata/link-local addresses whatever the list says. One proxy per
// node serves every sandbox on the node's I/O threads. Thread-safe.
#pragma once
#include <memory>
#include <string>

#include "common/asio.h"
#include "common/result.h"
#include "sandbox/egress/allowlist.h"
#include "sandbox/egress/intercept.h"

namespace kiln::sandbox::egress {

// One sandbox's listening socket. Destroying it (from any thread) stops accepting; tunnels in
// flight end when either side closes (a destroyed sandbox closes its side).
class EgressListener {
 public:
  virtual ~EgressListener() = default;
  virtual const std::string& socketPath() const = 0;
};

class EgressProxy {
 public:
  virtual ~EgressProxy() = default;
  // Binds a unix socket at socketPath (replacing a stale file) and serves the sandbox `label`
  // (used in logs) with `allow`. CONNECT tunnels to the hosts of `secrets` are intercepted
  // (sandbox/egress/intercept.h); FailedPrecondition when there are secrets and the proxy has
  // no InterceptCa. Blocking only for the bind.
  virtual Result<std::unique_ptr<EgressListener>> listen(const std::string& socketPath,
                                                         const std::string& label, Allowlist allow,
                                                         std::vector<SecretRule> secrets = {}) = 0;
  // The PEM of the CA that intercepted tunnels present, "" without one.
  virtual std::string interceptCaPem() const { return ""; }
};

// A proxy running on `ex` (the node's I/O pool). The executor's context must outlive the proxy
// and every listener. With `ca`, it can intercept the tunnels of proxy-mode secrets.
std::unique_ptr<EgressProxy> newEgressProxy(asio::any_io_executor ex,
                                            std::shared_ptr<InterceptCa> ca = nullptr);
// A proxy with its own I/O thread (`kiln sandbox exec`, a backend without a node). Its
// listeners may outlive it: they then stop serving.
std::unique_ptr<EgressProxy> newStandaloneEgressProxy();

}  // namespace kiln::sandbox::egress
