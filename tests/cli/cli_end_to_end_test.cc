// Runs the real `kiln` binary: `kiln serve` as a child process, then the CLI against it.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "support/temp_dir.h"

extern char** environ;

namespace kiln::cli {
namespace {

using kiln::testing::TempDir;

std::string slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// `kiln serve` in the background, output to files in `dir`; SIGTERM on destruction.
class ServeProcess {
 public:
  ServeProcess(const std::string& dataDir, const std::string& logDir)
      : log_(logDir + "/serve.log") {
    std::vector<std::string> args = {KILN_BINARY,           "serve",      "--listen",
                                     "127.0.0.1:0",         "--data-dir", dataDir,
                                     "--allow-local-repos", logDir};
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, log_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_adddup2(&fa, 1, 2);
    if (posix_spawn(&pid_, KILN_BINARY, &fa, nullptr, argv.data(), environ) != 0) pid_ = -1;
    posix_spawn_file_actions_destroy(&fa);
  }
  ~ServeProcess() {
    if (pid_ > 0 && !exited_) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
  }

  // True once server.json names a URL; false if the process died first (or after ~60 s).
  bool waitForServerFile(const std::string& path) {
    for (int i = 0; i < 600; ++i) {
      if (slurp(path).find("\"url\"") != std::string::npos) return true;
      int status = 0;
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        exited_ = true;
        return false;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return false;
  }

  // SIGTERM, then the exit code (or -1 when killed by a signal).
  int terminate() {
    kill(pid_, SIGTERM);
    int status = 0;
    waitpid(pid_, &status, 0);
    exited_ = true;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }

  std::string log() const { return slurp(log_); }

 private:
  std::string log_;
  pid_t pid_ = -1;
  bool exited_ = false;
};

std::string kiln(const std::string& dataDir, const std::string& args) {
  return std::string(KILN_BINARY) + " --data-dir '" + dataDir + "' " + args;
}

TEST(CliEndToEndTest, ServeThenJobsRunDiffLogsStatus) {
  TempDir tmp;
  std::string data = tmp.file("data");
  std::string repo = tmp.file("repo");
  kiln::testing::makeSampleRepo(repo);
  ServeProcess serve(data, tmp.path());
  if (!serve.waitForServerFile(data + "/server.json")) {
    std::string log = serve.log();
    if (log.find("not implemented") != std::string::npos) GTEST_SKIP() << "node: " << log;
    FAIL() << "kiln serve did not start:\n" << log;
  }

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

  EXPECT_EQ(serve.terminate(), 0) << serve.log();
}

TEST(CliEndToEndTest, ClearOneLineErrors) {
  TempDir tmp;
  std::string data = tmp.file("data");
  ServeProcess serve(data, tmp.path());
  if (!serve.waitForServerFile(data + "/server.json")) {
    std::string log = serve.log();
    if (log.find("not implemented") != std::string::npos) GTEST_SKIP() << "node: " << log;
    FAIL() << "kiln serve did not start:\n" << log;
  }
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
  EXPECT_EQ(serve.terminate(), 0) << serve.log();
}

TEST(CliEndToEndTest, UiPrintsTheDashboardWithASignInLink) {
  TempDir tmp;
  std::string data = tmp.file("data");
  ServeProcess serve(data, tmp.path());
  ASSERT_TRUE(serve.waitForServerFile(data + "/server.json")) << serve.log();
  auto server = nlohmann::json::parse(slurp(data + "/server.json"), nullptr, false);
  std::string url = server.value("url", "");
  std::string token = slurp(data + "/admin.token");
  token = token.substr(0, token.find('\n'));
  std::string out;
  ASSERT_EQ(kiln::testing::shell(kiln(data, "ui"), &out), 0) << out;
  EXPECT_EQ(out,
            "kiln dashboard: " + url + "/\nsign in with:   " + url + "/#token=" + token + "\n");
  // A token the server refuses gives no link.
  out.clear();
  EXPECT_EQ(kiln::testing::shell(kiln(data, "--token wrong ui"), &out), 1);
  EXPECT_EQ(out.rfind("kiln: unauthenticated: ", 0), 0u) << out;
  EXPECT_EQ(serve.terminate(), 0) << serve.log();
}

TEST(CliEndToEndTest, RunWithoutServerStartsEmbeddedOne) {
  TempDir tmp;
  std::string data = tmp.file("data");
  std::string repo = tmp.file("repo");
  kiln::testing::makeSampleRepo(repo);
  std::string out;
  int rc = kiln::testing::shell(kiln(data, "run --repo '" + repo + "' write the plan"), &out);
  if (rc != 0 && out.find("not implemented") != std::string::npos) GTEST_SKIP() << out;
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
