// Sandbox: an isolated environment for one job, reached only through the runtime contract
// (HTTP over a unix socket, see docs/runtime.md). Backends: namespace (sandbox/ns/: Linux
// namespaces, the host's kernel) and gvisor (sandbox/gvisor/: gVisor's runsc, a kernel of its
// own). The orchestrator never touches a sandbox's insides directly.
#pragma once
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/result.h"

namespace kiln::sandbox {

namespace egress {
class EgressProxy;
}

// A proxy-mode secret of the sandbox's job (secrets/secrets.h): the egress proxy puts `value`
// in place of `placeholder` in HTTPS requests to `hosts` only. The value never enters the
// sandbox.
struct ProxySecret {
  std::vector<std::string> hosts;  // allowlist entries
  std::string placeholder;
  std::string value;
};

struct SandboxSpec {
  // Short unique id (used in host paths; keep it short, unix socket paths are <= 107 bytes).
  std::string id;
  // Host directory bind-mounted read-write at /workspace inside.
  std::string workspaceDir;
  // Where the workspace is inside, and the directory commands start in (the job's
  // sandbox.workdir, validated by api/request/job_spec.h).
  std::string workdir = "/workspace";
  // CPU time in cores: 0 = unlimited, 0.5 = half of one core (a 50% cgroup quota).
  double cpus = 0;
  int memoryMb = 0;              // 0 = unlimited
  int pids = 0;                  // 0 = backend default
  int diskMb = 0;                // 0 = unlimited
  std::string network = "none";  // "none" | "allowlist"
  // With network "allowlist": the hosts reachable through the egress proxy (`host`,
  // `*.domain`, IP literals, each with an optional `:port`; docs/runtime.md, "Network").
  std::vector<std::string> allowHosts;
  // Base image (`kiln image build`): a name under NamespaceBackendOptions::imagesDir or an
  // absolute path. Empty: read-only views of the host's system dirs.
  std::string image;
  // Commands run as root inside (still without capabilities) instead of uid 1000 `agent`.
  bool rootInside = false;
  // A host dir holding the model gateway's socket `llm.sock` (gateway/model_gateway.h), made
  // reachable inside as 127.0.0.1:3129 whatever `network` is. Empty: none.
  std::string gatewayDir;
  // A host dir of agent CLIs, mounted read-only at /opt/kiln-agent-clis. Empty: none.
  std::string agentCliDir;
  // Network "allowlist" only: the job's proxy-mode secrets. With any, the sandbox trusts the
  // proxy's CA (/run/kiln/ca.pem and the variables that point TLS clients at it).
  std::vector<ProxySecret> proxySecrets;
};

// Why a sandbox was killed by a limit, if it was.
struct LimitBreach {
  std::string resource;  // "memory" | "pids" | "disk"
  std::string message;
};

// A running sandbox. Owned by the job that created it. destroy() is thread-safe and idempotent
// (a stop request may call it while the job is mid-call); other methods are const.
class Sandbox {
 public:
  virtual ~Sandbox() = default;
  virtual const std::string& id() const = 0;
  // Host path of the unix socket where the runtime (PID 1 inside) serves the contract.
  virtual const std::string& runtimeSocket() const = 0;
  // The secret the runtime on that socket accepts (`Authorization: Bearer <token>`): one per
  // sandbox, so that reaching a socket is not enough to drive its sandbox.
  virtual const std::string& runtimeToken() const = 0;
  // Kills every process inside and releases mounts, cgroups and state dirs. Blocking.
  virtual Status destroy() = 0;
  // Set once a limit killed (or is about to kill) the sandbox. Never waits for a destroy() in
  // progress (it is called from I/O threads): during one, it answers what was known when the
  // teardown began.
  virtual std::optional<LimitBreach> limitBreach() const = 0;
  // Gives a sandbox from SandboxBackend::startIdle() its job: spec.workspaceDir at /workspace,
  // and spec's memory, cpu and process limits. Once (a second call is a conflict); blocking.
  virtual Status attach(const SandboxSpec& spec) = 0;
  // Sets the niceness of every thread in the sandbox (a warm pool starts its sandboxes at a low
  // priority, then gives them the normal one). Blocking.
  virtual Status renice(int nice) = 0;
};

// Creates sandboxes. create() blocks (clone, mounts): run it on the BlockingPool. Thread-safe.
class SandboxBackend {
 public:
  virtual ~SandboxBackend() = default;
  virtual Result<std::unique_ptr<Sandbox>> create(const SandboxSpec& spec) = 0;
  // Starts a sandbox ahead of its job, for a warm pool: as create(spec), but nothing is at
  // /workspace (spec.workspaceDir is ignored) and the runtime refuses work until attach().
  virtual Result<std::unique_ptr<Sandbox>> startIdle(const SandboxSpec& spec) = 0;
  virtual std::string name() const = 0;
  // What this backend cannot enforce on this host (e.g. rootless mode without a delegated
  // cgroup: no memory limit), one sentence each, for the operator's log. Empty: everything.
  virtual std::vector<std::string> limitations() const { return {}; }
  // Whether root inside (SandboxSpec::rootInside) is an unprivileged id on the host: a user
  // namespace maps it, or a kernel of the sandbox's own runs it.
  virtual bool rootIsUnprivileged() const { return false; }
};

struct NamespaceBackendOptions {
  // Host directory for the backend's shared layers and disk images (sockets and logs live in a
  // tmpfs dir derived from it). Created if missing; stale state in it is reclaimed at start.
  std::string stateDir;
  // Path of the kiln binary. PID 1 inside is `kiln-runtime` from the same directory if there
  // is one (a small static build of the runtime), else this binary as `kiln runtime`.
  std::string kilnBinary;
  // Serves sandboxes in network "allowlist" mode; not owned. Null: the backend starts a
  // standalone proxy (its own I/O thread) on first use.
  egress::EgressProxy* egressProxy = nullptr;
  // Where named images live (<dataDir>/images); empty: only image paths are accepted.
  std::string imagesDir;
  // As root: give each sandbox a user namespace as well, mapping 65536 host ids from a base
  // (the `kiln` entry of /etc/subuid and /etc/subgid, else 3000000) to 0.. inside, so that root
  // and the agent inside are unprivileged ids on the host (docs/runtime.md, "User namespaces as
  // root"). Ignored in rootless mode, which always has one.
  bool userNamespace = false;
  // A test seam: called by a sandbox's destroy() (with its id) once its processes are dead and
  // before its cgroup and files are removed. Empty in production.
  std::function<void(const std::string& sandboxId)> teardownHook;
};

// The host uid that owns the agent's files (its workspace) under these options: 1000 as root,
// base + 1000 with a user namespace as root, kiln's own uid in rootless mode.
unsigned agentHostUid(const NamespaceBackendOptions& opts);

// As root: the full backend. Otherwise rootless mode (docs/runtime.md, "Rootless mode"): each
// sandbox also gets a user namespace, limits come from a delegated cgroup if there is one, and
// the disk quota is the size of a tmpfs. Fails when the host disallows user namespaces.
Result<std::unique_ptr<SandboxBackend>> newNamespaceBackend(const NamespaceBackendOptions& opts);

struct GvisorBackendOptions {
  // As NamespaceBackendOptions::stateDir; both backends may share one (sandbox ids are unique
  // across them, and each reclaims the other's stale sandboxes as its own).
  std::string stateDir;
  // Path of the kiln binary; the runtime (kiln-runtime next to it, else kiln) is PID 1 inside.
  std::string kilnBinary;
  egress::EgressProxy* egressProxy = nullptr;  // as NamespaceBackendOptions::egressProxy
  // runsc to run; empty: found on PATH (Debian package runsc).
  std::string runsc;
  // "auto" (kvm where it works, probed once per boot, else ptrace) | "ptrace" | "kvm".
  std::string platform = "auto";
};

// gVisor (docs/runtime.md, "The gvisor backend"): each sandbox is a `runsc run` of an OCI bundle
// kiln writes, the runtime PID 1 of gVisor's own kernel, no network stack to the host (the
// egress proxy is reached over a unix socket). Needs root. Fails, saying why, when runsc is
// missing or cannot run here.
Result<std::unique_ptr<SandboxBackend>> newGvisorBackend(const GvisorBackendOptions& opts);

}  // namespace kiln::sandbox
