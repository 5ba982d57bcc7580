// Sandbox: an isolated environment for one job, reached only through the runtime contract
// (HTTP over a unix socket, see docs/runtime.md). Backends: namespace (sandbox/ns/), later
// microVM (sandbox/microvm/). The orchestrator never touches a sandbox's insides directly.
#pragma once
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/result.h"

namespace kiln::sandbox {

namespace egress {
class EgressProxy;
}

struct SandboxSpec {
  // Short unique id (used in host paths; keep it short, unix socket paths are <= 107 bytes).
  std::string id;
  // Host directory bind-mounted read-write at /workspace inside.
  std::string workspaceDir;
  // CPU time in cores: 0 = unlimited, 0.5 = half of one core (a 50% cgroup quota).
  double cpus = 0;
  int memoryMb = 0;    // 0 = unlimited
  int pids = 0;        // 0 = backend default
  int diskMb = 0;      // 0 = unlimited
  std::string network = "none";  // "none" | "allowlist"
  // With network "allowlist": the hosts reachable through the egress proxy (`host`,
  // `*.domain`, IP literals, each with an optional `:port`; docs/runtime.md, "Network").
  std::vector<std::string> allowHosts;
  // Base image (`kiln image build`): a name under NamespaceBackendOptions::imagesDir or an
  // absolute path. Empty: read-only views of the host's system dirs.
  std::string image;
  // Commands run as root inside (still without capabilities) instead of uid 1000 `agent`.
  bool rootInside = false;
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
  // Set once a limit killed (or is about to kill) the sandbox.
  virtual std::optional<LimitBreach> limitBreach() const = 0;
};

// Creates sandboxes. create() blocks (clone, mounts): run it on the BlockingPool. Thread-safe.
class SandboxBackend {
 public:
  virtual ~SandboxBackend() = default;
  virtual Result<std::unique_ptr<Sandbox>> create(const SandboxSpec& spec) = 0;
  virtual std::string name() const = 0;
  // What this backend cannot enforce on this host (e.g. rootless mode without a delegated
  // cgroup: no memory limit), one sentence each, for the operator's log. Empty: everything.
  virtual std::vector<std::string> limitations() const { return {}; }
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
};

// The host uid that owns the agent's files (its workspace) under these options: 1000 as root,
// base + 1000 with a user namespace as root, kiln's own uid in rootless mode.
unsigned agentHostUid(const NamespaceBackendOptions& opts);

// As root: the full backend. Otherwise rootless mode (docs/runtime.md, "Rootless mode"): each
// sandbox also gets a user namespace, limits come from a delegated cgroup if there is one, and
// the disk quota is the size of a tmpfs. Fails when the host disallows user namespaces.
Result<std::unique_ptr<SandboxBackend>> newNamespaceBackend(const NamespaceBackendOptions& opts);

}  // namespace kiln::sandbox
