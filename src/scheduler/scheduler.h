// Scheduler: claims jobs from the store under a lease and runs each as a coroutine on its own
// strand, at most `maxJobs` at once on this node. One renewer extends every lease each TTL/3 and
// cancels a job the moment its renewal fails. Implements JobControl for the API. Thread-safe.
#pragma once
#include <atomic>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "agent/job_runner.h"
#include "common/asio.h"
#include "scheduler/job_control.h"

namespace kiln::scheduler {

struct SchedulerOptions {
  std::string nodeId;
  int maxJobs = 64;
  int64_t leaseMs = 10'000;
  int64_t pollMs = 1'000;  // how often to look for claimable jobs without a wake()
};

class Scheduler : public JobControl {
 public:
  Scheduler(asio::io_context& ioc, agent::RunnerDeps deps, SchedulerOptions opts);
  ~Scheduler() override;

  void start();
  // Stops claiming, cancels running jobs (their steps so far are stored) and releases their
  // leases so another node can take over at once. Blocks until every job coroutine ended or
  // `graceMs` passed. Call from a non-I/O thread.
  void shutdown(int64_t graceMs = 10'000);
  size_t running() const;

  // Claims only while `open` (the node's capacity monitor closes it when disk or memory run
  // low). Running jobs are not affected.
  void setClaiming(bool open) { claimsOpen_ = open; }
  bool claiming() const { return claimsOpen_.load(); }
  // Draining: stops claiming for good; running jobs go on, and those still running after
  // `handOverAfterMs` stop at their next step boundary and release their lease so another node
  // resumes them. Idempotent (the first call's deadline holds).
  void drain(int64_t handOverAfterMs);
  bool draining() const { return draining_.load(); }
  // Blocks until no job runs here or `ms` passed; true when none runs. Not on an I/O thread.
  bool waitIdle(int64_t ms);

  // JobControl
  void wake() override;
  void stopped(const std::string& jobId) override;
  void replied(const std::string& jobId) override;

 private:
  Task<void> claimLoop();
  Task<void> renewLoop();
  void launch(store::Job job);
  std::shared_ptr<agent::JobHandle> find(const std::string& jobId) const;

  asio::io_context& ioc_;
  agent::RunnerDeps deps_;
  const SchedulerOptions opts_;
  asio::strand<asio::io_context::executor_type> strand_;  // owns the timers below
  asio::steady_timer claimTimer_;
  asio::steady_timer renewTimer_;
  std::atomic<bool> stopping_{false};
  std::atomic<bool> claimsOpen_{true};
  std::atomic<bool> draining_{false};
  asio::steady_timer handOverTimer_;  // on strand_
  mutable std::mutex mu_;
  std::condition_variable idle_;
  std::map<std::string, std::shared_ptr<agent::JobHandle>> running_;  // GUARDED_BY(mu_)
};

}  // namespace kiln::scheduler
