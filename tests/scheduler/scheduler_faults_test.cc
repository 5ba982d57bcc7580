// The scheduler and the job runner under store faults, in process: a real SQLite store behind a
// FaultInjectionStore, the real namespace backend, mock-agent jobs on a real git repo. For every
// k up to the number of store calls a job makes, the k-th call of a job fails (an error,
// Unavailable as SQLITE_BUSY gives, or a throw): the node must stay up and serve the next job,
// and the job must end COMPLETED or FAILED with a clear error, never stuck, never retried past
// the node's maximum.
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <functional>
#include <mutex>
#include <thread>

#include "common/clock.h"
#include "common/ids.h"
#include "events/event_bus.h"
#include "sandbox/sandbox.h"
#include "scheduler/scheduler.h"
#include "support/fault_injection_store.h"
#include "support/temp_dir.h"
#include "workspace/cache.h"

namespace kiln::testing {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;
using store::JobStatus;

constexpr int kMaxAttempts = 3;

class SchedulerFaultsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "needs root for namespace sandboxes";
    makeSampleRepo(dir_.file("repo"));
    auto engine = store::Store::open({"sqlite:" + dir_.file("kiln.db"), 500});
    ASSERT_TRUE(engine.isOk()) << engine.status().toString();
    auto faulty = std::make_unique<FaultInjectionStore>(std::move(engine).value());
    faults_ = faulty.get();
    store_ = std::move(faulty);
    sandboxOpts_ = {dir_.file("sandboxes"), KILN_BINARY, nullptr, "", false};
    sandboxOpts_.teardownHook = [this](const std::string&) { onTeardown(); };
    auto backend = sandbox::newNamespaceBackend(sandboxOpts_);
    ASSERT_TRUE(backend.isOk()) << backend.status().toString();
    backend_ = std::move(backend).value();

    agent::RunnerDeps deps;
    deps.store = store_.get();
    deps.bus = &bus_;
    deps.pool = &storePool_;
    deps.slowPool = &slowPool_;
    deps.backend = backend_.get();
    deps.clock = &RealClock::instance();
    deps.nodeId = "node-f";
    deps.workspacesDir = dir_.file("workspaces");
    deps.reposDir = dir_.file("repos");
    deps.maxAttempts = kMaxAttempts;
    deps.agentUid = sandbox::agentHostUid(sandboxOpts_);
    // A fast claim poll.
    scheduler_ = std::make_unique<scheduler::Scheduler>(
        ioc_, deps, scheduler::SchedulerOptions{"node-f", maxJobs(), leaseMs(), 20});
    work_.emplace(ioc_.get_executor());
    for (int i = 0; i < 2; ++i) threads_.emplace_back([this] { ioc_.run(); });
    scheduler_->start();
  }

  // Long enough that no renewal falls inside a job (the calls of a job stay countable).
  virtual int64_t leaseMs() const { return 30'000; }
  virtual int maxJobs() const { return 1; }
  // Runs inside each sandbox's destroy(), after its processes are killed (a slow-pool thread).
  virtual void onTeardown() {}

  void TearDown() override {
    if (scheduler_) scheduler_->shutdown(5'000);
    work_.reset();
    ioc_.stop();
    for (auto& t : threads_) t.join();
    (void)workspace::Workspaces(dir_.file("workspaces"), "").releaseAll();
  }

  std::string createJob(const json& limits = json::object()) {
    store::Job j;
    j.id = newUuid();
    j.repoUrl = dir_.file("repo");
    j.taskDesc = "Document the project";
    j.limits = limits;
    EXPECT_TRUE(faults_->inner().createJob(j, {{"status", {{"status", "QUEUED"}}}}).isOk());
    return j.id;
  }

  // The job once it is terminal; fails the test (with the job as it stands) after 60 s.
  store::Job waitTerminal(const std::string& id) {
    store::Job job;
    for (auto deadline = std::chrono::steady_clock::now() + 60s;
         std::chrono::steady_clock::now() < deadline;) {
      scheduler_->wake();
      auto j = faults_->inner().getJob(id);
      if (j.isOk()) {
        job = *j;
        if (store::isTerminal(job.status)) return job;
      }
      std::this_thread::sleep_for(20ms);
    }
    ADD_FAILURE() << "job " << id << " is stuck " << store::jobStatusName(job.status)
                  << " (attempts " << job.attempts << ", owner " << job.ownerNode << ")";
    return job;
  }

  // Polls `done` every 5 ms, for at most 30 s.
  static bool eventually(const std::function<bool()>& done) {
    for (auto deadline = std::chrono::steady_clock::now() + 30s;
         std::chrono::steady_clock::now() < deadline; std::this_thread::sleep_for(5ms)) {
      if (done()) return true;
    }
    return done();
  }

  // `make test` in the sample repo takes a second: several renewals of a short lease fall
  // inside it.
  void makeTestsSlow() {
    ASSERT_EQ(shell("cd " + dir_.file("repo") +
                    " && printf '#!/bin/sh\\nsleep 1\\necho tests passed\\n' > test.sh && "
                    "git -c user.name=t -c user.email=t@t commit -qam slow"),
              0);
  }

  int claimsOf(const std::string& id) {
    auto log = faults_->inner().leaseHistory(id);
    return log.isOk() ? static_cast<int>(log->size()) : -1;
  }

  TempDir dir_;
  FaultInjectionStore* faults_ = nullptr;
  std::unique_ptr<store::Store> store_;
  sandbox::NamespaceBackendOptions sandboxOpts_;
  std::unique_ptr<sandbox::SandboxBackend> backend_;
  asio::io_context ioc_{2};
  BlockingPool storePool_{2};
  BlockingPool slowPool_{4};
  events::EventBus bus_;
  std::unique_ptr<scheduler::Scheduler> scheduler_;
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work_;
  std::vector<std::thread> threads_;
};

TEST_F(SchedulerFaultsTest, EveryStoreCallOfAJobMayFailWithoutWedgingTheJobOrTheNode) {
  // A clean run first: how many store calls does one job make?
  std::string clean = createJob();
  store::Job cleanJob = waitTerminal(clean);
  ASSERT_EQ(cleanJob.status, JobStatus::kCompleted) << cleanJob.error.dump();
  const int calls = faults_->callsFor(clean);
  ASSERT_GT(calls, 5);
  std::string methods;
  for (const auto& m : faults_->methodsFor(clean)) methods += m + " ";
  std::printf("a mock job makes %d store calls: %s\n", calls, methods.c_str());

  const FaultInjectionStore::Fault kinds[] = {FaultInjectionStore::Fault::kError,
                                              FaultInjectionStore::Fault::kUnavailable,
                                              FaultInjectionStore::Fault::kThrow};
  // Terminal output is batched by timing, so a job's call count varies by a few: go past it.
  for (int k = 1; k <= calls + 2; ++k) {
    const auto fault = kinds[k % 3];
    std::string id = createJob();
    faults_->failCall(id, k, fault);
    store::Job job = waitTerminal(id);
    const std::string what = "k=" + std::to_string(k) + " (" +
                             FaultInjectionStore::faultName(fault) + " at " + faults_->firedAt() +
                             ")";
    ASSERT_TRUE(store::isTerminal(job.status)) << what;
    if (job.status == JobStatus::kFailed) {
      EXPECT_TRUE(job.error.is_object() && job.error["code"].is_string() &&
                  job.error["message"].is_string() &&
                  !job.error["message"].get<std::string>().empty())
          << what << ": " << job.error.dump();
    } else {
      EXPECT_EQ(job.status, JobStatus::kCompleted) << what << ": " << job.error.dump();
    }
    EXPECT_LE(job.attempts, kMaxAttempts) << what;
    EXPECT_LE(claimsOf(id), kMaxAttempts) << what;
    EXPECT_TRUE(job.ownerNode.empty()) << what << ": the lease was not released";
  }
  // The node still serves.
  store::Job after = waitTerminal(createJob());
  EXPECT_EQ(after.status, JobStatus::kCompleted) << after.error.dump();
}

// A stored field the runner cannot read (the API never stores one: here it is written into the
// store directly) is an unexpected failure: retried up to the maximum, then FAILED "internal"
// with the cause. It used to throw in the runner and leave the job RUNNING under a lease that
// lapsed, was claimed again and threw again, forever.
TEST_F(SchedulerFaultsTest, BadStoredLimitFailsTheJobAfterMaxAttempts) {
  std::string id = createJob({{"maxSteps", "ten"}});
  store::Job job = waitTerminal(id);
  ASSERT_EQ(job.status, JobStatus::kFailed);
  EXPECT_EQ(job.error["code"], "internal") << job.error.dump();
  EXPECT_NE(job.error["message"].get<std::string>().find("limits.maxSteps"), std::string::npos)
      << job.error.dump();
  EXPECT_EQ(job.attempts, kMaxAttempts);
  EXPECT_EQ(claimsOf(id), kMaxAttempts);
  // The node goes on with other work.
  EXPECT_EQ(waitTerminal(createJob()).status, JobStatus::kCompleted);
}

// A short lease: renewals every 200 ms, several inside each job.
class SchedulerLoopFaultsTest : public SchedulerFaultsTest {
 protected:
  int64_t leaseMs() const override { return 600; }
};

// The scheduler's own store calls failing or throwing: a claim that throws is retried at the
// next poll, and a renewal that fails is retried at the next tick (it is no proof the lease is
// gone), so the job keeps its one lease and completes.
TEST_F(SchedulerLoopFaultsTest, ClaimsAndRenewalsThatFailOrThrowDoNotStopTheNode) {
  makeTestsSlow();
  for (auto fault :
       {FaultInjectionStore::Fault::kThrow, FaultInjectionStore::Fault::kUnavailable}) {
    // The claim loop polls while idle: let the fault fire before the job exists, since a claim
    // already past the fault check when it was armed could otherwise take the job.
    faults_->failNext("claimJob", fault);
    ASSERT_TRUE(eventually([&] { return faults_->firedAt() == "claimJob"; })) << "no claim failed";
    std::string id = createJob();
    ASSERT_TRUE(eventually([&] {
      auto job = faults_->inner().getJob(id);
      return job.isOk() && job->inflightCall.is_object();
    }));
    faults_->failNext("renewLeases", fault);
    store::Job job = waitTerminal(id);
    EXPECT_EQ(job.status, JobStatus::kCompleted) << job.error.dump();
    EXPECT_EQ(faults_->firedAt(), "renewLeases") << "the job ended before a renewal failed";
    EXPECT_EQ(claimsOf(id), 1) << "the lease lapsed and the job was claimed again";
  }
}

// Two jobs at once, and the first sandbox's teardown held until the test lets it go.
class SchedulerTeardownTest : public SchedulerLoopFaultsTest {
 protected:
  int maxJobs() const override { return 2; }
  void onTeardown() override {
    if (held_.exchange(true)) return;  // only the first teardown is held
    {
      std::lock_guard lock(mu_);
      holding_ = true;
    }
    cv_.notify_all();
    std::unique_lock lock(mu_);
    cv_.wait_for(lock, 60s, [this] { return letGo_; });
  }
  void letGo() {
    {
      std::lock_guard lock(mu_);
      letGo_ = true;
    }
    cv_.notify_all();
  }
  void TearDown() override {
    letGo();
    SchedulerLoopFaultsTest::TearDown();
  }

  std::atomic<bool> held_{false};
  std::mutex mu_;
  std::condition_variable cv_;
  bool holding_ = false;  // GUARDED_BY(mu_)
  bool letGo_ = false;    // GUARDED_BY(mu_)
};

// A run hands its lease back with its last write (COMPLETED here), then tears its sandbox and
// workspace down. Renewals during that teardown must not take the released lease for a lost
// one: the node logged "lease lost, stopping" and cancelled the run after every normal end
// whose teardown spanned a renewal tick.
TEST_F(SchedulerTeardownTest, ALeaseHandedBackIsNotRenewedNorReportedLostDuringTeardown) {
  makeTestsSlow();
  std::string first = createJob();
  ASSERT_TRUE(eventually([&] {
    std::lock_guard lock(mu_);
    return holding_;
  })) << "the first job's sandbox was never torn down";
  ASSERT_EQ(faults_->inner().getJob(first)->status, JobStatus::kCompleted);
  // A second job keeps the node renewing (its `make test` spans several ticks) while the first
  // run is still tearing down.
  std::string second = createJob();
  ASSERT_TRUE(eventually([&] {
    auto job = faults_->inner().getJob(second);
    return job.isOk() && job->inflightCall.is_object();
  })) << "the second job never ran a command";
  const int base = faults_->renewals();
  ASSERT_TRUE(eventually([&] { return faults_->renewals() >= base + 2; }))
      << "no renewals while the second job ran";
  letGo();
  EXPECT_EQ(waitTerminal(second).status, JobStatus::kCompleted);
  for (const std::string& id : faults_->reportedLost()) {
    EXPECT_NE(id, first) << "the store was asked to renew the lease the first run handed back";
    EXPECT_NE(id, second) << "the second job lost its lease";
  }
  EXPECT_EQ(claimsOf(first), 1);
  EXPECT_EQ(claimsOf(second), 1);
}

}  // namespace
}  // namespace kiln::testing
