// The model gateway against the fake model server (real HTTP, real SSE) over its real unix
// socket: the placeholder key is swapped for the real one, streamed answers are relayed and
// metered, the budget and an unreachable upstream stop it.
#include "gateway/model_gateway.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "support/fake_llm.h"
#include "support/temp_dir.h"

namespace kiln::gateway {
namespace {

using nlohmann::json;
using testing::FakeLlm;
using testing::TempDir;
using UnixSocket = asio::local::stream_protocol::socket;

constexpr const char* kPlaceholder = "kiln-placeholder-123";
constexpr const char* kRealKey = "sk-real-secret-456";

struct Reply {
  int status = 0;
  std::string headers;
  std::string body;  // de-chunked
};

std::string dechunk(const std::string& raw) {
  std::string out;
  size_t pos = 0;
  while (pos < raw.size()) {
    size_t eol = raw.find("\r\n", pos);
    if (eol == std::string::npos) break;
    size_t n = std::stoul(raw.substr(pos, eol - pos), nullptr, 16);
    if (n == 0) break;
    out += raw.substr(eol + 2, n);
    pos = eol + 2 + n + 2;
  }
  return out;
}

// One request on a fresh connection (Connection: close); the whole answer.
Reply exchange(const std::string& socketPath, const std::string& method, const std::string& target,
               const std::string& body, const std::vector<std::string>& headers) {
  asio::io_context ioc;
  UnixSocket sock(ioc);
  boost::system::error_code ec;
  sock.connect(asio::local::stream_protocol::endpoint(socketPath), ec);
  if (ec) return Reply{-1, "", ec.message()};
  std::string req = method + " " + target + " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n";
  for (const auto& h : headers) req += h + "\r\n";
  req += "Content-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) +
         "\r\n\r\n" + body;
  asio::write(sock, asio::buffer(req), ec);
  std::string raw;
  char buf[4096];
  for (;;) {
    size_t n = sock.read_some(asio::buffer(buf), ec);
    raw.append(buf, n);
    if (ec) break;
  }
  Reply r;
  size_t end = raw.find("\r\n\r\n");
  if (raw.size() < 12 || end == std::string::npos) return Reply{-2, "", raw};
  r.status = std::stoi(raw.substr(9, 3));
  r.headers = raw.substr(0, end);
  r.body = raw.substr(end + 4);
  if (r.headers.find("transfer-encoding: chunked") != std::string::npos) r.body = dechunk(r.body);
  return r;
}

json turn(const std::string& text, int in, int out) {
  return {{"thought", text}, {"usage", {{"in", in}, {"out", out}}}};
}

class ModelGatewayTest : public ::testing::Test {
 protected:
  void SetUp() override {
    work_.emplace(ioc_.get_executor());
    thread_ = std::thread([this] { ioc_.run(); });
  }
  void TearDown() override {
    gateway_.reset();
    work_.reset();
    thread_.join();
  }

  void start(const json& script, GatewayBudget budget = {}) {
    llm_ = std::make_unique<FakeLlm>(script, dir_.path());
    startWith(llm_->url(), budget);
  }

  void startWith(const std::string& upstreamUrl, GatewayBudget budget) {
    GatewayOptions o;
    o.socketPath = dir_.file("llm.sock");
    o.label = "test";
    o.placeholderKey = kPlaceholder;
    o.upstreams.anthropic = Upstream{upstreamUrl, {std::string("x-api-key: ") + kRealKey}};
    o.upstreams.openai =
        Upstream{upstreamUrl + "/v1", {std::string("Authorization: Bearer ") + kRealKey}};
    o.budget = budget;
    o.prices = &prices_;
    o.onStop = [this](const GatewayStop&) { ++stops_; };
    auto g = startModelGateway(ioc_.get_executor(), o);
    ASSERT_TRUE(g.isOk()) << g.status().toString();
    gateway_ = std::move(g).value();
  }

  Reply anthropic(bool stream, const std::string& key = kPlaceholder) {
    json body = {{"model", "claude-sonnet-4-5"},
                 {"max_tokens", 100},
                 {"system", "You fix code."},
                 {"stream", stream},
                 {"messages", {{{"role", "user"}, {"content", "hi"}}}}};
    return exchange(dir_.file("llm.sock"), "POST", "/anthropic/v1/messages?beta=true", body.dump(),
                    {"x-api-key: " + key, "anthropic-version: 2023-06-01"});
  }

  TempDir dir_;
  asio::io_context ioc_;
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work_;
  std::thread thread_;
  llm::PriceTable prices_ = llm::PriceTable::defaults();
  std::unique_ptr<FakeLlm> llm_;
  std::unique_ptr<ModelGateway> gateway_;
  std::atomic<int> stops_{0};
};

TEST_F(ModelGatewayTest, StreamedAnthropicCallGoesUpstreamWithTheRealKeyAndIsMetered) {
  start(json::array({turn("Hello from the model.", 1000, 200)}));
  Reply r = anthropic(/*stream=*/true);
  ASSERT_EQ(r.status, 200) << r.headers << r.body;
  EXPECT_NE(r.headers.find("text/event-stream"), std::string::npos) << r.headers;
  EXPECT_NE(r.body.find("event: message_stop"), std::string::npos) << r.body;
  EXPECT_NE(r.body.find("text_delta"), std::string::npos) << r.body;

  auto seen = llm_->requests();
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0]["path"], "/v1/messages?beta=true");
  EXPECT_EQ(seen[0]["headers"].value("x-api-key", ""), kRealKey);
  EXPECT_EQ(seen[0]["headers"].value("anthropic-version", ""), "2023-06-01");

  auto calls = gateway_->calls();
  ASSERT_EQ(calls.size(), 1u);
  EXPECT_EQ(calls[0].status, 200);
  EXPECT_EQ(calls[0].model, "claude-sonnet-4-5");
  EXPECT_EQ(calls[0].tokensIn, 1000);
  EXPECT_EQ(calls[0].tokensOut, 200);
  EXPECT_DOUBLE_EQ(calls[0].usd, prices_.costUsd("claude-sonnet-4-5", 1000, 200));
  GatewayUsage u = gateway_->takeUsage();
  EXPECT_EQ(u.calls, 1);
  EXPECT_EQ(u.tokensIn, 1000);
  EXPECT_EQ(gateway_->takeUsage().calls, 0);  // taken once
  EXPECT_FALSE(gateway_->stopped());
}

TEST_F(ModelGatewayTest, OpenAiResponsesAndChatCallsAreRelayedAndMetered) {
  start(json::array({turn("one", 300, 30), turn("two", 50, 5)}));
  json responses = {{"model", "gpt-5"}, {"stream", true}, {"input", "hi"}};
  Reply r = exchange(dir_.file("llm.sock"), "POST", "/openai/v1/responses", responses.dump(),
                     {std::string("Authorization: Bearer ") + kPlaceholder});
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_NE(r.body.find("response.completed"), std::string::npos) << r.body;
  json chat = {{"model", "gpt-4o"}, {"messages", {{{"role", "user"}, {"content", "hi"}}}}};
  r = exchange(dir_.file("llm.sock"), "POST", "/openai/v1/chat/completions", chat.dump(),
               {std::string("Authorization: Bearer ") + kPlaceholder});
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(json::parse(r.body)["choices"][0]["message"]["content"], "two");

  auto seen = llm_->requests();
  ASSERT_EQ(seen.size(), 2u);
  EXPECT_EQ(seen[0]["path"], "/v1/responses");
  EXPECT_EQ(seen[0]["headers"].value("authorization", ""), std::string("Bearer ") + kRealKey);
  auto calls = gateway_->calls();
  ASSERT_EQ(calls.size(), 2u);
  EXPECT_EQ(calls[0].tokensIn, 300);
  EXPECT_EQ(calls[0].tokensOut, 30);
  EXPECT_EQ(calls[1].model, "gpt-4o");
  EXPECT_EQ(calls[1].tokensIn, 50);
  EXPECT_EQ(calls[1].tokensOut, 5);
}

TEST_F(ModelGatewayTest, WrongKeyIsRefusedAndNeverReachesTheUpstream) {
  start(json::array({turn("never", 1, 1)}));
  Reply r = anthropic(true, kRealKey);
  EXPECT_EQ(r.status, 401) << r.body;
  json err = json::parse(r.body, nullptr, false);
  EXPECT_EQ(err["error"].value("type", ""), "authentication_error") << r.body;
  r = exchange(dir_.file("llm.sock"), "POST", "/elsewhere/v1/messages", "{}",
               {std::string("x-api-key: ") + kPlaceholder});
  EXPECT_EQ(r.status, 404) << r.body;
  EXPECT_TRUE(llm_->requests().empty());
  EXPECT_TRUE(gateway_->calls().empty());
}

TEST_F(ModelGatewayTest, CallAfterTheBudgetIsSpentIsRefusedAndStopsTheGateway) {
  GatewayBudget budget;
  budget.maxUsd = 0.01;
  budget.spentUsd = 0.002;  // an earlier run of the job
  // $3/M in + $15/M out: 2000 in + 200 out = $0.009, over the cap with the earlier spend.
  start(json::array({turn("first", 2000, 200), turn("second", 1, 1)}), budget);
  Reply r = anthropic(false);
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_FALSE(gateway_->stopped());
  r = anthropic(false);
  EXPECT_EQ(r.status, 400) << r.body;
  json err = json::parse(r.body, nullptr, false);
  EXPECT_NE(err["error"].value("message", "").find("maxUsd"), std::string::npos);
  EXPECT_NE(err["error"].value("message", "").find("limit of $0.01"), std::string::npos) << r.body;
  EXPECT_EQ(llm_->requests().size(), 1u);
  auto stop = gateway_->stopped();
  ASSERT_TRUE(stop);
  EXPECT_EQ(stop->code, "budget_exceeded");
  EXPECT_EQ(stop->limit, "maxUsd");
  r = anthropic(false);
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(stops_.load(), 1);
  EXPECT_EQ(gateway_->calls().size(), 1u);
}

TEST_F(ModelGatewayTest, TokenBudgetCountsStreamedUsage) {
  GatewayBudget budget;
  budget.maxTokens = 500;
  start(json::array({turn("first", 400, 150), turn("second", 1, 1)}), budget);
  ASSERT_EQ(anthropic(true).status, 200);
  EXPECT_EQ(anthropic(true).status, 400);
  ASSERT_TRUE(gateway_->stopped());
  EXPECT_EQ(gateway_->stopped()->limit, "maxTokens");
}

TEST_F(ModelGatewayTest, TheTenantsDailyQuotaLeftStopsTheRunsCalls) {
  GatewayBudget budget;
  budget.spentUsd = 5;           // the job's earlier runs: not this run's, not today's quota
  budget.tenantUsdLeft = 0.015;  // $0.009 a call: the second reaches it
  start(json::array({turn("first", 2000, 200), turn("second", 2000, 200), turn("third", 1, 1)}),
        budget);
  ASSERT_EQ(anthropic(false).status, 200);
  ASSERT_EQ(anthropic(false).status, 200);
  Reply r = anthropic(false);
  EXPECT_EQ(r.status, 400) << r.body;
  EXPECT_NE(r.body.find("usdPerDay"), std::string::npos) << r.body;
  auto stop = gateway_->stopped();
  ASSERT_TRUE(stop);
  EXPECT_EQ(stop->code, "quota_exceeded");
  EXPECT_EQ(stop->limit, "usdPerDay");
  EXPECT_EQ(llm_->requests().size(), 2u);
}

TEST_F(ModelGatewayTest, UpstreamErrorAnswersPassThroughUnchanged) {
  start(json::array({json{{"status", 429}, {"message", "slow down"}, {"retry_after", 7}}}));
  Reply r = anthropic(true);
  EXPECT_EQ(r.status, 429) << r.body;
  EXPECT_NE(r.headers.find("retry-after: 7"), std::string::npos) << r.headers;
  EXPECT_NE(r.body.find("slow down"), std::string::npos);
  ASSERT_EQ(gateway_->calls().size(), 1u);
  EXPECT_EQ(gateway_->calls()[0].status, 429);
  EXPECT_FALSE(gateway_->stopped());
}

TEST_F(ModelGatewayTest, UnreachableUpstreamGives502AndStopsWithLlmError) {
  // A port that was just free: nothing listens there.
  asio::io_context probe;
  asio::ip::tcp::acceptor a(probe, {asio::ip::address_v4::loopback(), 0});
  const int port = a.local_endpoint().port();
  a.close();
  startWith("http://127.0.0.1:" + std::to_string(port), {});
  Reply r = anthropic(true);
  EXPECT_EQ(r.status, 502) << r.body;
  json err = json::parse(r.body, nullptr, false);
  EXPECT_EQ(err.value("type", ""), "error") << r.body;
  EXPECT_NE(err["error"].value("message", "").find("did not answer"), std::string::npos);
  auto stop = gateway_->stopped();
  ASSERT_TRUE(stop);
  EXPECT_EQ(stop->code, "llm_error");
  EXPECT_NE(stop->message.find("127.0.0.1:" + std::to_string(port)), std::string::npos);
  EXPECT_EQ(stops_.load(), 1);
  // Later calls are refused at once.
  EXPECT_EQ(anthropic(true).status, 503);
}

TEST(UsageMeterTest, ReadsEachWireFormatsUsage) {
  UsageMeter chat(ModelApi::kOpenAi, true);
  chat.feed("data: {\"model\":\"gpt-4o\",\"choices\":[]}\n\ndata: {\"choices\":[],\"usa");
  chat.feed("ge\":{\"prompt_tokens\":12,\"completion_tokens\":3}}\n\ndata: [DONE]\n\n");
  CallUsage u = chat.finish();
  EXPECT_EQ(u.model, "gpt-4o");
  EXPECT_EQ(u.tokensIn, 12);
  EXPECT_EQ(u.tokensOut, 3);

  UsageMeter gemini(ModelApi::kGemini, false);
  gemini.feed(R"({"candidates":[],"usageMetadata":{"promptTokenCount":7,)"
              R"("candidatesTokenCount":2,"thoughtsTokenCount":1},"modelVersion":"gemini-2.5"})");
  u = gemini.finish();
  EXPECT_EQ(u.tokensIn, 7);
  EXPECT_EQ(u.tokensOut, 3);
  EXPECT_EQ(u.model, "gemini-2.5");

  UsageMeter cached(ModelApi::kAnthropic, false);
  cached.feed(R"({"model":"claude-x","usage":{"input_tokens":5,"cache_read_input_tokens":100,)"
              R"("output_tokens":9}})");
  u = cached.finish();
  EXPECT_EQ(u.tokensIn, 105);
  EXPECT_EQ(u.tokensOut, 9);

  UsageMeter garbage(ModelApi::kAnthropic, true);
  garbage.feed("data: {not json\n\n");
  EXPECT_EQ(garbage.finish().tokensIn, 0);
}

}  // namespace
}  // namespace kiln::gateway
