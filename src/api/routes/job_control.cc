#include "agent/cli_agent.h"
#include "api/request/fields.h"
#include "api/routes/routes.h"
#include "common/ids.h"
#include "common/json_fields.h"
#include "sandbox/supervisor.h"
#include "workspace/repo.h"

namespace kiln::api {
namespace {

using store::JobStatus;

const std::vector<JobStatus> kLiveStatuses = {JobStatus::kQueued, JobStatus::kProvisioning,
                                              JobStatus::kRunning, JobStatus::kPaused};
const std::vector<JobStatus> kTerminalStatuses = {JobStatus::kCompleted, JobStatus::kFailed,
                                                  JobStatus::kStopped};

json statusPayload(JobStatus s) { return {{"status", store::jobStatusName(s)}}; }

store::Job newJob(const Request& req, request::CreateJobRequest& c, std::string repoUrl) {
  store::Job job;
  job.id = newUuid();
  job.tenantId = req.tenantId;
  job.repoUrl = std::move(repoUrl);
  job.ref = std::move(c.ref);
  job.taskDesc = std::move(c.taskDesc);
  if (c.agent) job.agent = std::move(*c.agent);
  job.model = std::move(c.model);
  job.limits = c.limits.toJson();
  job.spec = c.spec.toJson();
  job.createdAt = job.updatedAt = req.env.deps.clock->nowMs();
  return job;
}

// Applies `update` to the loaded job. Not applied means its status changed under us: 409.
// Coroutine parameters are references to the caller's named locals: g++ 12 destroys some
// temporaries of a co_await expression twice.
Task<Reply> applyUpdate(Request& req, const store::Job& job, const store::JobUpdate& update,
                        const std::string& wrongState) {
  auto* store = req.env.deps.store;
  auto res = co_await req.env.deps.pool->run([&] { return store->updateJob(job.id, update); });
  if (!res) co_return errorReply(res.status());
  if (!res->applied) co_return errorReply(ApiError::conflict(wrongState));
  req.env.deps.bus->publish(job.id);
  co_return Reply{};
}

std::string notIn(const store::Job& job, const char* wanted) {
  return std::string("job is ") + store::jobStatusName(job.status) + "; " + wanted;
}

Task<Reply> postJob(Request& req) {
  auto body = request::parseBody(req.body());
  if (!body) co_return errorReply(ApiError::invalidJson("request body is not valid JSON"));
  auto create = request::parseCreateJob(*body);
  if (!create) co_return errorReply(create.status());
  co_return co_await createJob(req, *create, "jobId");
}

Task<Reply> stopJob(Request& req) {
  auto body = request::parseBody(req.body());
  if (!body) co_return errorReply(ApiError::invalidJson("request body is not valid JSON"));
  if (auto st = request::parseEmpty(*body); !st) co_return errorReply(st);
  auto job = co_await loadJob(req);
  if (!job) co_return errorReply(job.status());
  std::string wrong = notIn(*job, "only a job that has not finished can be stopped");
  if (store::isTerminal(job->status)) co_return errorReply(ApiError::conflict(wrong));
  store::JobUpdate u;
  u.status = JobStatus::kStopped;
  u.ifStatusIn = kLiveStatuses;
  u.releaseLease = true;
  u.events = {{"status", statusPayload(JobStatus::kStopped)},
              {"done", statusPayload(JobStatus::kStopped)}};
  wrong = "job finished before it could be stopped";
  Reply r = co_await applyUpdate(req, *job, u, wrong);
  if (r.status != 200) co_return r;
  req.env.deps.jobs->stopped(job->id);
  co_return jsonReply(200, {{"status", "stopped"}});
}

// The job's approval gate after an answer: approve passes a pending gate, a reply refuses it
// (the reply is the reason). Unchanged when the job is not at a gate.
std::optional<json> answeredApproval(const store::Job& job, bool approve) {
  if (!job.approval.is_object() || fieldOr(job.approval, "state", "") != "pending") return {};
  json a = job.approval;
  a["state"] = approve ? "approved" : "refused";
  return a;
}

std::vector<store::NewEvent> replyEvents(const std::string& message,
                                         const std::optional<json>& approval) {
  json p = {{"message", message}};
  if (approval) p["approval"] = *approval;
  return {{"reply", std::move(p)}};
}

// reply and approve: store the answer for a PAUSED job and tell the scheduler.
Task<Reply> answerPaused(Request& req, const std::string& message, bool approve) {
  auto job = co_await loadJob(req);
  if (!job) co_return errorReply(job.status());
  std::string wrong = notIn(*job, "only a PAUSED job takes a reply or approval");
  if (job->status != JobStatus::kPaused) co_return errorReply(ApiError::conflict(wrong));
  store::JobUpdate u;
  u.pendingReply = message;
  u.approval = answeredApproval(*job, approve);
  u.ifStatusIn = {JobStatus::kPaused};
  u.events = replyEvents(message, u.approval);
  const char* doneWord = approve ? "approved" : "replied";
  Reply r = co_await applyUpdate(req, *job, u, wrong);
  if (r.status != 200) co_return r;
  req.env.deps.jobs->replied(job->id);
  co_return jsonReply(200, {{"status", doneWord}});
}

Task<Reply> replyJob(Request& req) {
  auto body = request::parseBody(req.body());
  if (!body) co_return errorReply(ApiError::invalidJson("request body is not valid JSON"));
  auto message = request::parseReply(*body);
  if (!message) co_return errorReply(message.status());
  co_return co_await answerPaused(req, *message, false);
}

Task<Reply> approveJob(Request& req) {
  auto body = request::parseBody(req.body());
  if (!body) co_return errorReply(ApiError::invalidJson("request body is not valid JSON"));
  if (auto st = request::parseEmpty(*body); !st) co_return errorReply(st);
  const std::string message = "approved";
  co_return co_await answerPaused(req, message, true);
}

Result<std::optional<store::QuotaBreach>> continueBreach(const Request& req) {
  auto* store = req.env.deps.store;
  ASSIGN_OR_RETURN(store::TenantQuota quota, store->getQuota(req.tenantId));
  if (!quota.maxRunning && !quota.usdPerDay) return std::optional<store::QuotaBreach>();
  const int64_t now = req.env.deps.clock->nowMs();
  ASSIGN_OR_RETURN(store::TenantUsage usage, store->tenantUsage(req.tenantId, now));
  return store::quotaBreach(req.tenantId, quota, usage, false, now);
}

Task<Reply> continueJob(Request& req) {
  auto body = request::parseBody(req.body());
  if (!body) co_return errorReply(ApiError::invalidJson("request body is not valid JSON"));
  auto task = request::parseContinue(*body);
  if (!task) co_return errorReply(task.status());
  auto job = co_await loadJob(req);
  if (!job) co_return errorReply(job.status());
  std::string wrong = notIn(*job, "only a finished job can continue");
  if (!store::isTerminal(job->status)) co_return errorReply(ApiError::conflict(wrong));
  // The job runs again: within the tenant's maxRunning and usdPerDay (a job that would pass
  // them by a race with another request still waits for its turn in the queue: the claim
  // checks them again).
  auto breach = co_await req.env.deps.pool->run([&] { return continueBreach(req); });
  if (!breach) co_return errorReply(breach.status());
  if (breach->has_value()) co_return quotaReply(**breach);
  store::JobUpdate u;
  u.status = JobStatus::kQueued;
  u.pendingReply = *task;
  u.error = json(nullptr);
  u.approval = json(nullptr);
  u.ifStatusIn = kTerminalStatuses;
  u.events = {{"status", {{"status", "QUEUED"}, {"taskDesc", *task}}}};
  Reply r = co_await applyUpdate(req, *job, u, wrong);
  if (r.status != 200) co_return r;
  req.env.deps.jobs->wake();
  co_return jsonReply(200, {{"jobId", job->id}, {"status", "QUEUED"}});
}

}  // namespace

Task<Reply> createJob(Request& req, request::CreateJobRequest& create, const char* idField) {
  auto& deps = req.env.deps;
  // A backend this node cannot run is refused now, never left to fail (or hang) in the queue.
  if (deps.sandboxes) {
    const request::SandboxRequest sb = create.spec.sandboxOrDefault();
    if (Status st = deps.sandboxes->check(sb.backend); !st) {
      co_return errorReply(
          ApiError{st.code() == Code::kUnprocessable ? 422 : 400,
                   st.code() == Code::kUnprocessable ? "backend_unavailable" : "invalid_argument",
                   "sandbox.backend: " + st.message()});
    }
    if (Status st = deps.sandboxes->check(sb.backend, sb.user == "root"); !st) {
      co_return errorReply(ApiError{422, "backend_unavailable", st.message()});
    }
  }
  std::string url;
  if (!create.repoUrl.empty()) {
    auto normalized =
        co_await deps.slowPool->run([&] { return workspace::normalizeRepoUrl(create.repoUrl); });
    if (!normalized) {
      co_return errorReply(ApiError::invalidArgument("repoUrl: " + normalized.status().message()));
    }
    const auto& opts = req.env.opts;
    auto confined = co_await deps.slowPool->run([&] {
      return workspace::confineLocalRepo(*normalized, opts.allowLocalRepos, opts.dataDir);
    });
    if (!confined) {
      co_return errorReply(
          ApiError{403, "local_repo_forbidden", "repoUrl: " + confined.status().message()});
    }
    url = std::move(*confined);
    if (req.env.opts.checkRepoReachable) {
      Status st =
          co_await deps.slowPool->run([&] { return workspace::checkReachable(url, create.ref); });
      if (!st) co_return errorReply(ApiError{422, "repo_unreachable", st.message()});
    }
  }
  store::Job job = newJob(req, create, std::move(url));
  if (!create.spec.mcpServers.empty() && !agent::takesKilnMcp(job.agent, create.spec)) {
    co_return errorReply(ApiError::invalidArgument(
        "mcpServers: kiln starts MCP servers for its built-in agents (openai, anthropic, mock) "
        "and hands them to the claude and codex presets (without a command); agent " +
        job.agent + (create.spec.command ? " with its own command" : "") +
        " reads its own MCP configuration"));
  }
  auto* store = deps.store;
  const std::string& tenant = req.tenantId;
  auto sealed =
      co_await deps.pool->run([&] { return sealJobSecrets(deps, tenant, create.secrets); });
  if (!sealed) {
    co_return errorReply(sealed.status().code() == Code::kUnavailable
                             ? ApiError{503, "secrets_unavailable", sealed.status().message()}
                             : ApiError::fromStatus(sealed.status()));
  }
  job.secrets = std::move(*sealed);
  auto created = co_await deps.pool->run([&] {
    return store->createJobWithinQuota(job, {{"status", statusPayload(JobStatus::kQueued)}},
                                       job.createdAt);
  });
  if (!created) co_return errorReply(created.status());
  if (created->has_value()) co_return quotaReply(**created);
  deps.jobs->wake();
  Reply r = jsonReply(201, {{idField, job.id}, {"status", "QUEUED"}});
  r.headers.emplace_back("Location", "/api/v1/jobs/" + job.id);
  co_return r;
}

void addJobControlRoutes(Router& r) {
  r.add(http::verb::post, "/api/v1/jobs", Access::kWrite, postJob);
  r.add(http::verb::post, "/api/v1/jobs/{id}/stop", Access::kWrite, stopJob);
  r.add(http::verb::post, "/api/v1/jobs/{id}/reply", Access::kWrite, replyJob);
  r.add(http::verb::post, "/api/v1/jobs/{id}/approve", Access::kWrite, approveJob);
  r.add(http::verb::post, "/api/v1/jobs/{id}/continue", Access::kWrite, continueJob);
}

}  // namespace kiln::api
