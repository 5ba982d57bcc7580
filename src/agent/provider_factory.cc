#include "agent/mock_provider.h"
#include "agent/provider.h"

namespace kiln::agent {

Result<std::unique_ptr<Provider>> makeProvider(const ProviderSettings& settings,
                                               asio::any_io_executor /*ex*/) {
  if (settings.agent.empty() || settings.agent == "mock") {
    return std::unique_ptr<Provider>(new MockProvider());
  }
  return invalidArgument("unknown agent '" + settings.agent + "' (available: mock)");
}

}  // namespace kiln::agent
