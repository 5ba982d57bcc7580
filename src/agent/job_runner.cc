// runJob: the phases of a job run in order, each returning an explicit PhaseOutcome
// (src/agent/job_outcome.h), and the boundary that keeps every failure inside the job:
//
//   provision (provisioning.cc) → turn loop (turn_loop.cc, cli_turns.cc) → verify (verify.cc)
//   → deliver (delivery.cc), going back to the turn loop while verify sends a failure back
//
// then the outcome is concluded (FAILED, or an unexpected failure counted and retried) and the
// sandbox and workspace are released. No exception leaves runJob.
#include "agent/job_runner.h"

#include <spdlog/spdlog.h>

#include "agent/delivery.h"
#include "agent/job_events.h"
#include "agent/job_session.h"
#include "agent/provisioning.h"
#include "agent/turn_loop.h"
#include "agent/verify.h"
#include "workspace/cache.h"

namespace kiln::agent {
namespace {

Task<PhaseOutcome> runPhases(JobSession& s) {
  PhaseOutcome o = co_await provision(s);
  if (!o.goesOn() || s.stopped()) co_return o.goesOn() ? PhaseOutcome::stop("cancelled") : o;
  while (true) {
    const bool resumed = s.deliverNow.has_value();
    if (!resumed) {
      o = co_await runTurns(s);
      if (!o.goesOn()) co_return o;
      s.deliverNow = o.summary.value_or("");
    }
    o = co_await verifyWork(s, *s.deliverNow, resumed);
    if (!o.goesOn()) co_return o;
    if (o.summary) break;
    s.deliverNow.reset();  // verify failed: the agent works on with the failure in its context
  }
  co_return co_await deliver(s, *s.deliverNow);
}

// An unexpected failure: counted on the job, which is retried (its lease released, so a claim
// takes it at once) until it has failed RunnerDeps::maxAttempts times, then FAILED "internal".
Task<PhaseOutcome> countFailedAttempt(JobSession& s, const JobFailure& cause) {
  const store::Job& job = s.job();
  const int attempt = job.attempts + 1;
  if (attempt >= s.deps().maxAttempts) {
    JobFailure f{"internal", cause.message + " (attempt " + std::to_string(attempt) + " of " +
                                 std::to_string(s.deps().maxAttempts) + ")"};
    co_return co_await s.fail(f, true);
  }
  spdlog::warn("job {}: attempt {} of {} failed, retrying: {}", job.id, attempt,
               s.deps().maxAttempts, cause.message);
  store::JobUpdate u;
  u.addAttempt = true;
  u.releaseLease = true;
  co_return co_await s.update(u);
}

// Ends the run as its outcome says: a failure is written, the rest only logged.
Task<void> conclude(JobSession& s, const PhaseOutcome& o) {
  const std::string& id = s.job().id;
  if (s.stopped() || o.kind == PhaseOutcome::Kind::kStop) {
    spdlog::info("job {}: run stopped ({})", id,
                 s.handle().cancelled() ? s.handle().cancelReason()
                                        : (o.why.empty() ? "lease lost" : o.why));
    co_return;
  }
  if (o.kind != PhaseOutcome::Kind::kFail && o.kind != PhaseOutcome::Kind::kRetry) {
    spdlog::info("job {}: run ended ({})", id, o.why.empty() ? outcomeName(o.kind) : o.why);
    co_return;
  }
  PhaseOutcome written;
  if (o.kind == PhaseOutcome::Kind::kFail) {
    written = co_await s.fail(o.failure);
  } else {
    written = co_await countFailedAttempt(s, o.failure);
  }
  // The store refused or failed the write: the lease lapses and a later claim runs the job
  // again (an attempt not counted is not lost: the same failure comes back).
  if (written.kind == PhaseOutcome::Kind::kRetry) {
    spdlog::error("job {}: could not record the end of its run: {}", id, written.failure.message);
  }
}

// The phases, with every exception caught here: a throw anywhere in the run becomes an
// unexpected failure of this job, never of the node.
Task<PhaseOutcome> guardedPhases(JobSession& s) {
  std::string thrown;
  try {
    co_return co_await runPhases(s);
  } catch (const std::exception& e) {
    thrown = e.what();
  } catch (...) {
    thrown = "unknown exception";
  }
  spdlog::error("job {}: the runner threw: {}", s.job().id, thrown);
  co_return PhaseOutcome::retry("the runner threw: " + thrown);
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
  JobSession s(std::move(deps), std::move(job), std::move(handle));
  const RunnerDeps& d = s.deps();
  const std::string id = s.job().id;
  const workspace::Workspaces workspaces(d.workspacesDir, d.reposDir, d.agentUid);
  workspaces.beginUse(id);
  PhaseOutcome o = co_await guardedPhases(s);
  try {
    co_await conclude(s, o);
    co_await s.destroySandbox();
    // The workspace's overlay is unmounted; its layers stay for a resume or a follow-up.
    co_await d.slowPool->run([&] { workspaces.endUse(id); });
  } catch (const std::exception& e) {
    spdlog::error("job {}: ending the run threw: {}", id, e.what());
  } catch (...) {
    spdlog::error("job {}: ending the run threw", id);
  }
}

}  // namespace kiln::agent
