// End to end for agents that are external CLIs: the real `kiln serve`, a real sandbox, and a
// stand-in for Claude Code (tests/support/fake_agent_cli.py, committed into the job's repo) that
// prints stream-json and really edits the workspace.
#include <gtest/gtest.h>
#include <unistd.h>

#include <fstream>

#include "support/bash_constructs.h"
#include "support/http_client.h"
#include "support/kiln_process.h"
#include "support/temp_dir.h"

namespace kiln::testing {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

class CliAgentTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "needs root for namespace sandboxes";
    std::string repo = dir_.file("repo");
    makeSampleRepo(repo);
    ASSERT_EQ(shell("cp " + std::string(KILN_SOURCE_DIR) + "/tests/support/fake_agent_cli.py " +
                    repo + "/ && cd " + repo +
                    " && git add -A && git -c user.name=t -c user.email=t@t commit -qm agent"),
              0);
    kiln_ = std::make_unique<KilnProcess>(
        dir_.file("data"), std::vector<std::string>{},
        std::vector<std::pair<std::string, std::string>>{{"ANTHROPIC_API_KEY", "sk-test-123"},
                                                         {"KILN_SECRET_TEST", "hunter2"}});
    client_ = std::make_unique<HttpClient>("127.0.0.1", kiln_->port());
    client_->setBearer(kiln_->token());
  }

  std::string createJob(json body) {
    body["repoUrl"] = dir_.file("repo");
    auto r = client_->postJson("/api/v1/jobs", body);
    EXPECT_TRUE(r.isOk());
    EXPECT_EQ(r->status, 201) << r->body;
    return r->json().value("jobId", "");
  }

  std::vector<SseEvent> stream(const std::string& jobId) {
    Headers h = {{"Authorization", "Bearer " + kiln_->token()}};
    auto sse = SseReader::open("127.0.0.1", kiln_->port(), "/api/v1/jobs/" + jobId + "/stream", h);
    EXPECT_TRUE(sse.isOk());
    return (*sse)->readUntil("done", 120s);
  }

  json steps(const std::string& id) {
    auto r = client_->get("/api/v1/jobs/" + id + "/steps");
    EXPECT_TRUE(r.isOk());
    json s = r->json();
    return s.is_object() ? s["steps"] : s;
  }

  static json stepCalled(const json& steps, const std::string& tool) {
    for (const auto& s : steps)
      if (s.value("toolCalled", "") == tool) return s;
    return json();
  }

  TempDir dir_;
  std::unique_ptr<KilnProcess> kiln_;
  std::unique_ptr<HttpClient> client_;
};

TEST_F(CliAgentTest, ClaudePresetRunsTheCliAndRecordsItsToolUsesAsSteps) {
  std::string id = createJob({{"taskDesc", "Greet the world"},
                              {"agent", "claude"},
                              {"command", {"python3", "fake_agent_cli.py"}}});
  ASSERT_FALSE(id.empty());
  std::vector<SseEvent> events = stream(id);
  ASSERT_FALSE(events.empty()) << kiln_->log();
  ASSERT_EQ(events.back().json().value("status", ""), "COMPLETED")
      << events.back().data << kiln_->log();
  EXPECT_EQ(events.back().json().value("summary", ""), "Changed the greeting to hello, world.");

  std::string terminal;
  bool sawDiff = false;
  for (const auto& e : events) {
    if (e.type == "terminal") terminal += e.json().value("data", "");
    sawDiff |= e.type == "diff";
  }
  EXPECT_TRUE(sawDiff);
  // Structured lines are rendered; anything else (bad JSON, plain text) passes through raw.
  EXPECT_NE(terminal.find("→ Edit /workspace/hello.py"), std::string::npos) << terminal;
  EXPECT_NE(terminal.find("I will change the greeting."), std::string::npos) << terminal;
  EXPECT_NE(terminal.find("{\"type\": \"assistant\", \"message\": {broken"), std::string::npos);
  EXPECT_NE(terminal.find("plain progress text"), std::string::npos);

  json s = steps(id);
  ASSERT_TRUE(s.is_array());
  json edit = stepCalled(s, "Edit");
  ASSERT_TRUE(edit.is_object()) << s.dump(1);
  EXPECT_EQ(edit["toolArguments"].value("file_path", ""), "/workspace/hello.py");
  EXPECT_EQ(edit.value("plannerThought", ""), "I will change the greeting.");
  EXPECT_NE(edit.value("toolOutput", "").find("has been updated"), std::string::npos);

  // The preset passes ANTHROPIC_API_KEY from the server's environment, and nothing else of it.
  json bash = stepCalled(s, "Bash");
  ASSERT_TRUE(bash.is_object()) << s.dump(1);
  std::string envLine = bash.value("toolOutput", "");
  EXPECT_NE(envLine.find("KEY=sk-test-123"), std::string::npos) << envLine;
  EXPECT_NE(envLine.find("SECRET=unset"), std::string::npos) << envLine;
  EXPECT_NE(envLine.find("TASK=Greet_the_world"), std::string::npos) << envLine;
  EXPECT_NE(stepCalled(s, "git_commit"), json());

  auto job = client_->get("/api/v1/jobs/" + id);
  ASSERT_TRUE(job.isOk());
  EXPECT_NEAR(job->json().value("tokenSpendUsd", 0.0), 0.0125, 1e-9) << job->body;

  auto diff = client_->get("/api/v1/jobs/" + id + "/diff");
  ASSERT_TRUE(diff.isOk());
  EXPECT_NE(diff->body.find("+    return \"hello, world\""), std::string::npos) << diff->body;
}

TEST_F(CliAgentTest, FailingCliFailsTheJobWithAgentFailedAndItsExitCode) {
  // The prompt goes through stdin here; the stand-in exits 3 on it.
  std::string id = createJob({{"taskDesc", "please FAIL"},
                              {"agent", "cli"},
                              {"command", {"python3", "fake_agent_cli.py"}},
                              {"cli", {{"promptVia", "stdin"}}}});
  ASSERT_FALSE(id.empty());
  std::vector<SseEvent> events = stream(id);
  ASSERT_FALSE(events.empty()) << kiln_->log();
  json done = events.back().json();
  ASSERT_EQ(done.value("status", ""), "FAILED") << events.back().data << kiln_->log();
  EXPECT_EQ(done["error"].value("code", ""), "agent_failed");
  EXPECT_EQ(done["error"].value("exitCode", 0), 3);
  EXPECT_NE(done["error"].value("message", "").find("cannot do that"), std::string::npos);
}

TEST_F(CliAgentTest, StepLimitEndsTheCliRunAsBudgetExceeded) {
  std::string id = createJob({{"taskDesc", "Greet the world"},
                              {"agent", "claude"},
                              {"command", {"python3", "fake_agent_cli.py"}},
                              {"limits", {{"maxSteps", 1}}}});
  ASSERT_FALSE(id.empty());
  std::vector<SseEvent> events = stream(id);
  ASSERT_FALSE(events.empty()) << kiln_->log();
  json done = events.back().json();
  ASSERT_EQ(done.value("status", ""), "FAILED") << events.back().data << kiln_->log();
  EXPECT_EQ(done["error"].value("code", ""), "budget_exceeded");
  EXPECT_EQ(done["error"].value("limit", ""), "maxSteps");
  EXPECT_EQ(stepCalled(steps(id), "git_commit"), json());
}

TEST_F(CliAgentTest, TextOutputCliBecomesOneStepHoldingItsOutput) {
  std::string id = createJob({{"taskDesc", "add a line"},
                              {"agent", "cli"},
                              {"command", "echo more >> README.md; echo working on:"}});
  ASSERT_FALSE(id.empty());
  std::vector<SseEvent> events = stream(id);
  ASSERT_FALSE(events.empty()) << kiln_->log();
  ASSERT_EQ(events.back().json().value("status", ""), "COMPLETED") << events.back().data;
  json s = steps(id);
  ASSERT_EQ(s.size(), 2u) << s.dump(1);  // the run, then the commit
  EXPECT_EQ(s[0].value("toolOutput", ""), "working on: add a line\n");
  auto diff = client_->get("/api/v1/jobs/" + id + "/diff");
  ASSERT_TRUE(diff.isOk());
  EXPECT_NE(diff->body.find("+more"), std::string::npos) << diff->body;
}

// The agent CLI's command runs with bash: the table of bash-only constructs, each in its own
// subshell, through a real job.
TEST_F(CliAgentTest, TheCommandRunsWithBash) {
  std::string script = "cd \"$(mktemp -d)\"\n";
  std::string expected;
  for (const auto& c : kBashOnlyConstructs) {
    script += std::string("echo '== ") + c.name + "'; (" + c.command + ")\n";
    expected += std::string("== ") + c.name + "\n" + c.output;
  }
  std::string id = createJob({{"taskDesc", "run the table"},
                              {"agent", "cli"},
                              {"command", script},
                              {"cli", {{"promptVia", "stdin"}}}});
  ASSERT_FALSE(id.empty());
  std::vector<SseEvent> events = stream(id);
  ASSERT_FALSE(events.empty()) << kiln_->log();
  ASSERT_EQ(events.back().json().value("status", ""), "COMPLETED") << events.back().data;
  json s = steps(id);
  ASSERT_FALSE(s.empty());
  EXPECT_EQ(s[0].value("toolOutput", ""), expected);
}

TEST_F(CliAgentTest, CliAgentWithoutCommandFailsAsInvalidArgument) {
  std::string id = createJob({{"taskDesc", "anything"}, {"agent", "cli"}});
  ASSERT_FALSE(id.empty());
  std::vector<SseEvent> events = stream(id);
  ASSERT_FALSE(events.empty()) << kiln_->log();
  json done = events.back().json();
  EXPECT_EQ(done.value("status", ""), "FAILED");
  EXPECT_EQ(done["error"].value("code", ""), "invalid_argument") << events.back().data;
}

}  // namespace
}  // namespace kiln::testing
