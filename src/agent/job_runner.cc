#include "agent/job_runner.h"

#include <spdlog/spdlog.h>

#include <filesystem>

#include "agent/cli_agent.h"
#include "agent/context.h"
#include "agent/loop_detector.h"
#include "agent/step_timings.h"
#include "agent/provider.h"
#include "agent/terminal_stream.h"
#include "agent/tools.h"
#include "common/ids.h"
#include "runtime/client.h"
#include "workspace/cache.h"
#include "workspace/repo.h"

namespace kiln::agent {
namespace {

using store::JobStatus;
using store::NewEvent;
using json = nlohmann::json;

constexpr size_t kStepEventOutputBytes = 4096;

std::string preview(const std::string& s, size_t n) {
  return s.size() <= n ? s : s.substr(0, n) + "\n[... " + std::to_string(s.size() - n) +
                                 " more bytes in /steps ...]";
}

json statusEvent(JobStatus s) { return {{"status", store::jobStatusName(s)}}; }

// Event payloads are built in plain functions: g++ 12 miscompiles some braced initializer lists
// inside coroutines ("array used as initializer").
NewEvent stepEvent(const store::Step& s, bool isError) {
  return {"step",
          {{"stepNumber", s.stepNumber},
           {"phase", s.phase},
           {"plannerThought", s.plannerThought},
           {"toolCalled", s.toolCalled},
           {"toolArguments", s.toolArguments},
           {"toolOutput", preview(s.toolOutput, kStepEventOutputBytes)},
           {"isError", isError},
           {"tokens", {{"in", s.tokensIn}, {"out", s.tokensOut}}},
           {"usd", s.usd}}};
}

NewEvent diffEvent(const store::Step& s) {
  return {"diff", {{"stepNumber", s.stepNumber}, {"diff", s.workspacePatch.value_or("")}}};
}

std::vector<NewEvent> statusEvents(JobStatus st) { return {{"status", statusEvent(st)}}; }

std::vector<NewEvent> pauseEvents(const std::string& question) {
  return {{"question", {{"question", question}, {"kind", "question"}}},
          {"status", statusEvent(JobStatus::kPaused)}};
}

std::vector<NewEvent> approvalEvents(const std::string& action, const std::string& question,
                                     const std::string& summary) {
  return {{"question",
           {{"question", question}, {"kind", "approval"}, {"action", action}, {"summary", summary}}},
          {"status", statusEvent(JobStatus::kPaused)}};
}

json pendingApproval(const std::string& action) {
  return {{"action", action}, {"state", "pending"}};
}

NewEvent compressedEvent(const store::Step& s) {
  return {"context_compressed",
          {{"stepNumber", s.stepNumber},
           {"keptFromStep", s.toolArguments.value("keptFromStep", 0)},
           {"summary", s.plannerThought}}};
}

// `approvals`: true (every gate), false, or the names of the gates.
bool listed(const json& list, const std::string& item) {
  if (list.is_boolean()) return list.get<bool>();
  if (!list.is_array()) return false;
  for (const auto& v : list)
    if (v.is_string() && v.get<std::string>() == item) return true;
  return false;
}

StepRecord loopRecord(const store::Step& s, const Observation& obs) {
  StepRecord r;
  r.toolName = s.toolCalled;
  r.argumentsJson = s.toolArguments.dump();
  r.output = obs.output;
  r.isError = obs.isError;
  r.exitCode = obs.exitCode;
  r.mutating = obs.mutating;
  r.workspaceHashAfter = s.workspaceHash;
  return r;
}

StepRecord talkRecord(const store::Step& s) {
  StepRecord r;
  r.hadToolCall = false;
  r.output = s.plannerThought;
  return r;
}

std::vector<NewEvent> failEvents(const json& err) {
  return {{"error", err},
          {"status", statusEvent(JobStatus::kFailed)},
          {"done", {{"status", "FAILED"}, {"error", err}}}};
}

std::vector<NewEvent> completeEvents(const std::string& summary, const std::string& branch,
                                     const std::string& commit) {
  return {{"status", statusEvent(JobStatus::kCompleted)},
          {"done",
           {{"status", "COMPLETED"}, {"summary", summary}, {"branch", branch}, {"commit", commit}}}};
}

json commitArgs(const store::Job& job, const std::string& summary) {
  std::string title = job.taskDesc.substr(0, job.taskDesc.find('\n')).substr(0, 72);
  return {{"branch", "kiln/" + job.id}, {"message", "kiln: " + title + "\n\n" + summary}};
}

std::vector<NewEvent> eventList(NewEvent a) {
  std::vector<NewEvent> v;
  v.push_back(std::move(a));
  return v;
}
std::vector<NewEvent> eventList(NewEvent a, NewEvent b) {
  std::vector<NewEvent> v = eventList(std::move(a));
  v.push_back(std::move(b));
  return v;
}

// A human's answer (reply, approval refusal, continue) as a step, so it stays in the context
// of a job resumed elsewhere.
store::Step replyStep(int stepNumber, const std::string& text) {
  store::Step s;
  s.stepNumber = stepNumber;
  s.phase = kReplyPhase;
  s.toolOutput = text;
  return s;
}

std::string refusalText(const json& approval, const std::string& reason) {
  return "The human did not approve the " + approval.value("action", std::string("action")) +
         ". Their answer: " + reason + "\nAddress it and call finish again when done.";
}

void removeStaleGitLocks(const std::string& gitDir) {
  std::error_code ec;
  for (auto it = std::filesystem::recursive_directory_iterator(gitDir, ec);
       !ec && it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
    if (it->is_directory() && it->path().filename() == "objects") {
      it.disable_recursion_pending();
    } else if (it->path().extension() == ".lock") {
      std::error_code rmEc;
      std::filesystem::remove(it->path(), rmEc);
      spdlog::warn("removed stale git lock {}", it->path().string());
    }
  }
}

json inflightRecord(const store::Step& s) {
  return {{"stepNumber", s.stepNumber}, {"plannerThought", s.plannerThought},
          {"toolCalled", s.toolCalled}, {"toolArguments", s.toolArguments},
          {"tokensIn", s.tokensIn}, {"tokensOut", s.tokensOut}, {"usd", s.usd}};
}

// The step that stands for a call that was running when its node died.
store::Step interruptedStep(const json& r) {
  store::Step s;
  s.stepNumber = r.value("stepNumber", 0);
  s.plannerThought = r.value("plannerThought", "");
  s.toolCalled = r.value("toolCalled", "");
  s.toolArguments = r.value("toolArguments", json::object());
  s.tokensIn = r.value("tokensIn", int64_t{0});
  s.tokensOut = r.value("tokensOut", int64_t{0});
  s.usd = r.value("usd", 0.0);
  s.toolOutput =
      "[interrupted: the kiln node running this call stopped before it finished. It was not "
      "re-run automatically because it may have had effects; check the workspace and repeat it "
      "if needed.]";
  return s;
}

json patchArgs(const std::string& patch) { return {{"patch", patch}}; }

// `since`: the tree the runner saw last; the runtime skips the diff when nothing changed.
json diffArgs(const std::string& base, const std::string& since) {
  return {{"base", base}, {"since", since}};
}
// The push of the job's branch to its remote. The token (KILN_GIT_PUSH_TOKEN on the node) goes
// to the runtime only, never into a stored step.
json pushArgs(const store::Job& job, bool withToken) {
  json a = {{"remote", job.repoUrl}, {"branch", "kiln/" + job.id}};
  const char* token = std::getenv("KILN_GIT_PUSH_TOKEN");
  if (withToken && token && *token) a["token"] = token;
  return a;
}

// A step of the delivery (commit, push): kiln's own action, recorded like a tool call.
store::Step deliveryStep(int number, std::string thought, std::string tool, json args,
                         std::string output, std::string tree) {
  store::Step s;
  s.stepNumber = number;
  s.phase = "delivering";
  s.plannerThought = std::move(thought);
  s.toolCalled = std::move(tool);
  s.toolArguments = std::move(args);
  s.toolOutput = std::move(output);
  s.workspaceHash = std::move(tree);
  return s;
}

// The sandbox pushes over the network; it cannot see the host's files.
std::optional<std::string> pushUnsupported(const std::string& repoUrl) {
  if (repoUrl.empty()) return "push: the job has no repoUrl";
  if (repoUrl[0] == '/' || repoUrl.rfind("file://", 0) == 0) {
    return "push: the job's repo is a local path (" + repoUrl +
           "); push needs a network remote (https://, ssh://). Take the work from "
           "GET /api/v1/jobs/{id}/diff instead.";
  }
  return std::nullopt;
}

// A diff on a throwaway index: what gets committed and reviewed.
json freshDiffArgs(const std::string& base) { return {{"base", base}, {"fresh", true}}; }

// The job's sandbox. Egress goes through the allowlist proxy when the job lists hosts, runs an
// agent CLI (its model API host), or pushes over HTTP(S) (the remote's host); else none.
sandbox::SandboxSpec sandboxSpecFor(const store::Job& job, const std::string& workspaceDir) {
  sandbox::SandboxSpec spec;
  spec.id = randomToken(6);
  spec.workspaceDir = workspaceDir;
  const json sb = job.spec.value("sandbox", json::object());
  spec.cpus = sb.value("cpus", 0);
  spec.memoryMb = sb.value("memoryMb", 0);
  spec.diskMb = sb.value("diskMb", 0);
  spec.network = sb.value("network", "none");
  spec.image = sb.value("image", "");
  for (const auto& h : sb.value("allowHosts", json::array()))
    if (h.is_string()) spec.allowHosts.push_back(h.get<std::string>());
  for (auto& h : cliAllowHosts(job.agent, job.spec, processEnv()))
    spec.allowHosts.push_back(std::move(h));
  const std::string& remote = job.repoUrl;
  bool httpRemote = remote.rfind("https://", 0) == 0 || remote.rfind("http://", 0) == 0;
  if (job.spec.value("push", false) && httpRemote) {
    // host[:port] of the remote: the proxy matches an explicit port too.
    if (std::string authority = urlAuthority(remote); !authority.empty())
      spec.allowHosts.push_back(authority);
  }
  if (!spec.allowHosts.empty()) spec.network = "allowlist";
  return spec;
}

// A failure that ends the job, with the stable code shown to users.
struct JobFailure {
  std::string code;
  std::string message;
  json extra = json::object();
};

JobFailure llmFailure(const Status& st) {
  if (st.code() == Code::kUnauthenticated) {
    return JobFailure{"llm_unauthorized",
                      "the model API rejected the credentials (check the API key): " +
                          st.message()};
  }
  return JobFailure{"llm_error", st.message()};
}

JobFailure limitFailure(const sandbox::LimitBreach& b) {
  return JobFailure{"sandbox_limit", b.message, {{"resource", b.resource}}};
}

JobFailure budgetFailure(const char* limit, std::string message) {
  return JobFailure{"budget_exceeded", std::move(message), {{"limit", limit}}};
}

JobFailure wallBudgetFailure(int64_t maxWallSeconds, bool commandKilled) {
  return budgetFailure("maxWallSeconds",
                       "ran longer than " + std::to_string(maxWallSeconds) + " s" +
                           (commandKilled ? " (the running command was killed)" : ""));
}

JobFailure loopFailure(const LoopVerdict& v) {
  return JobFailure{"loop_detected", "the agent is stuck: " + v.reason, {{"rule", v.rule}}};
}

std::string approvalQuestion(const std::string& action, const std::string& jobId) {
  if (action == "push") return "Approve pushing branch kiln/" + jobId + " to the remote?";
  return "Approve committing the agent's changes on branch kiln/" + jobId +
         "? Approve to go on, or reply with what to change.";
}

JobFailure cliFailure(const json& f) {
  return JobFailure{f.value("code", "agent_failed"), f.value("message", ""), f};
}

class JobRun {
 public:
  JobRun(RunnerDeps deps, store::Job job, std::shared_ptr<JobHandle> handle)
      : d_(std::move(deps)), job_(std::move(job)), handle_(std::move(handle)) {
    if (!job_.limits.is_object()) job_.limits = json::object();
    if (d_.defaultLimits.is_object()) {
      for (const auto& [key, value] : d_.defaultLimits.items())
        if (!job_.limits.contains(key)) job_.limits[key] = value;
    }
  }

  Task<void> run();

 private:
  // Each returns a failure to end the job with, or nullopt to go on.
  Task<std::optional<JobFailure>> provision();
  Task<std::optional<JobFailure>> loop();
  // Commits (and pushes), pausing first at each gate listed in the job's `approvals`.
  Task<std::optional<JobFailure>> deliver(const std::string& summary);
  Task<std::optional<JobFailure>> pauseForApproval(const std::string& action,
                                                   const std::string& summary);
  // Replaces older steps in the context by a model-written summary (originals stay stored).
  Task<std::optional<JobFailure>> compress();
  // An external agent CLI (cli_agent.h) does the whole job in one command.
  Task<std::optional<JobFailure>> runCli(TerminalStream& terminal);
  Task<Status> recordCliStep(CliStep& c);
  std::optional<JobFailure> cliBreach_;  // a budget the running CLI exceeded
  std::optional<JobFailure> checkCaps() const;
  int64_t maxWallSeconds() const;
  // What is left of the job's wall-clock budget (negative once it ran out).
  int64_t wallLeftMs() const;
  int64_t contextThreshold() const { return job_.limits.value("contextTokens", int64_t{64000}); }
  // The summary of the newest finish call, and whether a commit followed it.
  std::string lastFinishSummary() const;
  bool committedSinceFinish() const;
  std::string lastCommit() const;

  // Parameters are const references, never by-value temporaries: g++ 12 can destroy a
  // coroutine's by-value temporary arguments twice. Callers co_await at once, so they live.
  Task<bool> update(const store::JobUpdate& change);  // false if a condition failed
  // Stores the step with its events, then adds it to the in-memory history and context.
  Task<Status> record(const store::Step& done, const std::vector<NewEvent>& events);
  Task<void> fail(const JobFailure& f);
  // A failed step write ends the job, unless the lease is gone (then the new owner carries on).
  std::optional<JobFailure> recordFailure(const Status& st) const {
    if (leaseLost_) return std::nullopt;
    return JobFailure{"internal", "record step: " + st.message()};
  }
  Task<void> destroySandbox();
  // Diffs the workspace against the base commit; when its tree changed, stores the patch on
  // `s` and returns true. Always sets s.workspaceHash to the current tree.
  Task<bool> captureWorkspace(store::Step& s);
  // Stops at a step boundary and releases the lease so any node can resume the job at once.
  Task<std::optional<JobFailure>> releaseForHandover() {
    store::JobUpdate u;
    u.releaseLease = true;
    co_await update(u);
    spdlog::info("job {}: released at step {} for another node", job_.id, nextStep_ - 1);
    co_return std::nullopt;
  }

  RunnerDeps d_;
  store::Job job_;
  std::shared_ptr<JobHandle> handle_;
  std::shared_ptr<sandbox::Sandbox> sandbox_;
  std::unique_ptr<runtime::RuntimeClient> rt_;
  std::unique_ptr<Provider> provider_;
  TaskInfo info_;
  std::vector<store::Step> steps_;  // every stored step of the job, oldest first
  std::vector<Message> ctx_;
  LoopDetector loops_;
  std::string lastTree_;
  int64_t promptTokens_ = 0;  // the size of the last request, as the provider counted it
  std::optional<std::string> deliverNow_;  // an approved gate: deliver with this summary
  // For StepTimings: when the last model reply arrived, and how long its tools ran since.
  std::optional<std::chrono::steady_clock::time_point> replied_;
  std::chrono::steady_clock::duration toolTime_{};
  // Called right before each model request: records kiln's overhead since the last reply.
  void noteRequest() {
    if (replied_) stepTimings().record(std::chrono::steady_clock::now() - *replied_ - toolTime_);
  }
  void noteReply() {
    replied_ = std::chrono::steady_clock::now();
    toolTime_ = {};
  }
  int nextStep_ = 1;
  bool leaseLost_ = false;
};

Task<void> JobRun::run() {
  const workspace::Workspaces workspaces(d_.workspacesDir, d_.reposDir, d_.agentUid);
  workspaces.beginUse(job_.id);
  auto f = co_await provision();
  if (!f && !handle_->cancelled() && !leaseLost_) {
    if (deliverNow_)
      f = co_await deliver(*deliverNow_);
    else
      f = co_await loop();
  }
  if (f && !handle_->cancelled() && !leaseLost_) co_await fail(*f);
  co_await destroySandbox();
  // The workspace's overlay is unmounted; its layers stay for a resume or a follow-up.
  co_await d_.pool->run([&] { workspaces.endUse(job_.id); });
  if (handle_->cancelled()) {
    spdlog::info("job {}: cancelled ({})", job_.id, handle_->cancelReason());
  }
}

Task<bool> JobRun::update(const store::JobUpdate& change) {
  store::JobUpdate u = change;
  u.ifOwner = d_.nodeId;
  auto r = co_await d_.pool->run([&] { return d_.store->updateJob(job_.id, u); });
  if (!r.isOk()) {
    spdlog::error("job {}: store update failed: {}", job_.id, r.status().toString());
    co_return false;
  }
  if (!r->applied) leaseLost_ = true;
  if (!r->events.empty()) d_.bus->publish(job_.id);
  co_return r->applied;
}

Task<Status> JobRun::record(const store::Step& done, const std::vector<NewEvent>& events) {
  store::Step step = done;
  step.jobId = job_.id;
  step.executedAt = d_.clock->nowMs();
  auto r = co_await d_.pool->run([&] { return d_.store->recordStep(step, d_.nodeId, events); });
  if (!r.isOk()) {
    if (r.status().code() == Code::kConflict) leaseLost_ = true;
    co_return r.status();
  }
  d_.bus->publish(job_.id);
  job_.stepCount = step.stepNumber;
  job_.tokensIn += step.tokensIn;
  job_.tokensOut += step.tokensOut;
  job_.tokenSpendUsd += step.usd;
  appendStep(ctx_, step);
  steps_.push_back(std::move(step));
  co_return Status::ok();
}

Task<void> JobRun::fail(const JobFailure& f) {
  spdlog::warn("job {}: failed: {}: {}", job_.id, f.code, f.message);
  json err = f.extra;
  err["code"] = f.code;
  err["message"] = f.message;
  store::JobUpdate u;
  u.status = JobStatus::kFailed;
  u.error = err;
  u.releaseLease = true;
  u.events = failEvents(err);
  co_await update(u);
}

Task<bool> JobRun::captureWorkspace(store::Step& s) {
  const std::string path = "/git/diff";
  const json body = diffArgs(job_.baseCommit, lastTree_);
  auto d = co_await rt_->call(path, body);
  bool changed = d.isOk() && d->value("tree", "") != lastTree_;
  if (changed) {
    lastTree_ = d->value("tree", "");
    s.workspacePatch = d->value("diff", "");
  }
  s.workspaceHash = lastTree_;
  co_return changed;
}

Task<void> JobRun::destroySandbox() {
  if (!sandbox_) co_return;
  rt_.reset();
  auto sb = sandbox_;
  sandbox_.reset();
  handle_->setSandbox(nullptr);
  // A named lambda capturing by reference: g++ 12 destroys a lambda temporary that owns a
  // shared_ptr twice when it appears in a co_await expression.
  auto destroy = [&sb] { return sb->destroy(); };
  Status st = co_await d_.pool->run(destroy);
  if (!st.isOk()) spdlog::error("job {}: destroy sandbox: {}", job_.id, st.toString());
}

Task<std::optional<JobFailure>> JobRun::provision() {
  ProviderSettings ps;
  ps.agent = job_.agent;
  ps.model = job_.model;
  ps.spec = job_.spec;
  auto prov = makeProvider(ps, co_await asio::this_coro::executor);
  if (!prov.isOk()) co_return JobFailure{"invalid_argument", prov.status().message()};
  provider_ = std::move(prov).value();

  if (job_.status == JobStatus::kQueued) {
    store::JobUpdate u;
    u.status = JobStatus::kProvisioning;
    u.events = statusEvents(JobStatus::kProvisioning);
    if (!co_await update(u)) co_return std::nullopt;
  }
  // The workspace is reused when it survived (a resume or follow-up on the same node: an
  // overlay's layers are remounted); otherwise it is created fresh at the base commit.
  const workspace::Workspaces workspaces(d_.workspacesDir, d_.reposDir, d_.agentUid);
  std::string dir = workspaces.dir(job_.id);
  bool reuse = false;
  if (!job_.baseCommit.empty()) {
    reuse = co_await d_.pool->run([&] { return workspaces.reattach(job_.id); });
  }
  // A job that already ran elsewhere (or lost its workspace) is rebuilt: a workspace at the base
  // commit, then the newest stored workspace patch applied inside the sandbox.
  bool rebuild = !reuse && !job_.baseCommit.empty();
  // A git command killed with its sandbox (node crash) leaves *.lock files behind; nothing else
  // can be using this workspace now that we hold the lease.
  if (reuse) co_await d_.pool->run([&] { removeStaleGitLocks(dir + "/.git"); });
  if (!reuse) {
    std::string ref = job_.baseCommit.empty() ? job_.ref : job_.baseCommit;
    auto ws = co_await d_.pool->run([&]() -> Result<workspace::PreparedWorkspace> {
      return workspaces.create(job_.id, job_.repoUrl, ref);
    });
    if (!ws.isOk()) co_return JobFailure{"repo_unreachable", ws.status().message()};
    if (job_.baseCommit.empty()) {
      job_.baseCommit = ws->baseCommit;
      store::JobUpdate u;
      u.baseCommit = job_.baseCommit;
      if (!co_await update(u)) co_return std::nullopt;
    }
  }

  sandbox::SandboxSpec spec = sandboxSpecFor(job_, dir);
  auto created = co_await d_.pool->run([&] { return d_.backend->create(spec); });
  if (!created.isOk()) co_return JobFailure{"sandbox_error", created.status().message()};
  sandbox_ = std::shared_ptr<sandbox::Sandbox>(std::move(created).value());
  handle_->setSandbox(sandbox_);
  if (handle_->cancelled()) co_return std::nullopt;  // stopped while we were creating it
  rt_ = std::make_unique<runtime::RuntimeClient>(co_await asio::this_coro::executor,
                                                 sandbox_->runtimeSocket());
  if (rebuild) {
    auto patch = co_await d_.pool->run([&] { return d_.store->latestPatch(job_.id); });
    if (!patch.isOk()) co_return JobFailure{"internal", patch.status().message()};
    if (!patch->empty()) {
      const std::string path = "/git/apply";
      const json body = patchArgs(*patch);
      auto applied = co_await rt_->call(path, body);
      if (!applied.isOk()) {
        co_return JobFailure{"workspace_rebuild_failed",
                             "apply the stored patch: " + applied.status().message()};
      }
      spdlog::info("job {}: workspace rebuilt from base {} and the stored patch", job_.id,
                   job_.baseCommit);
    }
  }

  auto steps = co_await d_.pool->run([&] { return d_.store->listSteps(job_.id); });
  if (!steps.isOk()) co_return JobFailure{"internal", steps.status().message()};
  steps_ = std::move(steps).value();
  ctx_ = rebuildContext(job_, steps_);
  nextStep_ = steps_.empty() ? 1 : steps_.back().stepNumber + 1;
  for (const auto& s : steps_)
    if (!s.workspaceHash.empty()) lastTree_ = s.workspaceHash;
  if (job_.inflightCall.is_object()) {
    store::Step s = interruptedStep(job_.inflightCall);
    if (s.stepNumber < nextStep_) s.stepNumber = nextStep_;
    co_await captureWorkspace(s);
    Status st = co_await record(s, eventList(stepEvent(s, true)));
    if (!st.isOk()) co_return recordFailure(st);
    nextStep_ = s.stepNumber + 1;
  }

  store::JobUpdate u;
  u.status = JobStatus::kRunning;
  u.markStarted = true;
  u.events = statusEvents(JobStatus::kRunning);
  const std::string gateState =
      job_.approval.is_object() ? job_.approval.value("state", "") : "";
  if (gateState == "approved") {
    // Passed the gate: deliver what the agent finished. The approval is cleared when the job
    // completes, so a crash before that still resumes into delivery.
    deliverNow_ = lastFinishSummary();
    u.clearPendingReply = true;
  } else if (job_.pendingReply) {
    // A human answered (reply, a refused approval, or continue): the answer is the agent's
    // next message. Stored as a step first, so it survives a crash after this point.
    std::string text = gateState == "refused" ? refusalText(job_.approval, *job_.pendingReply)
                                              : *job_.pendingReply;
    store::Step s = replyStep(nextStep_++, text);
    Status st = co_await record(s, eventList(stepEvent(s, false)));
    if (!st.isOk()) co_return recordFailure(st);
    u.clearPendingReply = true;
    if (!job_.approval.is_null()) u.approval = json(nullptr);
  }
  if (!co_await update(u)) co_return std::nullopt;
  co_return std::nullopt;
}

std::optional<JobFailure> JobRun::checkCaps() const {
  const json& l = job_.limits;
  int maxSteps = l.value("maxSteps", 50);
  if (job_.stepCount >= maxSteps)
    return budgetFailure("maxSteps", "reached the step limit of " + std::to_string(maxSteps));
  if (l.contains("maxTokens") && job_.tokensIn + job_.tokensOut >= l["maxTokens"].get<int64_t>())
    return budgetFailure("maxTokens", "reached the token limit of " + l["maxTokens"].dump());
  if (l.contains("maxUsd") && job_.tokenSpendUsd >= l["maxUsd"].get<double>())
    return budgetFailure("maxUsd", "reached the spend limit of $" + l["maxUsd"].dump());
  if (job_.startedAt > 0 && wallLeftMs() <= 0) return wallBudgetFailure(maxWallSeconds(), false);
  return std::nullopt;
}

int64_t JobRun::maxWallSeconds() const {
  return job_.limits.value("maxWallSeconds", int64_t{3600});
}

int64_t JobRun::wallLeftMs() const {
  const int64_t used = job_.startedAt > 0 ? d_.clock->nowMs() - job_.startedAt : 0;
  return maxWallSeconds() * 1000 - used;
}

std::string JobRun::lastFinishSummary() const {
  for (auto it = steps_.rbegin(); it != steps_.rend(); ++it) {
    if (it->toolCalled == "finish") return it->toolOutput;
  }
  return "";
}

std::string JobRun::lastCommit() const {
  for (auto it = steps_.rbegin(); it != steps_.rend(); ++it) {
    if (it->toolCalled != "git_commit") continue;
    json out = json::parse(it->toolOutput, nullptr, false);
    return out.is_object() ? out.value("commit", "") : "";
  }
  return "";
}

bool JobRun::committedSinceFinish() const {
  for (auto it = steps_.rbegin(); it != steps_.rend(); ++it) {
    if (it->toolCalled == "git_commit") return true;
    if (it->toolCalled == "finish") return false;
  }
  return false;
}

Task<std::optional<JobFailure>> JobRun::compress() {
  promptTokens_ = 0;
  int keptFrom = firstKeptStep(steps_, contextThreshold());
  if (keptFrom == 0) co_return std::nullopt;  // too little history to compress
  const std::vector<Message> request = summaryRequest(ctx_);
  noteRequest();
  auto turn = co_await provider_->next(info_, request);
  noteReply();
  if (!turn.isOk()) co_return llmFailure(turn.status());
  std::string summary = turn->thought;
  // A model that answers with a tool call anyway: its arguments are the best summary it gave.
  if (summary.empty() && !turn->calls.empty()) summary = turn->calls.front().arguments.dump();
  store::Step s = compressionStep(nextStep_++, summary, keptFrom);
  s.tokensIn = turn->tokensIn, s.tokensOut = turn->tokensOut, s.usd = turn->usd;
  Status st = co_await record(s, eventList(stepEvent(s, false), compressedEvent(s)));
  if (!st.isOk()) co_return recordFailure(st);
  ctx_ = rebuildContext(job_, steps_);
  spdlog::info("job {}: context compressed (steps before {} summarised)", job_.id, keptFrom);
  co_return std::nullopt;
}

Task<std::optional<JobFailure>> JobRun::loop() {
  if (job_.startedAt == 0) job_.startedAt = d_.clock->nowMs();
  TerminalStream terminal(co_await asio::this_coro::executor, *d_.store, *d_.bus, *d_.pool,
                          job_.id);
  if (isCliAgent(job_.agent)) co_return co_await runCli(terminal);
  ToolExecutor tools(*rt_, [&](std::string_view stream, std::string_view data) {
    terminal.push(stream, data);
  });
  info_.jobId = job_.id;
  info_.taskDesc = job_.taskDesc;
  info_.repoUrl = job_.repoUrl;
  info_.model = job_.model;
  if (lastTree_.empty()) {  // the starting tree, so the first attempted change can be judged
    store::Step baseline;
    co_await captureWorkspace(baseline);
  }
  loops_.setInitialWorkspaceHash(lastTree_);
  while (!handle_->cancelled() && !leaseLost_) {
    if (handle_->draining()) co_return co_await releaseForHandover();
    if (auto f = checkCaps()) co_return f;
    if (contextThreshold() > 0 && promptTokens_ >= contextThreshold()) {
      if (auto f = co_await compress()) co_return f;
      continue;
    }
    noteRequest();
    auto turn = co_await provider_->next(info_, ctx_);
    noteReply();
    if (!turn.isOk()) co_return llmFailure(turn.status());
    promptTokens_ = turn->tokensIn;
    if (turn->calls.empty()) {
      store::Step s;
      s.stepNumber = nextStep_++;
      s.phase = "planning";
      s.plannerThought = turn->thought;
      s.toolOutput = "Use a tool to act, or call finish with a summary when the task is done.";
      s.tokensIn = turn->tokensIn, s.tokensOut = turn->tokensOut, s.usd = turn->usd;
      Status st = co_await record(s, eventList(stepEvent(s, false)));
      if (!st.isOk()) co_return recordFailure(st);
      if (auto v = loops_.observe(talkRecord(s))) co_return loopFailure(*v);
      continue;
    }
    for (size_t i = 0; i < turn->calls.size(); ++i) {
      const ToolCall& call = turn->calls[i];
      store::Step s;
      s.stepNumber = nextStep_++;
      s.plannerThought = i == 0 ? turn->thought : "";
      s.toolCalled = call.name;
      s.toolArguments = call.arguments;
      if (i == 0) s.tokensIn = turn->tokensIn, s.tokensOut = turn->tokensOut, s.usd = turn->usd;
      // Written before the call starts: if this node dies mid-call, the resumed job records
      // the call as interrupted instead of running it a second time.
      store::JobUpdate mark;
      mark.inflightCall = inflightRecord(s);
      if (!co_await update(mark)) co_return std::nullopt;
      auto toolStart = std::chrono::steady_clock::now();
      tools.setTimeLeftMs(std::max<int64_t>(wallLeftMs(), 1));
      Observation obs = co_await tools.execute(call);
      toolTime_ += std::chrono::steady_clock::now() - toolStart;
      co_await terminal.drain();
      if (handle_->cancelled()) co_return std::nullopt;
      s.toolOutput = obs.output;
      std::vector<NewEvent> events;
      if (obs.mutating && co_await captureWorkspace(s)) events.push_back(diffEvent(s));
      s.workspaceHash = lastTree_;
      events.insert(events.begin(), stepEvent(s, obs.isError));
      Status st = co_await record(s, events);
      if (!st.isOk()) co_return recordFailure(st);
      // A limit that killed the command (or the whole sandbox) ends the job with its reason.
      if (auto breach = sandbox_->limitBreach()) co_return limitFailure(*breach);
      if (obs.outOfTime) co_return wallBudgetFailure(maxWallSeconds(), true);
      if (obs.finish) co_return co_await deliver(obs.output);
      if (obs.askUser) {
        store::JobUpdate u;
        u.status = JobStatus::kPaused;
        u.releaseLease = true;
        u.ifStatusIn.push_back(JobStatus::kRunning);
        u.events = pauseEvents(obs.output);
        co_await update(u);
        co_return std::nullopt;
      }
      if (auto v = loops_.observe(loopRecord(s, obs))) co_return loopFailure(*v);
    }
  }
  co_return std::nullopt;
}

Task<std::optional<JobFailure>> JobRun::pauseForApproval(const std::string& action,
                                                         const std::string& summary) {
  store::JobUpdate u;
  u.status = JobStatus::kPaused;
  u.releaseLease = true;
  u.ifStatusIn.push_back(JobStatus::kRunning);
  u.approval = pendingApproval(action);
  u.events = approvalEvents(action, approvalQuestion(action, job_.id), summary);
  co_await update(u);
  spdlog::info("job {}: paused for approval of the {}", job_.id, action);
  co_return std::nullopt;
}

Task<std::optional<JobFailure>> JobRun::runCli(TerminalStream& terminal) {
  auto plan = resolveCliAgent(job_.agent, job_.model, job_.spec, job_.taskDesc, processEnv());
  if (!plan.isOk()) co_return JobFailure{"invalid_argument", plan.status().message()};
  Status recordErr;
  CliHooks hooks;
  hooks.recordStep = [this, &recordErr](CliStep& c) -> Task<Status> {
    Status st = co_await recordCliStep(c);
    if (!st.isOk()) recordErr = st;
    co_return st;
  };
  // What is left of the job's wall-clock budget, for the CLI's single long command.
  const int timeoutMs = static_cast<int>(std::clamp<int64_t>(wallLeftMs(), 1000, INT32_MAX));
  auto out = co_await runCliAgent(*plan, timeoutMs, *rt_, terminal, hooks);
  if (handle_->cancelled() || leaseLost_) co_return std::nullopt;
  if (cliBreach_) co_return cliBreach_;
  if (!recordErr.isOk()) co_return recordFailure(recordErr);
  if (!out.isOk()) {
    co_return JobFailure{"agent_failed", "run the agent CLI: " + out.status().message()};
  }
  if (!out->failure.is_null()) co_return cliFailure(out->failure);
  co_return co_await deliver(out->summary);
}

Task<Status> JobRun::recordCliStep(CliStep& c) {
  store::Step& s = c.step;
  s.stepNumber = nextStep_++;
  std::vector<NewEvent> events;
  if (co_await captureWorkspace(s)) events.push_back(diffEvent(s));
  s.workspaceHash = lastTree_;
  events.insert(events.begin(), stepEvent(s, c.isError));
  Status st = co_await record(s, events);
  if (st.isOk() && !cliBreach_ && (cliBreach_ = checkCaps())) {
    // The CLI cannot be asked to stop at a step boundary: end its run by killing the sandbox.
    auto sb = sandbox_;
    auto kill = [&sb] { return sb->destroy(); };
    co_await d_.pool->run(kill);
  }
  co_return st;
}

Task<std::optional<JobFailure>> JobRun::deliver(const std::string& summary) {
  const json approvals = job_.spec.value("approvals", json::array());
  const std::string approved = job_.approval.is_object() &&
                                       job_.approval.value("state", "") == "approved"
                                   ? job_.approval.value("action", "")
                                   : "";
  std::string commit;
  if (committedSinceFinish()) {  // resumed past the commit (e.g. at the push gate)
    commit = lastCommit();
  } else {
    if (listed(approvals, "commit") && approved != "commit") {
      const std::string action = "commit";
      co_return co_await pauseForApproval(action, summary);
    }
    json args = commitArgs(job_, summary);
    const std::string commitPath = "/git/commit";
    auto c = co_await rt_->call(commitPath, args);
    if (!c.isOk()) co_return JobFailure{"delivery_failed", "commit: " + c.status().message()};
    const std::string diffPath = "/git/diff";
    const json diffBody = freshDiffArgs(job_.baseCommit);
    auto d = co_await rt_->call(diffPath, diffBody);
    if (!d.isOk()) co_return JobFailure{"delivery_failed", "diff: " + d.status().message()};
    store::Step s = deliveryStep(nextStep_++, "Commit the work on branch kiln/" + job_.id + ".",
                                 "git_commit", args, c->dump(), d->value("tree", ""));
    s.workspacePatch = d->value("diff", "");
    Status st = co_await record(s, eventList(stepEvent(s, false), diffEvent(s)));
    if (!st.isOk()) co_return recordFailure(st);
    commit = c->value("commit", "");
  }
  if (job_.spec.value("push", false)) {
    if (listed(approvals, "push") && approved != "push") {
      const std::string action = "push";
      co_return co_await pauseForApproval(action, summary);
    }
    if (auto why = pushUnsupported(job_.repoUrl)) co_return JobFailure{"delivery_failed", *why};
    const std::string pushPath = "/git/push";
    const json pushBody = pushArgs(job_, true);
    auto p = co_await rt_->call(pushPath, pushBody);
    if (!p.isOk()) co_return JobFailure{"delivery_failed", "push: " + p.status().message()};
    store::Step s = deliveryStep(nextStep_++, "Push branch kiln/" + job_.id + " to the remote.",
                                 "git_push", pushArgs(job_, false), p->dump(), lastTree_);
    Status st = co_await record(s, eventList(stepEvent(s, false)));
    if (!st.isOk()) co_return recordFailure(st);
  }
  store::JobUpdate u;
  u.status = JobStatus::kCompleted;
  u.releaseLease = true;
  u.ifStatusIn.push_back(JobStatus::kRunning);
  if (!job_.approval.is_null()) u.approval = json(nullptr);
  u.events = completeEvents(summary, "kiln/" + job_.id, commit);
  co_await update(u);
  co_return std::nullopt;
}

}  // namespace

std::string JobHandle::cancelReason() const {
  std::lock_guard lock(mu_);
  return reason_;
}

void JobHandle::cancel(const std::string& reason) {
  std::shared_ptr<sandbox::Sandbox> sb;
  {
    std::lock_guard lock(mu_);
    if (reason_.empty()) reason_ = reason;
    cancelled_ = true;
    sb = sandbox_;
  }
  // Killing the sandbox makes every in-flight runtime call fail at once.
  if (sb) (void)sb->destroy();
}

void JobHandle::setSandbox(std::shared_ptr<sandbox::Sandbox> sb) {
  std::lock_guard lock(mu_);
  sandbox_ = std::move(sb);
}

std::shared_ptr<sandbox::Sandbox> JobHandle::sandbox() const {
  std::lock_guard lock(mu_);
  return sandbox_;
}

Task<void> runJob(RunnerDeps deps, store::Job job, std::shared_ptr<JobHandle> handle) {
  JobRun run(std::move(deps), std::move(job), std::move(handle));
  co_await run.run();
}

}  // namespace kiln::agent
