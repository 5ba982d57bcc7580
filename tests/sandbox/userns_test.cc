// The user-namespace option as root (`kiln sandbox exec --userns`): a range of host ids mapped
// from 0 inside, so that root and the agent inside are unprivileged ids on the host. Real
// `kiln sandbox exec` processes, run as root.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <sstream>
#include <string>

#include "support/temp_dir.h"

namespace {

namespace fs = std::filesystem;
using kiln::testing::shell;

class UserNsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "needs root (the option is for kiln run as root)";
    ws_ = dir_.file("ws");
    fs::create_directories(ws_);
  }

  int exec(const std::string& flags, const std::string& script, std::string* out) {
    return shell(std::string(KILN_BINARY) + " sandbox exec --userns --state-dir " +
                     dir_.file("state") + " --workspace " + ws_ + " " + flags + " -- sh -c " +
                     kiln::testing::shellQuote(script),
                 out);
  }

  // The host id that 0 inside maps to, from a "/proc/self/uid_map" line in out.
  static long mappedBase(const std::string& out) {
    std::istringstream in(out.substr(out.find("MAP ") + 4));
    long inside = -1, host = -1, count = -1;
    in >> inside >> host >> count;
    return inside == 0 && count == 65536 ? host : -1;
  }

  kiln::testing::TempDir dir_;
  std::string ws_;
};

TEST_F(UserNsTest, TheAgentAndRootInsideAreUnprivilegedIdsOnTheHost) {
  std::string out;
  ASSERT_EQ(exec("", "id -u; printf \"MAP \"; cat /proc/self/uid_map; echo x > /workspace/a", &out),
            0)
      << out;
  EXPECT_EQ(out.rfind("1000\n", 0), 0u) << out;
  const long base = mappedBase(out);
  ASSERT_GT(base, 65535) << out;  // never host root, nor any id below the range
  struct stat st;
  ASSERT_EQ(stat((ws_ + "/a").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, static_cast<uid_t>(base + 1000));

  out.clear();
  ASSERT_EQ(exec("--root", "id -u; grep CapEff /proc/self/status; echo y > /workspace/b", &out), 0)
      << out;
  EXPECT_NE(out.find("0\nCapEff:\t0000000000000000"), std::string::npos) << out;
  ASSERT_EQ(stat((ws_ + "/b").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, static_cast<uid_t>(base));
}

TEST_F(UserNsTest, EscapeAttemptsFailInside) {
  std::string out;
  int rc = exec("",
                "cat /etc/shadow && echo READ-SHADOW; "
                "mount -t tmpfs none /mnt 2>/dev/null && echo MOUNTED; "
                "unshare -U true 2>/dev/null && echo UNSHARED; "
                "echo x > /usr/kiln-userns-marker 2>/dev/null; "
                "[ $(ls /proc | grep -c '^[0-9]') -lt 10 ] || echo SAW-HOST-PIDS; "
                "echo done",
                &out);
  EXPECT_EQ(rc, 0) << out;
  for (const char* escaped : {"READ-SHADOW", "MOUNTED", "UNSHARED", "SAW-HOST-PIDS"}) {
    EXPECT_EQ(out.find(escaped), std::string::npos) << escaped << "\n" << out;
  }
  EXPECT_NE(out.find("done"), std::string::npos) << out;
  EXPECT_FALSE(fs::exists("/usr/kiln-userns-marker"));
}

TEST_F(UserNsTest, CgroupLimitsStillApply) {
  std::string out;
  exec("--memory-mb 64", "head -c 300m /dev/zero | tail > /dev/null; echo status=$?", &out);
  EXPECT_NE(out.find("status=137"), std::string::npos) << out;
  EXPECT_NE(out.find("limit memory"), std::string::npos) << out;
}

TEST_F(UserNsTest, TheDiskQuotaIsTheLayersTmpfs) {
  std::string out;
  exec("--disk-mb 16",
       "dd if=/dev/zero of=/home/agent/big bs=1M count=64 2>&1 | grep -c 'No space'", &out);
  EXPECT_NE(out.find("1\n"), std::string::npos) << out;
  EXPECT_NE(out.find("limit disk"), std::string::npos) << out;
}

}  // namespace
