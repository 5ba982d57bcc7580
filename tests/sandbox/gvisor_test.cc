// The gvisor backend: what only it gives (a kernel of its own) and how it starts, attaches and
// goes. The behaviour it shares with the namespace backend is tested over both backends
// (EscapeTest, SandboxEgressTest, WarmPoolTest).
#include <sys/utsname.h>

#include "sandbox/gvisor/bundle.h"
#include "sandbox_fixture.h"

namespace kiln::sandbox::testing {
namespace {

class GvisorSandboxTest : public NsSandboxTest {
 protected:
  void SetUp() override {
    backendName_ = "gvisor";
    NsSandboxTest::SetUp();
  }
};

// Host processes of runsc (runsc itself, its gofer and sentry) in sandbox cgroups kiln/<prefix>*.
int countRunsc(const std::string& idPrefix) {
  int n = 0;
  for (const auto& e : std::filesystem::directory_iterator("/proc")) {
    std::string name = e.path().filename();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::string cmd = readText(e.path() / "cmdline");
    if (cmd.rfind("runsc", 0) != 0) continue;
    n += readText(e.path() / "cgroup").find("/kiln/" + idPrefix) != std::string::npos;
  }
  return n;
}

TEST_F(GvisorSandboxTest, TheKernelInsideIsNotTheHosts) {
  Sandbox* sb = create({});
  ASSERT_NE(sb, nullptr);
  utsname host{};
  ASSERT_EQ(uname(&host), 0);
  const std::string release = run(sb, "uname -r");
  EXPECT_FALSE(release.empty());
  EXPECT_NE(release, std::string(host.release) + "\n");
  const std::string version = run(sb, "cat /proc/version");
  EXPECT_FALSE(version.empty());
  EXPECT_NE(version, readText("/proc/version"));
  // Host kernel objects: its loaded modules and its symbol table exist on the host only.
  ASSERT_TRUE(std::filesystem::exists("/proc/kallsyms"));
  EXPECT_EQ(run(sb,
                "for f in /proc/kallsyms /proc/modules /proc/sys/kernel/modprobe; do "
                "test -e $f && echo VISIBLE $f; done; echo done"),
            "done\n");
}

TEST_F(GvisorSandboxTest, RunsAsAgentInItsWorkspaceSharedWithTheHost) {
  std::string ws = newWorkspace();
  std::ofstream(ws + "/from-host.txt") << "hello";
  Sandbox* sb = create({.workspaceDir = ws});
  ASSERT_NE(sb, nullptr);
  EXPECT_EQ(run(sb, "id -u; pwd; cat from-host.txt; echo; echo inside > made.txt; ls"),
            "1000\n/workspace\nhello\nfrom-host.txt\nmade.txt\n");
  struct stat st;
  ASSERT_EQ(stat((ws + "/made.txt").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, 1000u);
  EXPECT_EQ(readText(ws + "/made.txt"), "inside\n");
  // The file API resolves beneath the workspace there too (without openat2, see workspace_fs).
  auto r = call(sb, "/files/read", {{"path", "made.txt"}});
  ASSERT_TRUE(r.isOk()) << r.status().toString();
  EXPECT_EQ((*r)["content"], "inside\n");
}

TEST_F(GvisorSandboxTest, StartsIdleAndTakesItsWorkspaceOnce) {
  auto idle = backend_->startIdle({.id = uniqueId("idle")});
  ASSERT_TRUE(idle.isOk()) << idle.status().toString();
  sandboxes_.push_back(std::move(idle).value());
  Sandbox* sb = sandboxes_.back().get();
  // Before attach: no work.
  auto early = exec(sb, "true");
  ASSERT_FALSE(early.isOk());
  EXPECT_NE(early.status().message().find("no workspace attached"), std::string::npos)
      << early.status().toString();
  std::string ws = newWorkspace();
  std::ofstream(ws + "/job.txt") << "job";
  ASSERT_TRUE(sb->attach({.workspaceDir = ws}).isOk());
  EXPECT_EQ(run(sb, "cat job.txt"), "job");
  EXPECT_EQ(sb->attach({.workspaceDir = newWorkspace()}).code(), Code::kConflict);
  // The runtime's own attach refuses a second one as well (an agent reaching its socket).
  auto again = call(sb, "/workspace/attach", {{"source", "/etc"}});
  EXPECT_FALSE(again.isOk());
  EXPECT_EQ(run(sb, "ls /run/kiln/rt /run/kiln/slot 2>&1 >/dev/null | wc -l"), "2\n");
}

TEST_F(GvisorSandboxTest, DestroyLeavesNoProcessMountCgroupOrFile) {
  const std::string prefix = uniqueId("gone") + "_";
  Sandbox* sb = create({.id = prefix + "1", .memoryMb = 256});
  ASSERT_NE(sb, nullptr);
  run(sb, "sleep 60 >/dev/null 2>&1 & true");
  EXPECT_GE(countRunsc(prefix), 2);                   // runsc and its sentry at least
  EXPECT_GE(countMountsUnder(runDirFor(state_)), 1);  // the workspace slot
  ASSERT_TRUE(sb->destroy().isOk());
  EXPECT_EQ(countRunsc(prefix), 0);
  EXPECT_EQ(countMountsUnder(runDirFor(state_)), 0);
  EXPECT_EQ(countCgroups(prefix), 0);
  EXPECT_TRUE(sandboxStateEntries(state_).empty());
  // The workspace itself is the job's: untouched.
  EXPECT_TRUE(std::filesystem::exists(dirs_.back()));
}

TEST_F(GvisorSandboxTest, BadInputIsRefusedAndLeavesNothing) {
  EXPECT_EQ(backend_->create({.id = "../x", .workspaceDir = newWorkspace()}).status().code(),
            Code::kInvalidArgument);
  EXPECT_EQ(backend_->create({.id = uniqueId("i"), .workspaceDir = newWorkspace(), .image = "deb"})
                .status()
                .code(),
            Code::kInvalidArgument);
  auto missing = backend_->create({.id = uniqueId("m"), .workspaceDir = "/nonexistent/ws"});
  EXPECT_EQ(missing.status().code(), Code::kInvalidArgument) << missing.status().toString();
  EXPECT_TRUE(sandboxStateEntries(state_).empty());
  EXPECT_EQ(countMountsUnder(runDirFor(state_)), 0);
  auto noRunsc = newGvisorBackend({state_, KILN_BINARY, nullptr, "/nonexistent/runsc"});
  ASSERT_FALSE(noRunsc.isOk());
  EXPECT_NE(noRunsc.status().message().find("runsc"), std::string::npos);
  auto badPlatform = newGvisorBackend({state_, KILN_BINARY, nullptr, "", "vmware"});
  ASSERT_FALSE(badPlatform.isOk());
  EXPECT_EQ(badPlatform.status().code(), Code::kInvalidArgument);
}

TEST(GvisorBundleTest, MasksEtcSecretsAndRunsTheRuntimeAwaitingItsWorkspace) {
  if (geteuid() != 0) GTEST_SKIP() << "mknod of whiteouts needs root";
  std::string dir = tempDir("bundle");
  ASSERT_FALSE(dir.empty());
  std::filesystem::create_directories(dir + "/mask/ssl");
  std::filesystem::create_directories(dir + "/etc/ssl/private");
  std::ofstream(dir + "/etc/shadow") << "root:secret";
  std::ofstream(dir + "/etc/passwd") << "host passwd";
  std::ofstream(dir + "/mask/passwd") << "agent passwd";
  ASSERT_EQ(mknod((dir + "/mask/shadow").c_str(), S_IFCHR, 0), 0);
  ASSERT_EQ(mknod((dir + "/mask/ssl/private").c_str(), S_IFCHR, 0), 0);
  ASSERT_EQ(mknod((dir + "/mask/gshadow").c_str(), S_IFCHR, 0), 0);  // absent on this host
  gvisor::BundleInputs in{.rootfs = "/skel",
                          .usrDir = "/usr",
                          .etcDir = dir + "/etc",
                          .etcMaskDir = dir + "/mask",
                          .emptyFile = "/empty",
                          .runtimeBinary = "/bin/rt",
                          .socketDir = "/s",
                          .slotDir = "/slot"};
  nlohmann::json config = gvisor::ociConfig(gvisor::bundleFor(in));
  std::map<std::string, nlohmann::json> mounts;
  for (const auto& m : config["mounts"]) mounts[m["destination"]] = m;
  EXPECT_EQ(mounts["/etc/shadow"]["source"], "/empty");
  EXPECT_EQ(mounts["/etc/passwd"]["source"], dir + "/mask/passwd");
  EXPECT_EQ(mounts["/etc/ssl/private"]["type"], "tmpfs");
  EXPECT_EQ(mounts.count("/etc/gshadow"), 0u);
  EXPECT_EQ(mounts.count("/workspace"), 0u);  // attached later, never in the bundle
  EXPECT_EQ(mounts.count("/run/kiln/net"), 0u);
  const std::string args = config["process"]["args"].dump();
  EXPECT_NE(args.find("--await-workspace"), std::string::npos) << args;
  EXPECT_NE(args.find("\"1000\""), std::string::npos) << args;
  EXPECT_EQ(config["root"]["path"], "/skel");
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace kiln::sandbox::testing
