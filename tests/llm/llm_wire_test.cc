// History as the model wrote it: recorded responses (tests/llm/fixtures/, in the providers' real
// formats) are replayed by the fake server, whole, byte at a time and with CR, LF or CRLF line
// ends; the parsed turn goes through the runner's step builders, a real SQLite store and the
// context rebuild, and the request kiln sends next is asserted as the server logged it: one
// assistant message with every parallel call, the provider's ids, the argument bytes exactly as
// delivered, all results after it in order; refusals sent back as refusals.
#include <gtest/gtest.h>

#include "agent/context.h"
#include "common/ids.h"
#include "llm/llm_test_util.h"
#include "store/store.h"
#include "support/fake_llm.h"
#include "support/temp_dir.h"

namespace kiln::llm {
namespace {

using agent::ModelTurn;
using nlohmann::json;
using namespace kiln::llm::testing;

// What the recorded parallel-call responses deliver (both providers' fixtures carry the same).
const char* const kBashArgs = R"({"command": "ls -la src", "timeout_s": 30})";
const char* const kReadArgs = R"({"path":"src/main.py","start_line":10,  "end_line": 20})";

std::string fixture(const std::string& name) {
  return std::string(KILN_SOURCE_DIR) + "/tests/llm/fixtures/" + name;
}

struct Replay {
  Api api;
  std::string file;     // under tests/llm/fixtures/
  int chunk = 0;        // bytes per write; 0: the server's default
  std::string newline;  // "", "lf", "crlf" or "cr"
  bool stream() const { return file.size() > 4 && file.substr(file.size() - 4) == ".sse"; }
};

// Names the case in test output (gtest would print the struct's bytes, which change run to run).
void PrintTo(const Replay& r, std::ostream* os) {
  *os << r.file << (r.chunk ? " chunk " + std::to_string(r.chunk) : "")
      << (r.newline.empty() ? "" : " " + r.newline);
}

Replay replay(Api api, std::string file, int chunk = 0, std::string newline = "") {
  return Replay{api, std::move(file), chunk, std::move(newline)};
}

// The second request's script: a plain finish, so the turn after the replayed one completes.
json script(const Replay& r) {
  json first = {{"replay", fixture(r.file)}, {"chunk", r.chunk}};
  if (!r.newline.empty()) first["newline"] = r.newline;
  json finish = {
      {"thought", "done"},
      {"tool_calls", json::array({{{"name", "finish"}, {"arguments", {{"summary", "ok"}}}}})}};
  return json::array({first, finish});
}

class LlmWireTest : public ::testing::TestWithParam<Replay> {
 protected:
  void SetUp() override {
    auto s = store::Store::open({"sqlite:" + dir_.file("kiln.db")});
    ASSERT_TRUE(s.isOk()) << s.status().toString();
    store_ = std::move(s).value();
    job_.id = newUuid();
    job_.repoUrl = "file:///tmp/repo";
    job_.taskDesc = "Fix the build.";
    ASSERT_TRUE(store_->createJob(job_, {}).isOk());
    auto claimed = store_->claimJob("node", 1'000, 600'000);
    ASSERT_TRUE(claimed.isOk() && claimed->has_value());
    lease_ = {"node", (*claimed)->leaseEpoch};
  }

  // Replays the recording as turn one, stores its steps as the runner does, rebuilds the
  // context from the store and sends turn two; returns what the server logged for it.
  json replayAndContinue(ModelTurn& first, const std::vector<std::string>& outputs) {
    const Replay& r = GetParam();
    llm_ = std::make_unique<kiln::testing::FakeLlm>(script(r), dir_.path());
    auto provider =
        makeTestProvider(r.api, testConfig(r.api, llm_->url(), r.stream()), io_.get_executor());
    auto turn = runTurn(io_, *provider, agent::initialContext(job_));
    EXPECT_TRUE(turn.isOk()) << turn.status().toString();
    if (!turn.isOk()) return json();
    first = *turn;
    std::vector<store::Step> steps;
    if (first.calls.empty()) steps.push_back(agent::talkStep(first, 1));
    for (size_t i = 0; i < first.calls.size(); ++i) {
      steps.push_back(agent::callStep(first, i, static_cast<int>(i) + 1));
      steps.back().toolOutput = i < outputs.size() ? outputs[i] : "";
    }
    for (auto& s : steps) {
      s.jobId = job_.id;
      EXPECT_TRUE(store_->recordStep(s, lease_, {}).isOk());
    }
    auto stored = store_->listSteps(job_.id);
    EXPECT_TRUE(stored.isOk());
    auto second = runTurn(io_, *provider, agent::rebuildContext(job_, *stored));
    EXPECT_TRUE(second.isOk()) << second.status().toString();
    auto reqs = llm_->requests();
    EXPECT_EQ(reqs.size(), 2u);
    return reqs.size() == 2 ? reqs[1] : json();
  }

  kiln::testing::TempDir dir_;
  asio::io_context io_;
  std::unique_ptr<store::Store> store_;
  std::unique_ptr<kiln::testing::FakeLlm> llm_;
  store::Job job_;
  store::Lease lease_;
};

class ParallelCalls : public LlmWireTest {};

TEST_P(ParallelCalls, GoBackInOneMessageWithTheirIdsAndArgumentBytes) {
  const bool openai = GetParam().api == Api::kOpenAi;
  const std::string id0 = openai ? "call_Xq81mZ0aYtH2fD" : "toolu_01A9sKx3LmQe7Rw";
  const std::string id1 = openai ? "call_Pz7RkW3nBv9sLe" : "toolu_01Bv4TnY8pWz2Hd";
  ModelTurn t;
  json req = replayAndContinue(t, {"total 8\nmain.py", "print('hi')"});
  ASSERT_FALSE(req.is_null());

  EXPECT_EQ(t.thought, "Checking both.");
  ASSERT_EQ(t.calls.size(), 2u);
  EXPECT_EQ(t.calls[0].id, id0);
  EXPECT_EQ(t.calls[0].rawArguments, kBashArgs);
  EXPECT_EQ(t.calls[0].arguments["command"], "ls -la src");
  EXPECT_EQ(t.calls[1].id, id1);
  EXPECT_EQ(t.calls[1].rawArguments, kReadArgs);
  EXPECT_FALSE(t.refusal);
  // Anthropic: message_delta's running totals replace message_start's (input and cache too).
  EXPECT_EQ(t.tokensIn, openai ? 812 : 12 + 640 + 2048);
  EXPECT_EQ(t.tokensOut, openai ? 64 : 118);

  const json& m = req["body"]["messages"];
  const std::string raw = req["raw"];
  if (openai) {
    ASSERT_EQ(m.size(), 5u) << m.dump(2);  // system, user, assistant, tool, tool
    EXPECT_EQ(m[2]["role"], "assistant");
    EXPECT_EQ(m[2]["content"], "Checking both.");
    ASSERT_EQ(m[2]["tool_calls"].size(), 2u);
    EXPECT_EQ(m[2]["tool_calls"][0]["id"], id0);
    EXPECT_EQ(m[2]["tool_calls"][0]["function"]["name"], "bash");
    EXPECT_EQ(m[2]["tool_calls"][0]["function"]["arguments"], kBashArgs);
    EXPECT_EQ(m[2]["tool_calls"][1]["id"], id1);
    EXPECT_EQ(m[2]["tool_calls"][1]["function"]["arguments"], kReadArgs);
    EXPECT_EQ(m[3]["role"], "tool");
    EXPECT_EQ(m[3]["tool_call_id"], id0);
    EXPECT_EQ(m[3]["content"], "total 8\nmain.py");
    EXPECT_EQ(m[4]["tool_call_id"], id1);
    EXPECT_EQ(m[4]["content"], "print('hi')");
  } else {
    ASSERT_EQ(m.size(), 3u) << m.dump(2);  // user, assistant, user
    ASSERT_EQ(m[1]["content"].size(), 3u);
    EXPECT_EQ(m[1]["content"][0]["text"], "Checking both.");
    EXPECT_EQ(m[1]["content"][1]["type"], "tool_use");
    EXPECT_EQ(m[1]["content"][1]["id"], id0);
    EXPECT_EQ(m[1]["content"][2]["id"], id1);
    // The inputs are the model's bytes, not a re-serialization (key order, spacing).
    EXPECT_NE(raw.find(std::string("\"input\":") + kBashArgs), std::string::npos) << raw;
    EXPECT_NE(raw.find(std::string("\"input\":") + kReadArgs), std::string::npos) << raw;
    ASSERT_EQ(m[2]["content"].size(), 2u);
    EXPECT_EQ(m[2]["content"][0]["tool_use_id"], id0);
    EXPECT_EQ(m[2]["content"][0]["content"], "total 8\nmain.py");
    EXPECT_EQ(m[2]["content"][1]["tool_use_id"], id1);
  }
}

INSTANTIATE_TEST_SUITE_P(
    Recorded, ParallelCalls,
    ::testing::Values(replay(Api::kOpenAi, "openai_parallel_tool_calls.sse"),
                      replay(Api::kOpenAi, "openai_parallel_tool_calls.sse", 1, "cr"),
                      replay(Api::kOpenAi, "openai_parallel_tool_calls.sse", 3, "crlf"),
                      replay(Api::kOpenAi, "openai_parallel_tool_calls.json"),
                      replay(Api::kAnthropic, "anthropic_parallel_tool_use.sse"),
                      replay(Api::kAnthropic, "anthropic_parallel_tool_use.sse", 1, "cr"),
                      replay(Api::kAnthropic, "anthropic_parallel_tool_use.sse", 3, "crlf"),
                      replay(Api::kAnthropic, "anthropic_parallel_tool_use.json", 1)));

class Refusals : public LlmWireTest {};

TEST_P(Refusals, AreTheTurnsTextAndGoBackAsRefusals) {
  const bool openai = GetParam().api == Api::kOpenAi;
  ModelTurn t;
  json req = replayAndContinue(t, {});
  ASSERT_FALSE(req.is_null());
  EXPECT_TRUE(t.refusal);
  EXPECT_TRUE(t.calls.empty());
  const std::string text = openai ? "I'm sorry, but I can't assist with that request."
                                  : "Here is how\n\nThis request was refused due to policy.";
  EXPECT_EQ(t.thought, text);

  auto steps = store_->listSteps(job_.id);
  ASSERT_TRUE(steps.isOk());
  ASSERT_EQ(steps->size(), 1u);
  EXPECT_TRUE((*steps)[0].refusal);
  EXPECT_EQ((*steps)[0].plannerThought, text);

  const json& m = req["body"]["messages"];
  if (openai) {
    ASSERT_EQ(m.size(), 4u) << m.dump(2);
    EXPECT_EQ(m[2]["role"], "assistant");
    EXPECT_TRUE(m[2]["content"].is_null());
    EXPECT_EQ(m[2]["refusal"], text);
    EXPECT_EQ(m[3]["role"], "user");
  } else {
    EXPECT_EQ(t.tokensIn, 20);
    EXPECT_EQ(t.tokensOut, 120);
    ASSERT_EQ(m.size(), 3u) << m.dump(2);
    EXPECT_EQ(m[1]["role"], "assistant");
    EXPECT_EQ(m[1]["content"][0]["text"], text);
  }
}

// The OpenAI stream ends after finish_reason without [DONE], the Anthropic one after the stop
// message_delta without message_stop: both are complete turns.
INSTANTIATE_TEST_SUITE_P(
    Recorded, Refusals,
    ::testing::Values(replay(Api::kOpenAi, "openai_refusal_no_done.sse"),
                      replay(Api::kOpenAi, "openai_refusal_no_done.sse", 1, "cr"),
                      replay(Api::kOpenAi, "openai_refusal.json"),
                      replay(Api::kAnthropic, "anthropic_refusal_no_stop.sse"),
                      replay(Api::kAnthropic, "anthropic_refusal_no_stop.sse", 1, "crlf")));

// A proxy that gives a tool input whole in content_block_start, with no input_json_delta.
class InputAtStart : public LlmWireTest {};

TEST_P(InputAtStart, IsTheCallsArguments) {
  ModelTurn t;
  json req = replayAndContinue(t, {"ok"});
  ASSERT_FALSE(req.is_null());
  ASSERT_EQ(t.calls.size(), 1u);
  EXPECT_EQ(t.calls[0].arguments["command"], "make test");
  EXPECT_NE(req["raw"].get<std::string>().find(R"("input":{"command":"make test"})"),
            std::string::npos);
}

INSTANTIATE_TEST_SUITE_P(Recorded, InputAtStart,
                         ::testing::Values(replay(Api::kAnthropic,
                                                  "anthropic_input_at_start.sse")));

}  // namespace
}  // namespace kiln::llm
