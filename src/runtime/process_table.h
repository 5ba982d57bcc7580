// ProcessTable: spawns commands for the runtime and reaps every child. The runtime is PID 1 of
// its pid namespace, so orphans are re-parented to it; one reaper thread calls waitpid(-1) and
// hands each status to the waiter registered for that pid. Thread-safe.
#pragma once
#include <linux/filter.h>
#include <sys/types.h>

#include <atomic>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "common/result.h"
#include "runtime/event_log.h"

namespace kiln::runtime {

// Milliseconds of the steady clock, for the runtime's durations and deadlines.
int64_t steadyMs();

// How commands are confined. Disabled outside a sandbox (tests run the runtime as a plain
// process).
struct CommandJail {
  bool enabled = false;
  uid_t uid = 0;
  gid_t gid = 0;
  std::vector<sock_filter> seccomp;  // empty = no filter
  // "K=V" set for every command whose request does not set K (the egress proxy variables).
  std::vector<std::string> extraEnv;
};

struct SpawnRequest {
  std::vector<std::string> argv;
  std::vector<std::string> env;  // "K=V"
  std::string cwd;
  std::string stdinData;
  int timeoutMs = 0;  // 0 = none
  // Optional: a socket whose hang-up means nobody wants the result any more.
  int peerFd = -1;
};

struct SpawnOutcome {
  int exitCode = -1;  // 128+signal when killed by a signal
  bool timedOut = false;
  bool peerGone = false;
  int64_t durationMs = 0;
};

// Receives output as it arrives; returns false to stop reading (the group is then killed).
using OutputFn = std::function<bool(std::string_view stream, std::string_view data)>;

class ProcessTable {
 public:
  // `events` (optional, must outlive the table) receives exec_start / exec_exit / orphan_exit.
  explicit ProcessTable(CommandJail jail, EventLog* events = nullptr);
  ~ProcessTable();

  // Runs the command in its own session/process group, pumps its output to onOutput, enforces
  // the timeout (SIGTERM to the group, SIGKILL 2 s later) and returns when it has exited.
  Result<SpawnOutcome> run(const SpawnRequest& req, const OutputFn& onOutput);

  // A child that outlives one request (a session's shell). `exitFd` (an eventfd) becomes
  // readable once the reaper has collected it; `status` then holds its wait status.
  struct Child {
    pid_t pid = -1;
    int exitFd = -1;
    std::atomic<int> status{0};
    ~Child();
  };
  // Starts a command in its own session with the given stdio fds and, when `fd3` >= 0, that fd
  // as its fd 3; the caller owns the fds and waits on the child's exitFd.
  Result<std::shared_ptr<Child>> start(const SpawnRequest& req, int inFd, int outFd, int errFd,
                                       int fd3 = -1);
  // The environment a command gets for `env`: the jail's extra variables added where unset.
  std::vector<std::string> effectiveEnv(const std::vector<std::string>& env) const;

 private:
  void reapLoop();

  CommandJail jail_;
  EventLog* events_;
  std::mutex mu_;
  std::condition_variable childAdded_;
  std::map<pid_t, std::shared_ptr<Child>> waiters_;  // GUARDED_BY(mu_)
  bool stopping_ = false;                            // GUARDED_BY(mu_)
  std::thread reaper_;
};

}  // namespace kiln::runtime
