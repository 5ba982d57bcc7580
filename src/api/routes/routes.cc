#include "api/routes/routes.h"

#include "common/ids.h"

namespace kiln::api {

std::shared_ptr<const Router> buildRouter() {
  auto r = std::make_shared<Router>();
  addSystemRoutes(*r);
  addWebRoutes(*r);
  addJobReadRoutes(*r);
  addJobControlRoutes(*r);
  addTaskRoutes(*r);
  addNodeRoutes(*r);
  addTenantRoutes(*r);
  addSecretRoutes(*r);
  return r;
}

std::shared_ptr<const Router> buildMetricsRouter() {
  auto r = std::make_shared<Router>();
  addOpenMetricsRoutes(*r);
  return r;
}

Task<Result<store::Job>> loadJob(Request& req) {
  const std::string& id = req.param("id");
  if (!isUuid(id)) co_return notFound("no job " + id);
  auto* store = req.env.deps.store;
  auto job = co_await req.env.deps.pool->run([&] { return store->getJob(id, req.tenantId); });
  if (!job && job.status().code() == Code::kNotFound) co_return notFound("no job " + id);
  co_return job;
}

Task<Reply> streamJob(Request& req) {
  auto job = co_await loadJob(req);
  if (!job) co_return errorReply(job.status());
  auto after =
      request::parseResumeSeq(std::string(req.http["Last-Event-ID"]), req.queryValue("after"));
  if (!after) co_return errorReply(after.status());
  Reply r;
  r.sse = SseRequest{job->id, *after, req.tokenHash};
  co_return r;
}

}  // namespace kiln::api
