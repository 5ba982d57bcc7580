// Supervisor: a node's sandboxes. It owns the backends (namespace always; gvisor where runsc can
// run, else the reason it cannot), knows the node's default backend, keeps the warm pools, and
// hands a job its sandbox: taken from a fitting pool, else created cold. Thread-safe.
#pragma once
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "common/result.h"
#include "sandbox/pool.h"
#include "sandbox/sandbox.h"

namespace kiln::sandbox {

inline constexpr const char* kNamespaceBackend = "namespace";
inline constexpr const char* kGvisorBackend = "gvisor";

struct SupervisorOptions {
  std::string defaultBackend = kNamespaceBackend;  // `--sandbox-backend`
  NamespaceBackendOptions ns;
  GvisorBackendOptions gvisor;
  std::vector<WarmPoolConfig> pools;  // `--warm-pool`, each started (one sandbox) before start()
                                      // returns
};

class Supervisor {
 public:
  // Fails, saying why, when the default backend cannot run here or a warm pool cannot be filled
  // (its backend is unavailable, or its first sandbox does not start).
  static Result<std::unique_ptr<Supervisor>> start(SupervisorOptions opts);
  ~Supervisor();

  // Whether jobs may ask for `backend` ("" = the default) on this node: invalid_argument for a
  // name that is no backend, unprocessable (with the reason) for one that cannot run here.
  Status check(const std::string& backend) const;
  // check(), and for a sandbox whose commands run as root, that root inside is unprivileged on
  // the host (kUnprocessable with what to change otherwise).
  Status check(const std::string& backend, bool rootInside) const;
  // A sandbox for spec on `backend` ("" = the default): from a fitting warm pool if one has an
  // idle sandbox, else created. Blocking: call it on the BlockingPool.
  Result<std::unique_ptr<Sandbox>> acquire(const std::string& backend, const SandboxSpec& spec);

  const std::string& defaultBackend() const { return defaultBackend_; }
  // The backend named so, or null when it is unavailable here.
  SandboxBackend* backend(const std::string& name) const;
  // What the backends cannot enforce here, for the operator's log.
  std::vector<std::string> limitations() const;
  // Warm pool gauges and counters, Prometheus text.
  std::string renderMetrics() const;

 private:
  Supervisor() = default;

  std::string defaultBackend_;
  std::map<std::string, std::unique_ptr<SandboxBackend>> backends_;  // the available ones
  std::map<std::string, std::string> unavailable_;  // backend -> why it cannot run here
  // Destroyed before the backends (declared after them).
  std::vector<std::unique_ptr<WarmPool>> pools_;
};

}  // namespace kiln::sandbox
