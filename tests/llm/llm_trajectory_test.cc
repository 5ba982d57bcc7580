// A scripted two-turn trajectory through the real OpenAI and Anthropic providers against the fake
// server, streaming and not: the parsed turns, the accounting and what went over the wire.
#include <gtest/gtest.h>

#include "llm/llm_test_util.h"
#include "support/fake_llm.h"
#include "support/temp_dir.h"

namespace kiln::llm {
namespace {

using agent::Message;
using agent::ModelTurn;
using nlohmann::json;
using namespace kiln::llm::testing;

json twoTurnScript() {
  return json::parse(R"([
    {"thought": "Look around first.",
     "tool_calls": [{"name": "bash", "arguments": {"command": "ls -la"}},
                    {"name": "read_file", "arguments": {"path": "README.md", "start_line": 1}}],
     "usage": {"in": 100, "out": 20}},
    {"thought": "All done.",
     "tool_calls": [{"name": "finish", "arguments": {"summary": "fixed \"it\" \u00e9"}}],
     "usage": {"in": 150, "out": 10}}
  ])");
}

struct Mode {
  Api api;
  bool stream;
};

class LlmTrajectoryTest : public ::testing::TestWithParam<Mode> {
 protected:
  Api api() const { return GetParam().api; }
  bool stream() const { return GetParam().stream; }

  kiln::testing::TempDir dir_;
  asio::io_context io_;
};

void expectFirstTurn(const ModelTurn& t) {
  EXPECT_EQ(t.thought, "Look around first.");
  ASSERT_EQ(t.calls.size(), 2u);
  EXPECT_FALSE(t.calls[0].id.empty());
  EXPECT_NE(t.calls[0].id, t.calls[1].id);
  EXPECT_EQ(t.calls[0].name, "bash");
  EXPECT_EQ(t.calls[0].arguments, json::parse(R"({"command": "ls -la"})"));
  EXPECT_EQ(t.calls[1].name, "read_file");
  EXPECT_EQ(t.calls[1].arguments, json::parse(R"({"path": "README.md", "start_line": 1})"));
  EXPECT_EQ(t.tokensIn, 100);
  EXPECT_EQ(t.tokensOut, 20);
  EXPECT_DOUBLE_EQ(t.usd, (100 * 1.0 + 20 * 2.0) / 1e6);
}

// The context after turn one: both tool results, then the human's answer to a question.
std::vector<Message> secondContext(const ModelTurn& t) {
  std::vector<Message> ctx = startContext();
  Message a = message("assistant", t.thought);
  a.toolCalls = t.calls;
  ctx.push_back(a);
  ctx.push_back(toolResult(t.calls[0], "total 0\nREADME.md"));
  ctx.push_back(toolResult(t.calls[1], "# readme"));
  ctx.push_back(message("user", "The user answered: use blue."));
  return ctx;
}

void expectOpenAiWire(const json& req, const ModelTurn& t, bool stream) {
  EXPECT_EQ(req["path"], "/v1/chat/completions");
  EXPECT_EQ(req["headers"]["authorization"], "Bearer test-key");
  const json& body = req["body"];
  EXPECT_EQ(body["model"], "fake-model");
  EXPECT_EQ(body.value("stream", false), stream);
  ASSERT_EQ(body["tools"].size(), 8u);
  EXPECT_EQ(body["tools"][0]["type"], "function");
  EXPECT_EQ(body["tools"][0]["function"]["name"], "bash");
  const json& m = body["messages"];
  ASSERT_EQ(m.size(), 6u);
  EXPECT_EQ(m[0]["role"], "system");
  EXPECT_EQ(m[1]["content"], "Fix the build.");
  EXPECT_EQ(m[2]["role"], "assistant");
  ASSERT_EQ(m[2]["tool_calls"].size(), 2u);
  EXPECT_EQ(m[2]["tool_calls"][0]["id"], t.calls[0].id);
  EXPECT_EQ(m[2]["tool_calls"][0]["function"]["name"], "bash");
  EXPECT_EQ(json::parse(m[2]["tool_calls"][0]["function"]["arguments"].get<std::string>()),
            t.calls[0].arguments);
  EXPECT_EQ(m[3]["role"], "tool");
  EXPECT_EQ(m[3]["tool_call_id"], t.calls[0].id);
  EXPECT_EQ(m[3]["content"], "total 0\nREADME.md");
  EXPECT_EQ(m[4]["tool_call_id"], t.calls[1].id);
  EXPECT_EQ(m[5]["role"], "user");
  EXPECT_EQ(m[5]["content"], "The user answered: use blue.");
}

void expectAnthropicWire(const json& req, const ModelTurn& t, bool stream) {
  EXPECT_EQ(req["path"], "/v1/messages");
  EXPECT_EQ(req["headers"]["x-api-key"], "test-key");
  EXPECT_EQ(req["headers"]["anthropic-version"], "2023-06-01");
  const json& body = req["body"];
  EXPECT_EQ(body["system"], "You are a test agent.");
  EXPECT_GT(body["max_tokens"].get<int>(), 0);
  EXPECT_EQ(body.value("stream", false), stream);
  ASSERT_EQ(body["tools"].size(), 8u);
  EXPECT_EQ(body["tools"][0]["name"], "bash");
  EXPECT_EQ(body["tools"][0]["input_schema"]["type"], "object");
  const json& m = body["messages"];
  ASSERT_EQ(m.size(), 3u);  // user, assistant, user (tool results + answer merged)
  EXPECT_EQ(m[0]["role"], "user");
  EXPECT_EQ(m[0]["content"][0]["text"], "Fix the build.");
  EXPECT_EQ(m[1]["role"], "assistant");
  ASSERT_EQ(m[1]["content"].size(), 3u);
  EXPECT_EQ(m[1]["content"][0]["text"], "Look around first.");
  EXPECT_EQ(m[1]["content"][1]["type"], "tool_use");
  EXPECT_EQ(m[1]["content"][1]["id"], t.calls[0].id);
  EXPECT_EQ(m[1]["content"][1]["input"], t.calls[0].arguments);
  EXPECT_EQ(m[2]["role"], "user");
  ASSERT_EQ(m[2]["content"].size(), 3u);
  EXPECT_EQ(m[2]["content"][0]["type"], "tool_result");
  EXPECT_EQ(m[2]["content"][0]["tool_use_id"], t.calls[0].id);
  EXPECT_EQ(m[2]["content"][0]["content"], "total 0\nREADME.md");
  EXPECT_EQ(m[2]["content"][1]["tool_use_id"], t.calls[1].id);
  EXPECT_EQ(m[2]["content"][2]["text"], "The user answered: use blue.");
}

TEST_P(LlmTrajectoryTest, TwoTurnsParsedAccountedAndSent) {
  kiln::testing::FakeLlm server(twoTurnScript(), dir_.path());
  auto provider =
      makeTestProvider(api(), testConfig(api(), server.url(), stream()), io_.get_executor());

  auto first = runTurn(io_, *provider, startContext());
  ASSERT_TRUE(first.isOk()) << first.status().toString();
  expectFirstTurn(*first);

  auto second = runTurn(io_, *provider, secondContext(*first));
  ASSERT_TRUE(second.isOk()) << second.status().toString();
  EXPECT_EQ(second->thought, "All done.");
  ASSERT_EQ(second->calls.size(), 1u);
  EXPECT_EQ(second->calls[0].name, "finish");
  EXPECT_EQ(second->calls[0].arguments["summary"], "fixed \"it\" \u00e9");
  EXPECT_EQ(second->tokensIn, 150);
  EXPECT_EQ(second->tokensOut, 10);

  auto reqs = server.requests();
  ASSERT_EQ(reqs.size(), 2u);
  EXPECT_EQ(reqs[0]["body"]["messages"].size(), api() == Api::kOpenAi ? 2u : 1u);
  if (api() == Api::kOpenAi) {
    expectOpenAiWire(reqs[1], *first, stream());
  } else {
    expectAnthropicWire(reqs[1], *first, stream());
  }
}

std::string modeName(const ::testing::TestParamInfo<Mode>& info) {
  return std::string(info.param.api == Api::kOpenAi ? "OpenAi" : "Anthropic") +
         (info.param.stream ? "Streaming" : "Plain");
}

INSTANTIATE_TEST_SUITE_P(Llm, LlmTrajectoryTest,
                         ::testing::Values(Mode{Api::kOpenAi, true}, Mode{Api::kOpenAi, false},
                                           Mode{Api::kAnthropic, true},
                                           Mode{Api::kAnthropic, false}),
                         modeName);

}  // namespace
}  // namespace kiln::llm
