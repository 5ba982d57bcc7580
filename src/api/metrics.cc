#include "api/metrics.h"

namespace kiln::api {

void ApiMetrics::countRequest(int status) {
  std::lock_guard lock(mu_);
  requestsByStatus_[status]++;
}

std::string ApiMetrics::render() const {
  std::string out =
      "# HELP kiln_http_requests_total HTTP requests answered, by status code.\n"
      "# TYPE kiln_http_requests_total counter\n";
  {
    std::lock_guard lock(mu_);
    for (const auto& [status, n] : requestsByStatus_) {
      out += "kiln_http_requests_total{code=\"" + std::to_string(status) + "\"} " +
             std::to_string(n) + "\n";
    }
  }
  out +=
      "# HELP kiln_sse_clients Open SSE event streams.\n"
      "# TYPE kiln_sse_clients gauge\n"
      "kiln_sse_clients " +
      std::to_string(sseOpen_.load()) + "\n";
  return out;
}

}  // namespace kiln::api
