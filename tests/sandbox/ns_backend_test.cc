// The namespace backend end to end: real namespaces, mounts and cgroups, the real runtime.
#include <fcntl.h>
#include <linux/loop.h>
#include <signal.h>
#include <spawn.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <atomic>
#include <future>
#include <thread>

#include "sandbox_fixture.h"

namespace kiln::sandbox::testing {
namespace {

using SandboxNsTest = NsSandboxTest;

TEST_F(SandboxNsTest, ExecRunsInsideAsAgentInWorkspace) {
  Sandbox* sb = create({});
  ASSERT_NE(sb, nullptr);
  EXPECT_EQ(run(sb, "id -u; id -g; pwd; hostname; echo $HOME"),
            "1000\n1000\n/workspace\nkiln\n/home/agent\n");
  EXPECT_EQ(run(sb, "cat /proc/1/cmdline | tr '\\0' ' '").substr(0, 12), "kiln runtime");
}

TEST_F(SandboxNsTest, SeesOnlyItsOwnProcesses) {
  Sandbox* sb = create({});
  ASSERT_NE(sb, nullptr);
  // PID 1 (the runtime), the shell, ls: a handful, while the host has many more.
  std::string pids = run(sb, "ls /proc | grep -c '^[0-9]*$'");
  EXPECT_LE(std::stoi(pids), 5) << pids;
  std::string ps = run(sb, "ps -e -o comm=");
  EXPECT_EQ(ps.find("kiln_tests"), std::string::npos) << ps;
}

TEST_F(SandboxNsTest, NetworkHasOnlyLoopback) {
  Sandbox* sb = create({});
  ASSERT_NE(sb, nullptr);
  std::string dev = run(sb, "tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' '");
  EXPECT_EQ(dev, "lo\n");
  EXPECT_NE(run(sb, "cat /sys/class/net/lo/operstate 2>/dev/null; ip -o link 2>/dev/null || true")
                .find("lo"),
            std::string::npos);
}

TEST_F(SandboxNsTest, HostSecretsAndOtherWorkspacesAreInvisible) {
  std::string marker = "/root/.kiln-test-marker-" + std::to_string(getpid());
  std::ofstream(marker) << "secret";
  Sandbox* a = create({});
  std::string otherWs = newWorkspace();
  std::ofstream(otherWs + "/other-secret") << "x";
  Sandbox* b = create({.workspaceDir = otherWs});
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  auto r = exec(a, "ls -A /root; test -e " + marker + " && echo VISIBLE-ROOT; test -e " +
                       otherWs + " && echo VISIBLE-WS; test -e " + state_ +
                       " && echo VISIBLE-STATE; test -r /etc/shadow && echo VISIBLE-SHADOW; "
                       "ls /home; cat /proc/1/mountinfo | grep -c . ");
  std::filesystem::remove(marker);
  ASSERT_TRUE(r.isOk());
  EXPECT_EQ(r->output.find("VISIBLE"), std::string::npos) << r->output;
  EXPECT_EQ(r->output.find(".kiln-test-marker"), std::string::npos) << r->output;
  EXPECT_EQ(run(b, "ls /workspace"), "other-secret\n");
}

TEST_F(SandboxNsTest, WritesToUsrAndEtcStayInside) {
  SandboxSpec spec;
  spec.rootInside = true;
  Sandbox* sb = create(spec);
  ASSERT_NE(sb, nullptr);
  std::string name = "kiln-usr-probe-" + std::to_string(getpid());
  EXPECT_EQ(run(sb, "id -u; touch /usr/" + name + " /etc/" + name + " && ls /usr/" + name),
            "0\n/usr/" + name + "\n");
  EXPECT_FALSE(std::filesystem::exists("/usr/" + name));
  EXPECT_FALSE(std::filesystem::exists("/etc/" + name));
}

TEST_F(SandboxNsTest, WorkspaceIsSharedWithTheHost) {
  std::string ws = newWorkspace();
  std::ofstream(ws + "/in.txt") << "from host\n";
  Sandbox* sb = create({.workspaceDir = ws});
  ASSERT_NE(sb, nullptr);
  EXPECT_EQ(run(sb, "cat in.txt; echo from-sandbox > out.txt"), "from host\n");
  EXPECT_EQ(readText(ws + "/out.txt"), "from-sandbox\n");
}

TEST_F(SandboxNsTest, DestroyLeavesNoProcessMountOrCgroup) {
  int mountsBefore = countMounts();
  std::string id = uniqueId("d");
  EXPECT_EQ(countRuntimes(id), 0);
  Sandbox* sb = create({.id = id, .memoryMb = 256});
  ASSERT_NE(sb, nullptr);
  // create() returns once the runtime's exec is past the point of no return; its cmdline
  // appears a moment later.
  for (int i = 0; i < 100 && countRuntimes(id) == 0; ++i) usleep(10'000);
  EXPECT_EQ(countRuntimes(id), 1);
  std::string cg = "/sys/fs/cgroup/memory/kiln/" + sb->id();
  bool v1 = std::filesystem::exists("/sys/fs/cgroup/memory/kiln");
  if (v1) {
    EXPECT_TRUE(std::filesystem::exists(cg));
  }
  EXPECT_EQ(sandboxStateEntries(state_), (std::vector<std::string>{id + ".log", id + ".sock"}));
  EXPECT_TRUE(sb->destroy().isOk());
  EXPECT_TRUE(sb->destroy().isOk());  // idempotent
  EXPECT_EQ(countRuntimes(id), 0);
  EXPECT_EQ(countMounts(), mountsBefore);
  EXPECT_FALSE(std::filesystem::exists(cg));
  EXPECT_TRUE(sandboxStateEntries(state_).empty());
}

TEST_F(SandboxNsTest, SetupFailureNamesTheStepAndLeavesNothing) {
  std::string bogus = newWorkspace() + "/not-a-binary";
  std::ofstream(bogus) << "plain text, not ELF\n";
  std::filesystem::permissions(bogus, std::filesystem::perms::owner_all);
  auto backend = newNamespaceBackend({state_, bogus, nullptr, ""});
  ASSERT_TRUE(backend.isOk());
  int mounts = countMounts();
  std::string id = uniqueId("bad");
  auto sb = (*backend)->create({.id = id, .workspaceDir = newWorkspace(), .memoryMb = 64});
  ASSERT_FALSE(sb.isOk());
  EXPECT_NE(sb.status().message().find("sandbox: exec runtime: "), std::string::npos)
      << sb.status().toString();
  EXPECT_TRUE(sandboxStateEntries(state_).empty());
  EXPECT_EQ(countCgroups(id), 0);
  EXPECT_EQ(countMounts(), mounts);
}

// Host path of the executable of sandbox id's PID 1.
std::string runtimeExe(const std::string& id) {
  for (const auto& e : std::filesystem::directory_iterator("/proc")) {
    std::string name = e.path().filename();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::string cmd = readText((e.path() / "cmdline").string());
    if (cmd.rfind(std::string("kiln\0runtime", 12), 0) != 0) continue;
    if (readText((e.path() / "cgroup").string()).find("/kiln/" + id + "\n") == std::string::npos) {
      continue;
    }
    std::error_code ec;
    return std::filesystem::read_symlink(e.path() / "exe", ec).string();
  }
  return "";
}

TEST_F(SandboxNsTest, RuntimeIsTheSmallBinaryNextToKiln) {
  std::string id = uniqueId("rt");
  Sandbox* sb = create({.id = id});
  ASSERT_NE(sb, nullptr);
  run(sb, "true");
  std::string exe = runtimeExe(id);
  EXPECT_EQ(std::filesystem::path(exe).filename(), "kiln-runtime") << exe;
}

TEST_F(SandboxNsTest, FallsBackToKilnRuntimeWithoutTheSmallBinary) {
  // A kiln binary with no kiln-runtime beside it.
  std::string dir = newWorkspace();
  std::filesystem::create_symlink(KILN_BINARY, dir + "/kiln");
  backend_.reset();
  auto backend = newNamespaceBackend({state_, dir + "/kiln", nullptr, ""});
  ASSERT_TRUE(backend.isOk()) << backend.status().toString();
  backend_ = std::move(backend).value();
  std::string id = uniqueId("fb");
  Sandbox* sb = create({.id = id});
  ASSERT_NE(sb, nullptr);
  EXPECT_EQ(run(sb, "id -u; cat /proc/1/cmdline | tr '\\0' ' ' | cut -c1-12"),
            "1000\nkiln runtime\n");
  EXPECT_EQ(runtimeExe(id), std::filesystem::canonical(KILN_BINARY).string());
}

TEST_F(SandboxNsTest, DuplicateIdIsAConflict) {
  std::string id = uniqueId("dup");
  Sandbox* sb = create({.id = id});
  ASSERT_NE(sb, nullptr);
  auto again = backend_->create({.id = id, .workspaceDir = newWorkspace()});
  EXPECT_EQ(again.status().code(), Code::kConflict);
}

// limitBreach() is called from a job's I/O thread: it must answer while a destroy() is in the
// middle of its teardown (it used to wait on the mutex destroy() holds through waitpid, cgroup
// removal and file removal). The teardown is held at its hook until limitBreach() returned.
TEST_F(SandboxNsTest, LimitBreachDoesNotWaitForATeardownInProgress) {
  struct Hold {
    std::atomic<bool> armed{false};
    std::promise<void> reached, release;
  };
  auto hold = std::make_shared<Hold>();  // the backend (and its hook) outlives this body
  NamespaceBackendOptions opts;
  opts.stateDir = state_;
  opts.kilnBinary = KILN_BINARY;
  opts.teardownHook = [hold](const std::string&) {
    if (!hold->armed.exchange(false)) return;
    hold->reached.set_value();
    hold->release.get_future().wait();
  };
  backend_.reset();
  auto backend = newNamespaceBackend(opts);
  ASSERT_TRUE(backend.isOk()) << backend.status().toString();
  backend_ = std::move(backend).value();
  Sandbox* sb = create({.pids = 16});
  ASSERT_NE(sb, nullptr);
  auto r = exec(sb, "i=0; while [ $i -lt 40 ]; do sleep 30 & i=$((i+1)); done; echo spawned");
  ASSERT_TRUE(r.isOk()) << r.status().toString();
  ASSERT_NE(r->output.find("fork"), std::string::npos) << r->output;

  hold->armed = true;
  std::thread destroyer([sb] { EXPECT_TRUE(sb->destroy().isOk()); });
  const bool reached =
      hold->reached.get_future().wait_for(std::chrono::seconds(60)) == std::future_status::ready;
  std::future<std::optional<LimitBreach>> breach;
  bool answered = false;
  if (reached) {
    breach = std::async(std::launch::async, [sb] { return sb->limitBreach(); });
    answered = breach.wait_for(std::chrono::seconds(30)) == std::future_status::ready;
  }
  hold->release.set_value();
  destroyer.join();
  ASSERT_TRUE(reached) << "destroy() never reached its teardown hook";
  ASSERT_TRUE(answered) << "limitBreach() waited for the teardown in progress";
  auto b = breach.get();
  ASSERT_TRUE(b.has_value()) << "the breach known when the teardown began was lost";
  EXPECT_EQ(b->resource, "pids");
}

pid_t spawnQuiet(const std::vector<std::string>& args) {
  std::vector<char*> argv;
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
  pid_t pid = -1;
  if (posix_spawn(&pid, argv[0], &fa, nullptr, argv.data(), environ) != 0) pid = -1;
  posix_spawn_file_actions_destroy(&fa);
  return pid;
}

// Attaches a loop device (no autoclear) to image; returns its fd, or -1.
int attachLoop(const std::string& image) {
  int img = open(image.c_str(), O_RDWR | O_CLOEXEC);
  int ctl = open("/dev/loop-control", O_RDWR | O_CLOEXEC);
  int n = ctl >= 0 ? ioctl(ctl, LOOP_CTL_GET_FREE) : -1;
  int fd = n >= 0 ? open(("/dev/loop" + std::to_string(n)).c_str(), O_RDWR | O_CLOEXEC) : -1;
  if (fd >= 0 && ioctl(fd, LOOP_SET_FD, img) != 0) {
    close(fd);
    fd = -1;
  }
  for (int f : {img, ctl}) {
    if (f >= 0) close(f);
  }
  return fd;
}

// Waits (up to 10 s) for pid to be killed by SIGKILL; false if it is still running.
bool waitKilled(pid_t pid) {
  for (int i = 0; i < 1000; ++i) {
    int st = 0;
    if (waitpid(pid, &st, WNOHANG) == pid) return WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL;
    usleep(10'000);
  }
  return false;
}

TEST_F(SandboxNsTest, BackendStartReclaimsWhatACrashedOwnerLeft) {
  // A live sandbox in the same state dir: the reclaim must leave it alone.
  Sandbox* live = create({});
  ASSERT_NE(live, nullptr);
  // 1. `kiln sandbox exec` killed -9 mid-command: its sandbox dies with it (parent-death
  //    signal); its state files (disk image included) and cgroups stay behind.
  pid_t cli = spawnQuiet({KILN_BINARY, "sandbox", "exec", "--state-dir", state_, "--disk-mb",
                          "16", "--memory-mb", "64", "--", "sleep", "60"});
  ASSERT_GT(cli, 0);
  const std::string cliId = "x" + std::to_string(cli);
  // (Its runtime's forked command child shares the cmdline until it execs.)
  for (int i = 0; i < 1000 && countRuntimes(cliId) == 0; ++i) usleep(10'000);
  ASSERT_GE(countRuntimes(cliId), 1);
  kill(cli, SIGKILL);
  ASSERT_TRUE(waitKilled(cli));
  for (int i = 0; i < 500 && countRuntimes(cliId) > 0; ++i) usleep(10'000);
  EXPECT_TRUE(std::filesystem::exists(state_ + "/" + cliId + ".img"));
  EXPECT_GT(countCgroups(cliId), 0);
  // 2. A crash mid-destroy in the earlier per-sandbox-directory layout: a host mount, a loop
  //    device on its image, and cgroups with a process still inside.
  const std::string stale = uniqueId("stale");
  const std::string dir = state_ + "/" + stale;
  std::filesystem::create_directories(dir + "/rw");
  ASSERT_EQ(mount("tmpfs", (dir + "/rw").c_str(), "tmpfs", 0, "size=1m"), 0);
  std::ofstream(dir + "/disk.img").close();
  std::filesystem::resize_file(dir + "/disk.img", 1 << 20);
  int loopFd = attachLoop(dir + "/disk.img");
  ASSERT_GE(loopFd, 0);
  close(loopFd);  // without autoclear, the device stays attached
  pid_t sleeper = spawnQuiet({"/bin/sleep", "60"});
  ASSERT_GT(sleeper, 0);
  for (const auto& parent : cgroupParents()) {
    std::filesystem::create_directory(parent + "/" + stale);
    std::ofstream(parent + "/" + stale + "/cgroup.procs") << sleeper;
  }
  EXPECT_EQ(countLoops(dir), 1);
  EXPECT_EQ(countMountsUnder(state_), 1);

  auto again = newNamespaceBackend({state_, KILN_BINARY, nullptr, ""});
  ASSERT_TRUE(again.isOk()) << again.status().toString();

  EXPECT_TRUE(waitKilled(sleeper));
  EXPECT_EQ(countCgroups(cliId), 0);
  EXPECT_EQ(countCgroups(stale), 0);
  EXPECT_EQ(countMountsUnder(state_), 0);
  EXPECT_EQ(countLoops(state_), 0);
  EXPECT_EQ(sandboxStateEntries(state_),
            (std::vector<std::string>{live->id() + ".log", live->id() + ".sock"}));
  EXPECT_EQ(run(live, "echo alive"), "alive\n");
}

// A kiln killed -9 whose temporary data dir was then deleted (a test run, say) leaves cgroups no
// state dir names. A backend over any state dir removes those that are empty and old; a fresh
// empty one (a create in flight elsewhere) and a busy one stay.
TEST_F(SandboxNsTest, BackendStartRemovesOldEmptyCgroupsOfNoStateDir) {
  const std::string old = uniqueId("orph"), fresh = uniqueId("fresh"), busy = uniqueId("busy");
  pid_t sleeper = spawnQuiet({"/bin/sleep", "60"});
  ASSERT_GT(sleeper, 0);
  const std::vector<std::string> parents = cgroupParents();
  ASSERT_FALSE(parents.empty());
  for (const auto& parent : parents) {
    for (const auto& id : {old, fresh, busy}) std::filesystem::create_directory(parent + "/" + id);
    std::ofstream(parent + "/" + busy + "/cgroup.procs") << sleeper;
  }
  const timespec hourAgo[2] = {{time(nullptr) - 3600, 0}, {time(nullptr) - 3600, 0}};
  for (const auto& id : {old, busy}) {
    ASSERT_EQ(utimensat(AT_FDCWD, (parents[0] + "/" + id).c_str(), hourAgo, 0), 0);
  }

  dirs_.push_back(tempDir("orphan-state"));
  auto other = newNamespaceBackend({dirs_.back(), KILN_BINARY, nullptr, ""});
  ASSERT_TRUE(other.isOk()) << other.status().toString();

  EXPECT_EQ(countCgroups(old), 0);
  EXPECT_EQ(countCgroups(fresh), static_cast<int>(parents.size()));
  EXPECT_EQ(countCgroups(busy), static_cast<int>(parents.size()));
  kill(sleeper, SIGKILL);
  EXPECT_TRUE(waitKilled(sleeper));
  for (const auto& parent : parents) {
    for (const auto& id : {fresh, busy}) rmdir((parent + "/" + id).c_str());
  }
}

}  // namespace
}  // namespace kiln::sandbox::testing

namespace kiln::sandbox::testing {
namespace {

TEST(SandboxCliTest, ExecRunsOneCommandAndExitsWithItsCode) {
  if (geteuid() != 0) GTEST_SKIP() << "namespace sandbox tests need root";
  std::string state = tempDir("cli");
  std::string out = state + "/out";
  std::string cmd = std::string(KILN_BINARY) + " sandbox exec --state-dir " + state +
                    " --memory-mb 128 -- sh -c 'echo hello-$(id -u); exit 7' > " + out;
  int rc = std::system(cmd.c_str());
  EXPECT_TRUE(WIFEXITED(rc));
  EXPECT_EQ(WEXITSTATUS(rc), 7);
  EXPECT_EQ(readText(out), "hello-1000\n");
  std::filesystem::remove_all(state);
}

}  // namespace
}  // namespace kiln::sandbox::testing
