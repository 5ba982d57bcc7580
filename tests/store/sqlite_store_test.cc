#include <gtest/gtest.h>

#include "common/ids.h"
#include "store/store.h"
#include "support/temp_dir.h"

namespace kiln::store {
namespace {

class StoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto s = Store::open({"sqlite:" + dir_.file("kiln.db")});
    ASSERT_TRUE(s.isOk()) << s.status().toString();
    store_ = std::move(s).value();
  }
  Job newJob(int64_t createdAt = 0) {
    Job j;
    j.id = newUuid();
    j.repoUrl = "file:///tmp/repo";
    j.taskDesc = "do it";
    j.createdAt = createdAt;
    EXPECT_TRUE(store_->createJob(j, {{"status", {{"status", "QUEUED"}}}}).isOk());
    return j;
  }
  kiln::testing::TempDir dir_;
  std::unique_ptr<Store> store_;
};

TEST_F(StoreTest, CreateGetAndTenantIsolation) {
  Job j = newJob();
  auto got = store_->getJob(j.id);
  ASSERT_TRUE(got.isOk());
  EXPECT_EQ(got->taskDesc, "do it");
  EXPECT_EQ(got->status, JobStatus::kQueued);
  EXPECT_EQ(store_->getJob(j.id, "other").status().code(), Code::kNotFound);
  EXPECT_EQ(store_->getJob(newUuid()).status().code(), Code::kNotFound);
}

TEST_F(StoreTest, MigrationsAreIdempotentAcrossReopen) {
  Job j = newJob();
  store_.reset();
  auto s = Store::open({dir_.file("kiln.db")});
  ASSERT_TRUE(s.isOk()) << s.status().toString();
  EXPECT_TRUE((*s)->getJob(j.id).isOk());
}

TEST_F(StoreTest, EventsGetGaplessSequenceNumbers) {
  Job j = newJob();
  auto ev = store_->appendEvents(j.id, {{"terminal", {{"data", "a"}}}, {"terminal", {}}});
  ASSERT_TRUE(ev.isOk());
  EXPECT_EQ((*ev)[0].seq, 2);
  EXPECT_EQ((*ev)[1].seq, 3);
  auto after1 = store_->listEvents(j.id, 1, 100);
  ASSERT_TRUE(after1.isOk());
  ASSERT_EQ(after1->size(), 2u);
  EXPECT_EQ((*after1)[0].payload["data"], "a");
}

TEST_F(StoreTest, ListPagesNewestFirstWithCursor) {
  for (int i = 0; i < 5; ++i) newJob(1000 + i);
  auto p1 = store_->listJobs("", std::nullopt, 2, "");
  ASSERT_TRUE(p1.isOk());
  ASSERT_EQ(p1->jobs.size(), 2u);
  EXPECT_EQ(p1->jobs[0].createdAt, 1004);
  auto p2 = store_->listJobs("", std::nullopt, 2, p1->nextCursor);
  auto p3 = store_->listJobs("", std::nullopt, 2, p2->nextCursor);
  ASSERT_EQ(p3->jobs.size(), 1u);
  EXPECT_EQ(p3->jobs[0].createdAt, 1000);
  EXPECT_TRUE(p3->nextCursor.empty());
  EXPECT_EQ(store_->listJobs("", JobStatus::kRunning, 10, "")->jobs.size(), 0u);
  EXPECT_FALSE(store_->listJobs("", std::nullopt, 2, "garbage").isOk());
}

TEST_F(StoreTest, ClaimHonoursLeases) {
  Job j = newJob();
  auto c1 = store_->claimJob("a", 10'000, 5'000);
  ASSERT_TRUE(c1.isOk() && c1->has_value());
  EXPECT_EQ((*c1)->id, j.id);
  // Held by a: b cannot claim until the lease lapses.
  EXPECT_FALSE(store_->claimJob("b", 12'000, 5'000)->has_value());
  EXPECT_TRUE(*store_->renewLease(j.id, "a", 14'000, 5'000));
  EXPECT_FALSE(store_->claimJob("b", 18'000, 5'000)->has_value());
  auto c2 = store_->claimJob("b", 19'001, 5'000);
  ASSERT_TRUE(c2->has_value());
  EXPECT_FALSE(*store_->renewLease(j.id, "a", 19'002, 5'000));
}

TEST_F(StoreTest, PausedJobsAreClaimableOnlyWithAReply) {
  Job j = newJob();
  ASSERT_TRUE(store_->claimJob("a", 1, 5'000)->has_value());
  JobUpdate pause;
  pause.status = JobStatus::kPaused;
  pause.releaseLease = true;
  ASSERT_TRUE(store_->updateJob(j.id, pause)->applied);
  EXPECT_FALSE(store_->claimJob("a", 2, 5'000)->has_value());
  JobUpdate reply;
  reply.pendingReply = "yes";
  reply.ifStatusIn = {JobStatus::kPaused};
  ASSERT_TRUE(store_->updateJob(j.id, reply)->applied);
  auto c = store_->claimJob("a", 3, 5'000);
  ASSERT_TRUE(c->has_value());
  EXPECT_EQ((*c)->pendingReply.value_or(""), "yes");
}

TEST_F(StoreTest, ConditionalUpdateAndStepLeaseCheck) {
  Job j = newJob();
  ASSERT_TRUE(store_->claimJob("a", 1, 60'000)->has_value());
  JobUpdate wrong;
  wrong.status = JobStatus::kRunning;
  wrong.ifStatusIn = {JobStatus::kPaused};
  EXPECT_FALSE(store_->updateJob(j.id, wrong)->applied);

  Step s;
  s.jobId = j.id;
  s.stepNumber = 1;
  s.toolCalled = "bash";
  s.tokensIn = 10;
  s.usd = 0.5;
  s.workspacePatch = std::string("diff\0binary", 11);
  auto ev = store_->recordStep(s, "a", {{"step", {{"stepNumber", 1}}}});
  ASSERT_TRUE(ev.isOk()) << ev.status().toString();
  EXPECT_EQ(store_->recordStep(s, "a", {}).status().code(), Code::kConflict);  // duplicate
  s.stepNumber = 2;
  EXPECT_EQ(store_->recordStep(s, "b", {}).status().code(), Code::kConflict);  // not the owner
  auto job = store_->getJob(j.id);
  EXPECT_EQ(job->stepCount, 1);
  EXPECT_EQ(job->tokensIn, 10);
  EXPECT_DOUBLE_EQ(job->tokenSpendUsd, 0.5);
  EXPECT_EQ(store_->latestPatch(j.id).value(), std::string("diff\0binary", 11));
  EXPECT_EQ(store_->listSteps(j.id)->size(), 1u);
}

TEST_F(StoreTest, TokensMapToTenants) {
  ASSERT_TRUE(store_->ensureTenant("t1", "Team").isOk());
  ASSERT_TRUE(store_->addToken(sha256Hex("secret"), "t1").isOk());
  EXPECT_EQ(store_->tenantForToken(sha256Hex("secret")).value(), "t1");
  EXPECT_EQ(store_->tenantForToken(sha256Hex("nope")).status().code(), Code::kUnauthenticated);
}

}  // namespace
}  // namespace kiln::store
