// End to end for agents that are external CLIs: the real `kiln serve`, a real sandbox, and a
// stand-in for Claude Code (tests/support/fake_agent_cli.py, committed into the job's repo) that
// prints stream-json, really edits the workspace and calls its model through kiln's model
// gateway (the fake model server on the host's loopback plays the operator's upstream).
#include <gtest/gtest.h>
#include <unistd.h>

#include <fstream>

#include "support/bash_constructs.h"
#include "support/fake_llm.h"
#include "support/http_client.h"
#include "support/kiln_process.h"
#include "support/temp_dir.h"

namespace kiln::testing {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

constexpr const char* kRealKey = "sk-test-123";

json turn(const std::string& text, int in, int out) {
  return {{"thought", text}, {"usage", {{"in", in}, {"out", out}}}};
}

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
  }

  // kiln serve with the fake model server (replaying `script`) as its Anthropic upstream, or
  // `upstream` instead.
  void startKiln(const json& script, const std::string& upstream = "",
                 std::vector<std::pair<std::string, std::string>> env = {}) {
    llm_ = std::make_unique<FakeLlm>(script, dir_.path());
    env.emplace_back("ANTHROPIC_API_KEY", kRealKey);
    env.emplace_back("ANTHROPIC_BASE_URL", upstream.empty() ? llm_->url() : upstream);
    env.emplace_back("KILN_SECRET_TEST", "hunter2");
    kiln_ = std::make_unique<KilnProcess>(dir_.file("data"), std::vector<std::string>{}, env);
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
  std::unique_ptr<FakeLlm> llm_;
  std::unique_ptr<KilnProcess> kiln_;
  std::unique_ptr<HttpClient> client_;
};

TEST_F(CliAgentTest, ClaudePresetRunsTheCliAndRecordsItsToolUsesAsSteps) {
  startKiln(json::array({turn("Use a comma.", 1000, 100)}));
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
  EXPECT_NE(terminal.find("The model says: Use a comma."), std::string::npos) << terminal;

  json s = steps(id);
  ASSERT_TRUE(s.is_array());
  json edit = stepCalled(s, "Edit");
  ASSERT_TRUE(edit.is_object()) << s.dump(1);
  EXPECT_EQ(edit["toolArguments"].value("file_path", ""), "/workspace/hello.py");
  EXPECT_EQ(edit.value("plannerThought", ""),
            "The model says: Use a comma.\nI will change the greeting.");
  EXPECT_NE(edit.value("toolOutput", "").find("has been updated"), std::string::npos);

  // The sandbox holds the gateway's placeholder key, never the server's key or its other
  // variables; the model call reached the upstream with the real key.
  json bash = stepCalled(s, "Bash");
  ASSERT_TRUE(bash.is_object()) << s.dump(1);
  std::string envLine = bash.value("toolOutput", "");
  EXPECT_NE(envLine.find("KEY=kiln-"), std::string::npos) << envLine;
  EXPECT_EQ(envLine.find(kRealKey), std::string::npos) << envLine;
  EXPECT_NE(envLine.find("SECRET=unset"), std::string::npos) << envLine;
  EXPECT_NE(envLine.find("TASK=Greet_the_world"), std::string::npos) << envLine;
  EXPECT_NE(stepCalled(s, "git_commit"), json());
  auto upstream = llm_->requests();
  ASSERT_EQ(upstream.size(), 1u);
  EXPECT_EQ(upstream[0]["path"], "/v1/messages");
  EXPECT_EQ(upstream[0]["headers"].value("x-api-key", ""), kRealKey);

  // The cost is the gateway's (claude-sonnet-4-5: $3/M in, $15/M out), not the $0.0125 the
  // CLI's result line claims.
  auto job = client_->get("/api/v1/jobs/" + id);
  ASSERT_TRUE(job.isOk());
  EXPECT_NEAR(job->json().value("tokenSpendUsd", 0.0), 0.0045, 1e-9) << job->body;
  double stepsUsd = 0;
  for (const auto& st : s) stepsUsd += st.value("usd", 0.0);
  EXPECT_NEAR(stepsUsd, 0.0045, 1e-9) << s.dump(1);
  EXPECT_EQ(s.dump().find(kRealKey), std::string::npos);

  auto diff = client_->get("/api/v1/jobs/" + id + "/diff");
  ASSERT_TRUE(diff.isOk());
  EXPECT_NE(diff->body.find("+    return \"hello, world\""), std::string::npos) << diff->body;
}

TEST_F(CliAgentTest, FailingCliFailsTheJobWithAgentFailedAndItsExitCode) {
  startKiln(json::array());
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
  startKiln(json::array({turn("ok", 10, 10)}));
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
  startKiln(json::array());
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
  startKiln(json::array());
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

// sandbox.env reaches an agent CLI's process and the commands it runs, as it does the bash tool's
// (issue 17).
TEST_F(CliAgentTest, TheJobsSandboxEnvReachesTheCli) {
  startKiln(json::array());
  std::string id = createJob(
      {{"taskDesc", "show the env"},
       {"agent", "cli"},
       {"command", "echo \"G=$GREETING\"; bash -c 'echo \"child G=$GREETING\"'"},
       {"cli", {{"promptVia", "stdin"}}},
       {"sandbox", {{"env", {{"GREETING", "hi there"}}}}}});
  ASSERT_FALSE(id.empty());
  std::vector<SseEvent> events = stream(id);
  ASSERT_FALSE(events.empty()) << kiln_->log();
  ASSERT_EQ(events.back().json().value("status", ""), "COMPLETED") << events.back().data;
  json s = steps(id);
  ASSERT_FALSE(s.empty());
  EXPECT_EQ(s[0].value("toolOutput", ""), "G=hi there\nchild G=hi there\n");
}

TEST_F(CliAgentTest, CliAgentWithoutCommandFailsAsInvalidArgument) {
  startKiln(json::array());
  std::string id = createJob({{"taskDesc", "anything"}, {"agent", "cli"}});
  ASSERT_FALSE(id.empty());
  std::vector<SseEvent> events = stream(id);
  ASSERT_FALSE(events.empty()) << kiln_->log();
  json done = events.back().json();
  EXPECT_EQ(done.value("status", ""), "FAILED");
  EXPECT_EQ(done["error"].value("code", ""), "invalid_argument") << events.back().data;
}

TEST_F(CliAgentTest, SpendPastMaxUsdStopsTheCliAndNoCallPassesAfterIt) {
  // 2000 in + 200 out of claude-sonnet-4-5 = $0.009 per call: the first call crosses the cap.
  json script = json::array();
  for (int i = 0; i < 10; ++i) script.push_back(turn("again", 2000, 200));
  startKiln(script);
  std::string id = createJob({{"taskDesc", "ASK_MANY things"},
                              {"agent", "claude"},
                              {"command", {"python3", "fake_agent_cli.py"}},
                              {"limits", {{"maxUsd", 0.005}}}});
  ASSERT_FALSE(id.empty());
  std::vector<SseEvent> events = stream(id);
  ASSERT_FALSE(events.empty()) << kiln_->log();
  json done = events.back().json();
  ASSERT_EQ(done.value("status", ""), "FAILED") << events.back().data << kiln_->log();
  EXPECT_EQ(done["error"].value("code", ""), "budget_exceeded") << done.dump();
  EXPECT_EQ(done["error"].value("limit", ""), "maxUsd");
  EXPECT_EQ(llm_->requests().size(), 1u);
  auto job = client_->get("/api/v1/jobs/" + id);
  ASSERT_TRUE(job.isOk());
  EXPECT_NEAR(job->json().value("tokenSpendUsd", 0.0), 0.009, 1e-9) << job->body;
  EXPECT_EQ(stepCalled(steps(id), "git_commit"), json());
}

TEST_F(CliAgentTest, UnreachableUpstreamFailsTheJobWithLlmErrorAtOnce) {
  // A port that was just free: nothing listens there.
  asio::io_context probe;
  asio::ip::tcp::acceptor a(probe, {asio::ip::address_v4::loopback(), 0});
  const std::string dead = "http://127.0.0.1:" + std::to_string(a.local_endpoint().port());
  a.close();
  startKiln(json::array(), dead);
  std::string id = createJob({{"taskDesc", "Greet the world"},
                              {"agent", "claude"},
                              {"command", {"python3", "fake_agent_cli.py"}}});
  ASSERT_FALSE(id.empty());
  std::vector<SseEvent> events = stream(id);
  ASSERT_FALSE(events.empty()) << kiln_->log();
  json done = events.back().json();
  ASSERT_EQ(done.value("status", ""), "FAILED") << events.back().data << kiln_->log();
  EXPECT_EQ(done["error"].value("code", ""), "llm_error") << done.dump();
  EXPECT_NE(done["error"].value("message", "").find(dead), std::string::npos) << done.dump();
}

json lastOf(const std::vector<SseEvent>& events) {
  return events.empty() ? json() : events.back().json();
}

TEST_F(CliAgentTest, UnknownAgentMissingCliAndSilentAcpAgentFailFastSayingWhich) {
  startKiln(json::array(), "", {{"KILN_ACP_INIT_TIMEOUT_MS", "2000"}});
  struct Case {
    json body;
    std::string code, says;
  };
  const std::vector<Case> cases = {
      {{{"agent", "gemini-pro"}}, "invalid_argument", "unknown agent 'gemini-pro'"},
      {{{"agent", "claude"}, {"command", {"no-such-agent-cli", "-p"}}},
       "agent_failed",
       "'no-such-agent-cli' is not installed"},
      // Reads its stdin and never answers.
      {{{"agent", "acp"}, {"command", {"sleep", "600"}}},
       "agent_failed",
       "ACP agent `sleep 600` did not answer initialize within 2 s"},
      {{{"agent", "acp"}, {"command", {"no-such-acp-agent"}}}, "agent_failed", "exit status 127"},
      {{{"agent", "acp"}}, "invalid_argument", "needs a command"},
  };
  for (const auto& c : cases) {
    json body = c.body;
    body["taskDesc"] = "anything";
    std::string id = createJob(body);
    ASSERT_FALSE(id.empty()) << body.dump();
    json done = lastOf(stream(id));
    EXPECT_EQ(done.value("status", ""), "FAILED") << body.dump() << done.dump();
    EXPECT_EQ(done["error"].value("code", ""), c.code) << body.dump() << done.dump();
    EXPECT_NE(done["error"].value("message", "").find(c.says), std::string::npos)
        << body.dump() << done.dump();
  }
}

}  // namespace
}  // namespace kiln::testing
