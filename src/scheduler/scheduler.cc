#include "scheduler/scheduler.h"

#include <spdlog/spdlog.h>

namespace kiln::scheduler {

Scheduler::Scheduler(asio::io_context& ioc, agent::RunnerDeps deps, SchedulerOptions opts)
    : ioc_(ioc),
      deps_(std::move(deps)),
      opts_(std::move(opts)),
      strand_(asio::make_strand(ioc)),
      claimTimer_(strand_),
      renewTimer_(strand_),
      handOverTimer_(strand_) {}

Scheduler::~Scheduler() = default;

void Scheduler::start() {
  asio::co_spawn(strand_, claimLoop(), asio::detached);
  asio::co_spawn(strand_, renewLoop(), asio::detached);
}

size_t Scheduler::running() const {
  std::lock_guard lock(mu_);
  return running_.size();
}

void Scheduler::wake() {
  asio::post(strand_, [this] { claimTimer_.cancel(); });
}

std::shared_ptr<agent::JobHandle> Scheduler::find(const std::string& jobId) const {
  std::lock_guard lock(mu_);
  auto it = running_.find(jobId);
  return it == running_.end() ? nullptr : it->second;
}

void Scheduler::stopped(const std::string& jobId) {
  auto h = find(jobId);
  if (!h) return;
  // Killing the sandbox blocks (waitpid, unmount): keep it off the I/O threads.
  asio::post(deps_.slowPool->executor(), [h] { h->cancel("stopped by request"); });
}

void Scheduler::replied(const std::string& /*jobId*/) {
  // A paused job holds no lease and no coroutine: the reply made it claimable again.
  wake();
}

Task<void> Scheduler::claimLoop() {
  while (!stopping_) {
    // No exception may end this loop (the node would stop taking work): a store that throws is
    // logged like one that fails, and the next tick tries again.
    try {
      while (!stopping_ && claimsOpen_ && !draining_ &&
             running() < static_cast<size_t>(opts_.maxJobs)) {
        int64_t now = deps_.clock->nowMs();
        auto claimed = co_await deps_.pool->run(
            [&] { return deps_.store->claimJob(opts_.nodeId, now, opts_.leaseMs); });
        if (!claimed.isOk()) {
          spdlog::warn("scheduler: claim: {}", claimed.status().toString());
          break;
        }
        if (!claimed->has_value()) break;
        launch(std::move(**claimed));
      }
    } catch (const std::exception& e) {
      spdlog::error("scheduler: claim threw: {}", e.what());
    }
    claimTimer_.expires_after(std::chrono::milliseconds(opts_.pollMs));
    boost::system::error_code ec;
    co_await claimTimer_.async_wait(asio::redirect_error(asio::use_awaitable, ec));
  }
}

void Scheduler::launch(store::Job job) {
  auto handle = std::make_shared<agent::JobHandle>(job.id, job.leaseEpoch);
  {
    std::lock_guard lock(mu_);
    if (running_.count(job.id)) {
      // The job's previous run (it paused or finished, and a reply or follow-up made it
      // claimable again at once) is still tearing down its sandbox: start this run when that
      // one is gone, so one job never has two runs at a time.
      auto retry = std::make_shared<asio::steady_timer>(strand_, std::chrono::milliseconds(10));
      retry->async_wait([this, retry, job = std::move(job)](boost::system::error_code) mutable {
        if (stopping_) return;  // the claimed lease lapses; another node resumes the job
        launch(std::move(job));
      });
      return;
    }
    running_[job.id] = handle;
  }
  spdlog::info("scheduler: running job {} ({})", job.id, store::jobStatusName(job.status));
  std::string id = job.id;
  asio::co_spawn(asio::make_strand(ioc_), agent::runJob(deps_, std::move(job), handle),
                 [this, id, handle](std::exception_ptr e) {
                   if (e) {
                     try {
                       std::rethrow_exception(e);
                     } catch (const std::exception& ex) {
                       spdlog::error("job {}: runner crashed: {}", id, ex.what());
                     }
                   }
                   {
                     std::lock_guard lock(mu_);
                     auto it = running_.find(id);
                     if (it != running_.end() && it->second == handle) running_.erase(it);
                   }
                   idle_.notify_all();
                   wake();  // a slot is free
                 });
}

Task<void> Scheduler::renewLoop() {
  while (!stopping_) {
    renewTimer_.expires_after(std::chrono::milliseconds(opts_.leaseMs / 3));
    boost::system::error_code ec;
    co_await renewTimer_.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    if (stopping_) break;
    std::vector<store::HeldLease> held;
    std::map<std::string, std::shared_ptr<agent::JobHandle>> handles;
    {
      std::lock_guard lock(mu_);
      for (auto& [id, h] : running_) {
        // A run that handed its lease back is only tearing down: nothing to renew.
        if (h->released()) continue;
        held.push_back({id, h->leaseEpoch()});
        handles[id] = h;
      }
    }
    if (held.empty()) continue;
    // One store call renews every lease of the node, on the store pool: slow work (clones,
    // sandboxes) runs on another pool and cannot hold a renewal up.
    try {
      int64_t now = deps_.clock->nowMs();
      auto lost = co_await deps_.pool->run(
          [&] { return deps_.store->renewLeases(opts_.nodeId, held, now, opts_.leaseMs); });
      if (!lost.isOk()) {
        // Not proof the leases are gone (a busy database): the next tick tries again, and the
        // store refuses any write once another node has claimed a job.
        spdlog::warn("scheduler: renew leases: {}", lost.status().toString());
        continue;
      }
      // A lost lease means another node may own the job now: stop at once, write nothing.
      for (const std::string& id : *lost) {
        auto h = handles[id];
        // Released since the list was taken: the store is right that the node holds it no more.
        if (h->cancelled() || h->released()) continue;
        spdlog::warn("job {}: lease lost, stopping", id);
        asio::post(deps_.slowPool->executor(), [h] { h->cancel("lease lost"); });
      }
    } catch (const std::exception& e) {
      spdlog::error("scheduler: renew leases threw: {}", e.what());
    }
  }
}

void Scheduler::drain(int64_t handOverAfterMs) {
  if (draining_.exchange(true)) return;
  spdlog::info("scheduler: draining: no new claims; running jobs hand over after {} ms",
               handOverAfterMs);
  asio::post(strand_, [this, handOverAfterMs] {
    handOverTimer_.expires_after(std::chrono::milliseconds(handOverAfterMs));
    handOverTimer_.async_wait([this](boost::system::error_code ec) {
      if (ec || stopping_) return;
      std::lock_guard lock(mu_);
      for (auto& [id, h] : running_) h->drain();
    });
  });
}

bool Scheduler::waitIdle(int64_t ms) {
  std::unique_lock lock(mu_);
  return idle_.wait_for(lock, std::chrono::milliseconds(ms), [this] { return running_.empty(); });
}

void Scheduler::shutdown(int64_t graceMs) {
  stopping_ = true;
  asio::post(strand_, [this] {
    claimTimer_.cancel();
    renewTimer_.cancel();
    handOverTimer_.cancel();
  });
  std::vector<std::shared_ptr<agent::JobHandle>> jobs;
  {
    std::lock_guard lock(mu_);
    for (auto& [id, h] : running_) jobs.push_back(h);
  }
  // First let each job finish its current step and hand its lease back.
  for (auto& h : jobs) h->drain();
  {
    std::unique_lock lock(mu_);
    if (idle_.wait_for(lock, std::chrono::milliseconds(graceMs),
                       [this] { return running_.empty(); }))
      return;
  }
  // Past the grace period: kill what is left. Their in-flight calls are recorded as
  // interrupted when the job resumes.
  for (auto& h : jobs) {
    if (!find(h->jobId())) continue;
    spdlog::warn("job {}: did not reach a step boundary in time; killing its sandbox", h->jobId());
    h->cancel("node shutting down");
    store::JobUpdate u;
    u.releaseLease = true;
    u.ifLease = store::Lease{opts_.nodeId, h->leaseEpoch()};
    try {
      (void)deps_.store->updateJob(h->jobId(), u);
    } catch (const std::exception& e) {
      spdlog::error("job {}: release the lease: {}", h->jobId(), e.what());
    }
  }
  std::unique_lock lock(mu_);
  idle_.wait_for(lock, std::chrono::seconds(5), [this] { return running_.empty(); });
}

}  // namespace kiln::scheduler
