// The adversarial suite: each test is an escape attempt that must fail inside the sandbox and
// leave the host unaffected. Runs as root (skipped otherwise).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "sandbox_fixture.h"

namespace kiln::sandbox::testing {
namespace {

class EscapeTest : public BackendSandboxTest {};

// Python probe: runs raw syscalls and prints "name errno" (0 = succeeded).
std::string syscallProbe(const std::string& calls) {
  return "/usr/bin/python3 -c '\n"
         "import ctypes\n"
         "l = ctypes.CDLL(None, use_errno=True)\n"
         "for name, nr, args in [" +
         calls +
         "]:\n"
         "    r = l.syscall(nr, *args)\n"
         "    print(name, 0 if r >= 0 else ctypes.get_errno())\n'";
}

TEST_P(EscapeTest, ReadRootHomeAndShadow) {
  std::string marker = "/root/.kiln-escape-" + std::to_string(getpid());
  std::ofstream(marker) << "secret";
  Sandbox* agent = create({});
  Sandbox* root = create({.rootInside = true});
  ASSERT_NE(agent, nullptr);
  ASSERT_NE(root, nullptr);
  const std::string cmd =
      "ls -A /root 2>&1; cat /etc/shadow /etc/gshadow 2>&1; cat " + marker + " 2>&1; ls /etc/ssh";
  auto a = exec(agent, cmd), r = exec(root, cmd);
  std::filesystem::remove(marker);
  ASSERT_TRUE(a.isOk() && r.isOk());
  for (const auto& out : {a->output, r->output}) {
    EXPECT_EQ(out.find("secret"), std::string::npos) << out;
    EXPECT_EQ(out.find("root:"), std::string::npos) << out;  // a shadow line
    EXPECT_EQ(out.find("ssh_host_"), std::string::npos) << out;
    // Whited out on the namespace backend's overlay; gVisor mounts an empty file over it.
    if (!isGvisor()) EXPECT_NE(out.find("No such file"), std::string::npos) << out;
  }
  if (isGvisor()) {
    EXPECT_EQ(run(agent, "wc -c < /etc/shadow"), "0\n");
    EXPECT_EQ(run(root, "wc -c < /etc/shadow"), "0\n");
  }
}

TEST_P(EscapeTest, WritesOutsideWorkspaceDoNotPersist) {
  std::string probe = "kiln-escape-" + std::to_string(getpid());
  Sandbox* sb = create({.rootInside = true});
  ASSERT_NE(sb, nullptr);
  // gVisor: /usr and /etc are read-only there (only the root is an overlay, in memory).
  run(sb,
      "for d in / /usr /etc /var /home/agent /root /usr/lib /tmp /var/tmp /dev/shm; do "
      "echo x 2>/dev/null > $d/" +
          probe + "; done; ls " + (isGvisor() ? "/var/" : "/usr/") + probe);
  ASSERT_TRUE(sb->destroy().isOk());
  for (const char* d :
       {"/", "/usr/", "/etc/", "/var/", "/root/", "/usr/lib/", "/tmp/", "/var/tmp/", "/dev/shm/"}) {
    EXPECT_FALSE(std::filesystem::exists(std::string(d) + probe)) << d;
  }
  Sandbox* next = create({.rootInside = true});
  ASSERT_NE(next, nullptr);
  auto r = exec(next, "ls /usr/" + probe + " /" + probe + " /tmp/" + probe + " /var/tmp/" + probe);
  ASSERT_TRUE(r.isOk());
  EXPECT_NE(r->exitCode, 0);
}

TEST_P(EscapeTest, KilnDataAndOtherSandboxesAreUnreachable) {
  // A node's data dir (its SQLite database among it), and a second sandbox: its workspace and
  // its runtime socket, the way into it.
  std::string data = newWorkspace();
  std::ofstream(data + "/kiln.db") << "SQLite format 3 secret-db-content";
  std::string otherWs = newWorkspace();
  std::ofstream(otherWs + "/other.txt") << "secret-other-workspace";
  Sandbox* other = create({.workspaceDir = otherWs});
  Sandbox* sb = create({.rootInside = true});
  ASSERT_NE(other, nullptr);
  ASSERT_NE(sb, nullptr);
  auto r = exec(sb, "cat " + data + "/kiln.db " + otherWs + "/other.txt 2>&1; ls " +
                        other->runtimeSocket() +
                        " 2>&1; find / -xdev \\( -name kiln.db -o "
                        "-name other.txt -o -name '*.sock' \\) 2>/dev/null; "
                        "ls /proc/1/root/tmp /proc/1/root" +
                        data + " 2>&1; echo end");
  ASSERT_TRUE(r.isOk()) << r.status().toString();
  EXPECT_EQ(r->output.find("secret-"), std::string::npos) << r->output;
  EXPECT_EQ(r->output.find("kiln.db\n"), std::string::npos) << r->output;
  EXPECT_EQ(r->output.find("other.txt\n"), std::string::npos) << r->output;
  EXPECT_EQ(r->output.find(".sock\n"), std::string::npos) << r->output;
  EXPECT_NE(r->output.find("No such file"), std::string::npos) << r->output;
  EXPECT_NE(r->output.find("end\n"), std::string::npos) << r->output;
}

TEST_P(EscapeTest, ARuntimeServesOnlyItsOwnSandboxsToken) {
  Sandbox* a = create({.rootInside = true});
  Sandbox* b = create({});
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  EXPECT_NE(a->runtimeToken(), b->runtimeToken());
  EXPECT_GE(a->runtimeToken().size(), 32u);
  for (const std::string* token : {&b->runtimeToken(), static_cast<const std::string*>(nullptr)}) {
    asio::io_context ioc;
    runtime::RuntimeClient client(ioc.get_executor(), a->runtimeSocket(), token ? *token : "");
    std::optional<Status> st;
    asio::co_spawn(
        ioc, [&]() -> Task<void> { st.emplace(co_await client.health()); }, asio::detached);
    ioc.run();
    EXPECT_EQ(st->code(), Code::kUnauthenticated) << st->toString();
  }
  // Root inside (without capabilities) finds the token neither in PID 1's environment nor in
  // its own.
  auto r = exec(a, "cat /proc/1/environ 2>&1; env; echo end");
  ASSERT_TRUE(r.isOk()) << r.status().toString();
  EXPECT_EQ(r->output.find(a->runtimeToken()), std::string::npos) << r->output;
  EXPECT_NE(r->output.find("end\n"), std::string::npos) << r->output;
}

// sandbox.workdir (issue 17): the workspace is where the job asked, commands start there, and
// files cross both ways; with rootInside, commands run as root there.
TEST_P(EscapeTest, TheWorkspaceIsAtTheJobsWorkdirAndCommandsStartThere) {
  const std::string ws = newWorkspace();
  std::ofstream(ws + "/host.txt") << "from-host\n";
  Sandbox* sb = create({.workspaceDir = ws, .workdir = "/testbed/repo", .rootInside = true});
  ASSERT_NE(sb, nullptr);
  auto r = exec(sb, "pwd; id -u; cat host.txt; echo from-inside > inside.txt");
  ASSERT_TRUE(r.isOk()) << r.status().toString();
  EXPECT_EQ(r->output.rfind("/testbed/repo\n0\nfrom-host\n", 0), 0u) << r->output;
  EXPECT_EQ(readText(ws + "/inside.txt"), "from-inside\n");
}

TEST_P(EscapeTest, HostPidsAreInvisibleAndUnsignalable) {
  Sandbox* sb = create({.rootInside = true});
  ASSERT_NE(sb, nullptr);
  std::string self = std::to_string(getpid());
  auto r = exec(sb, "kill -0 " + self + " 2>&1 && echo SIGNALLED; kill -9 -1; echo done");
  ASSERT_TRUE(r.isOk());
  EXPECT_EQ(r->output.find("SIGNALLED"), std::string::npos) << r->output;
  // kill -1 only reached the sandbox's own processes; PID 1 survives and still serves.
  EXPECT_EQ(run(sb, "echo alive"), "alive\n");
}

TEST_P(EscapeTest, CannotReachHostLoopbackPort) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ASSERT_EQ(listen(fd, 4), 0);
  socklen_t len = sizeof addr;
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  std::string port = std::to_string(ntohs(addr.sin_port));
  Sandbox* sb = create({});
  ASSERT_NE(sb, nullptr);
  auto r = exec(sb, "bash -c 'echo hi > /dev/tcp/127.0.0.1/" + port +
                        "' 2>&1 && echo CONNECTED; bash -c 'echo > /dev/tcp/1.1.1.1/80' 2>&1 "
                        "&& echo CONNECTED");
  ASSERT_TRUE(r.isOk());
  EXPECT_EQ(r->output.find("CONNECTED"), std::string::npos) << r->output;
  // Nothing arrived on the host side.
  fcntl(fd, F_SETFL, O_NONBLOCK);
  EXPECT_LT(accept(fd, nullptr, nullptr), 0);
  close(fd);
}

#if defined(__x86_64__)
TEST_P(EscapeTest, MountModulesNamespacesAndPtraceAreDenied) {
  const std::string calls =
      "(\"mount\",165,(b\"none\",b\"/mnt\",b\"tmpfs\",0,0)),(\"init_module\",175,(0,0,b\"\")),"
      "(\"finit_module\",313,(0,b\"\",0)),(\"unshare_user\",272,(0x10000000,)),"
      "(\"unshare_mnt\",272,(0x20000,)),(\"pivot_root\",155,(b\"/tmp\",b\"/tmp\")),"
      "(\"ptrace_attach\",101,(16,1,0,0)),(\"bpf\",321,(0,0,0)),(\"keyctl\",250,(0,0,0)),"
      "(\"reboot\",169,(0xfee1dead,0x28121969,0x1234567,0)),(\"io_uring_setup\",425,(1,0))";
  for (bool root : {false, true}) {
    Sandbox* sb = create({.rootInside = root});
    ASSERT_NE(sb, nullptr);
    std::string out = run(sb, syscallProbe(calls));
    for (const char* name :
         {"mount", "init_module", "finit_module", "unshare_user", "unshare_mnt", "pivot_root",
          "ptrace_attach", "bpf", "keyctl", "reboot", "io_uring_setup"}) {
      EXPECT_NE(out.find(std::string(name) + " 1\n"), std::string::npos)
          << name << " (root=" << root << "):\n"
          << out;
    }
    auto m = exec(sb,
                  "mount -t tmpfs none /mnt 2>&1 || echo REFUSED; unshare -r true 2>&1 || "
                  "echo REFUSED2");
    ASSERT_TRUE(m.isOk());
    EXPECT_NE(m->output.find("REFUSED\n"), std::string::npos) << m->output;
    EXPECT_NE(m->output.find("REFUSED2\n"), std::string::npos) << m->output;
  }
}
#endif

// Cases of the namespace backend only: each says why it does not apply to gVisor.
class NsEscapeTest : public EscapeTest {};

TEST_P(NsEscapeTest, ForkBombIsBoundedByPids) {
  // Namespace backend only: the pids cgroup counts the sentry's host threads, not the processes of
  // gVisor's kernel.
  Sandbox* sb = create({.pids = 48});
  ASSERT_NE(sb, nullptr);
  auto r =
      exec(sb, "i=0; while [ $i -lt 200 ]; do sleep 30 & i=$((i+1)); done; echo spawned", 5'000);
  ASSERT_TRUE(r.isOk()) << r.status().toString();
  EXPECT_NE(r->output.find("fork"), std::string::npos) << r->output;
  auto breach = sb->limitBreach();
  ASSERT_TRUE(breach.has_value());
  EXPECT_EQ(breach->resource, "pids");
  std::string current = readText("/sys/fs/cgroup/pids/kiln/" + sb->id() + "/pids.current");
  if (!current.empty()) EXPECT_LE(std::stoi(current), 48);
}

TEST_P(NsEscapeTest, ClassicForkBombIsContainedAndReported) {
  // Namespace backend only: the pids cgroup counts the sentry's host threads, not the processes of
  // gVisor's kernel.
  Sandbox* sb = create({.pids = 64});
  ASSERT_NE(sb, nullptr);
  // The bomb goes in the background first; exec (no fork needed) keeps the command itself
  // alive until its timeout, whose process-group kill must take the whole bomb down.
  auto r = exec(sb, "bash -c 'bomb() { bomb | bomb & }; bomb' & exec sleep 5", 1'000);
  ASSERT_TRUE(r.isOk()) << r.status().toString();
  EXPECT_TRUE(r->timedOut);
  auto breach = sb->limitBreach();
  ASSERT_TRUE(breach.has_value());
  EXPECT_EQ(breach->resource, "pids");
  // The process-group kill at the timeout takes the bomb down, and PID 1 still serves. (Killed
  // processes take a moment to exit and be reaped; until then they still hold pids.)
  // Commands run with bash: the probe execs sh, or it would count its own shell.
  const std::string probe =
      R"(exec sh -c 'echo alive; ps -e -o stat=,comm= | awk "\$1 !~ /^Z/ && \$2 == \"bash\"" | wc -l')";
  auto alive = exec(sb, probe);
  for (int i = 0; i < 30 && !(alive.isOk() && alive->output == "alive\n0\n"); ++i) {
    usleep(100'000);
    alive = exec(sb, probe);
  }
  ASSERT_TRUE(alive.isOk()) << alive.status().toString();
  EXPECT_EQ(alive->output, "alive\n0\n") << run(sb, "ps -e -o pid,ppid,pgid,sid,stat,args");
}

TEST_P(NsEscapeTest, MemoryBombIsOomKilledAndReported) {
  // Namespace backend only: the sentry holds all memory of the sandbox: an OOM kill takes the whole
  // sandbox.
  Sandbox* sb = create({.memoryMb = 64});
  ASSERT_NE(sb, nullptr);
  EXPECT_FALSE(sb->limitBreach().has_value());
  // tail must buffer a line that never ends: it grows until the OOM killer takes it.
  auto r = exec(sb, "head -c 1024m /dev/zero | tail > /dev/null; echo rc=$?");
  ASSERT_TRUE(r.isOk()) << r.status().toString();
  auto breach = sb->limitBreach();
  ASSERT_TRUE(breach.has_value()) << r->output;
  EXPECT_EQ(breach->resource, "memory");
  // PID 1 survived the OOM and still serves.
  EXPECT_EQ(run(sb, "echo alive"), "alive\n");
}

TEST_P(NsEscapeTest, DiskQuotaFailsInsideAndIsReported) {
  // Namespace backend only: no disk quota (writes outside /workspace are memory).
  Sandbox* sb = create({.diskMb = 64});
  ASSERT_NE(sb, nullptr);
  EXPECT_FALSE(sb->limitBreach().has_value());
  auto r =
      exec(sb, "dd if=/dev/zero of=/var/tmp/big bs=1M count=200 2>&1; echo rc=$?; df / /var/tmp");
  ASSERT_TRUE(r.isOk()) << r.status().toString();
  EXPECT_NE(r->output.find("No space left"), std::string::npos) << r->output;
  auto breach = sb->limitBreach();
  ASSERT_TRUE(breach.has_value()) << r->output;
  EXPECT_EQ(breach->resource, "disk");
}

TEST_P(NsEscapeTest, DiskQuotaFilledThenFreedIsStillReported) {
  // Namespace backend only: no disk quota (writes outside /workspace are memory).
  Sandbox* sb = create({.diskMb = 64});
  ASSERT_NE(sb, nullptr);
  // Fill the quota and free it again within one command: nothing is full any more afterwards.
  auto r = exec(sb,
                "dd if=/dev/zero of=/var/tmp/big bs=1M count=200 2>&1; rm -f /var/tmp/big; "
                "df -k / | tail -1");
  ASSERT_TRUE(r.isOk()) << r.status().toString();
  EXPECT_NE(r->output.find("No space left"), std::string::npos) << r->output;
  auto breach = sb->limitBreach();
  ASSERT_TRUE(breach.has_value()) << r->output;
  EXPECT_EQ(breach->resource, "disk");
}

TEST_P(NsEscapeTest, DiskUsedWellBelowTheQuotaIsNoBreach) {
  // Namespace backend only: no disk quota (writes outside /workspace are memory).
  Sandbox* sb = create({.diskMb = 64});
  ASSERT_NE(sb, nullptr);
  run(sb, "dd if=/dev/zero of=/var/tmp/half bs=1M count=24 2>&1 && sync && rm /var/tmp/half");
  EXPECT_FALSE(sb->limitBreach().has_value());
}

TEST_P(EscapeTest, SymlinkToEtcThroughFilesReadIsRefused) {
  Sandbox* sb = create({});
  ASSERT_NE(sb, nullptr);
  run(sb, "ln -s /etc /workspace/etc-link && ln -s ../../../etc/passwd /workspace/pw");
  for (const char* path : {"etc-link/passwd", "pw", "/etc/passwd", "../etc/passwd"}) {
    auto r = call(sb, "/files/read", {{"path", path}});
    ASSERT_FALSE(r.isOk()) << path;
    EXPECT_NE(r.status().message().find("path_outside_workspace"), std::string::npos)
        << path << ": " << r.status().toString();
  }
}

TEST_P(EscapeTest, SigtermIgnoringCommandIsKilledAtTimeout) {
  Sandbox* sb = create({});
  ASSERT_NE(sb, nullptr);
  auto r = exec(sb, "trap '' TERM; sh -c \"trap '' TERM; while :; do sleep 1; done\" & wait", 300);
  ASSERT_TRUE(r.isOk()) << r.status().toString();
  EXPECT_TRUE(r->timedOut);
  // Only PID 1 and this probe's own processes are left.
  std::string left = run(sb, "ps -e -o pid=,comm= | grep -v -e ' ps$' -e ' sh$' -e ' grep$'");
  EXPECT_EQ(left.find("sleep"), std::string::npos) << left;
}

TEST_P(NsEscapeTest, NoLeaksAfter500CreateDestroyCycles) {
  // Namespace backend only: 500 gVisor starts take minutes; GvisorSandboxTest has its own leak
  // tests.
  const std::string prefix = uniqueId("leak") + "_";
  int lo = countLoops();
  for (int i = 0; i < 500; ++i) {
    SandboxSpec spec{.id = prefix + std::to_string(i), .memoryMb = 128};
    if (i % 50 == 0) spec.diskMb = 16;
    Sandbox* sb = create(spec);
    ASSERT_NE(sb, nullptr) << "cycle " << i;
    if (i % 25 == 0) {
      run(sb, "sleep 30 >/dev/null 2>&1 & true");  // a straggler for destroy to kill
      EXPECT_EQ(countRuntimes(spec.id), 1);
    }
    ASSERT_TRUE(sb->destroy().isOk()) << "cycle " << i;
    sandboxes_.clear();
  }
  // A sandbox mount that escaped its namespace would show under the state dir (.mnt) on the
  // host. (Not the global count: other processes on the host mount things meanwhile.)
  EXPECT_EQ(countMountsUnder(state_), 0);
  EXPECT_EQ(countRuntimes(prefix), 0);
  EXPECT_EQ(countCgroups(prefix), 0);
  // Autoclear loop devices detach asynchronously after the last mount goes. (Global count:
  // another test binary attaching images at the same time would make this fail, not pass.)
  for (int i = 0; i < 100 && countLoops() > lo; ++i) usleep(20'000);
  EXPECT_EQ(countLoops(), lo);
  EXPECT_TRUE(sandboxStateEntries(state_).empty());
}

INSTANTIATE_TEST_SUITE_P(Backends, EscapeTest, ::testing::ValuesIn(kBackends), backendTestName);
INSTANTIATE_TEST_SUITE_P(Namespace, NsEscapeTest, ::testing::Values("namespace"), backendTestName);

}  // namespace
}  // namespace kiln::sandbox::testing
