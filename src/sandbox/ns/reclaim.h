// Reclaim: garbage-collects the per-sandbox state a crashed owner left behind. Every live
// sandbox holds an flock on its state directory (<state>/<id>/) for as long as it exists; a
// directory whose lock can be taken belongs to no live process, and its cgroups, loop devices,
// host mounts and files are removed. Run at backend start, before any create. Thread-safe
// with respect to live sandboxes of any process sharing the state directory.
#pragma once
#include <string>

#include "common/result.h"
#include "sandbox/ns/cgroup.h"

namespace kiln::sandbox {

// Takes the liveness lock of a freshly created sandbox directory: returns an fd holding it
// (close it after the directory is gone), or an error if another process holds it.
Result<int> lockSandboxDir(const std::string& dir);

struct ReclaimReport {
  int sandboxes = 0;  // stale sandbox directories removed
  int cgroups = 0;    // of which had cgroups left
  int loops = 0;      // loop devices detached
  int mounts = 0;     // host mounts detached
};

// Cleans up every unlocked sandbox directory under stateDir. Best effort: the first failure is
// returned after trying all of them.
Result<ReclaimReport> reclaimStaleSandboxes(const std::string& stateDir,
                                           const CgroupLayout& cgroups);

}  // namespace kiln::sandbox
