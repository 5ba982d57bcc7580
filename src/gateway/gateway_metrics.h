// GatewayMetrics: what every model gateway of the process relayed, for /metrics: calls by API
// and upstream status, tokens, cost and refusals. Thread-safe; one per process
// (gatewayMetrics()).
#pragma once
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <utility>

namespace kiln::gateway {

class GatewayMetrics {
 public:
  // status 0: the upstream could not be reached.
  void countCall(const std::string& api, int status, int64_t tokensIn, int64_t tokensOut,
                 double usd);
  // reason: "budget" | "auth" | "stopped"
  void countRefusal(const std::string& reason);
  // Prometheus text (HELP/TYPE lines included).
  std::string render() const;

 private:
  mutable std::mutex mu_;
  std::map<std::pair<std::string, int>, uint64_t> calls_;  // GUARDED_BY(mu_)
  std::map<std::string, int64_t> tokensIn_;                // GUARDED_BY(mu_)
  std::map<std::string, int64_t> tokensOut_;               // GUARDED_BY(mu_)
  std::map<std::string, double> usd_;                      // GUARDED_BY(mu_)
  std::map<std::string, uint64_t> refusals_;               // GUARDED_BY(mu_)
};

GatewayMetrics& gatewayMetrics();

}  // namespace kiln::gateway
