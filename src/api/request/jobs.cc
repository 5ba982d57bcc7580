#include "api/request/jobs.h"

#include <charconv>

#include "api/request/fields.h"
#include "api/request/job_spec.h"

namespace kiln::api::request {
namespace {

constexpr size_t kMaxUrl = 4096;
constexpr size_t kMaxTask = 256 * 1024;

bool isAgentName(const std::string& s) {
  for (char c : s) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
    if (!ok) return false;
  }
  return !s.empty();
}

}  // namespace

Result<CreateJobRequest> parseCreateJob(const json& body) {
  RETURN_IF_ERROR(
      checkObject(body, "",
                  {"repoUrl", "taskDesc", "ref", "agent", "model", "limits", "sandbox", "approvals",
                   "push", "command", "stream", "cli", "verify", "secrets", "mcpServers"}));
  CreateJobRequest r;
  std::optional<std::string> ref, model;
  RETURN_IF_ERROR(requiredString(body, "", "repoUrl", kMaxUrl, r.repoUrl));
  RETURN_IF_ERROR(requiredString(body, "", "taskDesc", kMaxTask, r.taskDesc));
  RETURN_IF_ERROR(optionalString(body, "", "ref", kMaxName, ref));
  RETURN_IF_ERROR(optionalString(body, "", "agent", kMaxName, r.agent));
  RETURN_IF_ERROR(optionalString(body, "", "model", kMaxName, model));
  if (r.agent && !isAgentName(*r.agent)) {
    return invalidArgument("agent must be a name of [a-z0-9_-], e.g. \"mock\" or \"openai\"");
  }
  r.ref = ref.value_or("");
  r.model = model.value_or("");
  if (auto it = body.find("limits"); it != body.end()) {
    ASSIGN_OR_RETURN(r.limits, parseJobLimits(*it, "limits"));
  }
  ASSIGN_OR_RETURN(r.spec, parseJobSpec(body));
  if (auto it = body.find("secrets"); it != body.end()) {
    ASSIGN_OR_RETURN(r.secrets, secrets::parseSecrets(*it, "secrets"));
    const auto& env = r.spec.sandboxOrDefault().env;
    for (const auto& s : r.secrets) {
      if (env.count(s.name)) {
        return invalidArgument("secrets." + s.name + ": sandbox.env sets " + s.name + " too");
      }
    }
  }
  return r;
}

Result<ListJobsQuery> parseListJobs(const std::map<std::string, std::string>& query) {
  ListJobsQuery q;
  for (const auto& [key, value] : query) {
    if (key == "status") {
      if (value.empty()) continue;
      q.status = store::parseJobStatus(value);
      if (!q.status) return invalidArgument("status: unknown job status '" + value + "'");
    } else if (key == "limit") {
      int n = 0;
      auto [p, ec] = std::from_chars(value.data(), value.data() + value.size(), n);
      if (ec != std::errc() || p != value.data() + value.size() || n < 1 || n > kMaxListLimit) {
        return invalidArgument("limit must be an integer between 1 and " +
                               std::to_string(kMaxListLimit));
      }
      q.limit = n;
    } else if (key == "cursor") {
      q.cursor = value;
    } else {
      return invalidArgument("unknown query parameter '" + key + "'");
    }
  }
  return q;
}

Result<std::string> parseReply(const json& body) {
  RETURN_IF_ERROR(checkObject(body, "", {"message"}));
  std::string message;
  RETURN_IF_ERROR(requiredString(body, "", "message", kMaxTask, message));
  return message;
}

Result<std::string> parseContinue(const json& body) {
  RETURN_IF_ERROR(checkObject(body, "", {"taskDesc"}));
  std::string task;
  RETURN_IF_ERROR(requiredString(body, "", "taskDesc", kMaxTask, task));
  return task;
}

Status parseEmpty(const json& body) { return checkObject(body, "", {}); }

Result<int64_t> parseResumeSeq(const std::string& lastEventId, const std::string& after) {
  const std::string& s = lastEventId.empty() ? after : lastEventId;
  if (s.empty()) return int64_t{0};
  int64_t n = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), n);
  if (ec != std::errc() || p != s.data() + s.size() || n < 0) {
    return invalidArgument("Last-Event-ID / after must be a non-negative integer");
  }
  return n;
}

}  // namespace kiln::api::request
