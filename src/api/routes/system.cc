#include <fmt/format.h>

#include <string>

#include "agent/step_timings.h"
#include "api/routes/routes.h"
#include "gateway/gateway_metrics.h"
#include "sandbox/supervisor.h"

namespace kiln::api {
namespace {

// Jobs per status across tenants, with their tokens and spend: one aggregate query.
Result<std::string> renderJobCounts(store::Store* store) {
  ASSIGN_OR_RETURN(auto totals, store->jobTotals());
  std::string jobs =
      "# HELP kiln_jobs Jobs in the store by status.\n"
      "# TYPE kiln_jobs gauge\n";
  std::string tokens =
      "# HELP kiln_job_tokens_total Model tokens used by the jobs in the store, by status and "
      "direction.\n"
      "# TYPE kiln_job_tokens_total counter\n";
  std::string usd =
      "# HELP kiln_job_spend_usd_total Model spend of the jobs in the store, by status.\n"
      "# TYPE kiln_job_spend_usd_total counter\n";
  for (auto s :
       {store::JobStatus::kQueued, store::JobStatus::kProvisioning, store::JobStatus::kRunning,
        store::JobStatus::kPaused, store::JobStatus::kCompleted, store::JobStatus::kFailed,
        store::JobStatus::kStopped}) {
    store::JobTotals t;
    for (const auto& row : totals)
      if (row.status == s) t = row;
    const std::string label = "{status=\"" + std::string(store::jobStatusName(s)) + "\"";
    jobs += "kiln_jobs" + label + "} " + std::to_string(t.jobs) + "\n";
    tokens +=
        "kiln_job_tokens_total" + label + ",direction=\"in\"} " + std::to_string(t.tokensIn) + "\n";
    tokens += "kiln_job_tokens_total" + label + ",direction=\"out\"} " +
              std::to_string(t.tokensOut) + "\n";
    usd += "kiln_job_spend_usd_total" + label + "} " + fmt::format("{:.6f}", t.usd) + "\n";
  }
  return jobs + tokens + usd;
}

Task<Reply> healthz(Request&) { co_return jsonReply(200, {{"status", "ok"}}); }

Task<Reply> openMetrics(Request& req) {
  auto* store = req.env.deps.store;
  auto jobs = co_await req.env.deps.pool->run([&] { return renderJobCounts(store); });
  if (!jobs) co_return errorReply(jobs.status());
  const int64_t now = req.env.deps.clock->nowMs();
  auto nodes = co_await req.env.deps.pool->run([&] { return renderNodeMetrics(store, now); });
  if (!nodes) co_return errorReply(nodes.status());
  Reply r;
  r.contentType = "text/plain; version=0.0.4";
  r.body = *jobs + *nodes + req.env.metrics.render() + agent::stepTimings().render() +
           gateway::gatewayMetrics().render();
  if (req.env.deps.sandboxes) r.body += req.env.deps.sandboxes->renderMetrics();
  co_return r;
}

}  // namespace

void addSystemRoutes(Router& r) {
  r.add(http::verb::get, "/healthz", Access::kOpen, healthz);
  // Counts across tenants and the fleet's figures are the operator's.
  r.add(http::verb::get, "/metrics", Access::kOperator, openMetrics);
}

void addOpenMetricsRoutes(Router& r) {
  r.add(http::verb::get, "/healthz", Access::kOpen, healthz);
  r.add(http::verb::get, "/metrics", Access::kOpen, openMetrics);
}

}  // namespace kiln::api
