// The OCI bundle of a gVisor sandbox: what its root, mounts and PID 1 are, as data, and the
// config.json runsc reads. Computed on the host; pure (the /etc masks are read from the shared
// .etcmask layer, sandbox/ns/layout.h).
#pragma once
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "common/result.h"
#include "sandbox/sandbox.h"

namespace kiln::sandbox::gvisor {

// Where the runtime's pieces are inside a gVisor sandbox.
inline constexpr const char* kInsideRuntime = "/run/kiln/bin/kiln-runtime";
inline constexpr const char* kInsideSocketDir = "/run/kiln/rt";
inline constexpr const char* kInsideSocket = "/run/kiln/rt/rt.sock";
inline constexpr const char* kInsideSlot = "/run/kiln/slot";
inline constexpr const char* kInsideSlotWorkspace = "/run/kiln/slot/w";
inline constexpr const char* kInsideNetDir = "/run/kiln/net";
inline constexpr const char* kInsideCompat = "/run/kiln/bin/compat.so";

struct BundleMount {
  std::string destination, type, source;
  std::vector<std::string> options;
};

struct BundleInputs {
  std::string rootfs;         // the read-only lower of the root: .skel, or an image's rootfs
  std::string usrDir;         // host dir at /usr (read-only): /usr, or the image's
  std::string etcDir;         // host dir at /etc (read-only): /etc, or the image's
  std::string etcMaskDir;     // the shared .etcmask layer: its files and whiteouts mask /etc
  std::string emptyFile;      // an empty host file, bound over masked /etc files
  std::string runtimeBinary;  // the (static) runtime executable on the host
  // kiln-gvisor-compat.so on the host, preloaded into every command; empty: none.
  std::string compatLibrary;
  std::string socketDir;  // host dir at kInsideSocketDir: the runtime binds its socket there
  std::string slotDir;    // host dir at kInsideSlot: the workspace comes at <slot>/w
  std::string netDir;     // network "allowlist": host dir of the egress proxy's px.sock
  // An agent CLI's sandbox (SandboxSpec::gatewayDir, ::agentCliDir): the host dir of kiln's
  // model gateway and ACP sockets, and the operator's agent CLIs (read-only). Empty: none.
  std::string gatewayDir;
  std::string agentCliDir;
  std::string runtimeToken;  // the runtime's per-sandbox token (runtime/server.h kTokenEnv)
  std::string workdir = "/workspace";  // where the runtime mounts the workspace inside
  bool rootInside = false;
};

struct Bundle {
  std::string rootfs;
  std::vector<std::string> args, env;
  std::vector<BundleMount> mounts;
};

// The bundle for a sandbox with these inputs: the root an in-memory overlay over the rootfs,
// /usr and /etc read-only, /etc's secrets masked, fresh /proc, /dev and /tmp, and the runtime
// as PID 1 (root inside gVisor, every capability there; its commands drop them) awaiting its
// workspace.
Bundle bundleFor(const BundleInputs& in);

// config.json of an OCI runtime spec (runsc's dialect) for the bundle.
nlohmann::json ociConfig(const Bundle& bundle);

}  // namespace kiln::sandbox::gvisor
