// JobSession: the state of one run of one job, shared by its phases (src/agent/provisioning.h,
// turn_loop.h, delivery.h), and the only way they write the job: every write goes through
// update() / record() / fail(), which carry this node's lease and turn the store's answer into
// a PhaseOutcome. Owned by runJob; used from the job's strand only (not thread-safe).
#pragma once
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "agent/cli_gateway.h"
#include "agent/job_outcome.h"
#include "agent/job_runner.h"
#include "agent/provider.h"
#include "runtime/client.h"
#include "secrets/secrets.h"
#include "store/store.h"

namespace kiln::agent {

class JobSession {
 public:
  JobSession(RunnerDeps deps, store::Job job, std::shared_ptr<JobHandle> handle);

  const RunnerDeps& deps() const { return deps_; }
  store::Job& job() { return job_; }
  const store::Job& job() const { return job_; }
  JobHandle& handle() { return *handle_; }
  std::shared_ptr<JobHandle> sharedHandle() const { return handle_; }
  // True once the job was cancelled (stop, lost lease, shutdown) or a write found the lease gone:
  // nothing more may be written.
  bool stopped() const { return handle_->cancelled() || leaseLost_; }
  bool leaseLost() const { return leaseLost_; }

  // Parses the job's stored limits and spec into their typed form, once; the phases read only
  // limits() and spec() after it. InvalidArgument when the stored JSON breaks the schema (the
  // API never stores that: the store was changed under it).
  Status loadSpec();
  // Opens the job's secrets (after loadSpec): env-mode values and proxy-mode placeholders go
  // into spec().sandbox.env and secretEnv(); the secrets' hosts join the sandbox's allowlist.
  // InvalidArgument when they do not open with this node's key.
  Status loadSecrets();
  // The variables the job's secrets give its sandbox (a value, or a proxy-mode placeholder).
  const std::map<std::string, std::string>& secretEnv() const { return secretEnv_; }
  // The job's proxy-mode secrets in the clear, for the egress proxy.
  const std::vector<secrets::Secret>& proxySecrets() const { return proxySecrets_; }
  const api::request::JobLimits& limits() const { return limits_; }
  const api::request::JobSpec& spec() const { return spec_; }
  // This run's fencing token: every write carries it.
  const store::Lease& lease() const { return lease_; }

  // --- writes (each fenced by this node's lease) ---------------------------------------------
  // Parameters are const references, never by-value temporaries: g++ 12 can destroy a
  // coroutine's by-value temporary arguments twice. Callers co_await at once, so they live.
  //
  // Applies a conditional change: kContinue if applied, kStop if a condition failed (the lease
  // is gone or the status changed under us), kRetry on a store error.
  Task<PhaseOutcome> update(const store::JobUpdate& change);
  // Stores the step with its events, then adds it to the in-memory history and context:
  // kContinue, kStop (lease gone) or kRetry (store error).
  Task<PhaseOutcome> record(const store::Step& done, const std::vector<store::NewEvent>& events);
  // Ends the job FAILED with `f` (error payload, events, lease released); `countAttempt` also
  // counts this run as a failed attempt.
  Task<PhaseOutcome> fail(const JobFailure& f, bool countAttempt = false);

  // --- the sandbox -------------------------------------------------------------------------
  // Diffs the workspace against the base commit; when its tree changed, stores the patch on
  // `s` and returns true. Always sets s.workspaceHash to the current tree.
  Task<bool> captureWorkspace(store::Step& s);
  Task<void> destroySandbox();

  // --- budgets -------------------------------------------------------------------------------
  // A budget the job has used up, if any.
  std::optional<JobFailure> checkCaps() const;
  // The tenant's usdPerDay, spent by this job and its others today: the failure that ends the
  // job before its next model call. Checked only once the job has spent (a priced model); a
  // store error skips the check (logged; the next turn checks again).
  Task<std::optional<JobFailure>> checkTenantSpend();
  // The tenant's usdPerDay and its spend today; nullopt when it has no such quota or the store
  // did not answer (logged).
  struct TenantSpend {
    std::string tenant;
    store::TenantQuota quota;  // usdPerDay alone (set)
    store::TenantUsage usage;
    int64_t nowMs = 0;
    // The quota reached: what refuses the job's next run or model call.
    std::optional<store::QuotaBreach> breach() const {
      return store::quotaBreach(tenant, quota, usage, false, nowMs);
    }
    double usdLeft() const { return *quota.usdPerDay - usage.usdToday; }
  };
  Task<std::optional<TenantSpend>> tenantSpend();
  int64_t maxWallSeconds() const;
  // What is left of the job's wall-clock budget (negative once it ran out).
  int64_t wallLeftMs() const;
  int64_t contextThreshold() const;

  // --- history -------------------------------------------------------------------------------
  // The summary of the newest finish call, and whether a commit followed it.
  std::string lastFinishSummary() const;
  bool committedSinceFinish() const;
  std::string lastCommit() const;

  // Set by the phases as they go (provisioning creates them, teardown drops them).
  std::shared_ptr<sandbox::Sandbox> sandbox;
  std::unique_ptr<runtime::RuntimeClient> rt;
  std::unique_ptr<Provider> provider;
  // A CLI agent's model gateway (and ACP channel), started before its sandbox, stopped after.
  std::unique_ptr<CliGateway> gateway;
  std::vector<store::Step> steps;  // every stored step of the job, oldest first
  std::vector<Message> ctx;        // the model's context, rebuilt from `steps`
  std::string lastTree;            // the workspace tree the runner saw last
  int nextStep = 1;
  // Set by provisioning when the job resumes past the agent's finish (an approved gate, or a
  // crash between finish and completion): delivery runs with this summary, no model turn.
  std::optional<std::string> deliverNow;

 private:
  RunnerDeps deps_;
  store::Job job_;
  std::shared_ptr<JobHandle> handle_;
  const store::Lease lease_;
  api::request::JobLimits limits_;  // the job's, over the node's defaults
  api::request::JobSpec spec_;
  std::map<std::string, std::string> secretEnv_;
  std::vector<secrets::Secret> proxySecrets_;
  bool leaseLost_ = false;
};

}  // namespace kiln::agent
