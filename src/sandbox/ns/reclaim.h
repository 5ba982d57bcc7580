// Reclaim: garbage-collects the per-sandbox state a crashed owner left behind. Every live
// sandbox holds an flock on its <run>/<id>.log for as long as it exists (layout.h); state
// whose lock can be taken belongs to no live process, and its cgroups (and any process still
// in them), loop devices, host mounts and files are removed. Directories <state>/<id>/ of the
// earlier per-sandbox-directory layout are reclaimed the same way. Run at backend start, before
// any create. Safe with respect to live sandboxes of any process sharing the state directory.
#pragma once
#include <string>

#include "common/result.h"
#include "common/unique_fd.h"
#include "sandbox/ns/cgroup.h"
#include "sandbox/ns/layout.h"

namespace kiln::sandbox {

// Takes the liveness lock of a sandbox's freshly created state file (its <id>.log): returns an
// fd holding it (close it after the sandbox's state is gone), or an error if another process
// holds it.
Result<int> lockSandboxState(const std::string& path);

// A sandbox id taken on this host, by every backend alike: its log created first (O_EXCL: the
// id is taken; removed last) and flock'ed.
struct SandboxClaim {
  UniqueFd log;   // the runtime's stderr goes there
  UniqueFd lock;  // the liveness lock: hold it for as long as the sandbox's state exists
};
// Checks the id (1-40 of [A-Za-z0-9_-]) and claims it (createSandboxLog, lockSandboxState).
Result<SandboxClaim> claimSandboxId(const std::string& runDir, const SandboxPaths& paths,
                                    const std::string& id);

struct ReclaimReport {
  int sandboxes = 0;      // stale sandbox directories removed
  int cgroups = 0;        // of which had cgroups left
  int loops = 0;          // loop devices detached
  int mounts = 0;         // host mounts detached
  int orphanCgroups = 0;  // empty sandbox cgroups of no state dir (removeOrphanedCgroups)
};

// Cleans up every stale sandbox of the backend over stateDir (files in runDir and stateDir,
// layout.h), then the empty sandbox cgroups over 10 minutes old of any backend on this host.
// Best effort: the first failure is returned after trying all of them.
Result<ReclaimReport> reclaimStaleSandboxes(const std::string& stateDir, const std::string& runDir,
                                            const CgroupLayout& cgroups);

}  // namespace kiln::sandbox
