// The namespace backend end to end: real namespaces, mounts and cgroups, the real runtime.
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>

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
  EXPECT_EQ(countRuntimes(id), 1);
  std::string cg = "/sys/fs/cgroup/memory/kiln/" + sb->id();
  bool v1 = std::filesystem::exists("/sys/fs/cgroup/memory/kiln");
  if (v1) {
    EXPECT_TRUE(std::filesystem::exists(cg));
  }
  std::string dir = state_ + "/" + sb->id();
  EXPECT_TRUE(sb->destroy().isOk());
  EXPECT_TRUE(sb->destroy().isOk());  // idempotent
  EXPECT_EQ(countRuntimes(id), 0);
  EXPECT_EQ(countMounts(), mountsBefore);
  EXPECT_FALSE(std::filesystem::exists(cg));
  EXPECT_FALSE(std::filesystem::exists(dir));
}

TEST_F(SandboxNsTest, SetupFailureNamesTheStepAndLeavesNothing) {
  std::string bogus = state_ + "/not-a-binary";
  std::ofstream(bogus) << "plain text, not ELF\n";
  std::filesystem::permissions(bogus, std::filesystem::perms::owner_all);
  auto backend = newNamespaceBackend({state_, bogus});
  ASSERT_TRUE(backend.isOk());
  int mounts = countMounts();
  std::string id = uniqueId("bad");
  auto sb = (*backend)->create({.id = id, .workspaceDir = newWorkspace(), .memoryMb = 64});
  ASSERT_FALSE(sb.isOk());
  EXPECT_NE(sb.status().message().find("sandbox: exec runtime: "), std::string::npos)
      << sb.status().toString();
  EXPECT_FALSE(std::filesystem::exists(state_ + "/" + id));
  EXPECT_FALSE(std::filesystem::exists("/sys/fs/cgroup/memory/kiln/" + id));
  EXPECT_EQ(countMounts(), mounts);
}

TEST_F(SandboxNsTest, DuplicateIdIsAConflict) {
  std::string id = uniqueId("dup");
  Sandbox* sb = create({.id = id});
  ASSERT_NE(sb, nullptr);
  auto again = backend_->create({.id = id, .workspaceDir = newWorkspace()});
  EXPECT_EQ(again.status().code(), Code::kConflict);
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
