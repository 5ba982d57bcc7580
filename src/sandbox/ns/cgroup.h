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

class SandboxCgroup {
 public:
  // Creates kiln/<id> in each hierarchy and writes the limits of spec.
  static Result<SandboxCgroup> create(const std::string& id, const SandboxSpec& spec);

  // Moves pid (and its future children) into the cgroup.
  Status attach(pid_t pid) const;
  // A limit that was hit so far, if any (OOM kill, fork refused by pids.max).
  std::optional<LimitBreach> breach() const;
  // Number of processes still in the cgroup.
  int processCount() const;
  // Removes the directories; retries while the last tasks finish exiting.
  Status remove();

  bool v2() const { return v2_; }
  const std::vector<std::string>& dirs() const { return dirs_; }

 private:
  std::string dirFor(const char* controller) const;

  bool v2_ = false;
  std::vector<std::string> dirs_;  // v2: one; v1: memory, pids, cpu
};

}  // namespace kiln::sandbox
