// ModelGateway: the only way a CLI agent reaches its model API. One gateway per job run listens
// on a unix socket that the sandbox's runtime forwards 127.0.0.1:3129 to (runtime/
// egress_forwarder.h); the sandbox sees base URLs there and a per-job placeholder key. Each call
// is checked against that key and the job's budget, relayed to the operator's upstream (any URL,
// loopback included) with the real key added, streamed back as it arrives, and metered: tokens
// and cost come from the response (streaming included) and count toward the job's budget.
// Once the budget is spent, or the upstream cannot be reached, the gateway stops passing calls
// and says why (stopped(), onStop). Runs on its own strand of the node's I/O pool; the accessors
// are thread-safe.
#pragma once
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/asio.h"
#include "common/result.h"
#include "gateway/usage_meter.h"
#include "llm/pricing.h"
#include "runtime/egress_forwarder.h"

namespace kiln::gateway {

// Where one API's calls go.
struct Upstream {
  std::string baseUrl;                   // without a trailing slash
  std::vector<std::string> authHeaders;  // "x-api-key: …"; empty for servers without auth
};

struct Upstreams {
  std::optional<Upstream> anthropic, openai, gemini;
  const Upstream* forApi(ModelApi api) const;
};

using EnvLookup = std::function<std::optional<std::string>(const std::string& name)>;

// From the server's environment: ANTHROPIC_BASE_URL (default https://api.anthropic.com) with
// ANTHROPIC_API_KEY (x-api-key) or ANTHROPIC_AUTH_TOKEN (bearer); OPENAI_BASE_URL (default
// https://api.openai.com/v1) with OPENAI_API_KEY or CODEX_API_KEY; GOOGLE_GEMINI_BASE_URL
// (default https://generativelanguage.googleapis.com) with GEMINI_API_KEY or GOOGLE_API_KEY.
Upstreams upstreamsFromEnv(const EnvLookup& env);

// What a sandbox's processes get instead of real keys and URLs: ANTHROPIC_BASE_URL,
// OPENAI_BASE_URL, GOOGLE_GEMINI_BASE_URL pointing at the gateway (with the path prefixes
// /anthropic, /openai/v1, /gemini), and `placeholderKey` as ANTHROPIC_API_KEY, OPENAI_API_KEY,
// CODEX_API_KEY and GEMINI_API_KEY.
std::vector<std::pair<std::string, std::string>> sandboxEnv(const std::string& placeholderKey);

struct GatewayBudget {
  std::optional<double> maxUsd;
  std::optional<int64_t> maxTokens;
  double spentUsd = 0;  // by the job before this gateway started
  int64_t spentTokens = 0;
  // What the job's tenant may still spend today (its usdPerDay less its spend today) when the
  // gateway started; unset: no such quota. This run's calls stop there.
  std::optional<double> tenantUsdLeft;
};

// One call that reached the upstream.
struct ModelCall {
  ModelApi api = ModelApi::kAnthropic;
  std::string model;
  int status = 0;  // the upstream's; 0 when it could not be reached
  int64_t tokensIn = 0;
  int64_t tokensOut = 0;
  double usd = 0;
};

struct GatewayUsage {
  int64_t calls = 0;
  int64_t tokensIn = 0;
  int64_t tokensOut = 0;
  double usd = 0;
};

// Why the gateway stopped passing calls: the job's error.
struct GatewayStop {
  std::string code;   // "budget_exceeded" | "quota_exceeded" | "llm_error"
  std::string limit;  // "maxUsd" | "maxTokens" for budget_exceeded, "usdPerDay" for quota
  std::string message;
};

struct GatewayOptions {
  std::string socketPath;  // created (a stale file replaced); 0600
  std::string label;       // the job, for logs
  std::string placeholderKey;
  Upstreams upstreams;
  GatewayBudget budget;
  const llm::PriceTable* prices = nullptr;  // null: llm::globalPrices()
  // Called once, on the gateway's strand, when it stops passing calls. Must not block.
  std::function<void(const GatewayStop&)> onStop;
};

class ModelGateway {
 public:
  // Stops listening and ends the calls in flight.
  virtual ~ModelGateway() = default;
  // The usage of the calls that completed since the last take: for the next recorded step.
  virtual GatewayUsage takeUsage() = 0;
  // Every call so far.
  virtual std::vector<ModelCall> calls() const = 0;
  virtual std::optional<GatewayStop> stopped() const = 0;
};

// Binds the socket and starts serving on a strand of `io`, whose context must outlive the
// gateway by the time its calls take to end (the node's I/O pool).
Result<std::unique_ptr<ModelGateway>> startModelGateway(asio::any_io_executor io,
                                                        GatewayOptions opts);

}  // namespace kiln::gateway
