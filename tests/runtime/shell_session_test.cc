// The session shell's report parsing, and one call at a time through a real runtime.
#include "runtime/shell_session.h"

#include <gtest/gtest.h>

#include <thread>

#include "runtime/client.h"
#include "support/runtime_process.h"

namespace kiln::runtime {
namespace {

using nlohmann::json;
using namespace std::string_literals;

TEST(ShellReportTest, IsRelativeToTheBaseAndNeedsItsNonce) {
  const std::vector<std::string> base = {"PATH=/bin", "LANG=C.UTF-8", "HOME=/root"};
  // Values may hold newlines and '='; PATH changed, LANG unset, X and Y new; PWD is the shell's.
  std::string report =
      "n0nce\0"
      "3\0"
      "/w/sub\0"
      "PATH=/v/bin:/bin\0"
      "HOME=/root\0"
      "X=a=b\nc\0"
      "Y=\0"
      "PWD=/w/sub\0"
      "SHLVL=1\0"
      "\0"s;
  auto r = parseShellReport(report, "n0nce", base);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->exitCode, 3);
  EXPECT_EQ(r->state["cwd"], "/w/sub");
  json env = {{"PATH", "/v/bin:/bin"}, {"LANG", nullptr}, {"X", "a=b\nc"}, {"Y", ""}};
  EXPECT_EQ(r->state["env"], env);
  EXPECT_FALSE(parseShellReport(report, "other", base).has_value());
  EXPECT_FALSE(parseShellReport(report.substr(0, report.size() - 1), "n0nce", base).has_value());
  EXPECT_FALSE(parseShellReport("n0nce\0"s
                                "0\0"s,
                                "n0nce", base)
                   .has_value());
}

TEST(ShellSessionRuntimeTest, OneCallAtATime) {
  kiln::testing::RuntimeProcess rt;
  const std::string flag = rt.dir() + "/started";
  ExecRequest slow;
  slow.cmd = "touch " + flag + "; sleep 5";
  slow.cwd = rt.workspace();
  slow.session = true;
  slow.timeoutMs = 1000;
  std::thread first([&] {
    auto r = kiln::testing::runTask<Result<ExecResult>>(
        [&](asio::any_io_executor ex) -> Task<Result<ExecResult>> {
          RuntimeClient client(ex, rt.socket());
          co_return co_await client.exec(slow, nullptr);
        });
    EXPECT_TRUE(r.isOk() && r->timedOut) << (r.isOk() ? r->output : r.status().toString());
  });
  for (int i = 0; i < 500 && !std::filesystem::exists(flag); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  ExecRequest second = slow;
  second.cmd = "echo no";
  auto r = kiln::testing::runTask<Result<ExecResult>>(
      [&](asio::any_io_executor ex) -> Task<Result<ExecResult>> {
        RuntimeClient client(ex, rt.socket());
        co_return co_await client.exec(second, nullptr);
      });
  first.join();
  ASSERT_FALSE(r.isOk());
  EXPECT_NE(r.status().message().find("already running"), std::string::npos)
      << r.status().toString();
}

}  // namespace
}  // namespace kiln::runtime
