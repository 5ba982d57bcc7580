// Rootless mode: the namespace backend run by an unprivileged user (here `nobody`, switched to
// with setpriv), where each sandbox also gets a user namespace mapping that one uid inside.
// Real `kiln sandbox exec` processes; the test itself needs root only to become nobody and to
// delegate cgroups.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "nobody_kiln.h"
#include "support/temp_dir.h"

namespace {

namespace fs = std::filesystem;
using kiln::testing::shell;

constexpr uid_t kNobody = 65534;

class RootlessTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (std::string why = kiln::sandbox::testing::NobodyKiln::unavailable(); !why.empty()) {
      GTEST_SKIP() << why;
    }
    ASSERT_TRUE(kiln_.ok());
  }

  kiln::sandbox::testing::NobodyKiln kiln_;
};

TEST_F(RootlessTest, CommandsRunAsTheAgentInTheirOwnUserNamespace) {
  std::string out;
  ASSERT_EQ(kiln_.sandboxExec("", "id -u; id -g; cat /proc/self/uid_map; hostname", &out), 0)
      << out;
  EXPECT_NE(out.find("1000\n1000\n"), std::string::npos) << out;
  // kiln's one uid (nobody) is the only id mapped, as the agent.
  EXPECT_NE(out.find("1000      65534          1"), std::string::npos) << out;
  EXPECT_NE(out.find("kiln\n"), std::string::npos) << out;
  // Without a delegated cgroup the operator is told what is not enforced.
  EXPECT_NE(out.find("warning: rootless mode without a delegated cgroup"), std::string::npos)
      << out;
}

TEST_F(RootlessTest, TheWorkspaceIsTheAgentsAndItsWritesReachTheHostAsKilnsUser) {
  const std::string ws = kiln_.dir() + "/ws";
  ASSERT_EQ(mkdir(ws.c_str(), 0755), 0);
  ASSERT_EQ(chown(ws.c_str(), kNobody, kNobody), 0);
  std::string out;
  ASSERT_EQ(kiln_.sandboxExec("--workspace " + ws,
                              "echo fixed > /workspace/a.txt && stat -c %u /workspace/a.txt", &out),
            0)
      << out;
  EXPECT_NE(out.find("1000"), std::string::npos) << out;
  struct stat st;
  ASSERT_EQ(stat((ws + "/a.txt").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, kNobody);
}

TEST_F(RootlessTest, EscapeAttemptsFailInside) {
  const std::string marker = "/usr/kiln-rootless-marker";
  std::string out;
  int rc = kiln_.sandboxExec(
      "",
      "cat /etc/shadow && echo READ-SHADOW; "
      "ls -A /root | grep . && echo SAW-ROOT; "
      "mount -t tmpfs none /mnt 2>/dev/null && echo MOUNTED; "
      "unshare -U true 2>/dev/null && echo UNSHARED; "
      "echo x > " +
          marker +
          " 2>/dev/null; "
          "kill -9 1 2>/dev/null; sleep 0.1; "
          "[ $(ls /proc | grep -c '^[0-9]') -lt 10 ] || echo SAW-HOST-PIDS; "
          "cat /sys/class/net/*/address 2>/dev/null | grep -v 00:00:00:00:00:00 && echo HAS-NIC; "
          "echo done",
      &out);
  EXPECT_EQ(rc, 0) << out;
  for (const char* escaped :
       {"READ-SHADOW", "SAW-ROOT", "MOUNTED", "UNSHARED", "SAW-HOST-PIDS", "HAS-NIC"}) {
    EXPECT_EQ(out.find(escaped), std::string::npos) << escaped << "\n" << out;
  }
  // PID 1 (the runtime) shrugged off the SIGKILL: the command's output came back.
  EXPECT_NE(out.find("done"), std::string::npos) << out;
  EXPECT_FALSE(fs::exists(marker));
}

TEST_F(RootlessTest, RootInsideHoldsNoCapabilities) {
  std::string out;
  ASSERT_EQ(kiln_.sandboxExec("--root", "id -u; grep CapEff /proc/self/status", &out), 0) << out;
  EXPECT_NE(out.find("0\nCapEff:\t0000000000000000"), std::string::npos) << out;
}

TEST_F(RootlessTest, AForkBombIsBoundedByTheProcessLimit) {
  std::string out;
  // The shell itself may fail once it cannot fork: its exit code does not matter.
  (void)kiln_.sandboxExec("--pids 40", "for i in $(seq 100); do sleep 30 & done; echo spawned",
                          &out);
  EXPECT_NE(out.find("Cannot fork"), std::string::npos) << out;
  // The sleeps died with the sandbox.
  std::string left;
  EXPECT_NE(shell("pgrep -u nobody -x sleep", &left), 0) << left;
}

TEST_F(RootlessTest, TheDiskQuotaIsEnforcedWithoutLoopDevices) {
  std::string out;
  int rc = kiln_.sandboxExec(
      "--disk-mb 16", "dd if=/dev/zero of=/home/agent/big bs=1M count=64 2>&1 | grep -c 'No space'",
      &out);
  EXPECT_EQ(rc, 0) << out;
  EXPECT_NE(out.find("1\n"), std::string::npos) << out;
  EXPECT_NE(out.find("limit disk"), std::string::npos) << out;
}

// Allowlist egress: the runtime (kiln's user inside) reaches the host's proxy, which answers
// for itself (metadata addresses are always refused).
TEST_F(RootlessTest, AllowlistEgressReachesTheProxy) {
  std::string out;
  int rc = kiln_.sandboxExec(
      "--network allowlist --allow-host example.com",
      "echo $HTTPS_PROXY; python3 -c \"import socket; s = socket.create_connection(('127.0.0.1', "
      "3128)); s.sendall(b'CONNECT 169.254.169.254:80 HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n'); "
      "print(s.recv(100).split(b'\\r\\n')[0].decode())\"",
      &out);
  EXPECT_EQ(rc, 0) << out;
  EXPECT_NE(out.find("http://127.0.0.1:3128"), std::string::npos) << out;
  EXPECT_NE(out.find("HTTP/1.1 403"), std::string::npos) << out;
}

// An operator delegates cgroups to kiln's user (cgroup v1 here: chown of the kiln/ parents).
TEST_F(RootlessTest, ADelegatedCgroupEnforcesTheMemoryLimit) {
  std::string controllers;
  std::ifstream("/sys/fs/cgroup/unified/cgroup.controllers") >> controllers;
  if (controllers.find("memory") != std::string::npos || !fs::exists("/sys/fs/cgroup/memory")) {
    GTEST_SKIP() << "delegation is tested on cgroup v1 hosts (v2 needs kiln inside the subtree)";
  }
  const char* kControllers[] = {"memory", "pids", "cpu"};
  for (const char* c : kControllers) {
    const std::string parent = std::string("/sys/fs/cgroup/") + c + "/kiln";
    fs::create_directories(parent);
    ASSERT_EQ(chown(parent.c_str(), kNobody, kNobody), 0) << parent;
  }
  std::string out;
  int rc = kiln_.sandboxExec("--memory-mb 64",
                             "head -c 300m /dev/zero | tail > /dev/null; echo status=$?", &out);
  for (const char* c : kControllers) {
    (void)!chown((std::string("/sys/fs/cgroup/") + c + "/kiln").c_str(), 0, 0);
  }
  EXPECT_EQ(rc, 0) << out;
  EXPECT_NE(out.find("status=137"), std::string::npos) << out;
  EXPECT_NE(out.find("limit memory"), std::string::npos) << out;
  EXPECT_EQ(out.find("warning: rootless"), std::string::npos) << out;
}

// The whole spine as an unprivileged user: `kiln run` starts an embedded server whose jobs get
// rootless sandboxes; the mock agent's change comes back as the diff.
TEST_F(RootlessTest, KilnRunCompletesATaskAsAnUnprivilegedUser) {
  const std::string repo = kiln_.dir() + "/repo";
  kiln::testing::makeSampleRepo(repo);
  ASSERT_EQ(shell("chown -R nobody:nogroup " + repo), 0);
  std::string out;
  int rc = kiln_.shell("KILN_DATA_DIR=" + kiln_.dir() + "/data ./kiln run --repo " + repo +
                           " 'Add a farewell function'",
                       &out);
  EXPECT_EQ(rc, 0) << out;
  EXPECT_NE(out.find("diff --git"), std::string::npos) << out;
}

}  // namespace
