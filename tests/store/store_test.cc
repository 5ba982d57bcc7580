#include <gtest/gtest.h>

#include <map>
#include <thread>
#include <mutex>

#include "common/ids.h"
#include "store/sqlite/migrations.h"
#include "store/sqlite/sqlite_db.h"
#include "store/store.h"
#include "support/postgres_server.h"
#include "support/temp_dir.h"

namespace kiln::store {
namespace {

// The whole suite runs on each engine: SQLite in a temp file, PostgreSQL in a fresh database
// of the test process's server.
class StoreTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (GetParam() == "postgres") {
      KILN_REQUIRE_POSTGRES(pg);
      url_ = pg->createDatabase();
    } else {
      url_ = "sqlite:" + dir_.file("kiln.db");
    }
    auto s = Store::open({url_});
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
  std::string url_;
  std::unique_ptr<Store> store_;
};

INSTANTIATE_TEST_SUITE_P(Engines, StoreTest, ::testing::Values("sqlite", "postgres"),
                         [](const auto& info) { return info.param; });

TEST_P(StoreTest, CreateGetAndTenantIsolation) {
  Job j = newJob();
  auto got = store_->getJob(j.id);
  ASSERT_TRUE(got.isOk());
  EXPECT_EQ(got->taskDesc, "do it");
  EXPECT_EQ(got->status, JobStatus::kQueued);
  EXPECT_EQ(store_->getJob(j.id, "other").status().code(), Code::kNotFound);
  EXPECT_EQ(store_->getJob(newUuid()).status().code(), Code::kNotFound);
}

TEST_P(StoreTest, MigrationsAreIdempotentAcrossReopen) {
  Job j = newJob();
  store_.reset();
  auto s = Store::open({GetParam() == "sqlite" ? dir_.file("kiln.db") : url_});
  ASSERT_TRUE(s.isOk()) << s.status().toString();
  EXPECT_TRUE((*s)->getJob(j.id).isOk());
}

TEST_P(StoreTest, StepsKeepTheModelsCallAndOlderRowsStillRead) {
  Job j = newJob();
  Step s;
  s.jobId = j.id;
  s.stepNumber = 1;
  s.toolCalled = "bash";
  s.toolArguments = {{"command", "ls"}};
  s.callId = "call_abc";
  s.callIndex = 2;
  s.rawArguments = R"({"command":  "ls"})";
  s.refusal = true;
  s.shellState = {{"cwd", "/workspace/sub"}, {"env", {{"X", "1"}}}};
  auto claimed = store_->claimJob("n", 1'000, 10'000);
  ASSERT_TRUE(claimed.isOk() && claimed->has_value());
  ASSERT_TRUE(store_->recordStep(s, {"n", (*claimed)->leaseEpoch}, {}).isOk());
  auto got = store_->listSteps(j.id);
  ASSERT_TRUE(got.isOk());
  ASSERT_EQ(got->size(), 1u);
  EXPECT_EQ((*got)[0].callId, "call_abc");
  EXPECT_EQ((*got)[0].callIndex, 2);
  EXPECT_EQ((*got)[0].rawArguments, R"({"command":  "ls"})");
  EXPECT_TRUE((*got)[0].refusal);
  EXPECT_EQ((*got)[0].shellState["env"]["X"], "1");

  // A database written before these columns existed: its steps read with the defaults.
  std::unique_ptr<Store> reader;
  if (GetParam() == "postgres") {
    // A row as an older node writes it (it knows none of these columns), into the schema of a
    // newer one.
    KILN_REQUIRE_POSTGRES(pg);
    pg->query(url_,
              "INSERT INTO agent_jobs(job_id, tenant_id, repository_url, task_description, "
              "agent, status, created_at, updated_at) VALUES('j1', 'default', 'r', 't', 'mock', "
              "'RUNNING', 0, 0)");
    pg->query(url_,
              "INSERT INTO execution_steps(step_id, job_id, step_number, tool_called, "
              "tool_arguments, tool_output, executed_at) VALUES('s1', 'j1', 1, 'bash', "
              "'{\"command\":\"ls\"}', '', 0)");
    reader = std::move(store_);
  } else {
    std::string old = dir_.file("old.db");
    {
      auto db = sqlite::Database::open(old, 5000);
      ASSERT_TRUE(db.isOk());
      ASSERT_TRUE((*db)
                      ->exec("CREATE TABLE schema_migrations(version INTEGER PRIMARY KEY, "
                             "applied_at INTEGER NOT NULL)")
                      .isOk());
      for (const auto& m : sqlite::migrations()) {
        if (m.version > 4) break;
        ASSERT_TRUE((*db)->exec(std::string(m.sql)).isOk());
        ASSERT_TRUE(
            (*db)
                ->exec("INSERT INTO schema_migrations VALUES(" + std::to_string(m.version) + ", 0)")
                .isOk());
      }
      ASSERT_TRUE((*db)
                      ->exec("INSERT INTO agent_jobs(job_id, tenant_id, repository_url, "
                             "task_description, agent, status, created_at, updated_at) VALUES("
                             "'j1', 'default', 'r', 't', 'mock', 'RUNNING', 0, 0)")
                      .isOk());
      ASSERT_TRUE((*db)
                      ->exec("INSERT INTO execution_steps(step_id, job_id, step_number, "
                             "tool_called, tool_arguments, executed_at) VALUES("
                             "'s1', 'j1', 1, 'bash', '{\"command\":\"ls\"}', 0)")
                      .isOk());
    }
    auto reopened = Store::open({"sqlite:" + old});
    ASSERT_TRUE(reopened.isOk()) << reopened.status().toString();
    reader = std::move(reopened).value();
  }
  auto oldSteps = reader->listSteps("j1");
  ASSERT_TRUE(oldSteps.isOk()) << oldSteps.status().toString();
  ASSERT_EQ(oldSteps->size(), 1u);
  EXPECT_EQ((*oldSteps)[0].toolArguments["command"], "ls");
  EXPECT_EQ((*oldSteps)[0].callId, "");
  EXPECT_EQ((*oldSteps)[0].callIndex, 0);
  EXPECT_EQ((*oldSteps)[0].rawArguments, "");
  EXPECT_FALSE((*oldSteps)[0].refusal);
  EXPECT_TRUE((*oldSteps)[0].shellState.is_null());
}

TEST_P(StoreTest, AJobsVerifyResultIsKeptUntilReplaced) {
  Job j = newJob(1);
  EXPECT_TRUE(store_->getJob(j.id)->verify.is_null());
  JobUpdate failed;
  failed.verify = json{{"passed", false}, {"exitCode", 1}, {"outputTail", "FAIL"}};
  ASSERT_TRUE(store_->updateJob(j.id, failed)->applied);
  EXPECT_EQ(store_->getJob(j.id)->verify["outputTail"], "FAIL");
  JobUpdate other;  // a write that does not name it keeps it
  other.status = JobStatus::kRunning;
  ASSERT_TRUE(store_->updateJob(j.id, other)->applied);
  EXPECT_EQ(store_->getJob(j.id)->verify["exitCode"], 1);
  JobUpdate passed;
  passed.verify = json{{"passed", true}, {"exitCode", 0}, {"outputTail", "OK"}};
  ASSERT_TRUE(store_->updateJob(j.id, passed)->applied);
  EXPECT_EQ(store_->getJob(j.id)->verify["passed"], true);
}

TEST_P(StoreTest, EventsGetGaplessSequenceNumbers) {
  Job j = newJob();
  auto claimed = store_->claimJob("a", 1, 60'000);
  ASSERT_TRUE(claimed.isOk() && claimed->has_value());
  const Lease lease{"a", (*claimed)->leaseEpoch};
  auto ev = store_->appendEvents(j.id, lease, {{"terminal", {{"data", "a"}}}, {"terminal", {}}});
  ASSERT_TRUE(ev.isOk());
  EXPECT_EQ((*ev)[0].seq, 2);
  EXPECT_EQ((*ev)[1].seq, 3);
  auto after1 = store_->listEvents(j.id, 1, 100);
  ASSERT_TRUE(after1.isOk());
  ASSERT_EQ(after1->size(), 2u);
  EXPECT_EQ((*after1)[0].payload["data"], "a");
}

TEST_P(StoreTest, ListPagesNewestFirstWithCursor) {
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

TEST_P(StoreTest, ClaimHonoursLeases) {
  Job j = newJob();
  auto c1 = store_->claimJob("a", 10'000, 5'000);
  ASSERT_TRUE(c1.isOk() && c1->has_value());
  EXPECT_EQ((*c1)->id, j.id);
  // Held by a: b cannot claim until the lease lapses.
  EXPECT_FALSE(store_->claimJob("b", 12'000, 5'000)->has_value());
  const std::vector<HeldLease> held = {{j.id, (*c1)->leaseEpoch}};
  EXPECT_TRUE(store_->renewLeases("a", held, 14'000, 5'000)->empty());
  EXPECT_FALSE(store_->claimJob("b", 18'000, 5'000)->has_value());
  auto c2 = store_->claimJob("b", 19'001, 5'000);
  ASSERT_TRUE(c2->has_value());
  EXPECT_EQ(*store_->renewLeases("a", held, 19'002, 5'000), std::vector<std::string>{j.id});
}

// The fencing token: a claim increments the epoch, and every write of the old owner is refused
// once another node claimed the job, even when the old owner's node id comes back (a restarted
// node reusing its id).
TEST_P(StoreTest, StaleLeaseWritesAreRefused) {
  Job j = newJob();
  auto c1 = store_->claimJob("a", 1'000, 1'000);
  ASSERT_TRUE(c1->has_value());
  EXPECT_EQ((*c1)->leaseEpoch, 1);
  const Lease old{"a", 1};
  auto c2 = store_->claimJob("a", 5'000, 1'000);  // a's lease lapsed; a claims it again
  ASSERT_TRUE(c2->has_value());
  EXPECT_EQ((*c2)->leaseEpoch, 2);
  const Lease current{"a", 2};

  Step s;
  s.jobId = j.id;
  s.stepNumber = 1;
  EXPECT_EQ(store_->recordStep(s, old, {}).status().code(), Code::kConflict);
  EXPECT_EQ(store_->appendEvents(j.id, old, {{"terminal", {}}}).status().code(), Code::kConflict);
  JobUpdate u;
  u.status = JobStatus::kRunning;
  u.ifLease = old;
  u.events = {{"status", {{"status", "RUNNING"}}}};
  EXPECT_FALSE(store_->updateJob(j.id, u)->applied);
  EXPECT_EQ(store_->listEvents(j.id, 0, 100)->size(), 1u);  // only createJob's
  EXPECT_EQ(store_->getJob(j.id)->status, JobStatus::kQueued);

  EXPECT_TRUE(store_->recordStep(s, current, {}).isOk());
  u.ifLease = current;
  EXPECT_TRUE(store_->updateJob(j.id, u)->applied);
  // Released: the epoch stays, so the released lease cannot write either.
  JobUpdate release;
  release.releaseLease = true;
  release.ifLease = current;
  ASSERT_TRUE(store_->updateJob(j.id, release)->applied);
  EXPECT_EQ(store_->appendEvents(j.id, current, {{"terminal", {}}}).status().code(),
            Code::kConflict);
}

TEST_P(StoreTest, EveryClaimIsLoggedWithItsEpoch) {
  Job j = newJob();
  ASSERT_TRUE(store_->claimJob("a", 1'000, 1'000)->has_value());
  ASSERT_TRUE(store_->claimJob("b", 3'000, 1'000)->has_value());
  auto log = store_->leaseHistory(j.id);
  ASSERT_TRUE(log.isOk()) << log.status().toString();
  ASSERT_EQ(log->size(), 2u);
  EXPECT_EQ((*log)[0].epoch, 1);
  EXPECT_EQ((*log)[0].nodeId, "a");
  EXPECT_EQ((*log)[0].claimedAt, 1'000);
  EXPECT_EQ((*log)[1].epoch, 2);
  EXPECT_EQ((*log)[1].nodeId, "b");
}

TEST_P(StoreTest, RenewLeasesRenewsOnlyTheLeasesStillHeld) {
  Job j1 = newJob(1), j2 = newJob(2), j3 = newJob(3);
  auto c1 = store_->claimJob("a", 1'000, 1'000);
  auto c2 = store_->claimJob("a", 1'000, 1'000);
  auto c3 = store_->claimJob("a", 1'000, 1'000);
  ASSERT_TRUE(c1->has_value() && c2->has_value() && c3->has_value());
  JobUpdate release;
  release.releaseLease = true;
  ASSERT_TRUE(store_->updateJob(j3.id, release)->applied);
  std::vector<HeldLease> held = {{j1.id, 1}, {j2.id, 7}, {j3.id, 1}};
  auto lost = store_->renewLeases("a", held, 1'500, 1'000);
  ASSERT_TRUE(lost.isOk());
  EXPECT_EQ(*lost, (std::vector<std::string>{j2.id, j3.id}));
  EXPECT_EQ(store_->getJob(j1.id)->leaseExpiresAt, 2'500);
  EXPECT_EQ(store_->getJob(j2.id)->leaseExpiresAt, 2'000);
}

TEST_P(StoreTest, AttemptsCountAndJobTotalsAggregate) {
  Job j1 = newJob(1), j2 = newJob(2);
  JobUpdate attempt;
  attempt.addAttempt = true;
  ASSERT_TRUE(store_->updateJob(j1.id, attempt)->applied);
  ASSERT_TRUE(store_->updateJob(j1.id, attempt)->applied);
  EXPECT_EQ(store_->getJob(j1.id)->attempts, 2);
  auto c = store_->claimJob("a", 1, 60'000);
  ASSERT_TRUE(c->has_value());
  EXPECT_EQ((*c)->attempts, 2);
  Step s;
  s.jobId = j1.id;
  s.stepNumber = 1;
  s.tokensIn = 7;
  s.tokensOut = 3;
  s.usd = 0.25;
  s.isError = true;
  s.exitCode = 2;
  s.mutating = true;
  ASSERT_TRUE(store_->recordStep(s, {"a", (*c)->leaseEpoch}, {}).isOk());
  auto steps = store_->listSteps(j1.id);
  ASSERT_EQ(steps->size(), 1u);
  EXPECT_TRUE((*steps)[0].isError);
  EXPECT_EQ((*steps)[0].exitCode, 2);
  EXPECT_TRUE((*steps)[0].mutating);
  JobUpdate done;
  done.status = JobStatus::kCompleted;
  ASSERT_TRUE(store_->updateJob(j1.id, done)->applied);
  auto totals = store_->jobTotals();
  ASSERT_TRUE(totals.isOk()) << totals.status().toString();
  ASSERT_EQ(totals->size(), 2u);
  for (const auto& t : *totals) {
    if (t.status == JobStatus::kCompleted) {
      EXPECT_EQ(t.jobs, 1);
      EXPECT_EQ(t.tokensIn, 7);
      EXPECT_EQ(t.tokensOut, 3);
      EXPECT_DOUBLE_EQ(t.usd, 0.25);
    } else {
      EXPECT_EQ(t.status, JobStatus::kQueued);
      EXPECT_EQ(t.jobs, 1);
    }
  }
}

TEST_P(StoreTest, PausedJobsAreClaimableOnlyWithAReply) {
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

TEST_P(StoreTest, ConditionalUpdateAndStepLeaseCheck) {
  Job j = newJob();
  auto claimed = store_->claimJob("a", 1, 60'000);
  ASSERT_TRUE(claimed->has_value());
  const Lease a{"a", (*claimed)->leaseEpoch};
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
  auto ev = store_->recordStep(s, a, {{"step", {{"stepNumber", 1}}}});
  ASSERT_TRUE(ev.isOk()) << ev.status().toString();
  EXPECT_EQ(store_->recordStep(s, a, {}).status().code(), Code::kConflict);  // duplicate
  s.stepNumber = 2;
  const Lease b{"b", a.epoch};
  EXPECT_EQ(store_->recordStep(s, b, {}).status().code(), Code::kConflict);  // not the owner
  auto job = store_->getJob(j.id);
  EXPECT_EQ(job->stepCount, 1);
  EXPECT_EQ(job->tokensIn, 10);
  EXPECT_DOUBLE_EQ(job->tokenSpendUsd, 0.5);
  EXPECT_EQ(store_->latestPatch(j.id).value(), std::string("diff\0binary", 11));
  EXPECT_EQ(store_->listSteps(j.id)->size(), 1u);
}

TEST_P(StoreTest, TokensMapToTenantsAndRolesUntilRevoked) {
  ASSERT_TRUE(store_->ensureTenant("t1", "Team").isOk());
  EXPECT_TRUE(store_->getTenant("t1").isOk());
  EXPECT_EQ(store_->getTenant("t2").code(), Code::kNotFound);
  ApiToken t{"tok_1", "t1", "ci", Role::kViewer, 1'000, 0};
  ASSERT_TRUE(store_->addToken("hash-1", t).isOk());
  // The same hash again (a node registering its admin token at every start) changes nothing.
  ApiToken again{"tok_2", "t1", "other", Role::kAdmin, 2'000, 0};
  ASSERT_TRUE(store_->addToken("hash-1", again).isOk());
  auto grant = store_->tokenGrant("hash-1");
  ASSERT_TRUE(grant.isOk()) << grant.status().toString();
  EXPECT_EQ(grant->tenantId, "t1");
  EXPECT_EQ(grant->tokenId, "tok_1");
  EXPECT_EQ(grant->role, Role::kViewer);
  EXPECT_EQ(store_->tokenGrant("nope").status().code(), Code::kUnauthenticated);
  ASSERT_TRUE(store_->ensureTenant("t2", "Other").isOk());
  ASSERT_TRUE(store_->addToken("hash-2", {"tok_3", "t2", "", Role::kMember, 3'000, 0}).isOk());
  auto all = store_->listTokens("");
  ASSERT_TRUE(all.isOk());
  ASSERT_EQ(all->size(), 2u);
  EXPECT_EQ((*all)[0].id, "tok_1");
  EXPECT_EQ((*all)[0].name, "ci");
  EXPECT_EQ((*all)[1].role, Role::kMember);
  EXPECT_EQ(store_->listTokens("t2")->size(), 1u);
  // Another tenant's token is not found; its own is revoked once, for good.
  EXPECT_EQ(store_->revokeToken("tok_1", "t2", 5'000).status().code(), Code::kNotFound);
  EXPECT_EQ(store_->revokeToken("tok_9", "", 5'000).status().code(), Code::kNotFound);
  auto revoked = store_->revokeToken("tok_1", "t1", 5'000);
  ASSERT_TRUE(revoked.isOk()) << revoked.status().toString();
  EXPECT_EQ(revoked->revokedAt, 5'000);
  EXPECT_EQ(store_->revokeToken("tok_1", "", 9'000)->revokedAt, 5'000);
  EXPECT_EQ(store_->tokenGrant("hash-1").status().code(), Code::kUnauthenticated);
  EXPECT_TRUE(store_->tokenGrant("hash-2").isOk());
  // A revoked token registered again stays revoked.
  ASSERT_TRUE(store_->addToken("hash-1", t).isOk());
  EXPECT_EQ(store_->tokenGrant("hash-1").status().code(), Code::kUnauthenticated);
}

TEST_P(StoreTest, ASettingKeepsItsFirstValue) {
  EXPECT_EQ(store_->ensureSetting("k", "one").value(), "one");
  EXPECT_EQ(store_->ensureSetting("k", "two").value(), "one");
  EXPECT_EQ(store_->ensureSetting("other", "two").value(), "two");
}

TEST_P(StoreTest, TenantSecretsArePutListedReplacedAndDeletedPerTenant) {
  TenantSecret a{"t1", "NPM_TOKEN", "proxy", {"registry.npmjs.org"}, "v1:sealed-a", 0, 1'000};
  ASSERT_TRUE(store_->putSecret(a).isOk());
  ASSERT_TRUE(store_->putSecret({"t1", "A_KEY", "env", {}, "v1:sealed-b", 0, 1'500}).isOk());
  ASSERT_TRUE(store_->putSecret({"t2", "NPM_TOKEN", "env", {}, "v1:other", 0, 1'000}).isOk());
  auto list = store_->listSecrets("t1");
  ASSERT_TRUE(list.isOk()) << list.status().toString();
  ASSERT_EQ(list->size(), 2u);
  EXPECT_EQ((*list)[0].name, "A_KEY");  // by name
  EXPECT_EQ((*list)[1].mode, "proxy");
  EXPECT_EQ((*list)[1].hosts, std::vector<std::string>{"registry.npmjs.org"});
  EXPECT_EQ((*list)[1].sealed, "v1:sealed-a");
  // Replacing keeps the first createdAt.
  a.sealed = "v1:sealed-c";
  a.mode = "env";
  a.hosts.clear();
  a.updatedAt = 2'000;
  ASSERT_TRUE(store_->putSecret(a).isOk());
  list = store_->listSecrets("t1");
  ASSERT_EQ(list->size(), 2u);
  EXPECT_EQ((*list)[1].sealed, "v1:sealed-c");
  EXPECT_EQ((*list)[1].mode, "env");
  EXPECT_TRUE((*list)[1].hosts.empty());
  EXPECT_EQ((*list)[1].createdAt, 1'000);
  EXPECT_EQ((*list)[1].updatedAt, 2'000);
  EXPECT_TRUE(store_->deleteSecret("t1", "NPM_TOKEN").isOk());
  EXPECT_EQ(store_->deleteSecret("t1", "NPM_TOKEN").code(), Code::kNotFound);
  EXPECT_EQ(store_->listSecrets("t1")->size(), 1u);
  EXPECT_EQ(store_->listSecrets("t2")->size(), 1u);  // another tenant's is untouched
}

TEST_P(StoreTest, AJobKeepsItsSealedSecrets) {
  Job j;
  j.id = newUuid();
  j.repoUrl = "file:///tmp/repo";
  j.taskDesc = "do it";
  j.secrets = json::array({{{"name", "X"}, {"mode", "env"}, {"sealed", "v1:abc"}}});
  ASSERT_TRUE(store_->createJob(j, {}).isOk());
  EXPECT_EQ(store_->getJob(j.id)->secrets, j.secrets);
  EXPECT_TRUE(store_->getJob(newJob().id)->secrets.is_null());
}

TEST_P(StoreTest, NodesHeartbeatListAndDrain) {
  NodeRecord a;
  a.id = "node-a";
  a.address = "http://127.0.0.1:1";
  a.version = "1.2.3";
  a.startedAt = 1'000;
  a.heartbeatAt = 2'000;
  a.runningJobs = 2;
  a.maxJobs = 8;
  a.figures = {{"diskFreeBytes", 123}};
  ASSERT_FALSE(store_->heartbeatNode(a).value());
  NodeRecord b = a;
  b.id = "node-b";
  b.claiming = false;
  ASSERT_FALSE(store_->heartbeatNode(b).value());
  auto nodes = store_->listNodes();
  ASSERT_TRUE(nodes.isOk()) << nodes.status().toString();
  ASSERT_EQ(nodes->size(), 2u);
  EXPECT_EQ((*nodes)[0].id, "node-a");
  EXPECT_EQ((*nodes)[0].runningJobs, 2);
  EXPECT_EQ((*nodes)[0].version, "1.2.3");
  EXPECT_EQ((*nodes)[0].figures["diskFreeBytes"], 123);
  EXPECT_TRUE((*nodes)[0].claiming);
  EXPECT_FALSE((*nodes)[1].claiming);

  EXPECT_EQ(store_->requestDrain("nope").code(), Code::kNotFound);
  ASSERT_TRUE(store_->requestDrain("node-a").isOk());
  a.heartbeatAt = 3'000;
  EXPECT_TRUE(store_->heartbeatNode(a).value());  // told at its next heartbeat, and again
  EXPECT_TRUE(store_->heartbeatNode(a).value());
  EXPECT_FALSE(store_->heartbeatNode(b).value());
  // The same node id started again is a new process: an old drain does not carry over.
  a.startedAt = 5'000;
  EXPECT_FALSE(store_->heartbeatNode(a).value());
  // Rows silent for a day go.
  a.heartbeatAt = 2'000 + 86'400'001;
  ASSERT_TRUE(store_->heartbeatNode(a).isOk());
  EXPECT_EQ(store_->listNodes()->size(), 1u);
}

TEST_P(StoreTest, TextAndBytesSurviveTheRoundTrip) {
  Job j = newJob();
  auto claimed = store_->claimJob("a", 1, 60'000);
  ASSERT_TRUE(claimed->has_value());
  const Lease lease{"a", (*claimed)->leaseEpoch};
  Step s;
  s.jobId = j.id;
  s.stepNumber = 1;
  s.plannerThought = "thought \xc3\xa9";
  static const char kOutput[] = "out\0put \xff\xfe end";
  s.toolOutput = std::string(kOutput, sizeof kOutput - 1);
  s.toolArguments = {{"cmd", "echo 'x'"}};
  auto rec = store_->recordStep(s, lease, {{"terminal", {{"data", std::string("a\0b", 3)}}}});
  ASSERT_TRUE(rec.isOk()) << rec.status().toString();
  auto steps = store_->listSteps(j.id);
  ASSERT_EQ(steps->size(), 1u);
  EXPECT_EQ((*steps)[0].toolOutput, s.toolOutput);  // tool output is kept byte for byte
  EXPECT_EQ((*steps)[0].plannerThought, s.plannerThought);
  EXPECT_EQ((*steps)[0].toolArguments, s.toolArguments);
  auto ev = store_->listEvents(j.id, 1, 10);
  ASSERT_EQ(ev->size(), 1u);
  EXPECT_EQ((*ev)[0].payload["data"], std::string("a\0b", 3));
}

TEST_P(StoreTest, ConcurrentClaimsNeverShareAJob) {
  constexpr int kJobs = 40;
  for (int i = 0; i < kJobs; ++i) newJob(1000 + i);
  std::mutex mu;
  std::map<std::string, std::string> owner;  // job -> node
  int duplicates = 0;
  std::vector<std::thread> nodes;
  for (int n = 0; n < 4; ++n) {
    nodes.emplace_back([&, n] {
      auto s = Store::open({url_});
      ASSERT_TRUE(s.isOk()) << s.status().toString();
      const std::string me = "node-" + std::to_string(n);
      for (;;) {
        auto c = (*s)->claimJob(me, 10'000, 60'000);
        ASSERT_TRUE(c.isOk()) << c.status().toString();
        if (!c->has_value()) return;
        std::lock_guard lock(mu);
        duplicates += !owner.emplace((*c)->id, me).second;
      }
    });
  }
  for (auto& t : nodes) t.join();
  EXPECT_EQ(duplicates, 0);
  EXPECT_EQ(owner.size(), static_cast<size_t>(kJobs));
}

Job tenantJob(const std::string& tenant, int64_t createdAt) {
  Job j;
  j.id = newUuid();
  j.tenantId = tenant;
  j.repoUrl = "file:///tmp/repo";
  j.taskDesc = "do it";
  j.createdAt = createdAt;
  return j;
}

// Nodes claiming at once (each its own store connection, as separate processes are) never start
// more of a tenant's jobs than its maxRunning together; other tenants' jobs go on; a job that
// ends frees a place; a tenant over usdPerDay starts nothing.
TEST_P(StoreTest, ConcurrentClaimsNeverPassATenantsQuota) {
  for (const char* t : {"capped", "free"}) ASSERT_TRUE(store_->ensureTenant(t, t).isOk());
  TenantQuota quota;
  quota.maxRunning = 2;
  ASSERT_TRUE(store_->setQuota("capped", quota).isOk());
  for (int i = 0; i < 12; ++i) {
    // Oldest first: the capped tenant's jobs are ahead of the free one's in the queue.
    ASSERT_TRUE(store_->createJob(tenantJob(i < 8 ? "capped" : "free", 1000 + i), {}).isOk());
  }
  std::mutex mu;
  std::map<std::string, int> claimedBy;  // tenant -> jobs claimed
  std::vector<std::string> cappedJobs;
  std::vector<std::thread> nodes;
  for (int n = 0; n < 6; ++n) {
    nodes.emplace_back([&, n] {
      auto s = Store::open({url_});
      ASSERT_TRUE(s.isOk()) << s.status().toString();
      for (;;) {
        auto c = (*s)->claimJob("node-" + std::to_string(n), 10'000, 600'000);
        ASSERT_TRUE(c.isOk()) << c.status().toString();
        if (!c->has_value()) return;
        std::lock_guard lock(mu);
        claimedBy[(*c)->tenantId]++;
        if ((*c)->tenantId == "capped") cappedJobs.push_back((*c)->id);
      }
    });
  }
  for (auto& t : nodes) t.join();
  EXPECT_EQ(claimedBy["capped"], 2);
  EXPECT_EQ(claimedBy["free"], 4);
  auto usage = store_->tenantUsage("capped", 10'000);
  ASSERT_TRUE(usage.isOk()) << usage.status().toString();
  EXPECT_EQ(usage->running, 2);
  EXPECT_EQ(usage->active, 8);
  EXPECT_EQ(store_->claimJob("late", 10'001, 600'000)->has_value(), false);

  // One ends: exactly one more starts.
  ASSERT_EQ(cappedJobs.size(), 2u);
  JobUpdate done;
  done.status = JobStatus::kCompleted;
  done.releaseLease = true;
  ASSERT_TRUE(store_->updateJob(cappedJobs[0], done)->applied);
  auto next = store_->claimJob("late", 10'002, 600'000);
  ASSERT_TRUE(next.isOk() && next->has_value());
  EXPECT_EQ((*next)->tenantId, "capped");
  EXPECT_FALSE(store_->claimJob("late", 10'003, 600'000)->has_value());
  // A lease that lapsed (its node died) no longer counts: its job is claimable again, in its
  // place.
  auto lapsed = store_->claimJob("late", 700'000, 600'000);
  ASSERT_TRUE(lapsed.isOk() && lapsed->has_value());
  EXPECT_EQ((*lapsed)->tenantId, "capped");

  // Spend of today's steps stops claims of the tenant's jobs once it reaches usdPerDay.
  ASSERT_TRUE(store_->ensureTenant("spender", "spender").isOk());
  const int64_t day = 20'000 * 86'400'000LL;
  Job a = tenantJob("spender", day + 1), b = tenantJob("spender", day + 2);
  for (const Job& j : {a, b}) ASSERT_TRUE(store_->createJob(j, {}).isOk());
  TenantQuota budget;
  budget.usdPerDay = 1.0;
  ASSERT_TRUE(store_->setQuota("spender", budget).isOk());
  // Every capped job with a lease holds on; claim the spender's first job.
  std::optional<Job> first;
  for (int i = 0; i < 20 && !first; ++i) {
    auto c = store_->claimJob("n", day + 10, 60'000);
    ASSERT_TRUE(c.isOk() && c->has_value()) << "the spender's jobs should be claimable";
    if ((*c)->tenantId == "spender") first = **c;
  }
  ASSERT_TRUE(first);
  Step step;
  step.jobId = first->id;
  step.stepNumber = 1;
  step.usd = 1.25;
  step.executedAt = day + 20;
  ASSERT_TRUE(store_->recordStep(step, {"n", first->leaseEpoch}, {}).isOk());
  EXPECT_DOUBLE_EQ(store_->tenantUsage("spender", day + 30)->usdToday, 1.25);
  for (int i = 0; i < 20; ++i) {
    auto c = store_->claimJob("n", day + 30, 60'000);
    ASSERT_TRUE(c.isOk());
    if (!c->has_value()) break;
    EXPECT_NE((*c)->tenantId, "spender") << "claimed past usdPerDay";
  }
  // The next UTC day it starts again.
  EXPECT_DOUBLE_EQ(store_->tenantUsage("spender", day + 86'400'000)->usdToday, 0);
  bool spenderRuns = false;
  for (int i = 0; i < 20 && !spenderRuns; ++i) {
    auto c = store_->claimJob("n", day + 86'400'000, 60'000);
    ASSERT_TRUE(c.isOk() && c->has_value());
    spenderRuns = (*c)->tenantId == "spender";
  }
  EXPECT_TRUE(spenderRuns);
}

// Submissions racing on many connections never pass jobsPerHour or maxRunning together; the
// breach says which quota and when to retry.
TEST_P(StoreTest, SubmissionsWithinQuotaAreAtomic) {
  ASSERT_TRUE(store_->ensureTenant("t", "t").isOk());
  TenantQuota quota;
  quota.jobsPerHour = 5;
  ASSERT_TRUE(store_->setQuota("t", quota).isOk());
  EXPECT_EQ(store_->getQuota("t")->jobsPerHour, 5);
  EXPECT_FALSE(store_->getQuota("t")->maxRunning.has_value());
  EXPECT_EQ(store_->setQuota("nobody", quota).code(), Code::kNotFound);
  const int64_t now = 50'000'000;
  std::atomic<int> created{0}, refused{0};
  std::vector<std::thread> threads;
  for (int n = 0; n < 4; ++n) {
    threads.emplace_back([&, n] {
      auto s = Store::open({url_});
      ASSERT_TRUE(s.isOk()) << s.status().toString();
      for (int i = 0; i < 4; ++i) {
        auto r = (*s)->createJobWithinQuota(tenantJob("t", now - 1000 + n * 10 + i), {}, now);
        ASSERT_TRUE(r.isOk()) << r.status().toString();
        if (r->has_value()) {
          EXPECT_EQ((**r).quota, "jobsPerHour");
          EXPECT_EQ((**r).limit, 5);
          // The oldest job of the hour leaves the window about an hour after it came.
          EXPECT_GT((**r).retryAfterSeconds, 3500);
          EXPECT_LE((**r).retryAfterSeconds, 3600);
          refused++;
        } else {
          created++;
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(created.load(), 5);
  EXPECT_EQ(refused.load(), 11);
  EXPECT_EQ(store_->tenantUsage("t", now)->jobsLastHour, 5);
  // An hour later the window is empty; maxRunning counts the unfinished jobs.
  quota.maxRunning = 6;
  ASSERT_TRUE(store_->setQuota("t", quota).isOk());
  const int64_t later = now + 3'600'000;
  EXPECT_FALSE(store_->createJobWithinQuota(tenantJob("t", later), {}, later)->has_value());
  auto full = store_->createJobWithinQuota(tenantJob("t", later), {}, later);
  ASSERT_TRUE(full.isOk() && full->has_value());
  EXPECT_EQ((**full).quota, "maxRunning");
  EXPECT_EQ((**full).used, 6);
  // Removing every quota removes the limits.
  ASSERT_TRUE(store_->setQuota("t", TenantQuota{}).isOk());
  EXPECT_FALSE(store_->createJobWithinQuota(tenantJob("t", later), {}, later)->has_value());
}

TEST_P(StoreTest, ConcurrentAppendsKeepSequencesGapless) {
  Job j = newJob();
  auto claimed = store_->claimJob("a", 1, 600'000);
  ASSERT_TRUE(claimed->has_value());
  const Lease lease{"a", (*claimed)->leaseEpoch};
  std::vector<std::thread> writers;
  for (int w = 0; w < 4; ++w) {
    writers.emplace_back([&] {
      auto s = Store::open({url_});
      ASSERT_TRUE(s.isOk()) << s.status().toString();
      for (int i = 0; i < 25; ++i) {
        ASSERT_TRUE((*s)->appendEvents(j.id, lease, {{"terminal", {{"i", i}}}, {"terminal", {}}}).isOk());
      }
    });
  }
  for (auto& t : writers) t.join();
  auto ev = store_->listEvents(j.id, 0, 1000);
  ASSERT_EQ(ev->size(), 201u);
  for (size_t i = 0; i < ev->size(); ++i) EXPECT_EQ((*ev)[i].seq, static_cast<int64_t>(i + 1));
}

}  // namespace
}  // namespace kiln::store
