#include "agent/mock_provider.h"
#include "agent/provider.h"
#include "llm/llm.h"

namespace kiln::agent {

Result<std::unique_ptr<Provider>> makeProvider(const ProviderSettings& settings,
                                               asio::any_io_executor ex) {
  if (settings.agent.empty() || settings.agent == "mock") {
    return std::unique_ptr<Provider>(new MockProvider());
  }
  if (settings.agent == "openai" || settings.agent == "anthropic") {
    llm::Api api = settings.agent == "openai" ? llm::Api::kOpenAi : llm::Api::kAnthropic;
    auto cfg = llm::configFromEnv(api, settings);
    if (!cfg.isOk()) return cfg.status();
    if (api == llm::Api::kOpenAi) return llm::makeOpenAiProvider(std::move(cfg).value(), ex);
    return llm::makeAnthropicProvider(std::move(cfg).value(), ex);
  }
  return invalidArgument("unknown agent '" + settings.agent +
                         "' (available: mock, openai, anthropic)");
}

}  // namespace kiln::agent
