#include "sandbox/ns/contain.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/mount.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sandbox/ns/net.h"

namespace kiln::sandbox {
namespace {

constexpr size_t kChildStack = 256 << 10;
constexpr int kCloneFlags = CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWUTS |
                            CLONE_NEWIPC | CLONE_VM | CLONE_VFORK | SIGCHLD;
// Fixed fd slots inside the child (all others are closed): bind sources, then cgroup fds.
enum ChildFd { kListen = 3, kError = 4, kBinary = 5, kLog = 6, kGo = 7, kBinds = 8, kCgroups = 14 };
constexpr int kMaxBinds = kCgroups - kBinds;
constexpr int kMaxCgroups = 3;
constexpr int kFirstSource = kCgroups + kMaxCgroups;  // host copies of the fds start here
constexpr int kFixedFds = 5;                          // listen, error, binary, log, go

struct ErrorRecord {
  char step[60];
  int err;
};

struct ChildArgs {
  const ContainPlan* plan;
  // Host numbers (all >= kFirstSource) of listen, error(write), binary, log, go(read: the
  // parent wrote the id maps; a copy of the error pipe's write end when unused), the bind
  // sources, then the cgroup fds.
  int fds[kFixedFds + kMaxBinds + kMaxCgroups];
  int binds;
  int cgroups;
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

// Whether the process that cloned us is gone. It holds the error pipe's read end (close-on-exec,
// so no exec'd child has it), and a pipe without a reader polls as an error on its write end.
bool parentGone() {
  pollfd p{kError, POLLOUT, 0};
  return poll(&p, 1, 0) == 1 && (p.revents & POLLERR) != 0;
}

int remapFds(const ChildArgs& a) {
  if (dup2(a.fds[0], kListen) < 0) return errno;
  const int slots[] = {kError, kBinary, kLog, kGo};
  for (int i = 0; i < 4; ++i) {
    if (dup3(a.fds[i + 1], slots[i], O_CLOEXEC) < 0) return errno;
  }
  for (int i = 0; i < a.binds; ++i) {
    if (dup3(a.fds[kFixedFds + i], kBinds + i, O_CLOEXEC) < 0) return errno;
  }
  for (int i = 0; i < a.cgroups; ++i) {
    if (dup3(a.fds[kFixedFds + a.binds + i], kCgroups + i, O_CLOEXEC) < 0) return errno;
  }
  // Never leak the rest of kiln's fds (databases, other sandboxes' sockets) into the sandbox.
  for (int slot = kBinds + a.binds; slot < kCgroups; ++slot) close(slot);
  return check(close_range(kCgroups + a.cgroups, ~0U, 0));
}

int joinCgroups(int count) {
  for (int i = 0; i < count; ++i) {
    // "0" is the writer itself. With favordynmods on, this takes microseconds instead of an RCU
    // grace period (cgroup.h).
    if (write(kCgroups + i, "0", 1) != 1) return errno;
    close(kCgroups + i);
  }
  return 0;
}

int stdioToLog() {
  int null = open("/dev/null", O_RDWR | O_CLOEXEC);
  if (null < 0) return errno;
  if (dup2(null, 0) < 0 || dup2(kLog, 1) < 0 || dup2(kLog, 2) < 0) return errno;
  close(null);
  close(kLog);
  return 0;
}

int writeProcFile(const char* path, const char* text, size_t size) {
  int fd = open(path, O_WRONLY | O_CLOEXEC);
  if (fd < 0) return errno;
  ssize_t n = write(fd, text, size);
  int err = n == static_cast<ssize_t>(size) ? 0 : (n < 0 ? errno : EIO);
  close(fd);
  return err;
}

// Our own maps, written from inside the new user namespace (allowed for a single id equal to
// the creator's own; gid_map only once setgroups is denied).
int mapIds(const UserNsPlan& ns, const char** failed) {
  int err;
  *failed = "deny setgroups";
  if ((err = writeProcFile("/proc/self/setgroups", "deny", 4)) != 0) return err;
  *failed = "write gid_map";
  if ((err = writeProcFile("/proc/self/gid_map", ns.gidMap.data(), ns.gidMap.size())) != 0) {
    return err;
  }
  *failed = "write uid_map";
  return writeProcFile("/proc/self/uid_map", ns.uidMap.data(), ns.uidMap.size());
}

// From the host root's ids (unmapped in our namespace: nobody inside, who may create no file on
// a filesystem mounted there) to root inside, which keeps the capabilities across exec. Before
// the parent-death signal is set: a change of ids clears it.
int becomeRootInside() {
  if (setgroups(0, nullptr) != 0 || setresgid(0, 0, 0) != 0 || setresuid(0, 0, 0) != 0) {
    return errno;
  }
  return 0;
}

int execRuntime(const ChildArgs& a) {
  syscall(SYS_execveat, kBinary, "", a.argv, a.envp, AT_EMPTY_PATH);
  return errno;
}

// The child: a flat list of named steps. All signals stay blocked until the runtime unblocks
// them: a handler of the parent must never run on the shared memory.
int containMain(void* arg) {
  const ChildArgs& a = *static_cast<ChildArgs*>(arg);
  const ContainPlan& plan = *a.plan;
  int err;
  if ((err = remapFds(a)) != 0) _exit(1);  // cannot even report
  if (plan.userNs.parentWritesMaps) {
    // Until the parent has written the maps, we are nobody in our user namespace.
    char go = 0;
    ssize_t n;
    while ((n = read(kGo, &go, 1)) < 0 && errno == EINTR) {
    }
    if (n != 1) _exit(1);  // the parent gave up on us
    close(kGo);
    if ((err = becomeRootInside()) != 0) fail("become root inside", err);
  } else if (plan.userNs.enabled) {
    const char* failed = "map ids";
    if ((err = mapIds(plan.userNs, &failed)) != 0) fail(failed, err);
  }
  // First, so that the mounts below (tmpfs pages) are charged to the sandbox.
  if ((err = joinCgroups(a.cgroups)) != 0) fail("join cgroup", err);
  // If kiln dies (even kill -9), the sandbox's PID 1 dies with it, and with it the whole pid
  // namespace: no orphaned sandbox keeps running an agent's commands. The signal follows the
  // creating thread, which is a long-lived pool thread.
  if ((err = check(prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0))) != 0)
    fail("set parent-death signal", err);
  // A parent killed before that (kill -9 while we were cloned) sends no signal: we would run on
  // as an orphan. Our getppid() is 0 in the new pid namespace, so ask the error pipe.
  if (parentGone()) _exit(1);
  if (plan.nprocLimit > 0) {
    const rlimit lim{static_cast<rlim_t>(plan.nprocLimit), static_cast<rlim_t>(plan.nprocLimit)};
    if ((err = check(setrlimit(RLIMIT_NPROC, &lim))) != 0) fail("set process limit", err);
  }
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
  // After joining, so that our cgroup becomes the namespace's root.
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

// The step a failed child reported, or ok once it exec'd (the CLOEXEC pipe closed).
Status childOutcome(int errorFd) {
  ErrorRecord rec{};
  ssize_t n;
  do {
    n = read(errorFd, &rec, sizeof rec);
  } while (n < 0 && errno == EINTR);
  if (n == 0) return Status::ok();
  rec.step[sizeof rec.step - 1] = 0;
  return n == sizeof rec ? errnoStatus(std::string("sandbox: ") + rec.step, rec.err)
                         : internalError("sandbox: child died during setup");
}

// The parent's half of a user namespace whose maps it writes (UserNsPlan::parentWritesMaps).
Status writeMapsFor(pid_t pid, const UserNsPlan& ns) {
  const std::string proc = "/proc/" + std::to_string(pid);
  for (const auto& [file, map] : {std::pair{"/uid_map", &ns.uidMap}, {"/gid_map", &ns.gidMap}}) {
    if (int err = writeProcFile((proc + file).c_str(), map->data(), map->size()); err != 0) {
      return errnoStatus(std::string("sandbox: write ") + file, err);
    }
  }
  return Status::ok();
}

}  // namespace

ContainPlan::~ContainPlan() {
  for (int fd : bindFds) close(fd);
}

Result<int> ContainPlan::addBindSource(const std::string& hostDir) {
  if (geteuid() != 0) return -1;
  if (bindFds.size() >= kMaxBinds) return internalError("sandbox: too many bind sources");
  int fd = static_cast<int>(
      syscall(SYS_open_tree, AT_FDCWD, hostDir.c_str(), OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC));
  if (fd < 0) return errnoStatus("sandbox: open_tree " + hostDir, errno);
  bindFds.push_back(fd);
  return kBinds + static_cast<int>(bindFds.size()) - 1;
}

void ContainedChild::kill() {
  if (pid_ > 0) {
    ::kill(pid_, SIGKILL);
    while (waitpid(pid_, nullptr, __WALL) < 0 && errno == EINTR) {
    }
    pid_ = -1;
  }
}

Result<ContainedChild> cloneContained(ContainPlan& plan) {
  if (plan.cgroupFds.size() > kMaxCgroups || plan.bindFds.size() > kMaxBinds) {
    return invalidArgument("sandbox: too many cgroups or bind sources");
  }
  const bool waitForMaps = plan.userNs.enabled && plan.userNs.parentWritesMaps;
  int error[2], go[2] = {-1, -1};
  if (pipe2(error, O_CLOEXEC) != 0) return errnoStatus("sandbox: pipe", errno);
  if (waitForMaps && pipe2(go, O_CLOEXEC) != 0) {
    int err = errno;
    close(error[0]);
    close(error[1]);
    return errnoStatus("sandbox: pipe", err);
  }
  // Copies at fd >= kFirstSource so the child's dup2 into its slots never clobbers a source.
  ChildArgs args{&plan,
                 {},
                 static_cast<int>(plan.bindFds.size()),
                 static_cast<int>(plan.cgroupFds.size()),
                 nullptr,
                 nullptr};
  int hostFds[kFixedFds + kMaxBinds + kMaxCgroups] = {plan.listenFd, error[1], plan.binFd,
                                                      plan.logFd, waitForMaps ? go[0] : error[1]};
  int nFds = kFixedFds;
  for (int fd : plan.bindFds) hostFds[nFds++] = fd;
  for (int fd : plan.cgroupFds) hostFds[nFds++] = fd;
  bool fdsOk = true;
  for (int i = 0; i < nFds; ++i) {
    args.fds[i] = fcntl(hostFds[i], F_DUPFD_CLOEXEC, kFirstSource);
    fdsOk = fdsOk && args.fds[i] >= 0;
  }
  std::vector<char*> argv = cStrings(plan.args), envp = cStrings(plan.env);
  args.argv = argv.data();
  args.envp = envp.data();
  void* stack = mmap(nullptr, kChildStack, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
  pid_t pid = -1;
  int cloneErr = fdsOk ? ENOMEM : EMFILE;
  if (stack != MAP_FAILED && fdsOk) {
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    // Returns once the child exec'd or exited (CLONE_VFORK), or at once when it must wait for
    // its maps (then the child runs beside us until it execs).
    int flags = kCloneFlags | (plan.userNs.enabled ? CLONE_NEWUSER : 0);
    if (waitForMaps) flags &= ~CLONE_VFORK;
    pid = clone(containMain, static_cast<char*>(stack) + kChildStack, flags, &args);
    cloneErr = errno;
    pthread_sigmask(SIG_SETMASK, &old, nullptr);
  }
  for (int i = 0; i < nFds; ++i) {
    if (args.fds[i] >= 0) close(args.fds[i]);
  }
  close(error[1]);
  if (go[0] >= 0) close(go[0]);
  if (pid < 0) {
    if (go[1] >= 0) close(go[1]);
    if (stack != MAP_FAILED) munmap(stack, kChildStack);
    close(error[0]);
    return errnoStatus("sandbox: clone", cloneErr);
  }
  ContainedChild child;
  child.pid_ = pid;
  Status st;
  if (waitForMaps) {
    st = writeMapsFor(pid, plan.userNs);
    // The go byte, or (maps failed) its absence: the child exits when the pipe closes.
    if (st && write(go[1], "g", 1) != 1) st = errnoStatus("sandbox: release child", errno);
    close(go[1]);
  }
  if (st) st = childOutcome(error[0]);
  close(error[0]);
  if (!st) child.kill();  // before the stack goes: the child may still be running on it
  // The child is past exec (or gone): its stack is ours again.
  if (stack != MAP_FAILED) munmap(stack, kChildStack);
  if (!st) return st;
  return child;
}

namespace {

struct AttachArgs {
  int nsFd, treeFd, errorFd;
  const char* target;
};

[[noreturn]] void failAttach(int errorFd, const char* step, int err) {
  ErrorRecord rec{};
  for (size_t i = 0; step[i] && i + 1 < sizeof rec.step; ++i) rec.step[i] = step[i];
  rec.err = err;
  (void)!write(errorFd, &rec, sizeof rec);
  _exit(1);
}

// Shares our memory (CLONE_VM | CLONE_VFORK) but not our filesystem context: raw syscalls only.
int attachMain(void* arg) {
  const AttachArgs& a = *static_cast<AttachArgs*>(arg);
  if (setns(a.nsFd, CLONE_NEWNS) != 0) failAttach(a.errorFd, "enter mount namespace", errno);
  if (syscall(SYS_move_mount, a.treeFd, "", AT_FDCWD, a.target, MOVE_MOUNT_F_EMPTY_PATH) != 0) {
    failAttach(a.errorFd, "attach workspace", errno);
  }
  if (mount(nullptr, a.target, nullptr, MS_BIND | MS_REMOUNT | MS_NOSUID | MS_NODEV, nullptr) !=
      0) {
    failAttach(a.errorFd, "remount workspace", errno);
  }
  _exit(0);
}

}  // namespace

Status attachInside(pid_t pid, const std::string& hostDir, const std::string& target) {
  const std::string nsPath = "/proc/" + std::to_string(pid) + "/ns/mnt";
  int nsFd = open(nsPath.c_str(), O_RDONLY | O_CLOEXEC);
  if (nsFd < 0) return errnoStatus("sandbox: open " + nsPath, errno);
  int treeFd = static_cast<int>(
      syscall(SYS_open_tree, AT_FDCWD, hostDir.c_str(), OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC));
  if (treeFd < 0) {
    int err = errno;
    close(nsFd);
    return errnoStatus("sandbox: open_tree " + hostDir, err);
  }
  int error[2];
  if (pipe2(error, O_CLOEXEC) != 0) {
    int err = errno;
    close(nsFd);
    close(treeFd);
    return errnoStatus("sandbox: pipe", err);
  }
  AttachArgs args{nsFd, treeFd, error[1], target.c_str()};
  constexpr size_t kStack = 64 << 10;
  void* stack =
      mmap(nullptr, kStack, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
  pid_t child = -1;
  int cloneErr = ENOMEM;
  if (stack != MAP_FAILED) {
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    child = clone(attachMain, static_cast<char*>(stack) + kStack, CLONE_VM | CLONE_VFORK | SIGCHLD,
                  &args);
    cloneErr = errno;
    pthread_sigmask(SIG_SETMASK, &old, nullptr);
  }
  close(error[1]);
  close(nsFd);
  close(treeFd);
  Status st = child < 0 ? errnoStatus("sandbox: clone", cloneErr) : childOutcome(error[0]);
  close(error[0]);
  if (child > 0) {
    while (waitpid(child, nullptr, 0) < 0 && errno == EINTR) {
    }
  }
  if (stack != MAP_FAILED) munmap(stack, kStack);
  return st;
}

}  // namespace kiln::sandbox
