// Contain: the child side of sandbox creation, nsjail-style. cloneContained() clones a child in
// new mount/pid/net/uts/ipc namespaces; the child runs a flat list of named steps (each fails
// with its name and errno, reported to the parent through a CLOEXEC pipe), waits until the
// parent has put it in its cgroup, and finally execs `kiln runtime` as PID 1.
// The child is a copy of a multi-threaded process: everything it needs is computed here
// beforehand, and it only makes raw syscalls.
#pragma once
#include <sys/types.h>

#include <string>
#include <vector>

#include "common/result.h"
#include "sandbox/ns/mnt.h"

namespace kiln::sandbox {

struct ContainPlan {
  MountPlan mounts;
  std::string newRoot;
  std::string hostname = "kiln";
  // Host fds handed to the child; cloneContained() takes ownership of none of them.
  int listenFd = -1;  // the runtime's listening socket, fd 3 inside
  int logFd = -1;     // stdout/stderr of the runtime
  int binFd = -1;     // O_PATH fd of the kiln binary
  std::vector<std::string> args;  // argv of the runtime, argv[0] included
  std::vector<std::string> env;
};

// The parent's handle on a freshly cloned child that is still waiting for go().
class ContainedChild {
 public:
  ContainedChild() = default;
  ContainedChild(ContainedChild&& o) noexcept { *this = std::move(o); }
  ContainedChild& operator=(ContainedChild&& o) noexcept;
  ~ContainedChild();

  pid_t pid() const { return pid_; }
  // With proceed, lets the child finish (it runs its mount steps meanwhile and waits before
  // exec) and returns once it exec'd the runtime; without, makes it exit. Returns the step the
  // child failed at, as "sandbox: <step>: <strerror>" (the child is then reaped), else ok.
  Status go(bool proceed = true);
  // Kills and reaps the child (if still there).
  void kill();

 private:
  friend Result<ContainedChild> cloneContained(ContainPlan& plan);
  pid_t pid_ = -1;
  int syncFd_ = -1;   // write end: one byte = go
  int errorFd_ = -1;  // read end: EOF = exec'd, a record = failed step
};

Result<ContainedChild> cloneContained(ContainPlan& plan);

}  // namespace kiln::sandbox
