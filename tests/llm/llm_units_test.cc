// Pure parts of the llm module: SSE framing, retry arithmetic, price lookup, configuration.
#include <gtest/gtest.h>
#include <stdlib.h>

#include "agent/provider.h"
#include "llm/http_provider.h"
#include "llm/llm.h"
#include "llm/raw_json.h"
#include "support/temp_dir.h"

namespace kiln::llm {
namespace {

using std::chrono::milliseconds;

TEST(LlmRawJsonTest, FindsValuesByteForByte) {
  const std::string text =
      R"( {"a" : [1, {"k\"ey": "v,}]"}, {"input" : {"z": 1,  "a": [2.50, "x"]} }], "b":true} )";
  EXPECT_EQ(rawJsonAt(text, {"a", size_t{1}, "k\"ey"}),
            std::optional<std::string_view>("\"v,}]\""));
  EXPECT_EQ(rawJsonAt(text, {"a", size_t{2}, "input"}),
            std::optional<std::string_view>(R"({"z": 1,  "a": [2.50, "x"]})"));
  EXPECT_EQ(rawJsonAt(text, {"a", size_t{0}}), std::optional<std::string_view>("1"));
  EXPECT_EQ(rawJsonAt(text, {"b"}), std::optional<std::string_view>("true"));
  EXPECT_EQ(rawJsonAt(text, {"a", size_t{3}}), std::nullopt);
  EXPECT_EQ(rawJsonAt(text, {"c"}), std::nullopt);
  EXPECT_EQ(rawJsonAt(text, {"b", "x"}), std::nullopt);
  EXPECT_EQ(rawJsonAt(R"({"a": "unterminated)", {"a"}), std::nullopt);
  EXPECT_EQ(rawJsonAt("", {"a"}), std::nullopt);
}

TEST(LlmRetryTest, BackoffGrowsIsCappedAndJittered) {
  RetryPolicy p;
  p.baseDelay = milliseconds(100);
  p.maxDelay = milliseconds(1000);
  EXPECT_EQ(backoffDelay(p, 1, std::nullopt, 0.0), milliseconds(50));
  EXPECT_EQ(backoffDelay(p, 1, std::nullopt, 0.999).count(), 99);
  EXPECT_EQ(backoffDelay(p, 3, std::nullopt, 0.0), milliseconds(200));
  EXPECT_EQ(backoffDelay(p, 10, std::nullopt, 0.0), milliseconds(500));
  EXPECT_LE(backoffDelay(p, 10, std::nullopt, 0.999), milliseconds(1000));
  EXPECT_EQ(backoffDelay(p, 1, milliseconds(7000), 0.5), milliseconds(7000));
}

TEST(LlmRetryTest, RetryAfterParsing) {
  EXPECT_EQ(parseRetryAfter("3"), milliseconds(3000));
  EXPECT_EQ(parseRetryAfter("0.5"), milliseconds(500));
  EXPECT_EQ(parseRetryAfter(""), std::nullopt);
  EXPECT_EQ(parseRetryAfter("soon"), std::nullopt);
  EXPECT_EQ(parseRetryAfter("-1"), std::nullopt);
  EXPECT_EQ(parseRetryAfter("Wed, 21 Oct 2015 07:28:00 GMT"), milliseconds(0));  // in the past
}

TEST(LlmRetryTest, StatusMapping) {
  HttpResponse r;
  r.status = 200;
  EXPECT_TRUE(statusForResponse(r).isOk());
  r.status = 401;
  r.body = R"({"error": {"message": "bad key"}})";
  EXPECT_EQ(statusForResponse(r).code(), Code::kUnauthenticated);
  EXPECT_FALSE(isRetryable(statusForResponse(r), &r));
  r.status = 429;
  EXPECT_TRUE(isRetryable(statusForResponse(r), &r));
  r.body = R"({"error": {"message": "quota", "code": "insufficient_quota"}})";
  EXPECT_FALSE(isRetryable(statusForResponse(r), &r));
  r.status = 529;
  EXPECT_TRUE(isRetryable(statusForResponse(r), &r));
  r.status = 404;
  r.body = "not json";
  Status st = statusForResponse(r);
  EXPECT_EQ(st.code(), Code::kInvalidArgument);
  EXPECT_NE(st.message().find("not json"), std::string::npos);
  EXPECT_FALSE(isRetryable(st, &r));
}

TEST(LlmToolArgumentsTest, ParsedOrKeptRaw) {
  EXPECT_EQ(parseToolArguments(""), nlohmann::json::object());
  EXPECT_EQ(parseToolArguments(R"({"a": 1})")["a"], 1);
  auto bad = parseToolArguments("{\"a\": ");
  EXPECT_EQ(bad["_raw"], "{\"a\": ");
  agent::ToolCall call;
  call.arguments = bad;
  EXPECT_EQ(toolArgumentsText(call), "{\"a\": ");
  call.arguments = {{"b", 1}, {"a", 2}};
  EXPECT_EQ(toolArgumentsText(call), R"({"a":2,"b":1})");
  call.rawArguments = R"({"b": 1, "a": 2})";  // the model's own text wins
  EXPECT_EQ(toolArgumentsText(call), R"({"b": 1, "a": 2})");
  EXPECT_TRUE(parseToolArguments("[1, 2]").contains("_error"));
  EXPECT_EQ(dumpJson(nlohmann::json(std::string("\xff\xfe ok"))).find("ok") != std::string::npos,
            true);
}

TEST(LlmPricingTest, ExactPrefixAndFallback) {
  PriceTable t = PriceTable::defaults();
  EXPECT_DOUBLE_EQ(t.lookup("gpt-4o").inPerMillion, 2.5);
  EXPECT_DOUBLE_EQ(t.lookup("gpt-4o-mini-2024-07-18").inPerMillion, 0.15);
  EXPECT_DOUBLE_EQ(t.lookup("claude-3-5-sonnet-20241022").outPerMillion, 15.0);
  EXPECT_DOUBLE_EQ(t.lookup("openai/gpt-4o-mini").inPerMillion, 0.15);
  EXPECT_DOUBLE_EQ(t.lookup("llama3:8b").inPerMillion, t.lookup("*").inPerMillion);
  EXPECT_DOUBLE_EQ(t.costUsd("gpt-4o", 1'000'000, 1'000'000), 12.5);
}

TEST(LlmPricingTest, OverridesFromJson) {
  PriceTable t = PriceTable::defaults();
  ASSERT_TRUE(t.mergeJson(R"({"llama3": {"in": 0, "out": 0}, "*": {"in": 1, "out": 1}})").isOk());
  EXPECT_DOUBLE_EQ(t.costUsd("llama3:8b", 1000, 1000), 0.0);
  EXPECT_DOUBLE_EQ(t.lookup("mystery").inPerMillion, 1.0);
  EXPECT_FALSE(t.mergeJson(R"({"x": {"in": "cheap"}})").isOk());
  EXPECT_FALSE(t.mergeJson("[").isOk());
  kiln::testing::TempDir dir;
  EXPECT_EQ(t.mergeFile(dir.file("missing.json")).code(), Code::kNotFound);
}

class LlmConfigTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (const char* v : kVars) {
      if (const char* old = getenv(v)) saved_.emplace_back(v, old);
      unsetenv(v);
    }
  }
  void TearDown() override {
    for (const char* v : kVars) unsetenv(v);
    for (auto& [k, v] : saved_) setenv(k.c_str(), v.c_str(), 1);
  }
  static constexpr const char* kVars[] = {"OPENAI_API_KEY", "OPENAI_BASE_URL", "ANTHROPIC_API_KEY",
                                          "ANTHROPIC_BASE_URL"};
  std::vector<std::pair<std::string, std::string>> saved_;
};

TEST_F(LlmConfigTest, HostedApiNeedsAKey) {
  agent::ProviderSettings s;
  s.agent = "openai";
  auto cfg = configFromEnv(Api::kOpenAi, s);
  ASSERT_FALSE(cfg.isOk());
  EXPECT_EQ(cfg.status().code(), Code::kInvalidArgument);
  EXPECT_NE(cfg.status().message().find("OPENAI_API_KEY"), std::string::npos);
  EXPECT_FALSE(agent::makeProvider(s, asio::system_executor()).isOk());
}

TEST_F(LlmConfigTest, DefaultsAndSpec) {
  setenv("ANTHROPIC_API_KEY", "k", 1);
  agent::ProviderSettings s;
  s.agent = "anthropic";
  s.spec = nlohmann::json::parse(R"({"stream": false, "max_tokens": 1000})");
  auto cfg = configFromEnv(Api::kAnthropic, s);
  ASSERT_TRUE(cfg.isOk()) << cfg.status().toString();
  EXPECT_EQ(cfg->baseUrl, "https://api.anthropic.com");
  EXPECT_EQ(cfg->apiKey, "k");
  EXPECT_FALSE(cfg->stream);
  EXPECT_EQ(cfg->maxTokens, 1000);
  EXPECT_FALSE(cfg->model.empty());
  s.spec = nlohmann::json::parse(R"({"stream": "yes"})");
  EXPECT_FALSE(configFromEnv(Api::kAnthropic, s).isOk());
}

TEST_F(LlmConfigTest, CompatibleServerNeedsNoKey) {
  setenv("OPENAI_BASE_URL", "http://localhost:11434/v1/", 1);
  agent::ProviderSettings s;
  s.agent = "openai";
  s.model = "llama3";
  auto cfg = configFromEnv(Api::kOpenAi, s);
  ASSERT_TRUE(cfg.isOk()) << cfg.status().toString();
  EXPECT_EQ(cfg->baseUrl, "http://localhost:11434/v1");
  EXPECT_EQ(cfg->model, "llama3");
  EXPECT_TRUE(cfg->stream);
  auto p = agent::makeProvider(s, asio::system_executor());
  ASSERT_TRUE(p.isOk());
  EXPECT_EQ((*p)->name(), "openai");
}

}  // namespace
}  // namespace kiln::llm
