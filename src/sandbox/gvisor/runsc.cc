#include "sandbox/gvisor/runsc.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/close_range.h>
#include <sched.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <thread>

#include "common/files.h"

namespace kiln::sandbox::gvisor {
namespace {

constexpr size_t kChildStack = 64 << 10;
// A kvm probe that has not finished by then is taken as kvm not working (nested
// virtualisation where /dev/kvm exists but guests never run is the case seen).
constexpr auto kProbeTimeout = std::chrono::seconds(4);

struct SpawnArgs {
  char* const* argv;
  char* const* envp;
  int logFd, nullFd, errorFd;
  const int* cgroupFds;
  size_t cgroups;
};

[[noreturn]] void failChild(int errorFd, int err) {
  (void)!write(errorFd, &err, sizeof err);
  _exit(127);
}

// The child shares our memory until it execs (CLONE_VM | CLONE_VFORK): raw syscalls only.
int spawnMain(void* arg) {
  const SpawnArgs& a = *static_cast<SpawnArgs*>(arg);
  // First, so that runsc's gofer and sentry are born in the sandbox's cgroups.
  for (size_t i = 0; i < a.cgroups; ++i) {
    if (write(a.cgroupFds[i], "0", 1) != 1) failChild(a.errorFd, errno);
  }
  // kiln dying (even kill -9) takes runsc with it, and runsc its sentry (started attached).
  if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) != 0) failChild(a.errorFd, errno);
  if (dup2(a.nullFd, 0) < 0 || dup2(a.logFd, 1) < 0 || dup2(a.logFd, 2) < 0) {
    failChild(a.errorFd, errno);
  }
  // Nothing else of kiln's leaks into runsc (the error pipe is close-on-exec already).
  syscall(SYS_close_range, 3, ~0U, CLOSE_RANGE_CLOEXEC);
  setsid();
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, nullptr);
  execve(a.argv[0], a.argv, a.envp);
  failChild(a.errorFd, errno);
}

std::vector<char*> cStrings(const std::vector<std::string>& v) {
  std::vector<char*> out;
  for (const auto& s : v) out.push_back(const_cast<char*>(s.c_str()));
  out.push_back(nullptr);
  return out;
}

bool executable(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode) && access(path.c_str(), X_OK) == 0;
}

}  // namespace

Result<std::string> findRunsc(const std::string& configured) {
  if (!configured.empty()) {
    if (executable(configured)) return configured;
    return Status(Code::kUnavailable, "gvisor: runsc " + configured + " is not executable");
  }
  std::string path = getenv("PATH") ? getenv("PATH") : "";
  path += ":/usr/sbin:/usr/bin";
  std::istringstream dirs(path);
  for (std::string dir; std::getline(dirs, dir, ':');) {
    if (!dir.empty() && executable(dir + "/runsc")) return dir + "/runsc";
  }
  return Status(Code::kUnavailable,
                "gvisor: runsc not found (install the Debian package runsc, or pass its path)");
}

bool RunscProcess::exited(int* status) {
  if (pid_ <= 0) return true;
  int ignored;
  pid_t r = waitpid(pid_, status ? status : &ignored, WNOHANG);
  if (r == pid_ || (r < 0 && errno == ECHILD)) {
    pid_ = -1;
    return true;
  }
  return false;
}

void RunscProcess::kill() {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGKILL);
  while (waitpid(pid_, nullptr, 0) < 0 && errno == EINTR) {
  }
  pid_ = -1;
}

Result<RunscProcess> RunscProcess::start(const std::vector<std::string>& argv, int logFd,
                                         const std::vector<int>& cgroupProcsFds) {
  int error[2];
  if (pipe2(error, O_CLOEXEC) != 0) return errnoStatus("gvisor: pipe", errno);
  int nullFd = open("/dev/null", O_RDONLY | O_CLOEXEC);
  std::vector<char*> args = cStrings(argv);
  std::vector<std::string> envStrings = {"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C.UTF-8"};
  std::vector<char*> envp = cStrings(envStrings);
  SpawnArgs a{args.data(),           envp.data(),          logFd, nullFd, error[1],
              cgroupProcsFds.data(), cgroupProcsFds.size()};
  void* stack = mmap(nullptr, kChildStack, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
  pid_t pid = -1;
  int cloneErr = nullFd < 0 ? errno : ENOMEM;
  if (stack != MAP_FAILED && nullFd >= 0) {
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    pid = clone(spawnMain, static_cast<char*>(stack) + kChildStack,
                CLONE_VM | CLONE_VFORK | SIGCHLD, &a);
    cloneErr = errno;
    pthread_sigmask(SIG_SETMASK, &old, nullptr);
  }
  close(error[1]);
  if (nullFd >= 0) close(nullFd);
  if (stack != MAP_FAILED) munmap(stack, kChildStack);  // the child exec'd or exited
  if (pid < 0) {
    close(error[0]);
    return errnoStatus("gvisor: clone", cloneErr);
  }
  int childErr = 0;
  ssize_t n;
  while ((n = read(error[0], &childErr, sizeof childErr)) < 0 && errno == EINTR) {
  }
  close(error[0]);
  RunscProcess p;
  p.pid_ = pid;
  if (n > 0) {
    p.kill();
    return errnoStatus("gvisor: start " + argv[0], childErr);
  }
  return p;
}

namespace {

// Runs a throwaway sandbox on kvm; true if it finished well in time.
bool kvmWorks(const std::string& runsc) {
  char root[] = "/tmp/kiln-kvm-probe-XXXXXX";
  if (!mkdtemp(root)) return false;
  int devNull = open("/dev/null", O_WRONLY | O_CLOEXEC);
  Result<RunscProcess> probe =
      RunscProcess::start({runsc, "--root=" + std::string(root), "--platform=kvm", "--network=none",
                           "--ignore-cgroups", "do", "true"},
                          devNull, {});
  if (devNull >= 0) close(devNull);
  bool ok = false;
  if (probe) {
    const auto deadline = std::chrono::steady_clock::now() + kProbeTimeout;
    while (std::chrono::steady_clock::now() < deadline) {
      int status = -1;
      if (probe->exited(&status)) {
        ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    probe->kill();
  }
  (void)removeTree(root);
  return ok;
}

}  // namespace

Result<std::string> choosePlatform(const std::string& runsc, const std::string& requested,
                                   const std::string& cacheDir) {
  if (requested != "auto" && requested != "ptrace" && requested != "kvm") {
    return invalidArgument("gvisor: platform must be auto, ptrace or kvm, not " + requested);
  }
  if (requested == "ptrace") return requested;
  int kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
  if (kvm < 0) {
    if (requested == "kvm") return errnoStatus("gvisor: platform kvm: open /dev/kvm", errno);
    return std::string("ptrace");
  }
  close(kvm);
  if (requested == "kvm") return requested;
  // The probe costs up to seconds: once per boot (the cache is on a tmpfs) and runsc binary.
  struct stat st;
  if (stat(runsc.c_str(), &st) != 0) return errnoStatus("gvisor: stat " + runsc, errno);
  const std::string key = runsc + " " + std::to_string(st.st_mtime);
  const std::string cache = cacheDir + "/kiln-gvisor-kvm";
  std::string cached = readFile(cache).valueOr("");
  if (cached == key + " kvm" || cached == key + " ptrace") return cached.substr(key.size() + 1);
  std::string platform = kvmWorks(runsc) ? "kvm" : "ptrace";
  std::ofstream(cache, std::ios::trunc) << key << " " << platform;
  return platform;
}

}  // namespace kiln::sandbox::gvisor
