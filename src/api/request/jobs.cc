#include "api/request/jobs.h"

#include <charconv>

#include "api/request/fields.h"

namespace kiln::api::request {
namespace {

constexpr size_t kMaxUrl = 4096;
constexpr size_t kMaxTask = 256 * 1024;
constexpr size_t kMaxName = 256;

Status parseLimits(const json& body, json& out) {
  auto it = body.find("limits");
  if (it == body.end() || it->is_null()) return Status::ok();
  RETURN_IF_ERROR(
      checkObject(*it, "limits",
                  {"maxSteps", "maxUsd", "maxTokens", "maxWallSeconds", "contextTokens"}));
  std::optional<int64_t> steps, tokens, wall, context;
  std::optional<double> usd;
  RETURN_IF_ERROR(optionalInt(*it, "limits", "maxSteps", 1, 100'000, steps));
  RETURN_IF_ERROR(optionalNumber(*it, "limits", "maxUsd", 0, 1e6, usd));
  RETURN_IF_ERROR(optionalInt(*it, "limits", "maxTokens", 1, int64_t{1} << 40, tokens));
  RETURN_IF_ERROR(optionalInt(*it, "limits", "maxWallSeconds", 1, 30 * 86400, wall));
  RETURN_IF_ERROR(optionalInt(*it, "limits", "contextTokens", 1000, int64_t{1} << 30, context));
  if (steps) out["maxSteps"] = *steps;
  if (usd) out["maxUsd"] = *usd;
  if (tokens) out["maxTokens"] = *tokens;
  if (wall) out["maxWallSeconds"] = *wall;
  if (context) out["contextTokens"] = *context;
  return Status::ok();
}

bool isStringArray(const json& v) {
  if (!v.is_array()) return false;
  for (const auto& e : v) {
    if (!e.is_string()) return false;
  }
  return true;
}

Status parseSandbox(const json& body, json& spec) {
  auto it = body.find("sandbox");
  if (it == body.end() || it->is_null()) return Status::ok();
  RETURN_IF_ERROR(
      checkObject(*it, "sandbox",
                  {"backend", "cpus", "memoryMb", "diskMb", "network", "allowHosts", "image"}));
  std::optional<std::string> backend, network, image;
  std::optional<double> cpus;
  std::optional<int64_t> memory, disk;
  RETURN_IF_ERROR(optionalString(*it, "sandbox", "backend", kMaxName, backend));
  RETURN_IF_ERROR(optionalNumber(*it, "sandbox", "cpus", 0.01, 1024, cpus));
  RETURN_IF_ERROR(optionalInt(*it, "sandbox", "memoryMb", 16, 1 << 22, memory));
  RETURN_IF_ERROR(optionalInt(*it, "sandbox", "diskMb", 1, 1 << 24, disk));
  RETURN_IF_ERROR(optionalString(*it, "sandbox", "network", kMaxName, network));
  RETURN_IF_ERROR(optionalString(*it, "sandbox", "image", kMaxName, image));
  if (backend && *backend != "ns" && *backend != "microvm") {
    return invalidArgument("sandbox.backend must be \"ns\" or \"microvm\"");
  }
  if (network && *network == "egress") network = "allowlist";  // the older name
  if (network && *network != "none" && *network != "allowlist") {
    return invalidArgument("sandbox.network must be \"none\" or \"allowlist\"");
  }
  auto hosts = it->find("allowHosts");
  if (hosts != it->end() && !isStringArray(*hosts)) {
    return invalidArgument("sandbox.allowHosts must be an array of host names");
  }
  json s = json::object();
  if (backend) s["backend"] = *backend;
  if (cpus) s["cpus"] = *cpus;
  if (memory) s["memoryMb"] = *memory;
  if (disk) s["diskMb"] = *disk;
  if (network) s["network"] = *network;
  if (hosts != it->end()) s["allowHosts"] = *hosts;
  if (image) s["image"] = *image;
  spec["sandbox"] = std::move(s);
  return Status::ok();
}

// approvals: bool or [gate names]; push: bool; command: string or argv array.
Status parseJobOptions(const json& body, json& spec) {
  if (auto it = body.find("approvals"); it != body.end() && !it->is_null()) {
    if (!it->is_boolean() && !isStringArray(*it)) {
      return invalidArgument("approvals must be true/false or an array of strings");
    }
    spec["approvals"] = *it;
  }
  std::optional<bool> push, stream;
  RETURN_IF_ERROR(optionalBool(body, "", "push", push));
  if (push) spec["push"] = *push;
  RETURN_IF_ERROR(optionalBool(body, "", "stream", stream));
  if (stream) spec["stream"] = *stream;
  if (auto it = body.find("command"); it != body.end() && !it->is_null()) {
    if (!it->is_string() && !isStringArray(*it)) {
      return invalidArgument("command must be a string or an array of strings");
    }
    spec["command"] = *it;
  }
  // Agent CLI options (src/agent/cli_agent.h checks the names and hosts when the job starts).
  if (auto it = body.find("cli"); it != body.end() && !it->is_null()) {
    RETURN_IF_ERROR(checkObject(*it, "cli", {"env", "allowHosts", "promptVia"}));
    for (const char* key : {"env", "allowHosts"}) {
      if (it->contains(key) && !isStringArray((*it)[key])) {
        return invalidArgument(std::string("cli.") + key + " must be an array of strings");
      }
    }
    if (it->contains("promptVia") && (*it)["promptVia"] != "argv" &&
        (*it)["promptVia"] != "stdin") {
      return invalidArgument("cli.promptVia must be \"argv\" or \"stdin\"");
    }
    spec["cli"] = *it;
  }
  return Status::ok();
}

bool isAgentName(const std::string& s) {
  for (char c : s) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
    if (!ok) return false;
  }
  return !s.empty();
}

}  // namespace

Result<CreateJobRequest> parseCreateJob(const json& body) {
  RETURN_IF_ERROR(checkObject(body, "",
                              {"repoUrl", "taskDesc", "ref", "agent", "model", "limits", "sandbox",
                               "approvals", "push", "command", "stream", "cli"}));
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
  RETURN_IF_ERROR(parseLimits(body, r.limits));
  RETURN_IF_ERROR(parseSandbox(body, r.spec));
  RETURN_IF_ERROR(parseJobOptions(body, r.spec));
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
