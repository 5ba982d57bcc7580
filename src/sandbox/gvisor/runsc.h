// runsc, gVisor's OCI runtime, as the gVisor backend uses it: found once per backend, its
// platform chosen once per boot, and `runsc run` started as a child that joins the sandbox's
// cgroups and dies with kiln.
#pragma once
#include <sys/types.h>

#include <string>
#include <vector>

#include "common/result.h"

namespace kiln::sandbox::gvisor {

// The runsc executable: `configured` if set (it must be executable), else the first `runsc` on
// PATH, else /usr/sbin/runsc or /usr/bin/runsc. FailedPrecondition-style (Unavailable) when
// there is none, naming the Debian package.
Result<std::string> findRunsc(const std::string& configured);

// "ptrace" or "kvm". requested "auto": kvm when /dev/kvm opens and a probe sandbox on it (run
// once per boot and runsc binary; the answer is cached in cacheDir) finishes in time, else
// ptrace. "ptrace" and "kvm" are taken as they are (kvm only if /dev/kvm opens).
Result<std::string> choosePlatform(const std::string& runsc, const std::string& requested,
                                   const std::string& cacheDir);

// A started `runsc ... run` process: the sandbox's host side (runsc, its gofer and the sentry,
// which die with it). Not thread-safe; owned by one sandbox.
class RunscProcess {
 public:
  RunscProcess() = default;
  RunscProcess(RunscProcess&& o) noexcept { std::swap(pid_, o.pid_); }
  RunscProcess& operator=(RunscProcess&& o) noexcept {
    std::swap(pid_, o.pid_);
    return *this;
  }
  ~RunscProcess() { kill(); }

  pid_t pid() const { return pid_; }
  // Whether it has exited (it is then reaped, its wait status in *status if given).
  bool exited(int* status = nullptr);
  // SIGKILL and reap (if still there).
  void kill();

  // Starts argv (argv[0]: the runsc path) with stdin /dev/null and stdout/stderr to logFd,
  // after writing itself into each of cgroupProcsFds (cgroup.procs files open for writing), with
  // SIGKILL as its parent-death signal: the creating thread must be long-lived (a pool thread).
  static Result<RunscProcess> start(const std::vector<std::string>& argv, int logFd,
                                    const std::vector<int>& cgroupProcsFds);

 private:
  pid_t pid_ = -1;
};

}  // namespace kiln::sandbox::gvisor
