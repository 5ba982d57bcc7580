#include <string>

#include "agent/step_timings.h"
#include "api/routes/routes.h"

namespace kiln::api {
namespace {

constexpr int kCountPage = 200;
constexpr int kCountMaxPages = 50;  // /metrics stays cheap: counts stop at 10,000 per status

// Jobs per status across tenants, by paging the store (it has no count query yet).
Result<std::string> renderJobCounts(store::Store* store) {
  std::string out =
      "# HELP kiln_jobs Jobs in the store by status (capped at 10000 per status).\n"
      "# TYPE kiln_jobs gauge\n";
  for (auto s :
       {store::JobStatus::kQueued, store::JobStatus::kProvisioning, store::JobStatus::kRunning,
        store::JobStatus::kPaused, store::JobStatus::kCompleted, store::JobStatus::kFailed,
        store::JobStatus::kStopped}) {
    size_t n = 0;
    std::string cursor;
    for (int page = 0; page < kCountMaxPages; ++page) {
      ASSIGN_OR_RETURN(auto p, store->listJobs("", s, kCountPage, cursor));
      n += p.jobs.size();
      cursor = p.nextCursor;
      if (cursor.empty()) break;
    }
    out += "kiln_jobs{status=\"" + std::string(store::jobStatusName(s)) + "\"} " +
           std::to_string(n) + "\n";
  }
  return out;
}

Task<Reply> healthz(Request&) { co_return jsonReply(200, {{"status", "ok"}}); }

Task<Reply> metrics(Request& req) {
  auto* store = req.env.deps.store;
  auto jobs = co_await req.env.deps.pool->run([&] { return renderJobCounts(store); });
  if (!jobs) co_return errorReply(jobs.status());
  Reply r;
  r.contentType = "text/plain; version=0.0.4";
  r.body = *jobs + req.env.metrics.render() + agent::stepTimings().render();
  co_return r;
}

}  // namespace

void addSystemRoutes(Router& r) {
  r.add(http::verb::get, "/healthz", healthz);
  r.add(http::verb::get, "/metrics", metrics);
}

}  // namespace kiln::api
