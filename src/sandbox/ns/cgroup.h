// Cgroup limits for one sandbox: memory, pids and cpu. Uses cgroup v2 when the unified
// hierarchy at /sys/fs/cgroup/unified (or /sys/fs/cgroup) has the memory and pids controllers,
// else cgroup v1 (one directory per controller). Created by the backend before the sandbox's
// PID 1 runs; removed after it died. Not thread-safe; owned by one sandbox.
#pragma once
#include <sys/types.h>

#include <optional>
#include <string>
#include <vector>

#include "common/result.h"
#include "sandbox/sandbox.h"

namespace kiln::sandbox {

// The process limit of a sandbox whose spec sets none.
inline constexpr int kDefaultPids = 1024;

// Where this host keeps sandbox cgroups: probed once per backend, immutable afterwards (so
// safe to share across threads).
struct CgroupLayout {
  bool v2 = false;
  // The kiln/ parent of every sandbox cgroup: v2: one; v1: memory, pids, cpu.
  std::vector<std::string> parents;

  // Finds the hierarchies, creates the kiln/ parents (enabling v2 controllers) and makes task
  // migrations cheap (favorDynamicMigrations).
  static Result<CgroupLayout> probe();
  // Rootless mode: kiln may not create the kiln/ parents, only use them when the operator
  // delegated them to its user (created them and chowned them; on cgroup v2 kiln must also run
  // inside the delegated subtree, the kernel's rule for moving a task). Empty when they are not
  // writable: sandboxes then get no cgroup.
  static CgroupLayout probeDelegated();
  // Directory of sandbox `id` in each hierarchy, in the order of parents.
  std::vector<std::string> dirsOf(const std::string& id) const;
};

// Moving a task into a cgroup takes a write lock on a global per-cpu rwsem, which waits for an
// RCU grace period (10-15 ms) whenever no other migration happened in the last few ms: every
// sandbox create would pay it. The cgroup2 mount option favordynmods (Linux >= 6.0) keeps that
// rwsem in its slow mode instead: migrations take ~30 us, forks and exits host-wide pay a
// shared atomic. Enabled by remounting the cgroup2 hierarchy with its options kept; returns
// whether the option is on. Idempotent.
bool favorDynamicMigrations();

class SandboxCgroup {
 public:
  // Creates kiln/<id> in each hierarchy of layout and writes the limits of spec.
  static Result<SandboxCgroup> create(const CgroupLayout& layout, const std::string& id,
                                      const SandboxSpec& spec);

  // Rewrites the memory, cpu and process limits for spec (a pooled sandbox's job's limits).
  Status setLimits(const SandboxSpec& spec);
  // SIGKILLs every process in the cgroup (a sandbox whose processes are not one pid namespace
  // of ours: gVisor's runsc, gofer and sentry).
  void killAll() const;
  // Opens cgroup.procs of each directory for writing, for the child to write itself in
  // (ContainPlan::cgroupFds). The caller closes them.
  Result<std::vector<int>> openProcs() const;
  // A limit that was hit so far, if any (OOM kill, fork refused by pids.max).
  std::optional<LimitBreach> breach() const;
  // Number of processes still in the cgroup.
  int processCount() const;
  // setpriority(nice) for every thread in the cgroup.
  Status renice(int nice) const;
  // Removes the directories; retries while the last tasks finish exiting.
  Status remove();

  bool v2() const { return v2_; }
  const std::vector<std::string>& dirs() const { return dirs_; }

 private:
  std::string dirFor(const char* controller) const;

  bool v2_ = false;
  std::vector<std::string> dirs_;  // v2: one; v1: memory, pids, cpu
};

// Removes the cgroup directories of a sandbox whose owner is gone (see reclaim.h): SIGKILLs
// any process still inside, then removes them. Missing directories are not an error.
Status removeStaleCgroup(const CgroupLayout& layout, const std::string& id);

// Removes the sandbox cgroups that hold no process and were made more than minAgeSeconds ago:
// those of a crashed kiln whose state dir is gone too (a temporary data dir), which no reclaim
// by state would find. A live sandbox always has its PID 1 in them but for the moment between
// mkdir and its first step. Returns how many sandboxes' cgroups went.
int removeOrphanedCgroups(const CgroupLayout& layout, int64_t minAgeSeconds);

}  // namespace kiln::sandbox
