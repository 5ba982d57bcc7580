// Shared pieces of the llm tests: running one provider turn to completion on an io_context, and
// the small contexts and configs the tests use.
#pragma once
#include <optional>
#include <string>
#include <vector>

#include "agent/provider.h"
#include "common/asio.h"
#include "llm/llm.h"

namespace kiln::llm::testing {

// Runs provider.next(context) on `io` until it completes, or fails once `deadline` passed
// first: a provider left waiting (a backoff of an hour, a stream that never ends) fails the test
// at once instead of hanging it. `io` must outlive the provider call it may still hold.
inline Result<agent::ModelTurn> runTurn(asio::io_context& io, agent::Provider& provider,
                                        const std::vector<agent::Message>& context,
                                        std::chrono::seconds deadline = std::chrono::seconds(60)) {
  auto out = std::make_shared<std::optional<Result<agent::ModelTurn>>>();
  auto info = std::make_shared<agent::TaskInfo>();
  asio::co_spawn(
      io,
      [out, info, &provider, context]() -> Task<void> {
        out->emplace(co_await provider.next(*info, context));
      },
      asio::detached);
  io.restart();
  io.run_for(deadline);
  if (!*out) {
    io.stop();
    return Status(Code::kDeadlineExceeded,
                  "the provider did not answer within " + std::to_string(deadline.count()) + " s");
  }
  return std::move(**out);
}

inline agent::Message message(std::string role, std::string content) {
  agent::Message m;
  m.role = std::move(role);
  m.content = std::move(content);
  return m;
}

inline agent::Message toolResult(const agent::ToolCall& call, std::string output) {
  agent::Message m = message("tool", std::move(output));
  m.toolCallId = call.id;
  m.toolName = call.name;
  return m;
}

inline std::vector<agent::Message> startContext() {
  return {message("system", "You are a test agent."), message("user", "Fix the build.")};
}

// Prices for the fake model: $1 per 1M tokens in, $2 per 1M out.
inline const PriceTable& testPrices() {
  static const PriceTable kPrices = [] {
    PriceTable t = PriceTable::defaults();
    t.set("fake-model", Price{1.0, 2.0});
    return t;
  }();
  return kPrices;
}

inline LlmConfig testConfig(Api api, const std::string& serverUrl, bool stream) {
  LlmConfig cfg;
  cfg.apiKey = "test-key";
  cfg.baseUrl = api == Api::kOpenAi ? serverUrl + "/v1" : serverUrl;
  cfg.model = "fake-model";
  cfg.stream = stream;
  cfg.retry.baseDelay = std::chrono::milliseconds(1);
  cfg.retry.maxDelay = std::chrono::milliseconds(5);
  cfg.timeout = std::chrono::seconds(30);
  cfg.prices = &testPrices();
  return cfg;
}

inline std::unique_ptr<agent::Provider> makeTestProvider(Api api, LlmConfig cfg,
                                                         asio::any_io_executor ex) {
  return api == Api::kOpenAi ? makeOpenAiProvider(std::move(cfg), ex)
                             : makeAnthropicProvider(std::move(cfg), ex);
}

}  // namespace kiln::llm::testing
