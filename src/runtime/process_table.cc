#include "runtime/process_table.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>

#include "common/no_throw.h"
#include "common/unique_fd.h"
#include "sandbox/ns/caps.h"
#include "sandbox/ns/seccomp.h"

namespace kiln::runtime {

int64_t steadyMs() {
  using namespace std::chrono;
  return duration_cast<milliseconds>(steady_clock::now().time_since_epoch()).count();
}

ProcessTable::Child::~Child() {
  if (exitFd >= 0) close(exitFd);
}

namespace {

constexpr int kKillGraceMs = 2000;
// After the command exits, background children may still hold the pipes; stop waiting for
// their EOF after this long without data.
constexpr int kDrainIdleMs = 100;

std::vector<char*> cStrings(const std::vector<std::string>& v) {
  std::vector<char*> out;
  for (const auto& s : v) out.push_back(const_cast<char*>(s.c_str()));
  out.push_back(nullptr);
  return out;
}

// Runs in the forked child: only async-signal-safe calls.
[[noreturn]] void childExec(const CommandJail& jail, const char* cwd, int inFd, int outFd,
                            int errFd, int fd3, char** argv, char** envp) {
  setsid();
  dup2(inFd, 0);
  dup2(outFd, 1);
  dup2(errFd, 2);
  if (fd3 >= 0) {
    // dup2 onto itself keeps close-on-exec: clear it then.
    if (fd3 == 3) {
      fcntl(3, F_SETFD, 0);
    } else {
      dup2(fd3, 3);
    }
  }
  close_range(fd3 >= 0 ? 4 : 3, ~0U, 0);
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, nullptr);
  if (chdir(cwd) != 0) {
    static const char kMsg[] = "kiln: cannot chdir to cwd\n";
    (void)!write(2, kMsg, sizeof(kMsg) - 1);
    _exit(126);
  }
  if (jail.enabled) {
    // The runtime shields itself from the OOM killer; its commands must stay killable.
    int adj = open("/proc/self/oom_score_adj", O_WRONLY | O_CLOEXEC);
    if (adj >= 0) {
      (void)!write(adj, "0", 1);
      close(adj);
    }
    if (sandbox::dropPrivileges(jail.uid, jail.gid) != 0) _exit(125);
    if (!jail.seccomp.empty() && sandbox::installSeccomp(jail.seccomp) != 0) _exit(125);
  }
  execve(argv[0], argv, envp);
  _exit(127);
}

std::vector<std::string> withExtraEnv(const std::vector<std::string>& env,
                                      const std::vector<std::string>& extra) {
  std::vector<std::string> out = env;
  for (const std::string& kv : extra) {
    const std::string key = kv.substr(0, kv.find('=') + 1);
    bool set = std::any_of(env.begin(), env.end(),
                           [&](const std::string& e) { return e.rfind(key, 0) == 0; });
    if (!set) out.push_back(kv);
  }
  return out;
}

int exitCodeOf(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
}

}  // namespace

ProcessTable::ProcessTable(CommandJail jail, EventLog* events)
    : jail_(std::move(jail)), events_(events) {
  reaper_ = std::thread([this] {
    // Should a turn throw (the event log allocates), reaping goes on: a dead reaper would leave
    // every later command waiting for its exit forever.
    while (!callNoThrow("runtime: reaper", [this] { reapLoop(); })) {
    }
  });
}

ProcessTable::~ProcessTable() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  childAdded_.notify_all();
  // The reaper may sit in waitpid() on a long-running child; the table lives as long as the
  // runtime process, so it is left to the process exit.
  reaper_.detach();
}

namespace {

nlohmann::json exitFields(pid_t pid, int status) {
  nlohmann::json f = {{"pid", pid}};
  if (WIFSIGNALED(status)) {
    f["signal"] = WTERMSIG(status);
    f["exitCode"] = 128 + WTERMSIG(status);
  } else {
    f["exitCode"] = WEXITSTATUS(status);
  }
  return f;
}

nlohmann::json startFields(pid_t pid, const std::vector<std::string>& argv) {
  std::string cmd;
  for (const auto& a : argv) cmd += (cmd.empty() ? "" : " ") + a;
  if (cmd.size() > 200) cmd = cmd.substr(0, 200) + "...";
  return {{"pid", pid}, {"cmd", cmd}};
}

}  // namespace

void ProcessTable::reapLoop() {
  for (;;) {
    int status = 0;
    pid_t pid = waitpid(-1, &status, __WALL);
    std::unique_lock lock(mu_);
    if (pid < 0) {
      if (errno == EINTR) continue;
      if (stopping_) return;
      // No children: sleep until spawn() registers one. The predicate matters: spawn() may
      // have registered (and notified) between our waitpid() and taking the lock.
      childAdded_.wait_for(lock, std::chrono::milliseconds(500),
                           [this] { return !waiters_.empty() || stopping_; });
      continue;
    }
    auto it = waiters_.find(pid);
    if (it == waiters_.end()) {  // an orphan re-parented to PID 1
      if (events_) events_->append("orphan_exit", exitFields(pid, status));
      continue;
    }
    it->second->status = status;
    uint64_t one = 1;
    (void)!write(it->second->exitFd, &one, sizeof one);
    waiters_.erase(it);
  }
}

std::vector<std::string> ProcessTable::effectiveEnv(const std::vector<std::string>& env) const {
  return withExtraEnv(env, jail_.extraEnv);
}

Result<std::shared_ptr<ProcessTable::Child>> ProcessTable::start(const SpawnRequest& req, int inFd,
                                                                 int outFd, int errFd, int fd3) {
  auto waiter = std::make_shared<Child>();
  waiter->exitFd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (waiter->exitFd < 0) return errnoStatus("eventfd", errno);
  std::vector<char*> argv = cStrings(req.argv);
  const std::vector<std::string> env = effectiveEnv(req.env);
  std::vector<char*> envp = cStrings(env);
  const char* cwd = req.cwd.c_str();
  // Held across fork and registration so the reaper cannot reap the pid before we know it.
  std::lock_guard lock(mu_);
  pid_t pid = fork();
  if (pid < 0) return errnoStatus("fork", errno);
  if (pid == 0) childExec(jail_, cwd, inFd, outFd, errFd, fd3, argv.data(), envp.data());
  waiter->pid = pid;
  waiters_[pid] = waiter;
  childAdded_.notify_all();
  return waiter;
}

namespace {

// The poll loop of one command: output pipes, stdin, exit event, peer hang-up and deadlines.
class Pump {
 public:
  Pump(pid_t pid, int outFd, int errFd, int inFd, int exitFd, int peerFd, std::string_view in)
      : pid_(pid), exitFd_(exitFd), peerFd_(peerFd), stdin_(in) {
    fds_[0] = outFd;
    fds_[1] = errFd;
    inFd_ = inFd;
  }

  SpawnOutcome loop(int timeoutMs, const OutputFn& onOutput) {
    int64_t start = steadyMs();
    int64_t deadline = timeoutMs > 0 ? start + timeoutMs : INT64_MAX;
    int64_t killAt = INT64_MAX;
    int64_t exitedAt = -1;
    for (;;) {
      int64_t now = steadyMs();
      if (now >= deadline && !out_.timedOut && exitedAt < 0) {
        out_.timedOut = true;
        kill(-pid_, SIGTERM);
        killAt = now + kKillGraceMs;
      }
      if (now >= killAt) {
        kill(-pid_, SIGKILL);
        killAt = INT64_MAX;
      }
      bool pipesOpen = fds_[0] >= 0 || fds_[1] >= 0;
      if (exitedAt >= 0 && (!pipesOpen || now - lastData_ >= kDrainIdleMs)) break;
      int64_t wake = std::min({deadline, killAt, exitedAt >= 0 ? now + kDrainIdleMs : INT64_MAX});
      int waitMs = wake == INT64_MAX ? -1 : static_cast<int>(std::max<int64_t>(0, wake - now));
      if (!pollOnce(waitMs, onOutput)) stopEarly();
      if (exitedAt < 0 && exited_) {
        exitedAt = steadyMs();
        lastData_ = exitedAt;
      }
    }
    if (out_.timedOut || out_.peerGone) kill(-pid_, SIGKILL);
    out_.durationMs = steadyMs() - start;
    return out_;
  }

 private:
  void stopEarly() {
    out_.peerGone = true;
    kill(-pid_, SIGKILL);
  }

  // Returns false when the reader or the peer no longer wants output.
  bool pollOnce(int waitMs, const OutputFn& onOutput) {
    pollfd p[5] = {{fds_[0], POLLIN, 0},
                   {fds_[1], POLLIN, 0},
                   {inFd_, POLLOUT, 0},
                   {exited_ ? -1 : exitFd_, POLLIN, 0},
                   {out_.peerGone ? -1 : peerFd_, POLLRDHUP, 0}};
    if (poll(p, 5, waitMs) < 0) return errno == EINTR;
    bool keep = true;
    for (int i = 0; i < 2; ++i) {
      if (p[i].revents) keep = readFrom(i, onOutput) && keep;
    }
    if (p[2].revents) writeStdin();
    if (p[3].revents) {
      uint64_t v;
      if (read(exitFd_, &v, sizeof v) == sizeof v) exited_ = true;
    }
    if (p[4].revents & (POLLRDHUP | POLLHUP | POLLERR)) return false;
    return keep;
  }

  bool readFrom(int i, const OutputFn& onOutput) {
    char buf[65536];
    ssize_t n = read(fds_[i], buf, sizeof buf);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) return true;
    if (n <= 0) {
      close(fds_[i]);
      fds_[i] = -1;
      return true;
    }
    lastData_ = steadyMs();
    return onOutput(i == 0 ? "stdout" : "stderr", std::string_view(buf, n));
  }

  void writeStdin() {
    ssize_t n = stdin_.empty() ? 0 : write(inFd_, stdin_.data(), stdin_.size());
    if (n > 0) stdin_.remove_prefix(n);
    if (stdin_.empty() || (n < 0 && errno != EAGAIN && errno != EINTR)) {
      close(inFd_);
      inFd_ = -1;
    }
  }

  pid_t pid_;
  int fds_[2];
  int inFd_;
  int exitFd_;
  int peerFd_;
  std::string_view stdin_;
  bool exited_ = false;
  int64_t lastData_ = 0;
  SpawnOutcome out_;

 public:
  ~Pump() {
    for (int fd : {fds_[0], fds_[1], inFd_}) {
      if (fd >= 0) close(fd);
    }
  }
};

bool makePipe(int fds[2]) { return pipe2(fds, O_CLOEXEC) == 0; }

}  // namespace

Result<SpawnOutcome> ProcessTable::run(const SpawnRequest& req, const OutputFn& onOutput) {
  int out[2], err[2], in[2] = {-1, -1};
  if (!makePipe(out)) return errnoStatus("pipe", errno);
  UniqueFd outR(out[0]), outW(out[1]);
  if (!makePipe(err)) return errnoStatus("pipe", errno);
  UniqueFd errR(err[0]), errW(err[1]);
  if (req.stdinData.empty()) {
    in[0] = open("/dev/null", O_RDONLY | O_CLOEXEC);
  } else if (!makePipe(in)) {
    return errnoStatus("pipe", errno);
  }
  UniqueFd inR(in[0]), inW(in[1]);
  if (!inR.valid()) return errnoStatus("stdin", errno);
  ASSIGN_OR_RETURN(auto waiter, start(req, inR.get(), outW.get(), errW.get()));
  if (events_) events_->append("exec_start", startFields(waiter->pid, req.argv));
  outW.reset();
  errW.reset();
  inR.reset();
  for (const UniqueFd* fd : {&outR, &errR, &inW}) {
    if (fd->valid()) fcntl(fd->get(), F_SETFL, O_NONBLOCK);
  }
  // The pump owns (and closes) the pipes from here on.
  Pump pump(waiter->pid, outR.release(), errR.release(), inW.release(), waiter->exitFd, req.peerFd,
            req.stdinData);
  SpawnOutcome outcome = pump.loop(req.timeoutMs, onOutput);
  if (outcome.peerGone) {
    // Still wait for the exit so the pid is not left registered.
    pollfd p{waiter->exitFd, POLLIN, 0};
    while (poll(&p, 1, -1) < 0 && errno == EINTR) {
    }
  }
  outcome.exitCode = exitCodeOf(waiter->status.load());
  if (events_) {
    nlohmann::json f = exitFields(waiter->pid, waiter->status.load());
    f["timedOut"] = outcome.timedOut;
    f["durationMs"] = outcome.durationMs;
    events_->append("exec_exit", std::move(f));
  }
  return outcome;
}

}  // namespace kiln::runtime
