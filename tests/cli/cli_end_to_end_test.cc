// Runs the real `kiln` binary: `kiln serve` as a child process, then the CLI against it.
#include <gtest/gtest.h>
#include <signal.h>

#include <algorithm>
#include <nlohmann/json.hpp>

#include "common/files.h"
#include "support/kiln_process.h"
#include "support/temp_dir.h"

namespace kiln::cli {
namespace {

using kiln::testing::KilnProcess;
using kiln::testing::TempDir;

std::string kiln(const std::string& dataDir, const std::string& args) {
  return std::string(KILN_BINARY) + " --data-dir '" + dataDir + "' " + args;
}

TEST(CliEndToEndTest, ServeThenJobsRunDiffLogsStatus) {
  TempDir tmp;
  std::string data = tmp.file("data");
  std::string repo = tmp.file("repo");
  kiln::testing::makeSampleRepo(repo);
  KilnProcess serve(data);  // throws, with its log, when it does not come up

  std::string out;
  ASSERT_EQ(kiln::testing::shell(kiln(data, "jobs"), &out), 0) << out;
  EXPECT_NE(out.find("STATUS"), std::string::npos) << out;

  out.clear();
  int rc = kiln::testing::shell(kiln(data, "run --repo '" + repo + "' add a greeting"), &out);
  ASSERT_EQ(rc, 0) << out;
  EXPECT_NE(out.find("[step 1]"), std::string::npos) << out;
  EXPECT_NE(out.find("done: COMPLETED"), std::string::npos) << out;
  EXPECT_NE(out.find("+++ b/AGENT_TASK.md"), std::string::npos) << out;
  EXPECT_EQ(out.find("embedded"), std::string::npos) << "should use the running server\n" << out;

  out.clear();
  ASSERT_EQ(kiln::testing::shell(kiln(data, "jobs --json"), &out), 0) << out;
  auto jobs = nlohmann::json::parse(out, nullptr, false);
  ASSERT_FALSE(jobs.is_discarded()) << out;
  ASSERT_EQ(jobs["jobs"].size(), 1u) << out;
  std::string id = jobs["jobs"][0]["jobId"];
  EXPECT_EQ(jobs["jobs"][0]["status"], "COMPLETED");

  out.clear();
  ASSERT_EQ(kiln::testing::shell(kiln(data, "diff " + id), &out), 0) << out;
  EXPECT_NE(out.find("AGENT_TASK.md"), std::string::npos) << out;
  out.clear();
  ASSERT_EQ(kiln::testing::shell(kiln(data, "logs " + id), &out), 0) << out;
  EXPECT_NE(out.find("done: COMPLETED"), std::string::npos) << out;
  out.clear();
  ASSERT_EQ(kiln::testing::shell(kiln(data, "status --json " + id), &out), 0) << out;
  EXPECT_EQ(nlohmann::json::parse(out, nullptr, false).value("status", ""), "COMPLETED") << out;

  EXPECT_EQ(serve.kill(SIGTERM), 0) << serve.log();
}

TEST(CliEndToEndTest, ClearOneLineErrors) {
  TempDir tmp;
  std::string data = tmp.file("data");
  KilnProcess serve(data);  // throws, with its log, when it does not come up
  std::string out;
  EXPECT_EQ(kiln::testing::shell(kiln(data, "diff no-such-job"), &out), 1);
  EXPECT_EQ(out.rfind("kiln: not_found: ", 0), 0u) << out;
  out.clear();
  EXPECT_EQ(kiln::testing::shell(kiln(data, "--token wrong jobs"), &out), 1);
  EXPECT_EQ(out.rfind("kiln: unauthenticated: ", 0), 0u) << out;
  out.clear();
  EXPECT_EQ(kiln::testing::shell(kiln(data, "--server http://127.0.0.1:1 jobs"), &out), 1);
  EXPECT_EQ(out.rfind("kiln: cannot reach kiln server at http://127.0.0.1:1 ", 0), 0u) << out;
  EXPECT_EQ(std::count(out.begin(), out.end(), '\n'), 1) << out;
  EXPECT_EQ(serve.kill(SIGTERM), 0) << serve.log();
}

TEST(CliEndToEndTest, UiPrintsTheDashboardWithASignInLink) {
  TempDir tmp;
  std::string data = tmp.file("data");
  KilnProcess serve(data);
  auto server = nlohmann::json::parse(readFile(data + "/server.json").valueOr(""), nullptr, false);
  std::string url = server.is_object() ? server.value("url", "") : "";
  const std::string& token = serve.token();
  std::string out;
  ASSERT_EQ(kiln::testing::shell(kiln(data, "ui"), &out), 0) << out;
  EXPECT_EQ(out,
            "kiln dashboard: " + url + "/\nsign in with:   " + url + "/#token=" + token + "\n");
  // A token the server refuses gives no link.
  out.clear();
  EXPECT_EQ(kiln::testing::shell(kiln(data, "--token wrong ui"), &out), 1);
  EXPECT_EQ(out.rfind("kiln: unauthenticated: ", 0), 0u) << out;
  EXPECT_EQ(serve.kill(SIGTERM), 0) << serve.log();
}

TEST(CliEndToEndTest, RunWithoutServerStartsEmbeddedOne) {
  TempDir tmp;
  std::string data = tmp.file("data");
  std::string repo = tmp.file("repo");
  kiln::testing::makeSampleRepo(repo);
  std::string out;
  int rc = kiln::testing::shell(kiln(data, "run --repo '" + repo + "' write the plan"), &out);
  ASSERT_EQ(rc, 0) << out;
  EXPECT_NE(out.find("started an embedded one"), std::string::npos) << out;
  EXPECT_NE(out.find("AGENT_TASK.md"), std::string::npos) << out;
}

TEST(CliEndToEndTest, NoServerIsAOneLineError) {
  TempDir tmp;
  std::string out;
  EXPECT_EQ(kiln::testing::shell(kiln(tmp.file("data"), "jobs"), &out), 1);
  EXPECT_EQ(out.rfind("kiln: no kiln server found", 0), 0u) << out;
}

}  // namespace
}  // namespace kiln::cli
