// Host-side directory layout of the namespace backend. Shared, created once per backend:
//   <state>/.skel     lower layer of every rootfs: mount points + usr-merge symlinks
//                     (.skel, .etcmask, .mnt: in <run>.u instead with a user namespace as root,
//                     layersDirFor())
//   <state>/.etcmask  upper lower-layer over host /etc: whiteouts hiding secrets, our passwd
//   <state>/.mnt      mount point, inside each sandbox's own mount namespace only, of a tmpfs
//                     (or of the disk-quota image) holding that sandbox's writable layers
//                     (r: rootfs, u: /usr, e: /etc; *w: overlay workdirs) and m/, the mount
//                     point of its new root. Every sandbox mounts over the same directory.
//   <run>             = /run/kiln-<hash of state> (/dev/shm/... where /run is no tmpfs or not
//                     writable, as in rootless mode): the per-sandbox files, on tmpfs. On the
//                     host's ext4 every sandbox's inodes
//                     cost milliseconds: an rmdir (discard) ~4 ms, and under churn each new
//                     inode scans past the recently deleted ones (a third of the CPU of 100
//                     concurrent creates).
// Per sandbox, flat files only (names kept short for the 107-byte unix socket limit):
//   <run>/<id>.log    the runtime's stderr; created first (O_EXCL: the id is taken) and removed
//                     last; flock'ed by the live sandbox's owner (reclaim.h)
//   <run>/<id>.sock   the runtime's listening socket
//   <run>/<id>.net/   network "allowlist" only: the egress proxy's socket px.sock, bind-mounted
//                     at /run/kiln inside
//   <run>/<id>.gv/    gVisor backend only (sandbox/gvisor/): the OCI bundle (config.json), runsc's
//                     state (state/), the runtime's socket dir (rt/) and the workspace slot
//                     (slot/, a shared mount on which the job's workspace is bind-mounted)
//   <state>/<id>.img  the disk-quota image, if any (on disk: it holds the sandbox's writes)
// Nothing of a sandbox's writes lands on the host filesystem outside its image.
#pragma once
#include <string>
#include <vector>

#include "common/files.h"
#include "common/result.h"

namespace kiln::sandbox {

inline constexpr unsigned kAgentUid = 1000;
inline constexpr unsigned kAgentGid = 1000;

// The host ids that root and the agent (uid 1000) inside a sandbox have: themselves as root;
// shifted by the mapping base with a user namespace as root; in rootless mode, kiln's own uid
// for both.
struct SandboxIds {
  unsigned root = 0;
  unsigned agent = kAgentUid;
  unsigned rootGid = 0;
  unsigned agentGid = kAgentGid;
};

// Creates the state dir, its run dir, and in the layers dir the shared skeleton (owned as ids
// say) and /etc mask (idempotent).
Status prepareSharedLayers(const std::string& stateDir, const SandboxIds& ids);
// Where the shared layers (.skel, .etcmask, .mnt) live: the state dir, except with a user
// namespace as root: <run>.u (0711), since the sandbox's root, a mapped id, must reach them
// and kiln's data dir (0700) is closed to it.
std::string layersDirFor(const std::string& stateDir, const SandboxIds& ids);

// The tmpfs directory holding the per-sandbox files of the backend over stateDir.
std::string runDirFor(const std::string& stateDir);
// Creates a sandbox's log in runDir (O_EXCL: its existence marks the id as taken), an fd.
// Another backend over the same state dir (a `kiln sandbox exec` that ends) may have removed
// the empty run dir meanwhile: it is made again.
Result<int> createSandboxLog(const std::string& runDir, const std::string& log,
                             const std::string& id);

struct SandboxPaths {
  std::string socket, log, net, gv, image, rw, newRoot, skel, etcMask;
  static SandboxPaths of(const std::string& stateDir, const std::string& runDir,
                         const std::string& layersDir, const std::string& id);
};

// Removes a sandbox's own files (socket, net dir, gVisor bundle dir, image, log: the log last,
// it marks the id). Mounts under the bundle dir are detached first, and nothing is ever removed
// through a mount (the workspace slot may still carry a job's workspace).
Status removeSandboxFiles(const SandboxPaths& paths);

// The runtime's arguments after how it listens, the same on every backend: its workspace (the
// workdir), the HOME of commands, and the jail they run in (as root inside, or as the agent).
std::vector<std::string> runtimeJailArgs(const std::string& workdir, bool rootInside);

// The runtime executable next to the kiln binary (kiln-runtime: a small static build of
// `kiln runtime` that starts in ~1 ms), else the kiln binary itself.
std::string runtimeBinaryFor(const std::string& kilnBinary);

}  // namespace kiln::sandbox
