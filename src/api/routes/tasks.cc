#include "api/request/tasks.h"

#include "api/request/fields.h"
#include "api/routes/routes.h"

namespace kiln::api {
namespace {

Task<Reply> createTask(Request& req) {
  auto body = request::parseBody(req.body());
  if (!body) co_return errorReply(ApiError::invalidJson("request body is not valid JSON"));
  auto create = request::parseCreateTask(*body);
  if (!create) co_return errorReply(create.status());
  co_return co_await createJob(req, *create, "taskId");
}

}  // namespace

void addTaskRoutes(Router& r) {
  r.add(http::verb::post, "/api/v1/tasks", Access::kWrite, createTask);
  r.add(http::verb::get, "/api/v1/tasks/{id}/events", Access::kRead, streamJob);
}

}  // namespace kiln::api
