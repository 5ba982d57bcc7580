// Failure handling of the providers against the fake server: retries with backoff and
// Retry-After, credentials errors, other 4xx, cut-off streams, malformed and unknown tool calls.
#include <gtest/gtest.h>

#include "llm/llm_test_util.h"
#include "support/fake_llm.h"
#include "support/temp_dir.h"

namespace kiln::llm {
namespace {

using nlohmann::json;
using namespace kiln::llm::testing;

json okTurn() {
  return json::parse(R"({"thought": "ok", "tool_calls": [{"name": "bash",
                         "arguments": {"command": "true"}}], "usage": {"in": 5, "out": 1}})");
}

class LlmErrorsTest : public ::testing::TestWithParam<Api> {
 protected:
  Result<agent::ModelTurn> run(const json& script, LlmConfig cfg) {
    server_ = std::make_unique<kiln::testing::FakeLlm>(script, dir_.path());
    LlmConfig c = cfg;
    c.baseUrl = testConfig(GetParam(), server_->url(), true).baseUrl;
    auto provider = makeTestProvider(GetParam(), c, io_.get_executor());
    return runTurn(io_, *provider, startContext());
  }
  LlmConfig config(bool stream = true) { return testConfig(GetParam(), "", stream); }

  kiln::testing::TempDir dir_;
  asio::io_context io_;
  std::unique_ptr<kiln::testing::FakeLlm> server_;
};

TEST_P(LlmErrorsTest, RateLimitRetriedHonouringRetryAfter) {
  LlmConfig cfg = config();
  // Backoff alone would wait an hour: finishing at all shows Retry-After: 0 was used instead.
  // Without it, runTurn's deadline fails the test within a minute instead of hanging it.
  cfg.retry.baseDelay = std::chrono::hours(1);
  cfg.retry.maxDelay = std::chrono::hours(1);
  json script = json::array();
  script.push_back(json::parse(R"({"status": 429, "retry_after": 0})"));
  script.push_back(json::parse(R"({"status": 529, "retry_after": "0"})"));
  script.push_back(okTurn());
  auto turn = run(script, cfg);
  ASSERT_TRUE(turn.isOk()) << turn.status().toString();
  EXPECT_EQ(turn->calls.at(0).name, "bash");
  EXPECT_EQ(server_->requests().size(), 3u);
}

TEST_P(LlmErrorsTest, ServerErrorsRetriedWithBackoffThenSucceed) {
  json script = json::array();
  script.push_back(json::parse(R"({"status": 500})"));
  script.push_back(json::parse(R"({"status": 503})"));
  script.push_back(okTurn());
  auto turn = run(script, config());
  ASSERT_TRUE(turn.isOk()) << turn.status().toString();
  EXPECT_EQ(server_->requests().size(), 3u);
}

TEST_P(LlmErrorsTest, RetriesAreBounded) {
  LlmConfig cfg = config();
  cfg.retry.maxAttempts = 3;
  json script = json::array();
  for (int i = 0; i < 5; ++i) script.push_back(json::parse(R"({"status": 502})"));
  auto turn = run(script, cfg);
  ASSERT_FALSE(turn.isOk());
  EXPECT_EQ(turn.status().code(), Code::kUnavailable);
  EXPECT_NE(turn.status().message().find("3 attempts"), std::string::npos);
  EXPECT_EQ(server_->requests().size(), 3u);
}

TEST_P(LlmErrorsTest, UnauthorizedFailsAtOnceWithoutRetry) {
  json script = json::array();
  script.push_back(json::parse(R"({"status": 401, "message": "invalid x-api-key"})"));
  script.push_back(okTurn());
  auto turn = run(script, config());
  ASSERT_FALSE(turn.isOk());
  EXPECT_EQ(turn.status().code(), Code::kUnauthenticated);
  EXPECT_NE(turn.status().message().find("invalid x-api-key"), std::string::npos);
  EXPECT_NE(turn.status().message().find("API key"), std::string::npos);
  EXPECT_EQ(server_->requests().size(), 1u);
}

TEST_P(LlmErrorsTest, ForbiddenIsUnauthenticatedToo) {
  json script = json::array();
  script.push_back(json::parse(R"({"status": 403})"));
  auto turn = run(script, config(false));
  ASSERT_FALSE(turn.isOk());
  EXPECT_EQ(turn.status().code(), Code::kUnauthenticated);
  EXPECT_EQ(server_->requests().size(), 1u);
}

TEST_P(LlmErrorsTest, OtherClientErrorCarriesTheApiMessage) {
  json script = json::array();
  script.push_back(json::parse(R"({"status": 400, "message": "model 'x' does not exist"})"));
  script.push_back(okTurn());
  auto turn = run(script, config());
  ASSERT_FALSE(turn.isOk());
  EXPECT_EQ(turn.status().code(), Code::kInvalidArgument);
  EXPECT_NE(turn.status().message().find("model 'x' does not exist"), std::string::npos);
  EXPECT_EQ(server_->requests().size(), 1u);
}

TEST_P(LlmErrorsTest, CutOffResponseIsRetried) {
  json script = json::array();
  script.push_back(json::parse(R"({"disconnect": true})"));
  script.push_back(okTurn());
  auto turn = run(script, config());
  ASSERT_TRUE(turn.isOk()) << turn.status().toString();
  EXPECT_EQ(server_->requests().size(), 2u);
}

TEST_P(LlmErrorsTest, ConnectionRefusedIsRetriedThenReported) {
  LlmConfig cfg = config();
  cfg.retry.maxAttempts = 2;
  cfg.baseUrl = "http://127.0.0.1:1";
  auto provider = makeTestProvider(GetParam(), cfg, io_.get_executor());
  auto turn = runTurn(io_, *provider, startContext());
  ASSERT_FALSE(turn.isOk());
  EXPECT_EQ(turn.status().code(), Code::kUnavailable);
  EXPECT_NE(turn.status().message().find("2 attempts"), std::string::npos);
}

TEST_P(LlmErrorsTest, MalformedToolArgumentsKeptAsRaw) {
  for (bool stream : {true, false}) {
    json script = json::parse(R"([{"thought": "oops", "tool_calls": [
        {"name": "bash", "raw": "{\"command\": \"ls"},
        {"name": "read_file", "arguments": {"path": "a"}}]}])");
    auto turn = run(script, config(stream));
    ASSERT_TRUE(turn.isOk()) << turn.status().toString();
    ASSERT_EQ(turn->calls.size(), 2u);
    EXPECT_EQ(turn->calls[0].name, "bash");
    EXPECT_EQ(turn->calls[0].arguments["_raw"], "{\"command\": \"ls");
    EXPECT_TRUE(turn->calls[0].arguments.contains("_error"));
    EXPECT_EQ(turn->calls[1].arguments["path"], "a");
  }
}

TEST_P(LlmErrorsTest, UnknownToolNamePassesThrough) {
  json script = json::parse(R"([{"tool_calls": [
      {"name": "launch_rockets", "arguments": {"count": 3}}]}])");
  auto turn = run(script, config());
  ASSERT_TRUE(turn.isOk()) << turn.status().toString();
  ASSERT_EQ(turn->calls.size(), 1u);
  EXPECT_EQ(turn->calls[0].name, "launch_rockets");
  EXPECT_EQ(turn->calls[0].arguments["count"], 3);
}

TEST_P(LlmErrorsTest, TurnWithoutToolCall) {
  json script = json::parse(R"([{"thought": "I am thinking.", "usage": {"in": 7, "out": 3}}])");
  auto turn = run(script, config());
  ASSERT_TRUE(turn.isOk()) << turn.status().toString();
  EXPECT_EQ(turn->thought, "I am thinking.");
  EXPECT_TRUE(turn->calls.empty());
  EXPECT_EQ(turn->tokensIn, 7);
}

INSTANTIATE_TEST_SUITE_P(Llm, LlmErrorsTest, ::testing::Values(Api::kOpenAi, Api::kAnthropic),
                         [](const auto& info) {
                           return info.param == Api::kOpenAi ? "OpenAi" : "Anthropic";
                         });

}  // namespace
}  // namespace kiln::llm
