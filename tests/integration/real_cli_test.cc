// The real agent CLIs, Claude Code and Codex (pinned in the Makefile, installed by `make
// agent-clis` into build/agent-clis), each in a real kiln sandbox fixing a bug end to end. Their
// model is the fake model server on the host's 127.0.0.1, reached only through kiln's model
// gateway: the sandbox holds a placeholder key, the upstream sees the real one.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <map>
#include <thread>

#include "common/files.h"
#include "llm/pricing.h"
#include "support/fake_llm.h"
#include "support/http_client.h"
#include "support/kiln_process.h"
#include "support/temp_dir.h"

namespace kiln::testing {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

constexpr const char* kUpstreamKey = "sk-real-upstream-key-7f3a";
const std::string kCliDir = agentClisDir();
// The real filesystem MCP server from npm, as a job's mcpServers entry.
const json kFsServer = {{"name", "fs"}, {"command", {"mcp-server-filesystem", "/workspace"}}};

json call(const std::string& thought, const std::string& tool, const json& args, int in = 2000,
          int out = 200) {
  return {{"thought", thought},
          {"tool_calls", {{{"name", tool}, {"arguments", args}}}},
          {"usage", {{"in", in}, {"out", out}}}};
}

// `n` calls of Claude Code's Bash tool, each a distinct harmless command.
json lookAround(int n) {
  json script = json::array();
  for (int i = 0; i < n; ++i) {
    script.push_back(
        call("Look again.", "Bash",
             {{"command", "echo round " + std::to_string(i)}, {"description", "Look around"}}));
  }
  return script;
}

json answer(const std::string& text) {
  return {{"thought", text}, {"usage", {{"in", 2000}, {"out", 100}}}};
}

// Claude Code's tool calls of the fix: read hello.py, add the comma, run the test.
json claudeRead() {
  return call("Let me read the code.", "Read", {{"file_path", "/workspace/hello.py"}});
}
json claudeEdit() {
  return call("The greeting lacks its comma.", "Edit",
              {{"file_path", "/workspace/hello.py"},
               {"old_string", "return \"hello\""},
               {"new_string", "return \"hello, world\""}});
}
json claudeRunTest() {
  return call("Run the test.", "Bash",
              {{"command", "python3 test_hello.py"}, {"description", "Run the test"}});
}

// Lists the sandbox's files (outside the base image and the CLIs' install) that hold the real
// key, then those that hold the fixed greeting (a control: the search does look), then shows the
// sandbox's whole environment, its own and every process's it can read. The command spells the
// key in two pieces, so that the CLIs' transcripts of it do not hold it.
const std::string kShowEnv =
    std::string(
        "f() { grep -rIl -D skip --exclude-dir=proc --exclude-dir=sys --exclude-dir=dev "
        "--exclude-dir=usr --exclude-dir=kiln-agent-clis -e \"$1\" / 2>/dev/null; }; K=") +
    std::string(kUpstreamKey).substr(0, std::strlen(kUpstreamKey) - 1) +
    "; echo KEY-FILES:; f \"${K}" +
    std::string(kUpstreamKey).substr(std::strlen(kUpstreamKey) - 1) +
    "\"; echo CONTROL-FILES:; f 'hello, world'; echo FILES-END; env; "
    "for f in /proc/[0-9]*/environ; do tr '\\0' '\\n' < $f; done 2>/dev/null; echo ENV-END";

// The files the search of kShowEnv found: those holding the key, and the control's.
std::pair<std::string, std::string> filesFound(const std::string& outputs) {
  const size_t key = outputs.find("KEY-FILES:\n");
  const size_t control = outputs.find("CONTROL-FILES:\n", key);
  const size_t end = outputs.find("FILES-END", control);
  if (key == std::string::npos || control == std::string::npos || end == std::string::npos) {
    return {"(no listing)", ""};
  }
  return {outputs.substr(key + 11, control - key - 11),
          outputs.substr(control + 15, end - control - 15)};
}

class RealCliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "needs root for namespace sandboxes";
    for (const char* cli : {"claude", "codex", "claude-code-acp"}) {
      if (!std::filesystem::exists(kCliDir + "/node_modules/.bin/" + cli)) {
        GTEST_SKIP() << "the agent CLI " << cli << " is not installed in " << kCliDir
                     << " (make agent-clis installs it from npm)";
      }
    }
    const std::string repo = dir_.file("repo");
    makeSampleRepo(repo);
    ASSERT_EQ(shell("cd " + repo +
                    " && printf 'from hello import hello\\nassert hello() == \"hello, world\", "
                    "hello()\\nprint(\"test ok\")\\n' > test_hello.py && git add -A && "
                    "git -c user.name=t -c user.email=t@t commit -qm test"),
              0);
  }

  void startKiln(const json& script) {
    llm_ = std::make_unique<FakeLlm>(script, dir_.path());
    kiln_ = std::make_unique<KilnProcess>(
        dir_.file("data"), std::vector<std::string>{},
        std::vector<std::pair<std::string, std::string>>{{"ANTHROPIC_BASE_URL", llm_->url()},
                                                         {"ANTHROPIC_API_KEY", kUpstreamKey},
                                                         {"OPENAI_BASE_URL", llm_->url() + "/v1"},
                                                         {"OPENAI_API_KEY", kUpstreamKey},
                                                         {"KILN_AGENT_CLI_DIR", kCliDir}});
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

  // Waits for the job's next `done` (after the events an earlier wait saw).
  json waitDone(const std::string& id) {
    Headers h = {{"Authorization", "Bearer " + kiln_->token()}};
    if (!seen_.empty()) h["Last-Event-ID"] = seen_;
    auto sse = SseReader::open("127.0.0.1", kiln_->port(), "/api/v1/jobs/" + id + "/stream", h);
    EXPECT_TRUE(sse.isOk());
    if (!sse.isOk()) return json();
    std::vector<SseEvent> events = (*sse)->readUntil("done", 180s);
    if (!events.empty()) seen_ = events.back().id;
    terminal_.clear();
    for (const auto& e : events)
      if (e.type == "terminal") terminal_ += e.json().value("data", "");
    return events.empty() ? json() : events.back().json();
  }

  // A job of `agent` with the filesystem MCP server (kFsServer), run to its end: its id once it
  // completed, else "" (and a failure).
  std::string runMcpJob(const std::string& agent, const std::string& model) {
    std::string id = createJob({{"taskDesc", "Write from-mcp.txt"},
                                {"agent", agent},
                                {"model", model},
                                {"mcpServers", json::array({kFsServer})}});
    if (id.empty()) return "";
    json done = waitDone(id);
    EXPECT_EQ(done.value("status", ""), "COMPLETED") << done.dump() << terminal_ << kiln_->log();
    return done.value("status", "") == "COMPLETED" ? id : "";
  }

  std::unique_ptr<SseReader> openStream(const std::string& id) {
    Headers h = {{"Authorization", "Bearer " + kiln_->token()}};
    auto sse = SseReader::open("127.0.0.1", kiln_->port(), "/api/v1/jobs/" + id + "/stream", h);
    EXPECT_TRUE(sse.isOk());
    return sse.isOk() ? std::move(sse).value() : nullptr;
  }

  // The model calls of the agents' main loop (not their side calls: titles, summaries).
  std::vector<json> mainCalls() {
    std::vector<json> out;
    for (auto& r : llm_->requests())
      if (!r.value("side", false)) out.push_back(r);
    return out;
  }

  json get(const std::string& path) {
    auto r = client_->get(path);
    EXPECT_TRUE(r.isOk());
    return r.isOk() ? r->json() : json();
  }

  json steps(const std::string& id) {
    json s = get("/api/v1/jobs/" + id + "/steps");
    return s.is_object() ? s["steps"] : s;
  }

  // Every byte kiln stored (the SQLite database and its WAL).
  std::string storeBytes() {
    std::string all;
    for (const auto& e : std::filesystem::directory_iterator(dir_.file("data"))) {
      if (e.path().filename().string().rfind("kiln.db", 0) == 0) {
        all += readFile(e.path().string()).valueOr("");
      }
    }
    return all;
  }

  // The fix is committed, the test ran, steps and cost are recorded, no real key leaked.
  void expectFixed(const std::string& id, const json& done, const std::vector<std::string>& tools) {
    ASSERT_EQ(done.value("status", ""), "COMPLETED") << done.dump() << "\n"
                                                     << terminal_ << kiln_->log();
    auto diff = client_->get("/api/v1/jobs/" + id + "/diff");
    ASSERT_TRUE(diff.isOk());
    EXPECT_NE(diff->body.find("+    return \"hello, world\""), std::string::npos) << diff->body;

    json s = steps(id);
    int parsed = 0;
    std::string outputs;
    for (const auto& st : s) {
      const std::string tool = st.value("toolCalled", "");
      if (std::find(tools.begin(), tools.end(), tool) != tools.end()) ++parsed;
      outputs += st.value("toolOutput", "") + "\n";
    }
    EXPECT_GE(parsed, 3) << s.dump(1);
    EXPECT_NE(outputs.find("test ok"), std::string::npos) << s.dump(1);
    // The sandbox's environment holds the placeholder, never the real key.
    EXPECT_NE(outputs.find("ENV-END"), std::string::npos) << s.dump(1);
    EXPECT_NE(outputs.find("_API_KEY=kiln-"), std::string::npos) << outputs;
    // No file the agent can read holds it, though the search finds the fixed file.
    const auto [keyFiles, controlFiles] = filesFound(outputs);
    EXPECT_EQ(keyFiles, "") << outputs;
    EXPECT_NE(controlFiles.find("/workspace/hello.py"), std::string::npos) << outputs;
    EXPECT_EQ(outputs.find(kUpstreamKey), std::string::npos);
    EXPECT_EQ(s.dump().find(kUpstreamKey), std::string::npos);
    EXPECT_EQ(storeBytes().find(kUpstreamKey), std::string::npos);
    EXPECT_EQ(terminal_.find(kUpstreamKey), std::string::npos);

    // Every model call reached the upstream with the real key; the job's cost is the gateway's.
    auto requests = llm_->requests();
    ASSERT_FALSE(requests.empty());
    for (const auto& r : requests) {
      const json& h = r["headers"];
      EXPECT_TRUE(h.value("x-api-key", "") == kUpstreamKey ||
                  h.value("authorization", "") == std::string("Bearer ") + kUpstreamKey)
          << h.dump();
    }
    json job = get("/api/v1/jobs/" + id);
    EXPECT_GT(job.value("tokenSpendUsd", 0.0), 0.0) << job.dump();
    double stepsUsd = 0;
    for (const auto& st : s) stepsUsd += st.value("usd", 0.0);
    EXPECT_NEAR(stepsUsd, job.value("tokenSpendUsd", 0.0), 1e-9);
  }

  TempDir dir_;
  std::unique_ptr<FakeLlm> llm_;
  std::unique_ptr<KilnProcess> kiln_;
  std::unique_ptr<HttpClient> client_;
  std::string terminal_;
  std::string seen_;  // the id of the last event waitDone saw
};

TEST_F(RealCliTest, ClaudeCodeFixesABugThroughTheGateway) {
  startKiln(json::array({
      claudeRead(),
      claudeEdit(),
      claudeRunTest(),
      call("Check the environment.", "Bash",
           {{"command", kShowEnv}, {"description", "Show the environment"}}),
      answer("Fixed the greeting; the test passes."),
  }));
  std::string id = createJob(
      {{"taskDesc", "Make the test pass"}, {"agent", "claude"}, {"model", "claude-sonnet-4-5"}});
  ASSERT_FALSE(id.empty());
  json done = waitDone(id);
  expectFixed(id, done, {"Read", "Edit", "Bash"});
  EXPECT_EQ(done.value("summary", ""), "Fixed the greeting; the test passes.");
  // Five calls of claude-sonnet-4-5 ($3/M in, $15/M out): 5 x 2000 in, 4 x 200 + 100 out.
  json job = get("/api/v1/jobs/" + id);
  EXPECT_NEAR(job.value("tokenSpendUsd", 0.0),
              llm::PriceTable::defaults().costUsd("claude-sonnet-4-5", 10000, 900), 1e-9)
      << job.dump();
  EXPECT_EQ(mainCalls().size(), 5u);
  // Every call the upstream answered is on /metrics, with its tokens and spend.
  auto metrics = client_->get("/metrics");
  ASSERT_TRUE(metrics.isOk());
  EXPECT_NE(metrics->body.find("kiln_gateway_calls_total{api=\"anthropic\",status=\"200\"} " +
                               std::to_string(llm_->requests().size()) + "\n"),
            std::string::npos)
      << metrics->body;
  EXPECT_NE(metrics->body.find("kiln_gateway_usd_total{api=\"anthropic\"} 0.0"), std::string::npos)
      << metrics->body;
}

// Claude Code's preset runs in --bare mode, which reads no instruction file and no MCP
// configuration: kiln gives it the repo's AGENTS.md (in its system prompt) and the job's MCP
// servers, which Claude Code starts in the sandbox and calls by the same mcp__<server>__<tool>
// names as kiln's own loop.
TEST_F(RealCliTest, ClaudeCodeGetsTheReposAgentsMdAndTheJobsMcpServers) {
  if (std::string why = missingMcpServer(); !why.empty()) GTEST_SKIP() << why;
  ASSERT_EQ(shell("cd " + dir_.file("repo") +
                  " && printf 'Always greet the whole world.\\n' > AGENTS.md && git add -A && "
                  "git -c user.name=t -c user.email=t@t commit -qm agents"),
            0);
  startKiln(json::array({
      call("Write it through the MCP server.", "mcp__fs__write_file",
           {{"path", "/workspace/from-mcp.txt"}, {"content", "written by Claude Code via MCP\n"}}),
      answer("Wrote the file."),
  }));
  const std::string id = runMcpJob("claude", "claude-sonnet-4-5");
  ASSERT_FALSE(id.empty());
  std::vector<json> calls = mainCalls();
  ASSERT_GE(calls.size(), 2u);
  const std::string first = calls[0]["body"].dump();
  EXPECT_NE(first.find("Always greet the whole world."), std::string::npos)
      << "AGENTS.md in the system prompt: " << first.substr(0, 4000);
  EXPECT_NE(first.find("mcp__fs__write_file"), std::string::npos) << first.substr(0, 4000);
  EXPECT_NE(calls[1]["body"].dump().find("Successfully wrote to /workspace/from-mcp.txt"),
            std::string::npos)
      << calls[1]["body"].dump().substr(0, 4000);
  auto d = client_->get("/api/v1/jobs/" + id + "/diff");
  ASSERT_TRUE(d.isOk());
  EXPECT_NE(d->body.find("+written by Claude Code via MCP"), std::string::npos) << d->body;
  // A job of another agent CLI, or of claude with its own command, is refused them.
  for (const json& other :
       {json{{"agent", "cursor"}}, json{{"agent", "claude"}, {"command", {"claude", "-p"}}}}) {
    json body = other;
    body["taskDesc"] = "t";
    body["repoUrl"] = dir_.file("repo");
    body["mcpServers"] = json::array({kFsServer});
    auto r = client_->postJson("/api/v1/jobs", body);
    ASSERT_TRUE(r.isOk());
    EXPECT_EQ(r->status, 400) << r->body;
  }
}

TEST_F(RealCliTest, CodexFixesABugThroughTheGateway) {
  startKiln(json::array({
      call("Let me read the code.", "exec_command", {{"cmd", "cat hello.py"}}),
      call("The greeting lacks its comma.", "exec_command",
           {{"cmd", "sed -i 's/return \"hello\"/return \"hello, world\"/' hello.py"}}),
      call("Run the test.", "exec_command", {{"cmd", "python3 test_hello.py"}}),
      call("Check the environment.", "exec_command", {{"cmd", kShowEnv}}),
      answer("Fixed the greeting; the test passes."),
  }));
  std::string id =
      createJob({{"taskDesc", "Make the test pass"}, {"agent", "codex"}, {"model", "gpt-5"}});
  ASSERT_FALSE(id.empty());
  json done = waitDone(id);
  expectFixed(id, done, {"command_execution"});
  EXPECT_EQ(done.value("summary", ""), "Fixed the greeting; the test passes.");
  for (const auto& r : llm_->requests()) EXPECT_EQ(r["path"], "/v1/responses");
}

// Codex reads AGENTS.md itself; kiln tells it of the job's MCP servers (-c mcp_servers.*), which
// it starts in the sandbox and offers the model as a namespace mcp__<server> of their tools.
TEST_F(RealCliTest, CodexGetsTheJobsMcpServers) {
  if (std::string why = missingMcpServer(); !why.empty()) GTEST_SKIP() << why;
  startKiln(json::array({
      {{"thought", "Write it through the MCP server."},
       {"tool_calls",
        {{{"name", "write_file"},
          {"namespace", "mcp__fs"},
          {"arguments",
           {{"path", "/workspace/from-mcp.txt"}, {"content", "written by Codex via MCP\n"}}}}}},
       {"usage", {{"in", 2000}, {"out", 200}}}},
      answer("Wrote the file."),
  }));
  const std::string id = runMcpJob("codex", "gpt-5");
  ASSERT_FALSE(id.empty());
  std::vector<json> calls = mainCalls();
  ASSERT_GE(calls.size(), 2u);
  const std::string first = calls[0]["body"].dump();
  // Codex offers a server's tools as a namespace, mcp__<server>, of functions.
  json offered;
  for (const json& t : calls[0]["body"].value("tools", json::array()))
    if (t.value("type", "") == "namespace" && t.value("name", "") == "mcp__fs") offered = t;
  ASSERT_TRUE(offered.is_object()) << first.substr(0, 6000);
  EXPECT_NE(offered.dump().find("\"write_file\""), std::string::npos) << offered.dump();
  auto d = client_->get("/api/v1/jobs/" + id + "/diff");
  ASSERT_TRUE(d.isOk());
  EXPECT_NE(d->body.find("+written by Codex via MCP"), std::string::npos)
      << d->body << "\n"
      << calls[1]["body"].dump().substr(0, 6000);
  // Codex reports the call (an mcp_tool_call item): a step named server.tool.
  bool recorded = false;
  for (const json& st : steps(id)) recorded = recorded || st["toolCalled"] == "fs.write_file";
  EXPECT_TRUE(recorded) << steps(id).dump();
}

TEST_F(RealCliTest, MaxUsdStopsClaudeCodeMidRunAndNoCallPassesAfterIt) {
  // Each call costs $0.009 (claude-sonnet-4-5, 2000 in, 200 out): the third reaches $0.027,
  // past the $0.02 cap, and the fourth is refused.
  startKiln(lookAround(8));
  std::string id = createJob({{"taskDesc", "Make the test pass"},
                              {"agent", "claude"},
                              {"model", "claude-sonnet-4-5"},
                              {"limits", {{"maxUsd", 0.02}}}});
  ASSERT_FALSE(id.empty());
  json done = waitDone(id);
  ASSERT_EQ(done.value("status", ""), "FAILED") << done.dump() << terminal_ << kiln_->log();
  EXPECT_EQ(done["error"].value("code", ""), "budget_exceeded") << done.dump();
  EXPECT_EQ(done["error"].value("limit", ""), "maxUsd") << done.dump();
  EXPECT_EQ(mainCalls().size(), 3u);
  json job = get("/api/v1/jobs/" + id);
  const double spent = job.value("tokenSpendUsd", 0.0);
  EXPECT_GE(spent, 0.02) << job.dump();
  EXPECT_LT(spent, 0.02 + 0.009) << job.dump();
}

// The tenant's usdPerDay holds an agent CLI too: its run's calls stop at what the tenant had
// left, and the job ends quota_exceeded.
TEST_F(RealCliTest, ATenantsDailyQuotaStopsClaudeCodeMidRun) {
  // Each call costs $0.009 (claude-sonnet-4-5, 2000 in, 200 out): the second reaches $0.018,
  // past the tenant's $0.015 a day, and the third is refused.
  startKiln(lookAround(6));
  auto set = client_->postJson("/api/v1/tenants/default/quota", {{"usdPerDay", 0.015}});
  ASSERT_TRUE(set.isOk());
  ASSERT_EQ(set->status, 200) << set->body;
  std::string id =
      createJob({{"taskDesc", "Look around"}, {"agent", "claude"}, {"model", "claude-sonnet-4-5"}});
  ASSERT_FALSE(id.empty());
  json done = waitDone(id);
  ASSERT_EQ(done.value("status", ""), "FAILED") << done.dump() << terminal_ << kiln_->log();
  EXPECT_EQ(done["error"].value("code", ""), "quota_exceeded") << done.dump();
  EXPECT_EQ(done["error"].value("quota", ""), "usdPerDay") << done.dump();
  EXPECT_EQ(mainCalls().size(), 2u);
}

// The session id Claude Code sends with every call (metadata.user_id ends in session_<id>).
std::string sessionOf(const json& request) {
  const std::string user = request["body"]["metadata"].value("user_id", "");
  const size_t at = user.rfind("session_");
  return at == std::string::npos ? "" : user.substr(at + 8);
}

TEST_F(RealCliTest, ContinueResumesTheSameClaudeSession) {
  startKiln(json::array({
      claudeRead(),
      claudeEdit(),
      answer("Fixed the greeting."),
      answer("The test passes already; nothing more to do."),
  }));
  std::string id = createJob(
      {{"taskDesc", "Make the test pass"}, {"agent", "claude"}, {"model", "claude-sonnet-4-5"}});
  ASSERT_FALSE(id.empty());
  json done = waitDone(id);
  ASSERT_EQ(done.value("status", ""), "COMPLETED") << done.dump() << terminal_ << kiln_->log();
  auto first = mainCalls();
  ASSERT_EQ(first.size(), 3u);
  const std::string session = sessionOf(first[0]);
  ASSERT_FALSE(session.empty()) << first[0]["body"]["metadata"].dump();

  auto r = client_->postJson("/api/v1/jobs/" + id + "/continue",
                             {{"taskDesc", "Does the test pass now?"}});
  ASSERT_TRUE(r.isOk());
  ASSERT_EQ(r->status, 200) << r->body;
  done = waitDone(id);
  ASSERT_EQ(done.value("status", ""), "COMPLETED") << done.dump() << terminal_ << kiln_->log();
  auto all = mainCalls();
  ASSERT_EQ(all.size(), 4u);
  // The follow-up went to the same session, with the first run's conversation before it.
  EXPECT_EQ(sessionOf(all[3]), session);
  const std::string messages = all[3]["body"]["messages"].dump();
  EXPECT_NE(messages.find("Make the test pass"), std::string::npos) << messages;
  EXPECT_NE(messages.find("Does the test pass now?"), std::string::npos) << messages;
  EXPECT_NE(messages.find("The greeting lacks its comma."), std::string::npos) << messages;
  EXPECT_EQ(done.value("summary", ""), "The test passes already; nothing more to do.");
}

// A crash mid-run (kill -9 of kiln while Claude Code waits on its second model call): the node
// that takes the job over restores the session kiln kept after the CLI's first step and resumes
// it, rather than starting the CLI blind.
TEST_F(RealCliTest, ATakeoverAfterACrashResumesTheSameClaudeSession) {
  startKiln(json::array({
      claudeRead(),
      call("Look around.", "Bash", {{"command", "sleep 1; ls"}, {"description", "List files"}}),
      {{"hang", 120}},  // the third call never answers: kiln dies meanwhile
      claudeEdit(),
      answer("Fixed the greeting."),
  }));
  std::string id = createJob(
      {{"taskDesc", "Make the test pass"}, {"agent", "claude"}, {"model", "claude-sonnet-4-5"}});
  ASSERT_FALSE(id.empty());
  // The session was kept with the job during the run, and the CLI waits on its third call.
  bool kept = false;
  for (auto deadline = std::chrono::steady_clock::now() + 90s;
       !kept && std::chrono::steady_clock::now() < deadline;) {
    for (const auto& step : steps(id)) kept = kept || step.value("phase", "") == "session";
    kept = kept && mainCalls().size() >= 3;
    if (!kept) std::this_thread::sleep_for(100ms);
  }
  ASSERT_TRUE(kept) << steps(id).dump() << kiln_->log();
  const std::string session = sessionOf(mainCalls()[0]);
  ASSERT_FALSE(session.empty());

  kiln_->kill(SIGKILL);
  kiln_->restart();  // a new node id: it takes the job over once the dead node's lease lapses
  client_ = std::make_unique<HttpClient>("127.0.0.1", kiln_->port());
  client_->setBearer(kiln_->token());
  json done = waitDone(id);
  ASSERT_EQ(done.value("status", ""), "COMPLETED") << done.dump() << terminal_ << kiln_->log();
  auto all = mainCalls();
  ASSERT_GE(all.size(), 5u);
  // The resumed run's calls belong to the first run's session and carry its conversation.
  EXPECT_EQ(sessionOf(all[3]), session);
  const std::string messages = all[3]["body"]["messages"].dump();
  EXPECT_NE(messages.find("Let me read the code."), std::string::npos) << messages;
  // The fix went in after the takeover.
  auto diff = client_->get("/api/v1/jobs/" + id + "/diff");
  ASSERT_TRUE(diff.isOk());
  EXPECT_NE(diff->body.find("+    return \"hello, world\""), std::string::npos) << diff->body;
}

TEST_F(RealCliTest, AcpClaudeCodeFixesABugAndWaitsForApprovalBeforeBash) {
  startKiln(json::array({
      claudeRead(),
      claudeEdit(),
      claudeRunTest(),
      answer("Fixed the greeting; the test passes."),
  }));
  std::string id = createJob({{"taskDesc", "Make the test pass"},
                              {"agent", "acp"},
                              {"command", {"claude-code-acp"}},
                              {"approvals", {"bash"}}});
  ASSERT_FALSE(id.empty());
  auto sse = openStream(id);
  ASSERT_TRUE(sse);
  std::vector<SseEvent> events = sse->readUntil("question", 180s);
  ASSERT_FALSE(events.empty()) << kiln_->log();
  ASSERT_EQ(events.back().type, "question") << events.back().data << kiln_->log();
  json q = events.back().json();
  EXPECT_EQ(q.value("kind", ""), "approval");
  EXPECT_EQ(q.value("action", ""), "bash");
  EXPECT_NE(q.value("question", "").find("python3 test_hello.py"), std::string::npos) << q;
  // Paused before the command: the model has not seen its result.
  EXPECT_EQ(get("/api/v1/jobs/" + id).value("status", ""), "PAUSED");
  EXPECT_EQ(mainCalls().size(), 3u);
  json before = steps(id);
  for (const auto& st : before) EXPECT_NE(st.value("toolCalled", ""), "Bash") << st.dump();

  auto approved = client_->postJson("/api/v1/jobs/" + id + "/approve", json::object());
  ASSERT_TRUE(approved.isOk());
  ASSERT_EQ(approved->status, 200) << approved->body;
  json done = waitDone(id);
  ASSERT_EQ(done.value("status", ""), "COMPLETED") << done.dump() << terminal_ << kiln_->log();
  EXPECT_EQ(mainCalls().size(), 4u);
  auto diff = client_->get("/api/v1/jobs/" + id + "/diff");
  ASSERT_TRUE(diff.isOk());
  EXPECT_NE(diff->body.find("+    return \"hello, world\""), std::string::npos) << diff->body;
  json s = steps(id);
  std::map<std::string, json> byTool;
  for (const auto& st : s) byTool[st.value("toolCalled", "")] = st;
  std::string calls;
  for (const auto& c : llm_->requests()) {
    calls += c.dump().substr(0, 300) + " ... " +
             c["body"]["messages"].back().dump().substr(0, 1500) + "\n";
  }
  ASSERT_TRUE(byTool.count("Read") && byTool.count("Edit") && byTool.count("Bash"))
      << s.dump(1) << terminal_ << calls;
  EXPECT_NE(byTool["Bash"].value("toolOutput", "").find("test ok"), std::string::npos);
  EXPECT_EQ(byTool["Bash"]["toolArguments"].value("command", ""), "python3 test_hello.py");
  EXPECT_GT(get("/api/v1/jobs/" + id).value("tokenSpendUsd", 0.0), 0.0);
  EXPECT_EQ(storeBytes().find(kUpstreamKey), std::string::npos);
}

}  // namespace
}  // namespace kiln::testing
