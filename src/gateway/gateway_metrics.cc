#include "gateway/gateway_metrics.h"

#include <fmt/format.h>

namespace kiln::gateway {

void GatewayMetrics::countCall(const std::string& api, int status, int64_t tokensIn,
                               int64_t tokensOut, double usd) {
  std::lock_guard lock(mu_);
  ++calls_[{api, status}];
  tokensIn_[api] += tokensIn;
  tokensOut_[api] += tokensOut;
  usd_[api] += usd;
}

void GatewayMetrics::countRefusal(const std::string& reason) {
  std::lock_guard lock(mu_);
  ++refusals_[reason];
}

std::string GatewayMetrics::render() const {
  std::lock_guard lock(mu_);
  std::string out =
      "# HELP kiln_gateway_calls_total Model API calls relayed by the model gateway, by API and "
      "upstream status (0: unreachable).\n# TYPE kiln_gateway_calls_total counter\n";
  for (const auto& [key, n] : calls_) {
    out += fmt::format("kiln_gateway_calls_total{{api=\"{}\",status=\"{}\"}} {}\n", key.first,
                       key.second, n);
  }
  out +=
      "# HELP kiln_gateway_tokens_total Tokens metered by the model gateway.\n"
      "# TYPE kiln_gateway_tokens_total counter\n";
  for (const auto& [api, n] : tokensIn_) {
    out += fmt::format("kiln_gateway_tokens_total{{api=\"{}\",direction=\"in\"}} {}\n", api, n);
  }
  for (const auto& [api, n] : tokensOut_) {
    out += fmt::format("kiln_gateway_tokens_total{{api=\"{}\",direction=\"out\"}} {}\n", api, n);
  }
  out +=
      "# HELP kiln_gateway_usd_total Model spend metered by the model gateway.\n"
      "# TYPE kiln_gateway_usd_total counter\n";
  for (const auto& [api, usd] : usd_) {
    out += fmt::format("kiln_gateway_usd_total{{api=\"{}\"}} {:.6f}\n", api, usd);
  }
  out +=
      "# HELP kiln_gateway_refusals_total Calls the model gateway refused, by reason.\n"
      "# TYPE kiln_gateway_refusals_total counter\n";
  for (const auto& [reason, n] : refusals_) {
    out += fmt::format("kiln_gateway_refusals_total{{reason=\"{}\"}} {}\n", reason, n);
  }
  return out;
}

GatewayMetrics& gatewayMetrics() {
  static GatewayMetrics metrics;
  return metrics;
}

}  // namespace kiln::gateway
