#include "api/request/tasks.h"

#include "api/request/fields.h"

namespace kiln::api::request {

Result<CreateJobRequest> parseCreateTask(const json& body) {
  RETURN_IF_ERROR(checkObject(body, "", {"prompt", "agent", "repoUrl"}));
  CreateJobRequest r;
  std::optional<std::string> repo;
  RETURN_IF_ERROR(requiredString(body, "", "prompt", 256 * 1024, r.taskDesc));
  RETURN_IF_ERROR(optionalString(body, "", "agent", 256, r.agent));
  RETURN_IF_ERROR(optionalString(body, "", "repoUrl", 4096, repo));
  r.repoUrl = repo.value_or("");
  return r;
}

}  // namespace kiln::api::request
