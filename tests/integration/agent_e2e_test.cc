// The agent engine end to end: the real `kiln serve` binary drives a model served by the fake LLM
// server (real OpenAI and Anthropic wire formats over HTTP, streaming and not) against a real git
// repo in a real sandbox. Covers the bug-fix trajectory, ask_user/reply, each budget cap, loop
// detection, context compression, LLM errors, bad tool calls and approval gates.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <filesystem>
#include <sstream>
#include <thread>

#include "common/files.h"
#include "sandbox/ns/layout.h"
#include "store/store.h"
#include "support/fake_llm.h"
#include "support/http_client.h"
#include "support/job_checks.h"
#include "support/kiln_process.h"
#include "support/script_server.h"
#include "support/temp_dir.h"

namespace kiln::testing {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

// --- scripted model turns (see tests/support/fake_llm_server.py) ---------------------------

json turn(const std::string& thought, const std::string& tool, const json& args, int in = 1000,
          int out = 50) {
  return {{"thought", thought},
          {"tool_calls", json::array({{{"name", tool}, {"arguments", args}}})},
          {"usage", {{"in", in}, {"out", out}}}};
}
json bash(const std::string& cmd, int in = 1000) {
  return turn("", "bash", {{"command", cmd}}, in);
}
json finish(const std::string& summary) { return turn("Done.", "finish", {{"summary", summary}}); }
json text(const std::string& thought, int in = 1000) {
  return {{"thought", thought}, {"usage", {{"in", in}, {"out", 80}}}};
}

// A repo whose test fails until add() is fixed.
void makeBuggyRepo(const std::string& dir) {
  std::string cmd =
      "set -e; mkdir -p " + dir + " && cd " + dir +
      " && git init -q -b main && git config user.email t@example.com && "
      "git config user.name t && "
      "printf 'def add(a, b):\\n    return a - b\\n' > calc.py && "
      "printf 'import sys\\nimport calc\\nif calc.add(2, 3) != 5:\\n"
      "    print(\"FAIL: add(2, 3) =\", calc.add(2, 3))\\n    sys.exit(1)\\nprint(\"OK\")\\n' "
      "> test_calc.py && printf '__pycache__/\\n' > .gitignore && "
      "git add -A && git commit -q -m init";
  ASSERT_EQ(shell(cmd), 0);
}

class AgentE2eTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "needs root for namespace sandboxes";
    makeBuggyRepo(dir_.file("repo"));
  }

  void start(const json& script, std::vector<std::string> serveArgs = {},
             std::vector<std::pair<std::string, std::string>> extraEnv = {}) {
    llm_ = std::make_unique<FakeLlm>(script, dir_.path());
    std::vector<std::pair<std::string, std::string>> env = {
        {"OPENAI_BASE_URL", llm_->url() + "/v1"}, {"OPENAI_API_KEY", "sk-test"},
        {"ANTHROPIC_BASE_URL", llm_->url()},      {"ANTHROPIC_API_KEY", "sk-ant-test"},
        {"KILN_LLM_RETRY_BASE_MS", "10"},         {"KILN_LLM_MAX_ATTEMPTS", "4"}};
    env.insert(env.end(), extraEnv.begin(), extraEnv.end());
    kiln_ = std::make_unique<KilnProcess>(dir_.file("data"), serveArgs, env);
    client_ = std::make_unique<HttpClient>("127.0.0.1", kiln_->port());
    client_->setBearer(kiln_->token());
  }

  std::string createJob(json body) {
    if (!body.contains("repoUrl")) body["repoUrl"] = dir_.file("repo");
    if (!body.contains("taskDesc")) body["taskDesc"] = "Fix the failing test in test_calc.py";
    if (!body.contains("agent")) body["agent"] = "openai";
    if (!body.contains("model")) body["model"] = "gpt-4o";
    auto r = client_->postJson("/api/v1/jobs", body);
    EXPECT_TRUE(r.isOk());
    EXPECT_EQ(r->status, 201) << r->body;
    return r->json().value("jobId", "");
  }

  // Polls the job until its status is one of `want`; returns the job.
  json waitStatus(const std::string& id, const std::vector<std::string>& want) {
    return waitJobStatus(*client_, id, want, [this] { return kiln_->log(); });
  }
  json finished(const std::string& id) { return waitStatus(id, kFinishedStatuses); }

  json steps(const std::string& id) {
    auto r = client_->get("/api/v1/jobs/" + id + "/steps");
    EXPECT_TRUE(r.isOk());
    json s = r->json();
    return s.is_object() ? s["steps"] : s;
  }
  // POSTs `action` (reply, continue, approve) with `body` to the job; fails unless it is accepted.
  void act(const std::string& id, const std::string& action, const json& body) {
    auto r = client_->postJson("/api/v1/jobs/" + id + "/" + action, body);
    ASSERT_TRUE(r.isOk());
    ASSERT_EQ(r->status, 200) << r->body;
  }
  std::string diff(const std::string& id) {
    auto r = client_->get("/api/v1/jobs/" + id + "/diff");
    EXPECT_TRUE(r.isOk());
    return r->body;
  }
  // The payloads of the job's `type` events, reading its stream from the start until an event
  // of `until` (the stream stays open while the job is live).
  std::vector<json> eventsOf(const std::string& id, const std::string& type,
                             const std::string& until) {
    Headers h;
    h["Authorization"] = "Bearer " + kiln_->token();
    auto sse = SseReader::open("127.0.0.1", kiln_->port(), "/api/v1/jobs/" + id + "/stream", h);
    EXPECT_TRUE(sse.isOk());
    std::vector<json> out;
    if (!sse.isOk()) return out;
    for (const auto& e : (*sse)->readUntil(until, 30s))
      if (e.type == type) out.push_back(e.json());
    return out;
  }
  // The MCP test of one backend (below).
  void mcpServerFromNpm(const std::string& backend);
  static std::string errorCode(const json& job) {
    return job["error"].is_object() ? job["error"].value("code", "") : "";
  }

  TempDir dir_;
  std::unique_ptr<FakeLlm> llm_;
  std::unique_ptr<KilnProcess> kiln_;
  std::unique_ptr<HttpClient> client_;
};

// --- the bug-fix trajectory, for each wire format ------------------------------------------

struct Wire {
  const char* name;
  const char* agent;
  const char* model;
  bool stream;
};

class AgentFixesABugTest : public AgentE2eTest, public ::testing::WithParamInterface<Wire> {};

TEST_P(AgentFixesABugTest, EditsRunsTestsAndFinishesWithTheFixAsDiff) {
  const Wire w = GetParam();
  start(json::array({
      turn("Run the tests first.", "bash", {{"command", "python3 -B test_calc.py"}}),
      turn("Read the code.", "read_file", {{"path", "calc.py"}}),
      turn("add() subtracts; fix it.", "edit_file",
           {{"path", "calc.py"}, {"old_str", "return a - b"}, {"new_str", "return a + b"}}),
      bash("python3 -B test_calc.py"),
      finish("add() returned a - b; it now returns a + b and test_calc.py passes."),
  }));
  std::string id = createJob({{"agent", w.agent}, {"model", w.model}, {"stream", w.stream}});
  json job = finished(id);
  ASSERT_EQ(job.value("status", ""), "COMPLETED") << job.dump() << kiln_->log();

  std::string d = diff(id);
  EXPECT_NE(d.find("-    return a - b"), std::string::npos) << d;
  EXPECT_NE(d.find("+    return a + b"), std::string::npos) << d;
  EXPECT_EQ(d.find("test_calc.py"), std::string::npos) << "only the fix is in the diff: " << d;

  json s = steps(id);
  ASSERT_EQ(s.size(), 6u) << s.dump();  // 5 tool calls + the commit
  EXPECT_EQ(s[0]["toolCalled"], "bash");
  EXPECT_NE(s[0]["toolOutput"].get<std::string>().find("FAIL: add(2, 3) = -1"), std::string::npos);
  EXPECT_NE(s[0]["toolOutput"].get<std::string>().find("[exit code 1]"), std::string::npos);
  EXPECT_NE(s[1]["toolOutput"].get<std::string>().find("return a - b"), std::string::npos);
  EXPECT_EQ(s[2]["toolCalled"], "edit_file");
  EXPECT_NE(s[3]["toolOutput"].get<std::string>().find("OK"), std::string::npos) << s[3].dump();
  EXPECT_NE(s[3]["toolOutput"].get<std::string>().find("[exit code 0]"), std::string::npos);
  EXPECT_EQ(s[4]["toolCalled"], "finish");
  EXPECT_EQ(s[5]["toolCalled"], "git_commit");
  double usd = 0;
  for (size_t i = 0; i < 5; ++i) {
    EXPECT_EQ(s[i]["tokens"]["in"], 1000) << s[i].dump();
    EXPECT_EQ(s[i]["tokens"]["out"], 50) << s[i].dump();
    EXPECT_GT(s[i]["usd"].get<double>(), 0) << s[i].dump();
    usd += s[i]["usd"].get<double>();
  }
  EXPECT_EQ(job["tokensIn"], 5000);
  EXPECT_NEAR(job["tokenSpendUsd"].get<double>(), usd, 1e-9);

  // The model saw each observation: the request after the edit carries the failing output.
  auto reqs = llm_->requests();
  ASSERT_EQ(reqs.size(), 5u);
  EXPECT_NE(reqs[1]["body"].dump().find("FAIL: add(2, 3)"), std::string::npos);
  EXPECT_EQ(reqs[0]["body"].value("stream", false), w.stream);
}

INSTANTIATE_TEST_SUITE_P(Wires, AgentFixesABugTest,
                         ::testing::Values(Wire{"OpenAiStreaming", "openai", "gpt-4o", true},
                                           Wire{"OpenAiNonStreaming", "openai", "gpt-4o", false},
                                           Wire{"AnthropicStreaming", "anthropic",
                                                "claude-3-5-sonnet", true}),
                         [](const auto& info) { return std::string(info.param.name); });

// A recorded stream with two parallel calls (tests/llm/fixtures/) through a real job: both run,
// each is a step with the provider's id, and the next request carries them as the model made
// them: one assistant message, the ids, the argument bytes, then both results in order.
TEST_F(AgentE2eTest, ParallelCallsGoBackToTheModelAsItMadeThem) {
  const std::string fixtures = std::string(KILN_SOURCE_DIR) + "/tests/llm/fixtures/";
  start(json::array({{{"replay", fixtures + "openai_parallel_tool_calls.sse"}, {"chunk", 5}},
                     finish("looked around")}));
  std::string id = createJob({});
  json job = finished(id);
  ASSERT_EQ(job.value("status", ""), "COMPLETED") << job.dump() << kiln_->log();
  json s = steps(id);
  ASSERT_GE(s.size(), 3u) << s.dump();
  EXPECT_EQ(s[0]["callId"], "call_Xq81mZ0aYtH2fD");
  EXPECT_EQ(s[1]["callId"], "call_Pz7RkW3nBv9sLe");
  EXPECT_EQ(s[0]["plannerThought"], "Checking both.");

  auto reqs = llm_->requests();
  ASSERT_EQ(reqs.size(), 2u);
  const json& m = reqs[1]["body"]["messages"];
  ASSERT_EQ(m.size(), 5u) << m.dump(2);
  ASSERT_EQ(m[2]["tool_calls"].size(), 2u) << m.dump(2);
  EXPECT_EQ(m[2]["tool_calls"][0]["id"], "call_Xq81mZ0aYtH2fD");
  EXPECT_EQ(m[2]["tool_calls"][0]["function"]["arguments"],
            R"({"command": "ls -la src", "timeout_s": 30})");
  EXPECT_EQ(m[2]["tool_calls"][1]["id"], "call_Pz7RkW3nBv9sLe");
  EXPECT_EQ(m[2]["tool_calls"][1]["function"]["arguments"],
            R"({"path":"src/main.py","start_line":10,  "end_line": 20})");
  EXPECT_EQ(m[3]["tool_call_id"], "call_Xq81mZ0aYtH2fD");
  EXPECT_EQ(m[3]["content"], s[0]["toolOutput"]);
  EXPECT_EQ(m[4]["tool_call_id"], "call_Pz7RkW3nBv9sLe");
  EXPECT_EQ(m[4]["content"], s[1]["toolOutput"]);
}

// --- the session shell ---------------------------------------------------------------------

// sandbox.shell "session": cd and export carry over between calls; the server is killed -9
// between two calls (while the model is thinking), and the resumed job's new sandbox starts its
// shell in the recorded directory with the exported variable.
TEST_F(AgentE2eTest, SessionShellStateSurvivesAKillNineBetweenCalls) {
  start(json::array({bash("mkdir -p sub && cd sub && export X=1"),
                     {{"hang", 60}},  // the server dies while this request waits
                     bash("pwd; echo X=$X"),
                     finish("checked the session")}),
        {}, {{"KILN_LEASE_MS", "1500"}});  // the restarted node takes the job back sooner
  std::string id = createJob({{"sandbox", {{"shell", "session"}}}});
  for (auto deadline = std::chrono::steady_clock::now() + 60s;
       llm_->requests().size() < 2 && std::chrono::steady_clock::now() < deadline;)
    std::this_thread::sleep_for(20ms);
  ASSERT_EQ(llm_->requests().size(), 2u) << kiln_->log();
  kiln_->kill(SIGKILL);
  kiln_->restart();
  client_ = std::make_unique<HttpClient>("127.0.0.1", kiln_->port());
  client_->setBearer(kiln_->token());
  json job = finished(id);
  ASSERT_EQ(job.value("status", ""), "COMPLETED") << job.dump() << kiln_->log();
  json s = steps(id);
  ASSERT_GE(s.size(), 2u) << s.dump();
  EXPECT_EQ(s[1]["toolArguments"]["command"], "pwd; echo X=$X");
  EXPECT_NE(s[1]["toolOutput"].get<std::string>().find("/workspace/sub\nX=1\n"), std::string::npos)
      << s[1].dump();
}

// --- human in the loop ---------------------------------------------------------------------

// sandbox.env reaches the job's commands; limits.commandTimeoutSeconds is the time limit of a
// command that asks for none.
TEST_F(AgentE2eTest, TheJobsEnvAndCommandTimeoutApplyToItsCommands) {
  start(json::array({bash("echo \"G=$GREETING\"; sleep 60; echo never"), finish("env checked")}));
  std::string id = createJob({{"sandbox", {{"env", {{"GREETING", "hi there"}}}}},
                              {"limits", {{"commandTimeoutSeconds", 1}}}});
  json job = finished(id);
  ASSERT_EQ(job.value("status", ""), "COMPLETED") << job.dump() << kiln_->log();
  json s = steps(id);
  ASSERT_GE(s.size(), 1u) << s.dump();
  const std::string out = s[0]["toolOutput"];
  EXPECT_NE(out.find("G=hi there\n"), std::string::npos) << out;
  EXPECT_NE(out.find("[timed out after 1 s]"), std::string::npos) << out;
  EXPECT_EQ(out.find("never"), std::string::npos) << out;
}

// sandbox.workdir and sandbox.user (issue 17): the repo is at /testbed, commands start there as
// root inside, and root inside is an unprivileged id on the host (a user namespace maps it).
TEST_F(AgentE2eTest, TheRepoIsAtTheWorkdirAndCommandsRunAsAnUnprivilegedRoot) {
  start(json::array({bash("pwd; id -u; ls; head -1 /proc/self/uid_map"),
                     bash("sed -i 's/a - b/a + b/' calc.py && python3 test_calc.py"),
                     finish("fixed add")}),
        {"--sandbox-userns"});
  std::string id = createJob({{"sandbox", {{"workdir", "/testbed"}, {"user", "root"}}}});
  json job = finished(id);
  ASSERT_EQ(job.value("status", ""), "COMPLETED") << job.dump() << kiln_->log();
  json s = steps(id);
  ASSERT_GE(s.size(), 2u) << s.dump();
  const std::string out = s[0]["toolOutput"];
  EXPECT_EQ(out.rfind("/testbed\n0\n", 0), 0u) << out;
  EXPECT_NE(out.find("calc.py"), std::string::npos) << out;
  // uid_map: "0 <host id> <count>": root inside is not root outside.
  std::istringstream map(out.substr(out.find("test_calc.py") + 13));
  std::string inside, outside;
  map >> inside >> outside;
  EXPECT_EQ(inside, "0") << out;
  EXPECT_NE(outside, "0") << out;
  EXPECT_FALSE(outside.empty()) << out;
  EXPECT_NE(s[1]["toolOutput"].get<std::string>().find("OK"), std::string::npos) << s[1].dump();
  EXPECT_NE(diff(id).find("+    return a + b"), std::string::npos);
  // The model is told where the repo is.
  auto reqs = llm_->requests();
  ASSERT_FALSE(reqs.empty());
  EXPECT_NE(reqs[0]["body"].dump().find("/testbed"), std::string::npos);
}

// Without a user namespace per sandbox, root inside would be root on the host: refused at
// submission with what to change, never queued.
TEST_F(AgentE2eTest, RootInsideWithoutAUserNamespaceIsRefusedAtSubmission) {
  start(json::array({finish("never runs")}));
  json body = {{"repoUrl", dir_.file("repo")},
               {"taskDesc", "t"},
               {"agent", "openai"},
               {"model", "gpt-4o"},
               {"sandbox", {{"user", "root"}}}};
  auto r = client_->postJson("/api/v1/jobs", body);
  ASSERT_TRUE(r.isOk());
  EXPECT_EQ(r->status, 422) << r->body;
  EXPECT_EQ(r->json()["error"]["code"], "backend_unavailable") << r->body;
  EXPECT_NE(r->body.find("--sandbox-userns"), std::string::npos) << r->body;
  body["sandbox"] = {{"workdir", "/etc/x"}};
  auto bad = client_->postJson("/api/v1/jobs", body);
  ASSERT_TRUE(bad.isOk());
  EXPECT_EQ(bad->status, 400) << bad->body;
  EXPECT_NE(bad->body.find("sandbox.workdir"), std::string::npos) << bad->body;
  auto list = client_->get("/api/v1/jobs");
  ASSERT_TRUE(list.isOk());
  EXPECT_EQ(list->body.find("\"jobId\""), std::string::npos)
      << "nothing was queued: " << list->body;
}

// The job's verify command (issue 17): a finish that leaves the test failing gets the failure
// back as the next message, the agent fixes it, the check passes and only then is the work
// committed.
TEST_F(AgentE2eTest, VerifyFailureGoesBackToTheAgentWhichFixesItAndCompletes) {
  // The fix changes the file's size: python's bytecode cache is keyed on the source's size and
  // mtime in seconds, and the failed check compiled calc.py within the same second.
  start(json::array(
      {finish("done, I think"), bash("sed -i 's/a - b/(a + b)/' calc.py"), finish("fixed add")}));
  std::string id =
      createJob({{"verify", {{"command", "python3 test_calc.py"}, {"maxRetries", 2}}}});
  json job = finished(id);
  ASSERT_EQ(job.value("status", ""), "COMPLETED") << job.dump() << kiln_->log();
  EXPECT_EQ(job["verify"]["passed"], true) << job.dump();
  EXPECT_EQ(job["verify"]["exitCode"], 0);
  EXPECT_NE(job["verify"]["outputTail"].get<std::string>().find("OK"), std::string::npos);
  auto reqs = llm_->requests();
  ASSERT_EQ(reqs.size(), 3u);
  // The second request carries the failed check's output after the finish.
  const std::string second = reqs[1]["body"].dump();
  EXPECT_NE(second.find("FAIL: add(2, 3) = -1"), std::string::npos) << second;
  EXPECT_NE(second.find("exit code 1"), std::string::npos) << second;
  json s = steps(id);
  std::vector<std::string> phases;
  for (const auto& step : s)
    if (step["phase"] == "verify") phases.push_back(step["toolOutput"]);
  ASSERT_EQ(phases.size(), 2u) << s.dump();
  EXPECT_EQ(s.back()["toolCalled"], "git_commit");
  EXPECT_NE(diff(id).find("+    return (a + b)"), std::string::npos);
  auto verifies = eventsOf(id, "verify", "done");
  ASSERT_EQ(verifies.size(), 2u);
  EXPECT_EQ(verifies[0]["passed"], false);
  EXPECT_EQ(verifies[1]["passed"], true);
}

// An agent that never makes the check pass: after maxRetries failures went back, the job FAILS
// with verify_failed and nothing is committed.
TEST_F(AgentE2eTest, VerifyThatNeverPassesFailsTheJobAndNothingIsCommitted) {
  start(json::array({finish("done"), finish("really done")}));
  std::string id =
      createJob({{"verify", {{"command", "python3 test_calc.py"}, {"maxRetries", 1}}}});
  json job = finished(id);
  ASSERT_EQ(job.value("status", ""), "FAILED") << job.dump() << kiln_->log();
  EXPECT_EQ(errorCode(job), "verify_failed") << job.dump();
  EXPECT_EQ(job["verify"]["passed"], false);
  EXPECT_EQ(job["verify"]["exitCode"], 1);
  EXPECT_EQ(llm_->requests().size(), 2u);
  json s = steps(id);
  int verifies = 0;
  for (const auto& step : s) {
    verifies += step["phase"] == "verify";
    EXPECT_NE(step["toolCalled"], "git_commit") << step.dump();
  }
  EXPECT_EQ(verifies, 2) << s.dump();
}

TEST_F(AgentE2eTest, AskUserPausesAndReplyResumesWithTheAnswerInContext) {
  start(json::array({
      turn("", "ask_user", {{"question", "Which greeting should I use?"}}),
      turn("", "write_file", {{"path", "greeting.txt"}, {"content", "Howdy\n"}}),
      finish("wrote the greeting"),
  }));
  std::string id = createJob({{"taskDesc", "Write a greeting file"}});
  json job = waitStatus(id, {"PAUSED", "FAILED", "COMPLETED"});
  ASSERT_EQ(job.value("status", ""), "PAUSED") << job.dump();
  EXPECT_TRUE(job.value("awaitingReply", false));
  auto questions = eventsOf(id, "question", "question");
  ASSERT_EQ(questions.size(), 1u);
  EXPECT_EQ(questions[0]["question"], "Which greeting should I use?");

  ASSERT_NO_FATAL_FAILURE(act(id, "reply", {{"message", "Use the cowboy one, Howdy"}}));
  job = finished(id);
  ASSERT_EQ(job.value("status", ""), "COMPLETED") << job.dump();
  auto reqs = llm_->requests();
  ASSERT_EQ(reqs.size(), 3u);
  EXPECT_EQ(reqs[0]["body"].dump().find("cowboy"), std::string::npos);
  EXPECT_NE(reqs[1]["body"].dump().find("Use the cowboy one, Howdy"), std::string::npos);
  EXPECT_NE(diff(id).find("+Howdy"), std::string::npos);
}

TEST_F(AgentE2eTest, CommitGateWaitsForApprovalAndARefusalSendsTheAgentBack) {
  start(json::array({
      turn("", "write_file", {{"path", "NOTES.md"}, {"content", "draft\n"}}),
      finish("added notes"),
      turn("", "write_file", {{"path", "NOTES.md"}, {"content", "final\n"}}),
      finish("added final notes"),
  }));
  std::string id = createJob({{"taskDesc", "Write notes"}, {"approvals", {"commit"}}});
  json job = waitStatus(id, {"PAUSED", "FAILED", "COMPLETED"});
  ASSERT_EQ(job.value("status", ""), "PAUSED") << job.dump();
  EXPECT_EQ(job["approval"]["action"], "commit");
  EXPECT_EQ(job["approval"]["state"], "pending");
  auto questions = eventsOf(id, "question", "question");
  ASSERT_EQ(questions.size(), 1u);
  EXPECT_EQ(questions[0]["kind"], "approval");

  // A reply at the gate refuses it: the agent gets the reason and works on.
  ASSERT_NO_FATAL_FAILURE(act(id, "reply", {{"message", "Say final, not draft"}}));
  // Paused again at the gate after the second finish (status goes RUNNING → PAUSED).
  for (auto deadline = std::chrono::steady_clock::now() + 60s;
       llm_->requests().size() < 4 && std::chrono::steady_clock::now() < deadline;)
    std::this_thread::sleep_for(50ms);
  job = waitStatus(id, {"PAUSED", "FAILED", "COMPLETED"});
  ASSERT_EQ(job.value("status", ""), "PAUSED") << job.dump();
  auto reqs = llm_->requests();
  ASSERT_EQ(reqs.size(), 4u);
  EXPECT_NE(reqs[2]["body"].dump().find("Say final, not draft"), std::string::npos);

  ASSERT_NO_FATAL_FAILURE(act(id, "approve", json::object()));
  job = finished(id);
  ASSERT_EQ(job.value("status", ""), "COMPLETED") << job.dump() << kiln_->log();
  EXPECT_TRUE(job["approval"].is_null());
  EXPECT_EQ(llm_->requests().size(), 4u) << "approval needs no model call";
  EXPECT_NE(diff(id).find("+final"), std::string::npos);
  json s = steps(id);
  EXPECT_EQ(s.back()["toolCalled"], "git_commit");
}

TEST_F(AgentE2eTest, ContinueGivesAFinishedJobAFollowUpInTheSameWorkspace) {
  start(json::array({
      turn("", "write_file", {{"path", "a.txt"}, {"content", "one\n"}}),
      finish("wrote a"),
      turn("", "write_file", {{"path", "b.txt"}, {"content", "two\n"}}),
      finish("wrote b"),
  }));
  std::string id = createJob({{"taskDesc", "Write a.txt"}});
  ASSERT_EQ(finished(id).value("status", ""), "COMPLETED");
  ASSERT_NO_FATAL_FAILURE(act(id, "continue", {{"taskDesc", "Now also write b.txt"}}));
  json job = finished(id);
  ASSERT_EQ(job.value("status", ""), "COMPLETED") << job.dump();
  auto reqs = llm_->requests();
  ASSERT_EQ(reqs.size(), 4u);
  std::string third = reqs[2]["body"].dump();
  EXPECT_NE(third.find("Now also write b.txt"), std::string::npos);
  EXPECT_NE(third.find("wrote a"), std::string::npos) << "the earlier context is kept";
  std::string d = diff(id);
  EXPECT_NE(d.find("a.txt"), std::string::npos) << d;
  EXPECT_NE(d.find("b.txt"), std::string::npos) << d;
}

// The repo's AGENTS.md files (an ignored one aside), each with its scope, are in the system
// prompt of every turn; a follow-up after the agent rewrote one still has those the job found.
TEST_F(AgentE2eTest, TheReposAgentsMdFilesAreInTheSystemPromptAsTheJobFoundThem) {
  ASSERT_EQ(shell("cd " + dir_.file("repo") +
                  " && mkdir -p pkg ignored && printf 'Run test_calc.py before finishing.\\n' > "
                  "AGENTS.md && printf 'Keep pkg free of imports.\\n' > pkg/AGENTS.md && "
                  "printf 'ignored/\\n' >> .gitignore && printf 'never read\\n' > "
                  "ignored/AGENTS.md && git add -A && git commit -qm agents"),
            0);
  start(json::array({
      turn("", "write_file", {{"path", "AGENTS.md"}, {"content", "Rewritten by the agent.\n"}}),
      finish("rewrote it"),
      finish("nothing more"),
  }));
  std::string id = createJob({{"taskDesc", "Rewrite AGENTS.md"}});
  ASSERT_EQ(finished(id).value("status", ""), "COMPLETED") << kiln_->log();
  json s = steps(id);
  ASSERT_FALSE(s.empty());
  EXPECT_EQ(s[0]["phase"], "instructions") << s.dump();
  EXPECT_EQ(s[0]["toolArguments"]["files"], json::array({"AGENTS.md", "pkg/AGENTS.md"}));
  ASSERT_NO_FATAL_FAILURE(act(id, "continue", {{"taskDesc", "Anything else?"}}));
  json job = finished(id);
  ASSERT_EQ(job.value("status", ""), "COMPLETED") << job.dump();
  auto reqs = llm_->requests();
  ASSERT_EQ(reqs.size(), 3u);
  for (const auto& r : reqs) {
    const json& system = r["body"]["messages"][0];
    EXPECT_EQ(system["role"], "system");
    const std::string text = system["content"].dump();
    EXPECT_NE(text.find("--- AGENTS.md (the whole repository) ---"), std::string::npos) << text;
    EXPECT_NE(text.find("Run test_calc.py before finishing."), std::string::npos) << text;
    EXPECT_NE(text.find("--- pkg/AGENTS.md (files under pkg/) ---"), std::string::npos) << text;
    EXPECT_NE(text.find("Keep pkg free of imports."), std::string::npos) << text;
    EXPECT_EQ(text.find("never read"), std::string::npos) << "an ignored file: " << text;
    EXPECT_EQ(text.find("Rewritten by the agent."), std::string::npos) << text;
  }
  int recorded = 0;
  for (const auto& step : steps(id)) recorded += step["phase"] == "instructions";
  EXPECT_EQ(recorded, 1) << "the follow-up recorded no second instructions";
}

TEST_F(AgentE2eTest, PushSendsTheBranchToAnHttpRemoteThroughTheEgressProxy) {
  // A bare repo served over smart HTTP on 127.0.0.2: the host's loopback, which the sandbox
  // (its own network namespace) reaches only through the egress proxy.
  std::string root = dir_.file("git");
  ASSERT_EQ(shell("mkdir -p " + root + " && git clone -q --bare " + dir_.file("repo") + " " + root +
                  "/app.git && git -C " + root + "/app.git config http.receivepack true"),
            0);
  GitHttpServer git(root, "127.0.0.2");
  start(json::array({turn("", "edit_file",
                          {{"path", "calc.py"}, {"old_str", "a - b"}, {"new_str", "a + b"}}),
                     finish("fixed add()")}),
        {}, {{"KILN_GIT_PUSH_TOKEN", "t0ken"}});
  std::string url = "http://127.0.0.2:" + std::to_string(git.port()) + "/app.git";
  std::string id = createJob({{"repoUrl", url}, {"push", true}});
  json job = finished(id);
  ASSERT_EQ(job.value("status", ""), "COMPLETED") << job.dump() << kiln_->log();
  json s = steps(id);
  ASSERT_GE(s.size(), 2u);
  EXPECT_EQ(s.back()["toolCalled"], "git_push") << s.back().dump();
  EXPECT_EQ(s.back()["toolArguments"].dump().find("t0ken"), std::string::npos)
      << "the token is never stored";
  std::string commit = json::parse(s[s.size() - 2]["toolOutput"].get<std::string>())["commit"];
  std::string pushed;
  ASSERT_EQ(shell("git --git-dir=" + root + "/app.git rev-parse refs/heads/kiln/" + id, &pushed),
            0);
  EXPECT_EQ(pushed.substr(0, 40), commit);
  bool sawToken = false;
  for (const auto& a : git.authorizations())
    sawToken |= a == "Basic eC1hY2Nlc3MtdG9rZW46dDBrZW4=";  // x-access-token:t0ken
  EXPECT_TRUE(sawToken);
}

TEST_F(AgentE2eTest, PushToALocalPathFailsWithAClearMessage) {
  start(json::array({finish("nothing to do")}));
  json job = finished(createJob({{"push", true}}));
  ASSERT_EQ(job.value("status", ""), "FAILED") << job.dump();
  EXPECT_EQ(errorCode(job), "delivery_failed");
  EXPECT_NE(job["error"].value("message", "").find("network remote"), std::string::npos);
}

TEST_F(AgentE2eTest, FinishedWorkspacesPastRetentionAreCollectedAndContinueRebuildsThem) {
  start(json::array({
            turn("", "write_file", {{"path", "a.txt"}, {"content", "one\n"}}),
            finish("wrote a"),
            turn("", "write_file", {{"path", "b.txt"}, {"content", "two\n"}}),
            finish("wrote b"),
        }),
        {}, {{"KILN_WORKSPACE_RETENTION_HOURS", "0"}});
  std::string id = createJob({{"taskDesc", "Write a.txt"}});
  ASSERT_EQ(finished(id).value("status", ""), "COMPLETED");
  const std::string ws = kiln_->dataDir() + "/workspaces/" + id;
  ASSERT_TRUE(std::filesystem::exists(ws + "/.git") || std::filesystem::is_symlink(ws));
  kiln_->restart();  // the node's start collects finished workspaces past retention
  client_ = std::make_unique<HttpClient>("127.0.0.1", kiln_->port());
  client_->setBearer(kiln_->token());
  EXPECT_FALSE(std::filesystem::exists(ws) || std::filesystem::is_symlink(ws));
  EXPECT_FALSE(std::filesystem::exists(kiln_->dataDir() + "/workspaces/.layers/" + id));

  ASSERT_NO_FATAL_FAILURE(act(id, "continue", {{"taskDesc", "Now also write b.txt"}}));
  json job = finished(id);
  ASSERT_EQ(job.value("status", ""), "COMPLETED") << job.dump() << kiln_->log();
  std::string d = diff(id);
  EXPECT_NE(d.find("a.txt"), std::string::npos) << "rebuilt from the stored patch: " << d;
  EXPECT_NE(d.find("b.txt"), std::string::npos) << d;
}

// --- caps ----------------------------------------------------------------------------------

struct Cap {
  const char* limit;
  json limits;
  json script;
  size_t requests;  // model calls made before the cap stopped the job
};

class AgentCapTest : public AgentE2eTest, public ::testing::WithParamInterface<Cap> {};

TEST_P(AgentCapTest, BreachFailsTheJobBeforeTheNextModelCall) {
  const Cap& c = GetParam();
  start(c.script);
  std::string id = createJob({{"limits", c.limits}});
  json job = finished(id);
  ASSERT_EQ(job.value("status", ""), "FAILED") << job.dump();
  EXPECT_EQ(errorCode(job), "budget_exceeded") << job.dump();
  EXPECT_EQ(job["error"].value("limit", ""), c.limit) << job.dump();
  EXPECT_EQ(llm_->requests().size(), c.requests);
}

json repeat(const json& entry, int n) {
  json a = json::array();
  for (int i = 0; i < n; ++i) a.push_back(entry);
  return a;
}
json distinctEchoes(int n, int in) {
  json a = json::array();
  for (int i = 0; i < n; ++i) a.push_back(bash("echo step " + std::to_string(i), in));
  return a;
}

INSTANTIATE_TEST_SUITE_P(
    Caps, AgentCapTest,
    ::testing::Values(Cap{"maxSteps", {{"maxSteps", 2}}, distinctEchoes(5, 100), 2},
                      // 2 × (600 in + 50 out) ≥ 1000
                      Cap{"maxTokens", {{"maxTokens", 1000}}, distinctEchoes(5, 600), 2},
                      // gpt-4o: 100k tokens in = $0.25 a turn
                      Cap{"maxUsd", {{"maxUsd", 0.3}}, distinctEchoes(5, 100000), 2},
                      Cap{"maxWallSeconds",
                          {{"maxWallSeconds", 1}},
                          json::array({bash("sleep 1.5"), bash("echo never")}),
                          1}),
    [](const auto& info) { return std::string(info.param.limit); });

// The tenant's usdPerDay is spent while its job runs: the job stops before its next model call
// (the quota used to hold back only the claims of new runs).
TEST_F(AgentE2eTest, ATenantsDailySpendRunningOutStopsItsRunningJob) {
  start(distinctEchoes(5, 100000));  // gpt-4o: $0.25 a turn
  auto set = client_->postJson("/api/v1/tenants/default/quota", {{"usdPerDay", 0.4}});
  ASSERT_TRUE(set.isOk());
  ASSERT_EQ(set->status, 200) << set->body;
  json job = finished(createJob({}));
  ASSERT_EQ(job.value("status", ""), "FAILED") << job.dump();
  EXPECT_EQ(errorCode(job), "quota_exceeded") << job.dump();
  EXPECT_EQ(job["error"].value("quota", ""), "usdPerDay") << job.dump();
  EXPECT_NEAR(job["error"].value("used", 0.0), 0.5, 0.01) << job.dump();
  EXPECT_EQ(llm_->requests().size(), 2u) << "$0.25 spent: one more turn; $0.50: none";
  // A new job of the tenant is refused at once, with the same quota named.
  auto refused = client_->postJson("/api/v1/jobs", {{"repoUrl", dir_.file("repo")},
                                                    {"taskDesc", "more"},
                                                    {"agent", "openai"},
                                                    {"model", "gpt-4o"}});
  ASSERT_TRUE(refused.isOk());
  EXPECT_EQ(refused->status, 429) << refused->body;
}

// `kiln serve --sandbox-userns`: the job's sandbox maps a range of host ids, and its workspace
// (an overlay over the repo cache) belongs to the agent's host id from that range.
TEST_F(AgentE2eTest, ABugFixRunsInAUserNamespaceSandbox) {
  start(json::array({
            turn("Fix it.", "edit_file",
                 {{"path", "calc.py"}, {"old_str", "return a - b"}, {"new_str", "return a + b"}}),
            bash("python3 -B test_calc.py && touch made-by-agent && cat /proc/self/uid_map"),
            finish("fixed"),
        }),
        {"--sandbox-userns"});
  std::string id = createJob({});
  json job = finished(id);
  ASSERT_EQ(job.value("status", ""), "COMPLETED") << job.dump() << kiln_->log();
  EXPECT_NE(diff(id).find("+    return a + b"), std::string::npos);
  json s = steps(id);
  ASSERT_GE(s.size(), 2u) << s.dump();
  const std::string out = s[1]["toolOutput"];
  EXPECT_NE(out.find("OK"), std::string::npos) << out;
  EXPECT_NE(out.find("65536"), std::string::npos) << "a range is mapped: " << out;
  // The overlay is unmounted once the job ends; its upper layer keeps what the agent wrote.
  struct stat st;
  ASSERT_EQ(stat(dir_.file("data/workspaces/.layers/" + id + "/u/made-by-agent").c_str(), &st), 0);
  EXPECT_GT(st.st_uid, 65535u) << "the agent is no low host id";
}

// A command may not outlive the job's wall-clock budget: it is killed when the budget runs out,
// not at its own (here one-hour) timeout.
TEST_F(AgentE2eTest, ACommandOutlivingTheWallClockBudgetIsKilled) {
  start(json::array(
      {turn("", "bash", {{"command", "sleep 600"}, {"timeout_s", 3600}}), finish("never")}));
  std::string id = createJob({{"limits", {{"maxWallSeconds", 2}}}});
  json job = finished(id);
  ASSERT_EQ(job.value("status", ""), "FAILED") << job.dump();
  EXPECT_EQ(errorCode(job), "budget_exceeded") << job.dump();
  EXPECT_EQ(job["error"].value("limit", ""), "maxWallSeconds") << job.dump();
  EXPECT_NE(job["error"].value("message", "").find("command was killed"), std::string::npos)
      << job.dump();
  json s = steps(id);
  ASSERT_EQ(s.size(), 1u) << s.dump();
  EXPECT_NE(s[0]["toolOutput"].get<std::string>().find("[killed: the job's wall-clock budget"),
            std::string::npos)
      << s.dump();
}

TEST_F(AgentE2eTest, ServerDefaultLimitsApplyToJobsThatSetNone) {
  start(distinctEchoes(5, 100), {"--default-limits", R"({"maxSteps": 3})"});
  json job = finished(createJob({}));
  ASSERT_EQ(job.value("status", ""), "FAILED") << job.dump();
  EXPECT_EQ(job["error"].value("limit", ""), "maxSteps") << job.dump();
  EXPECT_EQ(llm_->requests().size(), 3u);
  // A job's own limit wins over the server's.
  json own = finished(createJob({{"limits", {{"maxSteps", 1}}}}));
  EXPECT_EQ(own["error"].value("limit", ""), "maxSteps") << own.dump();
  EXPECT_EQ(llm_->requests().size(), 4u);
}

// --- loops ---------------------------------------------------------------------------------

TEST_F(AgentE2eTest, TheSameBrokenBuild500TimesIsStoppedAfterThree) {
  start(repeat(bash("python3 build.py  # no such file: fails every time"), 500));
  std::string id = createJob({{"taskDesc", "Build the project"}});
  json job = finished(id);
  ASSERT_EQ(job.value("status", ""), "FAILED") << job.dump();
  EXPECT_EQ(errorCode(job), "loop_detected") << job.dump();
  EXPECT_EQ(job["error"].value("rule", ""), "repeated_failure");
  EXPECT_EQ(llm_->requests().size(), 3u);
  EXPECT_EQ(steps(id).size(), 3u);
}

TEST_F(AgentE2eTest, ChangingPollOutputIsNotALoop) {
  // The same polling command whose output changes each time (a server coming up).
  start(json::array({bash("date +%s%N"), bash("date +%s%N"), bash("date +%s%N"), bash("date +%s%N"),
                     bash("date +%s%N"), finish("server is up")}));
  std::string id = createJob({{"taskDesc", "Wait for the server"}});
  json job = finished(id);
  EXPECT_EQ(job.value("status", ""), "COMPLETED") << job.dump();
}

TEST_F(AgentE2eTest, ThreeTurnsOfTalkWithoutAToolAreALoop) {
  start(json::array({text("I think"), text("I still think"), text("Let me think more"),
                     finish("never reached")}));
  std::string id = createJob({{"taskDesc", "Do something"}});
  json job = finished(id);
  ASSERT_EQ(job.value("status", ""), "FAILED") << job.dump();
  EXPECT_EQ(errorCode(job), "loop_detected");
  EXPECT_EQ(job["error"].value("rule", ""), "no_tool_call");
  // The first turns without a tool got a nudge back.
  auto reqs = llm_->requests();
  ASSERT_EQ(reqs.size(), 3u);
  EXPECT_NE(reqs[1]["body"].dump().find("Use a tool to act"), std::string::npos);
}

// The detector's history is rebuilt from the stored steps when a job resumes elsewhere: a node
// dying between the second and the third identical failure does not reset the count.
TEST_F(AgentE2eTest, TwoFailuresThenARestartThenTheSameThirdFailureIsALoop) {
  const json broken = bash("python3 build.py  # no such file: fails every time");
  start(json::array({broken, broken, bash("sleep 60  # the node dies during this call"), broken,
                     finish("never reached")}),
        {}, {{"KILN_LEASE_MS", "1000"}});
  std::string id = createJob({{"taskDesc", "Build the project"}});
  auto db = store::Store::open({"sqlite:" + kiln_->dataDir() + "/kiln.db"});
  ASSERT_TRUE(db.isOk());
  bool inSleep = false;
  for (auto deadline = std::chrono::steady_clock::now() + 60s;
       !inSleep && std::chrono::steady_clock::now() < deadline; std::this_thread::sleep_for(20ms)) {
    auto job = (*db)->getJob(id);
    if (!job.isOk() || !job->inflightCall.is_object()) continue;
    const json args = job->inflightCall.value("toolArguments", json::object());
    inSleep = args.is_object() && args.value("command", "").rfind("sleep 60", 0) == 0;
  }
  ASSERT_TRUE(inSleep) << kiln_->log();
  kiln_->kill(SIGKILL);
  kiln_->restart();
  client_ = std::make_unique<HttpClient>("127.0.0.1", kiln_->port());
  client_->setBearer(kiln_->token());
  json job = finished(id);
  ASSERT_EQ(job.value("status", ""), "FAILED") << job.dump() << kiln_->log();
  EXPECT_EQ(errorCode(job), "loop_detected") << job.dump();
  EXPECT_EQ(job["error"].value("rule", ""), "repeated_failure") << job.dump();
  EXPECT_EQ(llm_->requests().size(), 4u);
}

// --- context compression -------------------------------------------------------------------

TEST_F(AgentE2eTest, PastTheDefault64kTokensOlderStepsAreSummarised) {
  start(json::array({
      bash("echo MARKER-ONE-$((40+2))"),
      bash("echo MARKER-TWO-$((40+2))"),
      bash("echo three", 70000),  // the request that produced this turn was 70k tokens
      text("SUMMARY-XYZ: echoed marker one and two, then three."),
      finish("done"),
  }));
  std::string id = createJob({{"taskDesc", "Echo things"}});
  json job = finished(id);
  ASSERT_EQ(job.value("status", ""), "COMPLETED") << job.dump();
  auto reqs = llm_->requests();
  ASSERT_EQ(reqs.size(), 5u);
  // Request 4 asks for the summary; request 5 has it instead of the old observations.
  std::string ask = reqs[3]["body"].dump();
  EXPECT_NE(ask.find("Write a concise summary"), std::string::npos);
  EXPECT_NE(ask.find("MARKER-ONE-42"), std::string::npos);
  std::string after = reqs[4]["body"].dump();
  EXPECT_NE(after.find("SUMMARY-XYZ"), std::string::npos) << after;
  EXPECT_EQ(after.find("MARKER-ONE"), std::string::npos) << after;
  EXPECT_EQ(after.find("MARKER-TWO"), std::string::npos) << after;
  EXPECT_NE(after.find("echo three"), std::string::npos) << "the newest step stays verbatim";
  // The originals stay in the store.
  json s = steps(id);
  EXPECT_NE(s[0]["toolOutput"].get<std::string>().find("MARKER-ONE-42"), std::string::npos);
  EXPECT_EQ(s[3]["phase"], "compressing");
  EXPECT_EQ(eventsOf(id, "context_compressed", "done").size(), 1u);
}

// --- model API errors and bad tool calls ---------------------------------------------------

TEST_F(AgentE2eTest, RateLimitedThenSucceeds) {
  start(json::array({{{"status", 429}, {"retry_after", 0}, {"message", "slow down"}},
                     finish("done after a retry")}));
  std::string id = createJob({});
  json job = finished(id);
  EXPECT_EQ(job.value("status", ""), "COMPLETED") << job.dump();
  EXPECT_EQ(llm_->requests().size(), 2u);
}

TEST_F(AgentE2eTest, UnauthorizedFailsAtOnceWithAClearMessage) {
  start(json::array({{{"status", 401}, {"message", "invalid x-api-key"}}, finish("never")}));
  std::string id = createJob({});
  json job = finished(id);
  ASSERT_EQ(job.value("status", ""), "FAILED") << job.dump();
  EXPECT_EQ(errorCode(job), "llm_unauthorized") << job.dump();
  EXPECT_NE(job["error"].value("message", "").find("API key"), std::string::npos) << job.dump();
  EXPECT_EQ(llm_->requests().size(), 1u) << "a 401 is not retried";
}

TEST_F(AgentE2eTest, MalformedToolArgumentsAndUnknownToolsGetErrorObservations) {
  start(json::array({
      {{"tool_calls", json::array({{{"name", "bash"}, {"raw", "{\"command\": \"ls"}}})},
       {"usage", {{"in", 10}, {"out", 5}}}},
      turn("", "frobnicate", {{"x", 1}}),
      finish("recovered"),
  }));
  std::string id = createJob({});
  json job = finished(id);
  ASSERT_EQ(job.value("status", ""), "COMPLETED") << job.dump();
  json s = steps(id);
  ASSERT_GE(s.size(), 3u);
  EXPECT_NE(s[0]["toolOutput"].get<std::string>().find("not valid JSON"), std::string::npos)
      << s[0].dump();
  EXPECT_NE(s[1]["toolOutput"].get<std::string>().find("unknown tool 'frobnicate'"),
            std::string::npos)
      << s[1].dump();
  auto reqs = llm_->requests();
  ASSERT_EQ(reqs.size(), 3u);
  EXPECT_NE(reqs[1]["body"].dump().find("not valid JSON"), std::string::npos);
  EXPECT_NE(reqs[2]["body"].dump().find("unknown tool"), std::string::npos);
}

// --- sandbox limits end the job with the resource ------------------------------------------

// `cpus` is a number of cores: 0.5 is half of one, a 50% CFS quota on the sandbox's cgroup (it
// used to truncate to 0, no limit at all).
TEST_F(AgentE2eTest, HalfACpuIsAFiftyPercentQuotaOnTheSandboxCgroup) {
  start(json::array({bash("sleep 4"), finish("done")}));
  std::string id = createJob({{"sandbox", {{"cpus", 0.5}}}});
  // While the command runs, the sandbox's cgroup (v1: cpu/kiln/<id>; v2: kiln/<id>) has it.
  const std::vector<std::pair<std::string, std::string>> parents = {
      {"/sys/fs/cgroup/cpu/kiln", "cpu.cfs_quota_us"},
      {"/sys/fs/cgroup/unified/kiln", "cpu.max"},
      {"/sys/fs/cgroup/kiln", "cpu.max"}};
  std::string quota;
  for (auto deadline = std::chrono::steady_clock::now() + 30s;
       quota.empty() && std::chrono::steady_clock::now() < deadline;
       std::this_thread::sleep_for(20ms)) {
    for (const auto& [parent, file] : parents) {
      std::error_code ec;
      for (const auto& e : std::filesystem::directory_iterator(parent, ec)) {
        std::string v = readFile(e.path().string() + "/" + file).valueOr("");
        if (!v.empty() && v.rfind("-1", 0) != 0 && v.rfind("max", 0) != 0) quota = v;
      }
    }
  }
  EXPECT_TRUE(quota == "50000\n" || quota == "50000 100000\n") << "quota: '" << quota << "'";
  EXPECT_EQ(finished(id).value("status", ""), "COMPLETED");
}

TEST_F(AgentE2eTest, MemoryBombFailsTheJobWithSandboxLimitMemory) {
  start(json::array(
      {bash("python3 -c 'x = bytearray(400 * 1024 * 1024); print(len(x))'"), finish("never")}));
  std::string id = createJob({{"sandbox", {{"memoryMb", 64}}}});
  json job = finished(id);
  ASSERT_EQ(job.value("status", ""), "FAILED") << job.dump();
  EXPECT_EQ(errorCode(job), "sandbox_limit") << job.dump();
  EXPECT_EQ(job["error"].value("resource", ""), "memory") << job.dump();
}

TEST_F(AgentE2eTest, FillingTheDiskQuotaFailsTheJobWithSandboxLimitDisk) {
  start(json::array({bash("dd if=/dev/zero of=$HOME/big bs=1M count=64; sync"), finish("never")}));
  std::string id = createJob({{"sandbox", {{"diskMb", 16}}}});
  json job = finished(id);
  ASSERT_EQ(job.value("status", ""), "FAILED") << job.dump();
  EXPECT_EQ(errorCode(job), "sandbox_limit") << job.dump();
  EXPECT_EQ(job["error"].value("resource", ""), "disk") << job.dump();
}

// --- the gvisor backend: the same jobs on gVisor's kernel ---------------------------------

namespace gvisor_e2e {

bool haveRunsc() {
  for (const char* p : {"/usr/sbin/runsc", "/usr/bin/runsc"}) {
    if (access(p, X_OK) == 0) return true;
  }
  return false;
}

// runsc processes (runsc, gofer, sentry) of the kiln whose data dir is `data`: their state and
// bundle live in its run dir, which their command lines name.
int runscOf(const std::string& data) {
  const std::string runDir = sandbox::runDirFor(data + "/sandboxes");
  int n = 0;
  for (const auto& e : std::filesystem::directory_iterator("/proc")) {
    std::string pid = e.path().filename();
    if (pid.find_first_not_of("0123456789") != std::string::npos) continue;
    std::string cmd = readFile((e.path() / "cmdline").string()).valueOr("");
    n += cmd.rfind("runsc", 0) == 0 && cmd.find(runDir) != std::string::npos;
  }
  return n;
}

}  // namespace gvisor_e2e

// `kiln serve --sandbox-backend gvisor --warm-pool gvisor=1`: the OpenAI bug fix runs in a
// sandbox taken from the pool, on a kernel that is not the host's.
TEST_F(AgentE2eTest, AnOpenAiBugFixRunsOnGvisorInASandboxFromTheWarmPool) {
  if (!gvisor_e2e::haveRunsc()) GTEST_SKIP() << "gvisor: runsc is not installed";
  start(json::array({
            bash("python3 -B test_calc.py; uname -r"),
            turn("Fix it.", "edit_file",
                 {{"path", "calc.py"}, {"old_str", "return a - b"}, {"new_str", "return a + b"}}),
            bash("python3 -B test_calc.py && ls -la calc.py"),
            finish("fixed"),
        }),
        {"--sandbox-backend", "gvisor", "--warm-pool", "gvisor=1"});
  std::string id = createJob({});
  json job = finished(id);
  ASSERT_EQ(job.value("status", ""), "COMPLETED") << job.dump() << kiln_->log();
  EXPECT_NE(diff(id).find("+    return a + b"), std::string::npos);
  json s = steps(id);
  ASSERT_GE(s.size(), 3u) << s.dump();
  const std::string first = s[0]["toolOutput"], third = s[2]["toolOutput"];
  EXPECT_NE(first.find("FAIL: add(2, 3) = -1"), std::string::npos) << first;
  utsname host{};
  uname(&host);
  EXPECT_EQ(first.find(host.release), std::string::npos) << "the host's kernel: " << first;
  EXPECT_NE(third.find("OK"), std::string::npos) << third;
  EXPECT_NE(third.find("calc.py"), std::string::npos) << third;
  auto metrics = client_->get("/metrics");
  ASSERT_TRUE(metrics.isOk());
  EXPECT_NE(metrics->body.find("kiln_warm_pool_hits_total{backend=\"gvisor\",image=\"\"} 1"),
            std::string::npos)
      << metrics->body;
}

// A job asks for gvisor on a server whose default is the namespace backend: the mock agent's
// whole job runs there, and a stopped job's sandbox (runsc, its gofer and sentry) is gone.
TEST_F(AgentE2eTest, MockJobsAskForGvisorAndStopEndsOne) {
  if (!gvisor_e2e::haveRunsc()) GTEST_SKIP() << "gvisor: runsc is not installed";
  start(json::array());
  std::string id = createJob({{"agent", "mock"}, {"sandbox", {{"backend", "gvisor"}}}});
  json job = finished(id);
  ASSERT_EQ(job.value("status", ""), "COMPLETED") << job.dump() << kiln_->log();
  EXPECT_NE(diff(id).find("AGENT_TASK.md"), std::string::npos);

  std::string out;
  ASSERT_EQ(shell("cd " + dir_.file("repo") +
                      " && printf 'test:\\n\\tsleep 600\\n' > Makefile && git add Makefile && "
                      "git -c user.name=t -c user.email=t@t commit -qm slow",
                  &out),
            0)
      << out;
  id = createJob({{"agent", "mock"}, {"sandbox", {{"backend", "gvisor"}}}});
  // Wait until the job runs in its sandbox (its tests sleep for ten minutes).
  waitStatus(id, {"RUNNING"});
  for (int i = 0; i < 400 && gvisor_e2e::runscOf(dir_.file("data")) == 0; ++i) {
    std::this_thread::sleep_for(50ms);
  }
  ASSERT_GT(gvisor_e2e::runscOf(dir_.file("data")), 0) << kiln_->log();
  auto r = client_->post("/api/v1/jobs/" + id + "/stop");
  ASSERT_TRUE(r.isOk());
  EXPECT_EQ(r->status, 200) << r->body;
  job = finished(id);
  EXPECT_EQ(job.value("status", ""), "STOPPED") << job.dump();
  for (int i = 0; i < 100 && gvisor_e2e::runscOf(dir_.file("data")) > 0; ++i) usleep(50'000);
  EXPECT_EQ(gvisor_e2e::runscOf(dir_.file("data")), 0);
}

// Bad input at submission: never a job that fails (or hangs) later.
TEST_F(AgentE2eTest, ABackendTheServerCannotRunIsRefusedAtSubmission) {
  start(json::array(), {}, {{"KILN_RUNSC", "/nonexistent/runsc"}});
  auto post = [&](const json& sandbox) {
    json body = {
        {"repoUrl", dir_.file("repo")}, {"taskDesc", "t"}, {"agent", "mock"}, {"sandbox", sandbox}};
    return client_->postJson("/api/v1/jobs", body);
  };
  auto r = post({{"backend", "gvisor"}});
  ASSERT_TRUE(r.isOk());
  EXPECT_EQ(r->status, 422) << r->body;
  EXPECT_EQ(r->json()["error"].value("code", ""), "backend_unavailable") << r->body;
  EXPECT_NE(r->body.find("/nonexistent/runsc"), std::string::npos) << r->body;
  r = post({{"backend", "qemu"}});
  EXPECT_EQ(r->status, 400) << r->body;
  r = post({{"backend", "gvisor"}, {"diskMb", 64}});
  EXPECT_EQ(r->status, 400) << r->body;
  EXPECT_NE(r->body.find("no disk quota"), std::string::npos) << r->body;
  r = post({{"backend", "namespace"}});
  EXPECT_EQ(r->status, 201) << r->body;
  auto jobs = client_->get("/api/v1/jobs");
  ASSERT_TRUE(jobs.isOk());
  EXPECT_EQ(jobs->json()["jobs"].size(), 1u) << jobs->body;  // only the accepted one
}

// --- MCP servers ------------------------------------------------------------------------------

// A real MCP server from npm runs in the job's sandbox (on `backend`): its tools are offered to
// the model beside kiln's, each call is a step, a file it writes is in the job's diff, and the
// error it reports for a path outside its root goes back to the model as an error observation.
void AgentE2eTest::mcpServerFromNpm(const std::string& backend) {
  if (std::string why = missingMcpServer(); !why.empty()) GTEST_SKIP() << why;
  const std::string clis = agentClisDir();
  start(json::array({
            turn("", "mcp__fs__write_file",
                 {{"path", "/workspace/from-mcp.txt"}, {"content", "written by an MCP server\n"}}),
            turn("", "mcp__fs__read_text_file", {{"path", "/etc/hostname"}}),
            finish("done"),
        }),
        {"--sandbox-backend", backend}, {{"KILN_AGENT_CLI_DIR", clis}});
  const json fs = {{"name", "fs"}, {"command", {"mcp-server-filesystem", "/workspace"}}};
  std::string id = createJob({{"mcpServers", json::array({fs})}});
  json job = finished(id);
  ASSERT_EQ(job.value("status", ""), "COMPLETED") << job.dump() << kiln_->log();
  auto reqs = llm_->requests();
  ASSERT_EQ(reqs.size(), 3u);
  const std::string tools = reqs[0]["body"]["tools"].dump();
  EXPECT_NE(tools.find("\"mcp__fs__write_file\""), std::string::npos) << tools;
  EXPECT_NE(tools.find("(MCP server fs) "), std::string::npos) << tools;
  EXPECT_NE(tools.find("\"bash\""), std::string::npos) << "kiln's own tools stay: " << tools;
  EXPECT_NE(reqs[1]["body"].dump().find("Successfully wrote to /workspace/from-mcp.txt"),
            std::string::npos)
      << "the result went back to the model";
  json written, denied;
  for (const json& st : steps(id)) {
    if (st["toolCalled"] == "mcp__fs__write_file") written = st;
    if (st["toolCalled"] == "mcp__fs__read_text_file") denied = st;
  }
  ASSERT_TRUE(written.is_object()) << steps(id).dump();
  EXPECT_FALSE(written.value("isError", true)) << written.dump();
  EXPECT_NE(written.value("toolOutput", "").find("Successfully wrote"), std::string::npos);
  ASSERT_TRUE(denied.is_object()) << steps(id).dump();
  EXPECT_TRUE(denied.value("isError", false)) << denied.dump();
  EXPECT_NE(denied.value("toolOutput", "").find("outside allowed directories"), std::string::npos)
      << denied.dump();
  const std::string d = diff(id);
  EXPECT_NE(d.find("+written by an MCP server"), std::string::npos) << d;
}

TEST_F(AgentE2eTest, AnMcpServerFromNpmRunsInTheSandboxAndItsCallsAreSteps) {
  mcpServerFromNpm("namespace");
}

TEST_F(AgentE2eTest, AnMcpServerFromNpmRunsInAGvisorSandbox) {
  if (!gvisor_e2e::haveRunsc()) GTEST_SKIP() << "gvisor: runsc is not installed";
  mcpServerFromNpm("gvisor");
}

// An MCP server in Python (tests/support/fake_mcp_server.py): its tools from both pages of its
// list are offered; a call past limits.commandTimeoutSeconds and a server that died are error
// observations the model sees, and the job goes on to its finish.
TEST_F(AgentE2eTest, AnMcpServerThatHangsOrDiesGivesErrorObservationsNotAStuckJob) {
  ASSERT_EQ(shell("cd " + dir_.file("repo") + " && cp " + fakeMcpServerPath() +
                  " mcp_server.py && git add -A && git commit -qm mcp"),
            0);
  start(json::array({
      turn("", "mcp__py__late", json::object()),
      turn("", "mcp__py__echo", {{"x", 1}}),
      turn("", "mcp__py__slow", json::object()),
      turn("", "mcp__py__crash", json::object()),
      turn("", "mcp__py__echo", {{"x", 2}}),
      finish("done"),
  }));
  const json py = {{"name", "py"}, {"command", {"python3", "-u", "mcp_server.py"}}};
  std::string id =
      createJob({{"mcpServers", json::array({py})}, {"limits", {{"commandTimeoutSeconds", 1}}}});
  json job = finished(id);
  ASSERT_EQ(job.value("status", ""), "COMPLETED") << job.dump() << kiln_->log();
  std::vector<json> calls;
  for (const json& st : steps(id))
    if (st.value("toolCalled", "").rfind("mcp__py__", 0) == 0) calls.push_back(st);
  ASSERT_EQ(calls.size(), 5u);
  EXPECT_EQ(calls[0]["toolOutput"], "late: {}");
  EXPECT_EQ(calls[1]["toolOutput"], "echo: {\"x\": 1}");
  EXPECT_FALSE(calls[1].value("isError", true));
  EXPECT_TRUE(calls[2].value("isError", false));
  EXPECT_NE(calls[2].value("toolOutput", "").find("no answer within 1 s"), std::string::npos)
      << calls[2].dump();
  EXPECT_TRUE(calls[3].value("isError", false));
  EXPECT_NE(calls[3].value("toolOutput", "").find("the server is gone (exit status 3"),
            std::string::npos)
      << calls[3].dump();
  EXPECT_TRUE(calls[4].value("isError", false));
  EXPECT_NE(calls[4].value("toolOutput", "").find("is gone (exit status 3: crashing on purpose)"),
            std::string::npos)
      << calls[4].dump();
}

// A server that does not start fails the job before any model call, with its command and why;
// an agent CLI is refused kiln's MCP servers at submission.
TEST_F(AgentE2eTest, AnMcpServerThatDoesNotStartFailsTheJobWithItsCommandAndWhy) {
  start(json::array({finish("never")}));
  const json bad = {{"name", "gone"}, {"command", {"no-such-mcp-server", "--stdio"}}};
  json job = finished(createJob({{"mcpServers", json::array({bad})}}));
  ASSERT_EQ(job.value("status", ""), "FAILED") << job.dump();
  EXPECT_EQ(errorCode(job), "mcp_failed") << job.dump();
  const std::string message = job["error"].value("message", "");
  EXPECT_NE(message.find("'gone' `no-such-mcp-server --stdio`"), std::string::npos) << message;
  EXPECT_NE(message.find("exit status 127"), std::string::npos) << message;
  EXPECT_EQ(llm_->requests().size(), 0u);

  auto refused = client_->postJson("/api/v1/jobs", {{"repoUrl", dir_.file("repo")},
                                                    {"taskDesc", "t"},
                                                    {"agent", "cursor"},
                                                    {"mcpServers", json::array({bad})}});
  ASSERT_TRUE(refused.isOk());
  EXPECT_EQ(refused->status, 400) << refused->body;
  EXPECT_NE(refused->body.find("mcpServers"), std::string::npos) << refused->body;
}

}  // namespace
}  // namespace kiln::testing
