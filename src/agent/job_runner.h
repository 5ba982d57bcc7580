// JobRunner: runs one job from claim to a boundary, in phases that each return an explicit
// PhaseOutcome (agent/job_outcome.h): provisioning (agent/provisioning.h: workspace, sandbox,
// history), the turn loop (agent/turn_loop.h: model turn → tool calls through the runtime →
// step persisted → events), delivery (agent/delivery.h: commit, push, approval gates). The
// phases share a JobSession (agent/job_session.h), the one writer of the job. Every step is
// committed to the store before the next model call. Runs as a coroutine on the job's strand;
// holds no thread while it waits. Blocking work (store, clone, sandbox create/destroy) goes to
// the BlockingPool.
#pragma once
#include <atomic>
#include <memory>
#include <mutex>
#include <string>

#include "api/request/job_spec.h"
#include "common/asio.h"
#include "common/blocking_pool.h"
#include "common/clock.h"
#include "events/event_bus.h"
#include "sandbox/sandbox.h"
#include "sandbox/supervisor.h"
#include "store/store.h"

namespace kiln::secrets {
class SecretBox;
}

namespace kiln::agent {

struct RunnerDeps {
  store::Store* store = nullptr;
  // Opens the job's secrets (secrets/secrets.h); null: a job with secrets fails.
  const secrets::SecretBox* secretBox = nullptr;
  events::EventBus* bus = nullptr;
  // Short blocking calls: the store. Never given slow work, so a lease renewal is never queued
  // behind a clone.
  BlockingPool* pool = nullptr;
  // Slow blocking work: git clone, sandbox create/destroy, workspace mounts.
  BlockingPool* slowPool = nullptr;
  sandbox::SandboxBackend* backend = nullptr;  // when there is no supervisor (tests)
  // The node's backends and warm pools: a job's sandbox comes from here when set.
  sandbox::Supervisor* sandboxes = nullptr;
  Clock* clock = nullptr;
  std::string nodeId;
  std::string workspacesDir;  // <dataDir>/workspaces
  // <dataDir>/repos: the repo cache job workspaces are overlays on (plain clones when empty).
  std::string reposDir;
  // <dataDir>/gateways: the socket dirs of CLI runs' model gateways (empty: next to
  // workspacesDir).
  std::string gatewaysDir;
  // The server's limits for jobs that do not set them (NodeOptions::defaultLimits).
  api::request::JobLimits defaultLimits;
  // Runs of one job that may end in an unexpected failure (PhaseOutcome::kRetry: a store error,
  // an exception, stored state the runner cannot read) before the job is FAILED with code
  // "internal" instead of retried.
  int maxAttempts = 3;
  // The host uid of the agent's files (sandbox::agentHostUid): workspaces are made for it.
  unsigned agentUid = 1000;
};

// The scheduler's handle on a running job: lets a stop request, a lost lease or a shutdown
// cancel it from any thread. Thread-safe.
class JobHandle {
 public:
  JobHandle(std::string jobId, int64_t leaseEpoch)
      : jobId_(std::move(jobId)), leaseEpoch_(leaseEpoch) {}
  const std::string& jobId() const { return jobId_; }
  // The epoch of the claim this run holds (store::Lease).
  int64_t leaseEpoch() const { return leaseEpoch_; }
  bool cancelled() const { return cancelled_.load(); }
  // Asks the job to stop at the next step boundary and release its lease (graceful shutdown).
  void drain() { draining_ = true; }
  bool draining() const { return draining_.load(); }
  // The run's own write handed the lease back (it ended, paused or will be retried); it is
  // still tearing down. The scheduler renews the job's lease no more, and the store no longer
  // listing it as this node's is no lost lease.
  void markReleased() { released_ = true; }
  bool released() const { return released_.load(); }
  std::string cancelReason() const;
  // Marks the job cancelled and kills its sandbox (blocking: call off the I/O threads).
  void cancel(const std::string& reason);
  void setSandbox(std::shared_ptr<sandbox::Sandbox> sb);
  std::shared_ptr<sandbox::Sandbox> sandbox() const;

 private:
  const std::string jobId_;
  const int64_t leaseEpoch_;
  std::atomic<bool> cancelled_{false};
  std::atomic<bool> draining_{false};
  std::atomic<bool> released_{false};
  mutable std::mutex mu_;
  std::string reason_;                         // GUARDED_BY(mu_)
  std::shared_ptr<sandbox::Sandbox> sandbox_;  // GUARDED_BY(mu_)
};

// Runs the job to its next boundary. Never throws: an exception inside a phase is caught at
// this boundary and recorded as the job's failure.
Task<void> runJob(RunnerDeps deps, store::Job job, std::shared_ptr<JobHandle> handle);

}  // namespace kiln::agent
