#include "agent/job_session.h"

#include <spdlog/spdlog.h>

#include "agent/context.h"
#include "agent/job_events.h"
#include "secrets/redact.h"

namespace kiln::agent {
namespace {

using json = nlohmann::json;
using store::JobStatus;

// `since`: the tree the runner saw last; the runtime skips the diff when nothing changed.
json diffArgs(const std::string& base, const std::string& since) {
  return {{"base", base}, {"since", since}};
}

}  // namespace

JobSession::JobSession(RunnerDeps deps, store::Job job, std::shared_ptr<JobHandle> handle)
    : deps_(std::move(deps)),
      job_(std::move(job)),
      handle_(std::move(handle)),
      lease_{deps_.nodeId, job_.leaseEpoch} {}

Status JobSession::loadSpec() {
  auto limits = api::request::parseJobLimits(job_.limits, "limits");
  if (!limits.isOk()) return limits.status().withContext("the job's stored limits");
  limits_ = limits->withDefaults(deps_.defaultLimits);
  auto spec = api::request::parseJobSpec(job_.spec);
  if (!spec.isOk()) return spec.status().withContext("the job's stored spec");
  spec_ = std::move(spec).value();
  return Status::ok();
}

Status JobSession::loadSecrets() {
  if (job_.secrets.is_null() || job_.secrets.empty()) return Status::ok();
  if (deps_.secretBox == nullptr) return invalidArgument("this node has no secrets key");
  auto opened = secrets::openAll(job_.secrets, *deps_.secretBox);
  if (!opened.isOk()) return opened.status();
  // Before any write or log line: LiveSecrets feeds the store's redaction and the log sink.
  secrets::LiveSecrets::process().put(job_.id, secrets::Redactions(*opened));
  api::request::SandboxRequest sandbox = spec_.sandboxOrDefault();
  for (secrets::Secret& s : *opened) {
    if (s.mode == secrets::Mode::kEnv) {
      secretEnv_[s.name] = s.value;
    } else {
      secretEnv_[s.name] = secrets::placeholder(job_.id, s.name);
      for (const auto& h : s.hosts) sandbox.allowHosts.push_back(h);
      proxySecrets_.push_back(std::move(s));
    }
  }
  for (const auto& [name, value] : secretEnv_) sandbox.env[name] = value;
  spec_.sandbox = std::move(sandbox);
  return Status::ok();
}

Task<PhaseOutcome> JobSession::update(const store::JobUpdate& change) {
  store::JobUpdate u = change;
  u.ifLease = lease_;
  auto r = co_await deps_.pool->run([&] { return deps_.store->updateJob(job_.id, u); });
  if (!r.isOk()) co_return PhaseOutcome::retry("store: update the job: " + r.status().message());
  if (!r->events.empty()) deps_.bus->publish(job_.id);
  if (!r->applied) {
    leaseLost_ = true;
    co_return PhaseOutcome::stop("the lease is lost or the job's status changed");
  }
  if (u.releaseLease) handle_->markReleased();
  co_return PhaseOutcome::next();
}

Task<PhaseOutcome> JobSession::record(const store::Step& done,
                                      const std::vector<store::NewEvent>& events) {
  store::Step step = done;
  step.jobId = job_.id;
  step.executedAt = deps_.clock->nowMs();
  auto r = co_await deps_.pool->run([&] { return deps_.store->recordStep(step, lease_, events); });
  if (!r.isOk()) {
    if (r.status().code() == Code::kConflict) {
      leaseLost_ = true;
      co_return PhaseOutcome::stop("record step: " + r.status().message());
    }
    co_return PhaseOutcome::retry("store: record step " + std::to_string(step.stepNumber) + ": " +
                                  r.status().message());
  }
  deps_.bus->publish(job_.id);
  job_.stepCount = step.stepNumber;
  job_.tokensIn += step.tokensIn;
  job_.tokensOut += step.tokensOut;
  job_.tokenSpendUsd += step.usd;
  appendStep(ctx, step);
  steps.push_back(std::move(step));
  co_return PhaseOutcome::next();
}

Task<PhaseOutcome> JobSession::fail(const JobFailure& f, bool countAttempt) {
  spdlog::warn("job {}: failed: {}: {}", job_.id, f.code, f.message);
  store::JobUpdate u;
  u.status = JobStatus::kFailed;
  u.error = errorPayload(f);
  u.releaseLease = true;
  u.addAttempt = countAttempt;
  u.events = failEvents(*u.error);
  PhaseOutcome o = co_await update(u);
  if (o.goesOn()) co_return PhaseOutcome::end("failed");
  co_return o;
}

Task<bool> JobSession::captureWorkspace(store::Step& s) {
  const std::string path = "/git/diff";
  const json body = diffArgs(job_.baseCommit, lastTree);
  auto d = co_await rt->call(path, body);
  bool changed = d.isOk() && d->value("tree", "") != lastTree;
  if (changed) {
    lastTree = d->value("tree", "");
    s.workspacePatch = d->value("diff", "");
  }
  s.workspaceHash = lastTree;
  co_return changed;
}

Task<void> JobSession::destroySandbox() {
  if (sandbox) {
    rt.reset();
    auto sb = sandbox;
    sandbox.reset();
    handle_->setSandbox(nullptr);
    // A named lambda capturing by reference: g++ 12 destroys a lambda temporary that owns a
    // shared_ptr twice when it appears in a co_await expression.
    auto destroy = [&sb] { return sb->destroy(); };
    Status st = co_await deps_.slowPool->run(destroy);
    if (!st.isOk()) spdlog::error("job {}: destroy sandbox: {}", job_.id, st.toString());
  }
  // After the sandbox, which mounts its dir (removed here: off the I/O threads).
  auto stopGateway = [this] { gateway.reset(); };
  if (gateway) co_await deps_.slowPool->run(stopGateway);
}

std::optional<JobFailure> JobSession::checkCaps() const {
  const api::request::JobLimits& l = limits_;
  if (job_.stepCount >= l.steps())
    return budgetFailure("maxSteps", "reached the step limit of " + std::to_string(l.steps()));
  if (l.maxTokens && job_.tokensIn + job_.tokensOut >= *l.maxTokens)
    return budgetFailure("maxTokens", "reached the token limit of " + std::to_string(*l.maxTokens));
  if (l.maxUsd && job_.tokenSpendUsd >= *l.maxUsd)
    return budgetFailure("maxUsd", "reached the spend limit of $" + json(*l.maxUsd).dump());
  if (job_.startedAt > 0 && wallLeftMs() <= 0) return wallBudgetFailure(maxWallSeconds(), false);
  return std::nullopt;
}

Task<std::optional<JobSession::TenantSpend>> JobSession::tenantSpend() {
  const std::string tenant = job_.tenantId;
  auto quota = co_await deps_.pool->run([&] { return deps_.store->getQuota(tenant); });
  if (!quota.isOk()) {
    spdlog::warn("job {}: tenant quota not checked: {}", job_.id, quota.status().toString());
    co_return std::nullopt;
  }
  if (!quota->usdPerDay) co_return std::nullopt;
  const int64_t now = deps_.clock->nowMs();
  auto usage = co_await deps_.pool->run([&] { return deps_.store->tenantUsage(tenant, now); });
  if (!usage.isOk()) {
    spdlog::warn("job {}: tenant quota not checked: {}", job_.id, usage.status().toString());
    co_return std::nullopt;
  }
  TenantSpend t;
  t.tenant = tenant;
  t.quota.usdPerDay = quota->usdPerDay;  // the spend quota alone
  t.usage = *usage;
  t.nowMs = now;
  co_return t;
}

Task<std::optional<JobFailure>> JobSession::checkTenantSpend() {
  if (job_.tokenSpendUsd <= 0) co_return std::nullopt;
  std::optional<TenantSpend> t = co_await tenantSpend();
  if (!t) co_return std::nullopt;
  std::optional<store::QuotaBreach> breach = t->breach();
  if (!breach) co_return std::nullopt;
  co_return tenantSpendFailure(*breach);
}

int64_t JobSession::maxWallSeconds() const { return limits_.wallSeconds(); }

int64_t JobSession::wallLeftMs() const {
  const int64_t used = job_.startedAt > 0 ? deps_.clock->nowMs() - job_.startedAt : 0;
  return maxWallSeconds() * 1000 - used;
}

int64_t JobSession::contextThreshold() const { return limits_.context(); }

std::string JobSession::lastFinishSummary() const {
  for (auto it = steps.rbegin(); it != steps.rend(); ++it) {
    if (it->toolCalled == "finish") return it->toolOutput;
  }
  return "";
}

std::string JobSession::lastCommit() const {
  for (auto it = steps.rbegin(); it != steps.rend(); ++it) {
    if (it->toolCalled != "git_commit") continue;
    json out = json::parse(it->toolOutput, nullptr, false);
    return out.is_object() && out["commit"].is_string() ? out["commit"].get<std::string>() : "";
  }
  return "";
}

bool JobSession::committedSinceFinish() const {
  for (auto it = steps.rbegin(); it != steps.rend(); ++it) {
    if (it->toolCalled == "git_commit") return true;
    if (it->toolCalled == "finish") return false;
  }
  return false;
}

}  // namespace kiln::agent
