// Contain: the child side of sandbox creation, nsjail-style. cloneContained() clones a child in
// new mount/pid/net/uts/ipc namespaces (and a new user namespace in rootless mode, or as root
// with the user-namespace option); the child runs a flat list of named steps (each fails
// with its name and errno, reported to the parent through a CLOEXEC pipe): it moves itself into
// its cgroup, builds its root, and finally execs the runtime as PID 1.
// The child shares the memory of a multi-threaded process (CLONE_VM | CLONE_VFORK, like
// posix_spawn: no page tables to copy, nothing to tear down at exec): everything it needs is
// computed beforehand, it only makes raw syscalls and writes nothing but its own stack.
#pragma once
#include <sys/types.h>

#include <string>
#include <vector>

#include "common/result.h"
#include "sandbox/ns/mnt.h"

namespace kiln::sandbox {

// A user namespace for the sandbox, in two flavours:
// - rootless mode: kiln's one host uid/gid is mapped to a single id inside (1000, or 0 for a
//   root-inside sandbox). Without newuidmap (no setuid helpers), one id is all an unprivileged
//   process may map: the child writes its maps itself, setgroups denied first as the kernel
//   requires, and the clone stays vfork-style.
// - root with the user-namespace option: a range of host ids (65536 from a base) is mapped
//   from 0 inside. Only a writer in the parent namespace may map a range, so the parent writes
//   the maps while the child waits on a pipe: that clone shares memory without suspending the
//   parent (the child still touches nothing but its stack and the plan).
struct UserNsPlan {
  bool enabled = false;
  // The range flavour: once the maps are written the child becomes root inside (a host id from
  // the range), with every capability of its namespace but none over kiln's own dirs; what it
  // mounts from those comes as fds (ContainPlan::addBindSource).
  bool parentWritesMaps = false;
  std::string uidMap;  // "<inside> <host> <count>"
  std::string gidMap;
};

struct ContainPlan {
  ContainPlan() = default;
  ContainPlan(const ContainPlan&) = delete;
  ContainPlan& operator=(const ContainPlan&) = delete;
  ~ContainPlan();

  // A bind mount of a host directory, made here as a detached mount (open_tree, closed with the
  // plan) that the child attaches (MountStep::treeFd = the returned fd number inside the child),
  // so that the child needs no permission on the path to it (as root in a user namespace it has
  // none on kiln's 0700 data and run dirs). At most six. -1 in rootless mode (detaching needs
  // privilege there; the child, as kiln's own user, binds the path itself).
  Result<int> addBindSource(const std::string& hostDir);

  UserNsPlan userNs;
  // RLIMIT_NPROC of the sandbox, 0 = unchanged. The stand-in for a pids cgroup where there is
  // none (rootless without delegation): counted per user namespace, so per sandbox.
  int nprocLimit = 0;
  MountPlan mounts;
  std::string newRoot;
  std::string hostname = "kiln";
  // Host fds handed to the child; cloneContained() takes ownership of none of them.
  int listenFd = -1;  // the runtime's listening socket, fd 3 inside
  int logFd = -1;     // stdout/stderr of the runtime
  int binFd = -1;     // O_PATH fd of the runtime executable
  // cgroup.procs of each of the sandbox's cgroups, open for writing: the child writes itself
  // in first, so that every later step and process is accounted there.
  std::vector<int> cgroupFds;
  std::vector<int> bindFds;       // addBindSource()
  std::vector<std::string> args;  // argv of the runtime, argv[0] included
  std::vector<std::string> env;
};

// The parent's handle on the contained child (PID 1 of the sandbox, as seen from the host).
class ContainedChild {
 public:
  ContainedChild() = default;
  ContainedChild(ContainedChild&& o) noexcept { *this = std::move(o); }
  ContainedChild& operator=(ContainedChild&& o) noexcept {
    std::swap(pid_, o.pid_);
    return *this;
  }
  ~ContainedChild() = default;

  pid_t pid() const { return pid_; }
  // Kills and reaps the child (if still there).
  void kill();

 private:
  friend Result<ContainedChild> cloneContained(ContainPlan& plan);
  pid_t pid_ = -1;
};

// Returns once the child exec'd the runtime, or the step it failed at, as
// "sandbox: <step>: <strerror>" (the child is then reaped).
Result<ContainedChild> cloneContained(ContainPlan& plan);

// Attaches hostDir at target (a path inside) in the mount namespace of the sandbox whose PID 1
// is pid, nosuid and nodev: a detached bind mount made here, moved there by a short-lived
// child that enters that namespace (a process sharing its filesystem context with threads may
// not). For a warm-pool sandbox's workspace. Blocking; needs root.
Status attachInside(pid_t pid, const std::string& hostDir, const std::string& target);

}  // namespace kiln::sandbox
