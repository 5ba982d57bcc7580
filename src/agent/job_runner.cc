#include "agent/job_runner.h"

#include <spdlog/spdlog.h>

#include <filesystem>

#include "agent/cli_agent.h"
#include "agent/context.h"
#include "agent/provider.h"
#include "agent/terminal_stream.h"
#include "agent/tools.h"
#include "common/ids.h"
#include "runtime/client.h"
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

Message userMessage(const std::string& text) {
  Message m;
  m.role = "user";
  m.content = text;
  return m;
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

json diffArgs(const std::string& base) { return {{"base", base}}; }

// A failure that ends the job, with the stable code shown to users.
struct JobFailure {
  std::string code;
  std::string message;
  json extra = json::object();
};

JobFailure cliFailure(const json& f) {
  return JobFailure{f.value("code", "agent_failed"), f.value("message", ""), f};
}

// What is left of the job's wall-clock budget, for the CLI's single long command.
int cliTimeoutMs(const store::Job& job, int64_t nowMs) {
  int64_t wallMs = job.limits.value("maxWallSeconds", int64_t{3600}) * 1000;
  int64_t left = wallMs - (job.startedAt > 0 ? nowMs - job.startedAt : 0);
  return static_cast<int>(std::clamp<int64_t>(left, 1000, INT32_MAX));
}

class JobRun {
 public:
  JobRun(RunnerDeps deps, store::Job job, std::shared_ptr<JobHandle> handle)
      : d_(std::move(deps)), job_(std::move(job)), handle_(std::move(handle)) {}

  Task<void> run();

 private:
  // Each returns a failure to end the job with, or nullopt to go on.
  Task<std::optional<JobFailure>> provision();
  Task<std::optional<JobFailure>> loop();
  Task<std::optional<JobFailure>> deliver(const std::string& summary);
  // An external agent CLI (cli_agent.h) does the whole job in one command.
  Task<std::optional<JobFailure>> runCli(TerminalStream& terminal);
  Task<Status> recordCliStep(CliStep& c);
  std::optional<JobFailure> cliBreach_;  // a budget the running CLI exceeded
  std::optional<JobFailure> checkCaps() const;

  // Parameters are const references, never by-value temporaries: g++ 12 can destroy a
  // coroutine's by-value temporary arguments twice. Callers co_await at once, so they live.
  Task<bool> update(const store::JobUpdate& change);  // false if a condition failed
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
  std::vector<Message> ctx_;
  std::string lastTree_;
  int nextStep_ = 1;
  bool leaseLost_ = false;
};

Task<void> JobRun::run() {
  auto f = co_await provision();
  if (!f && !handle_->cancelled() && !leaseLost_) f = co_await loop();
  if (f && !handle_->cancelled() && !leaseLost_) co_await fail(*f);
  co_await destroySandbox();
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
  const json body = diffArgs(job_.baseCommit);
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
  // The workspace is reused when it survived (a resume on the same node); otherwise it is
  // cloned fresh at the base commit.
  std::string dir = d_.workspacesDir + "/" + job_.id;
  bool reuse = !job_.baseCommit.empty() && std::filesystem::exists(dir + "/.git");
  // A job that already ran elsewhere (or lost its workspace) is rebuilt: clone at the base
  // commit, then apply the newest stored workspace patch inside the sandbox.
  bool rebuild = !reuse && !job_.baseCommit.empty();
  // A git command killed with its sandbox (node crash) leaves *.lock files behind; nothing else
  // can be using this workspace now that we hold the lease.
  if (reuse) co_await d_.pool->run([&] { removeStaleGitLocks(dir + "/.git"); });
  if (!reuse) {
    std::string ref = job_.baseCommit.empty() ? job_.ref : job_.baseCommit;
    auto ws = co_await d_.pool->run([&]() -> Result<workspace::PreparedWorkspace> {
      std::error_code ec;
      std::filesystem::remove_all(dir, ec);
      std::filesystem::create_directories(d_.workspacesDir, ec);
      if (job_.repoUrl.empty()) return workspace::initEmptyWorkspace(dir);
      return workspace::cloneWorkspace(job_.repoUrl, ref, dir);
    });
    if (!ws.isOk()) co_return JobFailure{"repo_unreachable", ws.status().message()};
    if (job_.baseCommit.empty()) {
      job_.baseCommit = ws->baseCommit;
      store::JobUpdate u;
      u.baseCommit = job_.baseCommit;
      if (!co_await update(u)) co_return std::nullopt;
    }
  }

  sandbox::SandboxSpec spec;
  spec.id = randomToken(6);
  spec.workspaceDir = dir;
  const json sb = job_.spec.value("sandbox", json::object());
  spec.cpus = sb.value("cpus", 0);
  spec.memoryMb = sb.value("memoryMb", 0);
  spec.diskMb = sb.value("diskMb", 0);
  spec.network = sb.value("network", "none");
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
  ctx_ = rebuildContext(job_, *steps);
  nextStep_ = steps->empty() ? 1 : steps->back().stepNumber + 1;
  for (const auto& s : *steps)
    if (!s.workspaceHash.empty()) lastTree_ = s.workspaceHash;
  if (job_.inflightCall.is_object()) {
    store::Step s = interruptedStep(job_.inflightCall);
    if (s.stepNumber < nextStep_) s.stepNumber = nextStep_;
    co_await captureWorkspace(s);
    Status st = co_await record(s, eventList(stepEvent(s, true)));
    if (!st.isOk()) co_return recordFailure(st);
    appendStep(ctx_, s);
    nextStep_ = s.stepNumber + 1;
  }

  store::JobUpdate u;
  u.status = JobStatus::kRunning;
  u.markStarted = true;
  u.events = statusEvents(JobStatus::kRunning);
  if (job_.pendingReply) {
    // A human answered (reply, approve or continue): hand it to the agent as the next message.
    ctx_.push_back(userMessage(*job_.pendingReply));
    u.clearPendingReply = true;
  }
  if (!co_await update(u)) co_return std::nullopt;
  co_return std::nullopt;
}

std::optional<JobFailure> JobRun::checkCaps() const {
  const json& l = job_.limits;
  auto breach = [](const char* limit, std::string msg) {
    return JobFailure{"budget_exceeded", std::move(msg), {{"limit", limit}}};
  };
  int maxSteps = l.value("maxSteps", 50);
  if (job_.stepCount >= maxSteps)
    return breach("maxSteps", "reached the step limit of " + std::to_string(maxSteps));
  if (l.contains("maxTokens") && job_.tokensIn + job_.tokensOut >= l["maxTokens"].get<int64_t>())
    return breach("maxTokens", "reached the token limit of " + l["maxTokens"].dump());
  if (l.contains("maxUsd") && job_.tokenSpendUsd >= l["maxUsd"].get<double>())
    return breach("maxUsd", "reached the spend limit of $" + l["maxUsd"].dump());
  int64_t maxWall = l.value("maxWallSeconds", 3600);
  if (job_.startedAt > 0 && d_.clock->nowMs() - job_.startedAt >= maxWall * 1000)
    return breach("maxWallSeconds", "ran longer than " + std::to_string(maxWall) + " s");
  return std::nullopt;
}

Task<std::optional<JobFailure>> JobRun::loop() {
  if (job_.startedAt == 0) job_.startedAt = d_.clock->nowMs();
  TerminalStream terminal(co_await asio::this_coro::executor, *d_.store, *d_.bus, *d_.pool,
                          job_.id);
  if (isCliAgent(job_.agent)) co_return co_await runCli(terminal);
  ToolExecutor tools(*rt_, [&](std::string_view stream, std::string_view data) {
    terminal.push(stream, data);
  });
  TaskInfo info;
  info.jobId = job_.id;
  info.taskDesc = job_.taskDesc;
  info.repoUrl = job_.repoUrl;
  info.model = job_.model;
  while (!handle_->cancelled() && !leaseLost_) {
    if (handle_->draining()) co_return co_await releaseForHandover();
    if (auto f = checkCaps()) co_return f;
    auto turn = co_await provider_->next(info, ctx_);
    if (!turn.isOk()) co_return JobFailure{"llm_error", turn.status().message()};
    if (turn->calls.empty()) {
      store::Step s;
      s.stepNumber = nextStep_++;
      s.phase = "planning";
      s.plannerThought = turn->thought;
      s.toolOutput = "Use a tool to act, or call finish with a summary when the task is done.";
      s.tokensIn = turn->tokensIn, s.tokensOut = turn->tokensOut, s.usd = turn->usd;
      appendStep(ctx_, s);
      Status st = co_await record(s, eventList(stepEvent(s, false)));
      if (!st.isOk()) co_return recordFailure(st);
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
      Observation obs = co_await tools.execute(call);
      co_await terminal.drain();
      if (handle_->cancelled()) co_return std::nullopt;
      s.toolOutput = obs.output;
      std::vector<NewEvent> events;
      if (obs.mutating && co_await captureWorkspace(s)) events.push_back(diffEvent(s));
      s.workspaceHash = lastTree_;
      events.insert(events.begin(), stepEvent(s, obs.isError));
      Status st = co_await record(s, events);
      if (!st.isOk()) co_return recordFailure(st);
      appendStep(ctx_, s);
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
    }
  }
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
  const int timeoutMs = cliTimeoutMs(job_, d_.clock->nowMs());
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
  json args = commitArgs(job_, summary);
  const std::string commitPath = "/git/commit";
  auto c = co_await rt_->call(commitPath, args);
  if (!c.isOk()) co_return JobFailure{"delivery_failed", "commit: " + c.status().message()};
  const std::string diffPath = "/git/diff";
  const json diffBody = diffArgs(job_.baseCommit);
  auto d = co_await rt_->call(diffPath, diffBody);
  if (!d.isOk()) co_return JobFailure{"delivery_failed", "diff: " + d.status().message()};
  store::Step s;
  s.stepNumber = nextStep_++;
  s.phase = "delivering";
  s.plannerThought = "Commit the work on branch kiln/" + job_.id + ".";
  s.toolCalled = "git_commit";
  s.toolArguments = args;
  s.toolOutput = c->dump();
  s.workspaceHash = d->value("tree", "");
  s.workspacePatch = d->value("diff", "");
  Status st = co_await record(s, eventList(stepEvent(s, false), diffEvent(s)));
  if (!st.isOk()) co_return recordFailure(st);
  store::JobUpdate u;
  u.status = JobStatus::kCompleted;
  u.releaseLease = true;
  u.ifStatusIn.push_back(JobStatus::kRunning);
  u.events = completeEvents(summary, "kiln/" + job_.id, c->value("commit", ""));
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
