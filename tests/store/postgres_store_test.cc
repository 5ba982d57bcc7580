// What only the PostgreSQL engine has: connection errors, migrations raced by several nodes,
// LISTEN/NOTIFY signals, and a database that goes away and comes back.
#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "common/ids.h"
#include "store/store.h"
#include "support/postgres_server.h"

namespace kiln::store {
namespace {

using namespace std::chrono_literals;

// Signals one store's watcher received, for waiting on.
class SignalLog {
 public:
  SignalHandler handler() {
    return [this](const StoreSignal& s) {
      std::lock_guard lock(mu_);
      signals_.push_back(s);
      cv_.notify_all();
    };
  }
  // True once a signal matching `pred` arrived (within `limit`).
  bool waitFor(const std::function<bool(const StoreSignal&)>& pred,
               std::chrono::milliseconds limit = 10s) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, limit, [&] {
      for (const auto& s : signals_)
        if (pred(s)) return true;
      return false;
    });
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<StoreSignal> signals_;
};

class PostgresStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    KILN_REQUIRE_POSTGRES(pg);
    pg_ = pg;
    url_ = pg->createDatabase();
  }
  std::unique_ptr<Store> open() {
    auto s = Store::open({url_});
    EXPECT_TRUE(s.isOk()) << s.status().toString();
    return s.isOk() ? std::move(s).value() : nullptr;
  }
  Job queuedJob() {
    Job j;
    j.id = newUuid();
    j.repoUrl = "file:///tmp/repo";
    j.taskDesc = "t";
    return j;
  }
  // The listener subscribes on its own thread: returns once a signal `writer` sends reaches
  // `log`.
  bool waitListening(Store& writer, SignalLog& log) {
    auto deadline = std::chrono::steady_clock::now() + 10s;
    while (std::chrono::steady_clock::now() < deadline) {
      Job probe = queuedJob();
      if (!writer.createJob(probe, {}).isOk()) return false;
      if (log.waitFor([&](const StoreSignal& s) { return s.id == probe.id; }, 200ms)) return true;
    }
    return false;
  }
  kiln::testing::PostgresServer* pg_ = nullptr;
  std::string url_;
};

TEST_F(PostgresStoreTest, UnreachableOrWrongUrlFailsWithOneClearLine) {
  for (const std::string& url :
       {std::string("postgres://kiln:secret@127.0.0.1:1/kiln"),
        "postgresql://postgres@127.0.0.1:" + std::to_string(pg_->port()) + "/no_such_db",
        std::string("postgres://[bad")}) {
    SCOPED_TRACE(url);
    auto s = Store::open({url});
    ASSERT_FALSE(s.isOk());
    EXPECT_EQ(s.status().code(), Code::kUnavailable);
    const std::string& msg = s.status().message();
    EXPECT_NE(msg.find("cannot connect"), std::string::npos) << msg;
    EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
    EXPECT_EQ(msg.find("secret"), std::string::npos) << msg;  // the password is not echoed
  }
}

TEST_F(PostgresStoreTest, NodesStartingTogetherMigrateOnce) {
  std::vector<std::thread> nodes;
  std::atomic<int> ok{0};
  for (int i = 0; i < 4; ++i) {
    nodes.emplace_back([&] {
      if (open()) ++ok;
    });
  }
  for (auto& t : nodes) t.join();
  EXPECT_EQ(ok.load(), 4);
  auto versions =
      pg_->query(url_, "SELECT version, count(*) FROM schema_migrations GROUP BY 1 ORDER BY 1");
  ASSERT_GE(versions.size(), 2u);
  for (const auto& v : versions) EXPECT_EQ(v.substr(v.find('|')), "|1") << v;
}

TEST_F(PostgresStoreTest, SignalsReachEveryNode) {
  auto watcher = open();
  auto writer = open();
  ASSERT_TRUE(watcher && writer);
  SignalLog log;
  watcher->watch(log.handler());
  ASSERT_TRUE(waitListening(*writer, log)) << "no kWork signal for a new job";

  Job j = queuedJob();
  ASSERT_TRUE(writer->createJob(j, {{"status", {{"status", "QUEUED"}}}}).isOk());
  EXPECT_TRUE(log.waitFor(
      [&](const StoreSignal& s) { return s.kind == StoreSignal::Kind::kWork && s.id == j.id; }));
  JobUpdate output;
  output.events = {{"terminal", {}}, {"terminal", {}}};
  ASSERT_TRUE(writer->updateJob(j.id, output)->applied);
  EXPECT_TRUE(log.waitFor([&](const StoreSignal& s) {
    return s.kind == StoreSignal::Kind::kEvents && s.id == j.id && s.seq == 3;
  })) << "the events signal carries the job and its newest seq";
  JobUpdate stop;
  stop.status = JobStatus::kStopped;
  ASSERT_TRUE(writer->updateJob(j.id, stop)->applied);
  EXPECT_TRUE(log.waitFor(
      [&](const StoreSignal& s) { return s.kind == StoreSignal::Kind::kStopped && s.id == j.id; }));
  NodeRecord n;
  n.id = "node-x";
  n.startedAt = n.heartbeatAt = 1;
  ASSERT_TRUE(writer->heartbeatNode(n).isOk());
  ASSERT_TRUE(writer->requestDrain("node-x").isOk());
  EXPECT_TRUE(log.waitFor([&](const StoreSignal& s) {
    return s.kind == StoreSignal::Kind::kDrain && s.id == "node-x";
  }));
  watcher->watch(nullptr);  // returns with the listener stopped
}

TEST_F(PostgresStoreTest, ADatabaseRestartIsSurvived) {
  auto store = open();
  ASSERT_TRUE(store);
  SignalLog log;
  store->watch(log.handler());
  ASSERT_TRUE(waitListening(*store, log));
  Job j = queuedJob();
  ASSERT_TRUE(store->createJob(j, {}).isOk());
  pg_->stop();
  auto down = store->getJob(j.id);
  ASSERT_FALSE(down.isOk());
  EXPECT_EQ(down.status().code(), Code::kUnavailable) << down.status().toString();
  pg_->start();
  // Pooled connections that the restart cut are replaced without the caller seeing them.
  auto up = store->getJob(j.id);
  ASSERT_TRUE(up.isOk()) << up.status().toString();
  EXPECT_TRUE(store->claimJob("a", 1, 1000)->has_value());
  EXPECT_TRUE(store->createJob(queuedJob(), {}).isOk());
  EXPECT_TRUE(log.waitFor([](const StoreSignal& s) {
    return s.kind == StoreSignal::Kind::kResync;
  })) << "the listener reconnects and tells the node to re-check what it may have missed";
}

// Rolling upgrades: a newer node applies its migrations (here: a column, a table and version
// 99 it records) while older nodes still run. An older node, started or running against that
// schema, neither fails nor re-applies anything, and every write it makes still works.
TEST_F(PostgresStoreTest, AnOlderNodeRunsOnTheSchemaOfANewerOne) {
  auto old = open();
  ASSERT_TRUE(old);
  Job before = queuedJob();
  ASSERT_TRUE(old->createJob(before, {}).isOk());
  pg_->query(url_,
             "BEGIN; ALTER TABLE agent_jobs ADD COLUMN priority INTEGER NOT NULL DEFAULT 0; "
             "ALTER TABLE execution_steps ADD COLUMN duration_ms BIGINT; "
             "CREATE TABLE job_labels(job_id TEXT, label TEXT); "
             "INSERT INTO schema_migrations VALUES(99, 0); COMMIT");
  auto restarted = open();  // an old node (re)starting meets the newer schema
  ASSERT_TRUE(restarted);
  for (Store* st : {old.get(), restarted.get()}) {
    Job j = queuedJob();
    ASSERT_TRUE(st->createJob(j, {{"status", {{"status", "QUEUED"}}}}).isOk());
    auto claimed = st->claimJob("old-node", 1, 60'000);
    ASSERT_TRUE(claimed.isOk()) << claimed.status().toString();
    ASSERT_TRUE(claimed->has_value());
    const Job& c = **claimed;
    Lease lease{"old-node", c.leaseEpoch};
    Step step;
    step.jobId = c.id;
    step.stepNumber = 1;
    step.toolCalled = "bash";
    auto rec = st->recordStep(step, lease, {{"step", {{"n", 1}}}});
    ASSERT_TRUE(rec.isOk()) << rec.status().toString();
    JobUpdate done;
    done.status = JobStatus::kCompleted;
    done.releaseLease = true;
    done.ifLease = lease;
    done.events = {{"done", {}}};
    auto upd = st->updateJob(c.id, done);
    ASSERT_TRUE(upd.isOk() && upd->applied) << upd.status().toString();
    EXPECT_EQ(st->listSteps(c.id)->size(), 1u);
    auto renewed = st->renewLeases("old-node", {{c.id, c.leaseEpoch}}, 2, 60'000);
    ASSERT_TRUE(renewed.isOk());
    EXPECT_EQ(renewed->size(), 1u) << "a released lease is not renewed";
  }
  auto versions = pg_->query(url_, "SELECT version FROM schema_migrations ORDER BY version");
  EXPECT_EQ(versions.back(), "99") << "the older node left the newer schema as it was";
}

}  // namespace
}  // namespace kiln::store
