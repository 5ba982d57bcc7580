// The job request validator: a request body as POST /api/v1/jobs, /tasks, /reply and
// /continue receive it (request::parseBody, then each route's parser). What it accepts must
// serialise and validate again.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "api/request/fields.h"
#include "api/request/job_spec.h"
#include "api/request/jobs.h"
#include "api/request/tasks.h"

namespace {

using namespace kiln::api::request;

void checkAccepted(const CreateJobRequest& r) {
  // What is stored is re-read on every run: it must parse back to the same values.
  auto limits = parseJobLimits(r.limits.toJson());
  auto spec = parseJobSpec(r.spec.toJson());
  if (!limits.isOk() || !spec.isOk()) __builtin_trap();
  if (limits->toJson() != r.limits.toJson() || spec->toJson() != r.spec.toJson()) __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view body(reinterpret_cast<const char*>(data), size);
  (void)nestsDeeperThan(body, kMaxJsonDepth);
  auto json = parseBody(body);
  if (!json) return 0;
  if (auto job = parseCreateJob(*json); job.isOk()) checkAccepted(*job);
  if (auto task = parseCreateTask(*json); task.isOk()) checkAccepted(*task);
  (void)parseReply(*json);
  (void)parseContinue(*json);
  (void)parseEmpty(*json);
  return 0;
}
