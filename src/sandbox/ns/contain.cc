#include "sandbox/ns/contain.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sandbox/ns/net.h"

namespace kiln::sandbox {
namespace {

constexpr size_t kChildStack = 256 << 10;
constexpr int kCloneFlags =
    CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWUTS | CLONE_NEWIPC | SIGCHLD;
// Fixed fd slots inside the child (all others are closed).
enum ChildFd { kListen = 3, kError = 4, kSync = 5, kBinary = 6, kLog = 7 };

struct ErrorRecord {
  char step[60];
  int err;
};

struct ChildArgs {
  const ContainPlan* plan;
  int fds[5];  // listen, error(write), sync(read), binary, log: host numbers, all >= 10
  int syncWriteFd;
  char* const* argv;
  char* const* envp;
};

[[noreturn]] void fail(const char* step, int err) {
  ErrorRecord rec{};
  for (size_t i = 0; step[i] && i + 1 < sizeof rec.step; ++i) rec.step[i] = step[i];
  rec.err = err;
  (void)!write(kError, &rec, sizeof rec);
  _exit(1);
}

int check(int rc) { return rc == 0 ? 0 : errno; }

int remapFds(const ChildArgs& a) {
  close(a.syncWriteFd);
  if (dup2(a.fds[0], kListen) < 0) return errno;
  const int slots[] = {kError, kSync, kBinary, kLog};
  for (int i = 0; i < 4; ++i) {
    if (dup3(a.fds[i + 1], slots[i], O_CLOEXEC) < 0) return errno;
  }
  // Never leak the rest of kiln's fds (databases, other sandboxes' sockets) into the sandbox.
  return check(close_range(kLog + 1, ~0U, 0));
}

int waitForParent() {
  char go = 0;
  ssize_t n;
  do {
    n = read(kSync, &go, 1);
  } while (n < 0 && errno == EINTR);
  if (n != 1) _exit(1);  // the parent gave up
  close(kSync);
  return 0;
}

int resetSignals() {
  sigset_t none;
  sigemptyset(&none);
  return check(sigprocmask(SIG_SETMASK, &none, nullptr));
}

int stdioToLog() {
  int null = open("/dev/null", O_RDWR | O_CLOEXEC);
  if (null < 0) return errno;
  if (dup2(null, 0) < 0 || dup2(kLog, 1) < 0 || dup2(kLog, 2) < 0) return errno;
  close(null);
  close(kLog);
  return 0;
}

int execRuntime(const ChildArgs& a) {
  syscall(SYS_execveat, kBinary, "", a.argv, a.envp, AT_EMPTY_PATH);
  return errno;
}

// The child: a flat list of named steps.
int containMain(void* arg) {
  const ChildArgs& a = *static_cast<ChildArgs*>(arg);
  const ContainPlan& plan = *a.plan;
  int err;
  if ((err = remapFds(a)) != 0) _exit(1);  // cannot even report
  if ((err = resetSignals()) != 0) fail("reset signal mask", err);
  // If kiln dies (even kill -9), the sandbox's PID 1 dies with it, and with it the whole pid
  // namespace: no orphaned sandbox keeps running an agent's commands. The signal follows the
  // creating thread, which is a long-lived pool thread.
  if ((err = check(prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0))) != 0) fail("set parent-death signal", err);
  if ((err = check(mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr))) != 0) {
    fail("make / private", err);
  }
  const char* failed = "mount";
  if ((err = applyMountPlan(plan.mounts, &failed)) != 0) fail(failed, err);
  if ((err = check(sethostname(plan.hostname.c_str(), plan.hostname.size()))) != 0) {
    fail("sethostname", err);
  }
  if ((err = bringUpLoopback()) != 0) fail("bring up lo", err);
  if ((err = pivotInto(plan.newRoot.c_str(), &failed)) != 0) fail(failed, err);
  // The parent moves us into our cgroup while the steps above run (the move waits for an RCU
  // grace period, several ms on cgroup v1); nothing may fork or exec before it is done.
  if ((err = waitForParent()) != 0) fail("wait for parent", err);
  // After the move, so that our cgroup becomes the namespace's root.
  if ((err = check(unshare(CLONE_NEWCGROUP))) != 0) fail("unshare cgroup", err);
  if ((err = stdioToLog()) != 0) fail("stdio", err);
  fail("exec runtime", execRuntime(a));
}

std::vector<char*> cStrings(const std::vector<std::string>& v) {
  std::vector<char*> out;
  for (const auto& s : v) out.push_back(const_cast<char*>(s.c_str()));
  out.push_back(nullptr);
  return out;
}

void closeFd(int& fd) {
  if (fd >= 0) close(fd);
  fd = -1;
}

}  // namespace

ContainedChild& ContainedChild::operator=(ContainedChild&& o) noexcept {
  std::swap(pid_, o.pid_);
  std::swap(syncFd_, o.syncFd_);
  std::swap(errorFd_, o.errorFd_);
  return *this;
}

ContainedChild::~ContainedChild() {
  closeFd(syncFd_);
  closeFd(errorFd_);
}

void ContainedChild::kill() {
  closeFd(syncFd_);
  if (pid_ > 0) {
    ::kill(pid_, SIGKILL);
    while (waitpid(pid_, nullptr, __WALL) < 0 && errno == EINTR) {
    }
    pid_ = -1;
  }
}

Status ContainedChild::go(bool proceed) {
  char one = 1;
  // A socket, not a pipe: a child that already failed must not SIGPIPE the whole server.
  if (proceed) (void)send(syncFd_, &one, 1, MSG_NOSIGNAL);
  closeFd(syncFd_);
  ErrorRecord rec{};
  ssize_t n;
  do {
    n = read(errorFd_, &rec, sizeof rec);
  } while (n < 0 && errno == EINTR);
  closeFd(errorFd_);
  if (n == 0 && proceed) return Status::ok();  // CLOEXEC pipe closed by a successful exec
  if (n == 0) {
    kill();
    return Status::ok();
  }
  rec.step[sizeof rec.step - 1] = 0;
  Status st = n == sizeof rec ? errnoStatus(std::string("sandbox: ") + rec.step, rec.err)
                              : internalError("sandbox: child died during setup");
  kill();
  return st;
}

Result<ContainedChild> cloneContained(ContainPlan& plan) {
  int sync[2], error[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sync) != 0) {
    return errnoStatus("sandbox: socketpair", errno);
  }
  if (pipe2(error, O_CLOEXEC) != 0) {
    close(sync[0]);
    close(sync[1]);
    return errnoStatus("sandbox: pipe", errno);
  }
  // Copies at fd >= 10 so the child's dup2 into slots 3..7 never clobbers a source.
  int hostFds[5] = {plan.listenFd, error[1], sync[0], plan.binFd, plan.logFd};
  ChildArgs args{&plan, {}, sync[1], nullptr, nullptr};
  for (int i = 0; i < 5; ++i) args.fds[i] = fcntl(hostFds[i], F_DUPFD_CLOEXEC, 10);
  std::vector<char*> argv = cStrings(plan.args), envp = cStrings(plan.env);
  args.argv = argv.data();
  args.envp = envp.data();
  void* stack = mmap(nullptr, kChildStack, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
  pid_t pid = -1;
  int cloneErr = 0;
  bool fdsOk = std::all_of(std::begin(args.fds), std::end(args.fds), [](int f) { return f >= 0; });
  if (stack != MAP_FAILED && fdsOk) {
    pid = clone(containMain, static_cast<char*>(stack) + kChildStack, kCloneFlags, &args);
    cloneErr = errno;
  }
  if (stack != MAP_FAILED) munmap(stack, kChildStack);
  for (int fd : args.fds) {
    if (fd >= 0) close(fd);
  }
  close(sync[0]);
  close(error[1]);
  ContainedChild child;
  child.syncFd_ = sync[1];
  child.errorFd_ = error[0];
  if (pid < 0) return errnoStatus("sandbox: clone", fdsOk ? cloneErr : EMFILE);
  child.pid_ = pid;
  return child;
}

}  // namespace kiln::sandbox
