#include "api/job_view.h"
#include "api/routes/routes.h"

namespace kiln::api {
namespace {

Task<Reply> listJobs(Request& req) {
  auto q = request::parseListJobs(req.query);
  if (!q) co_return errorReply(q.status());
  auto* store = req.env.deps.store;
  auto page = co_await req.env.deps.pool->run(
      [&] { return store->listJobs(req.tenantId, q->status, q->limit, q->cursor); });
  if (!page) co_return errorReply(page.status());
  json jobs = json::array();
  for (const auto& j : page->jobs) jobs.push_back(jobJson(j));
  json next = page->nextCursor.empty() ? json(nullptr) : json(page->nextCursor);
  co_return jsonReply(200, {{"jobs", std::move(jobs)}, {"nextCursor", std::move(next)}});
}

Task<Reply> getJob(Request& req) {
  auto job = co_await loadJob(req);
  if (!job) co_return errorReply(job.status());
  co_return jsonReply(200, jobJson(*job));
}

Task<Reply> listSteps(Request& req) {
  auto job = co_await loadJob(req);
  if (!job) co_return errorReply(job.status());
  auto* store = req.env.deps.store;
  auto steps = co_await req.env.deps.pool->run([&] { return store->listSteps(job->id); });
  if (!steps) co_return errorReply(steps.status());
  json out = json::array();
  for (const auto& s : *steps) out.push_back(stepJson(s));
  co_return jsonReply(200, out);
}

Task<Reply> getDiff(Request& req) {
  auto job = co_await loadJob(req);
  if (!job) co_return errorReply(job.status());
  auto* store = req.env.deps.store;
  auto patch = co_await req.env.deps.pool->run([&] { return store->latestPatch(job->id); });
  if (!patch) co_return errorReply(patch.status());
  Reply r;
  r.contentType = "text/x-diff; charset=utf-8";
  r.body = std::move(*patch);
  co_return r;
}

}  // namespace

void addJobReadRoutes(Router& r) {
  r.add(http::verb::get, "/api/v1/jobs", Access::kRead, listJobs);
  r.add(http::verb::get, "/api/v1/jobs/{id}", Access::kRead, getJob);
  r.add(http::verb::get, "/api/v1/jobs/{id}/steps", Access::kRead, listSteps);
  r.add(http::verb::get, "/api/v1/jobs/{id}/diff", Access::kRead, getDiff);
  r.add(http::verb::get, "/api/v1/jobs/{id}/stream", Access::kRead, streamJob);
}

}  // namespace kiln::api
