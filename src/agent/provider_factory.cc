#include "agent/cli_agent.h"
#include "agent/mock_provider.h"
#include "agent/provider.h"
#include "llm/llm.h"

namespace kiln::agent {
namespace {

// Stands for an external agent CLI. The job runner runs such agents through runCliAgent (one
// long command in the sandbox), never turn by turn, so next() is never called.
class CliProvider : public Provider {
 public:
  explicit CliProvider(std::string agent) : agent_(std::move(agent)) {}

  // Provider
  Task<Result<ModelTurn>> next(const TaskInfo&, const std::vector<Message>&) override {
    co_return Status(Code::kInternal, "agent '" + agent_ + "' runs as a CLI, not turn by turn");
  }
  std::string name() const override { return agent_; }

 private:
  std::string agent_;
};

}  // namespace

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
  if (isCliAgent(settings.agent)) {
    // Checked here so a misconfigured job fails before its sandbox is made.
    auto plan = resolveCliAgent(settings.agent, settings.model, settings.spec, "", processEnv());
    if (!plan.isOk()) return plan.status();
    return std::unique_ptr<Provider>(new CliProvider(settings.agent));
  }
  return invalidArgument("unknown agent '" + settings.agent +
                         "' (available: mock, openai, anthropic, cli, acp, claude, codex, cursor)");
}

}  // namespace kiln::agent
