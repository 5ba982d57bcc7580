// Fleet mode through the real binary: several `kiln serve` nodes (own ports and data dirs) on
// one real PostgreSQL. Jobs spread over the nodes, a node killed with -9 has its jobs taken over
// within the lease TTL, a drained node hands its jobs over, the database restarting under load
// loses nothing, and an SSE client on one node streams jobs that run on another live.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <map>
#include <set>
#include <thread>

#include "common/clock.h"
#include "store/store.h"
#include "support/http_client.h"
#include "support/job_checks.h"
#include "support/kiln_process.h"
#include "support/slow_repo.h"
#include "support/postgres_server.h"
#include "support/temp_dir.h"

namespace kiln::testing {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

constexpr int64_t kLeaseMs = 2'000;  // short, so that take-overs happen within the test

// One SSE client following one job from its first event until `done`, on its own thread.
class StreamWatcher {
 public:
  StreamWatcher(uint16_t port, std::string token, std::string jobId)
      : jobId_(std::move(jobId)), thread_([this, port, token] { run(port, token); }) {}
  ~StreamWatcher() { wait(); }
  const std::string& jobId() const { return jobId_; }
  // The events seen (valid after join: the destructor or wait()).
  const std::vector<SseEvent>& events() const { return events_; }
  void wait() {
    if (thread_.joinable()) thread_.join();
  }

 private:
  void run(uint16_t port, const std::string& token) {
    auto sse = SseReader::open("127.0.0.1", port, "/api/v1/jobs/" + jobId_ + "/stream",
                               {{"Authorization", "Bearer " + token}});
    if (!sse.isOk()) return;
    events_ = (*sse)->readUntil("done", 300s);
  }
  std::string jobId_;
  std::vector<SseEvent> events_;
  std::thread thread_;
};

class FleetTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "needs root for namespace sandboxes";
    KILN_REQUIRE_POSTGRES(pg);
    pg_ = pg;
    url_ = pg->createDatabase();
  }

  KilnProcess& startNode(const std::string& name, std::vector<std::string> extra = {},
                         int maxJobs = 6) {
    std::vector<std::string> args = {"--store", url_, "--node-id", name, "--max-jobs",
                                     std::to_string(maxJobs)};
    args.insert(args.end(), extra.begin(), extra.end());
    nodes_.push_back(std::make_unique<KilnProcess>(
        dir_.file(name), args,
        std::vector<std::pair<std::string, std::string>>{
            {"KILN_LEASE_MS", std::to_string(kLeaseMs)},
            {"KILN_HEARTBEAT_MS", "300"},
            // A fleet's nodes hash API tokens with one key.
            {"KILN_TOKEN_KEY", "fleet-test-token-key-0123456789abcdef"}}));
    return *nodes_.back();
  }

  static std::unique_ptr<HttpClient> client(const KilnProcess& k) {
    auto c = std::make_unique<HttpClient>("127.0.0.1", k.port());
    c->setBearer(k.token());
    return c;
  }

  std::string createJob(const KilnProcess& k, const std::string& task) {
    auto r =
        client(k)->postJson("/api/v1/jobs", {{"repoUrl", dir_.file("repo")}, {"taskDesc", task}});
    EXPECT_TRUE(r.isOk() && r->status == 201) << (r.isOk() ? r->body : r.status().toString());
    return r.isOk() ? r->json().value("jobId", "") : "";
  }

  std::unique_ptr<store::Store> openStore() {
    auto s = store::Store::open({url_});
    EXPECT_TRUE(s.isOk()) << s.status().toString();
    return s.isOk() ? std::move(s).value() : nullptr;
  }

  // Polls `cond` every 50 ms until it holds or `limit` passes; false then.
  static bool waitUntil(const std::function<bool()>& cond, std::chrono::milliseconds limit) {
    auto deadline = std::chrono::steady_clock::now() + limit;
    while (!cond()) {
      if (std::chrono::steady_clock::now() > deadline) return false;
      std::this_thread::sleep_for(50ms);
    }
    return true;
  }

  // Jobs `node` holds a live lease on right now, from the store.
  std::vector<std::string> ownedBy(const std::string& node) {
    return pg_->query(url_, "SELECT job_id FROM agent_jobs WHERE owner_node = '" + node +
                                "' AND status IN ('PROVISIONING','RUNNING')");
  }

  std::string logs() {
    std::string out;
    for (auto& n : nodes_) out += "==== " + n->dataDir() + "\n" + n->log().substr(0, 20'000);
    return out + "==== PostgreSQL\n" + pg_->log();
  }

  PostgresServer* pg_ = nullptr;
  std::string url_;
  TempDir dir_;
  std::vector<std::unique_ptr<KilnProcess>> nodes_;
};

// What must hold for every job of a fleet run, whatever happened to the nodes.
void expectJobConsistent(store::Store& st, const std::string& id) {
  auto job = st.getJob(id);
  ASSERT_TRUE(job.isOk()) << job.status().toString();
  EXPECT_EQ(store::jobStatusName(job->status), std::string("COMPLETED"))
      << id << " " << job->error.dump();
  auto steps = st.listSteps(id);
  ASSERT_TRUE(steps.isOk());
  int64_t lastAt = 0;
  for (size_t i = 0; i < steps->size(); ++i) {
    const auto& s = (*steps)[i];
    EXPECT_EQ(s.stepNumber, static_cast<int>(i) + 1) << id << ": step numbers have a gap";
    // One owner at a time writes steps in order; two at once would interleave.
    EXPECT_GE(s.executedAt, lastAt)
        << id << ": step " << s.stepNumber << " written before its predecessor";
    lastAt = s.executedAt;
  }
  expectEventsOnceAndNoCallTwice(st, id);
}

// The owner-change log of a job: epochs 1..n in claim order, and never two owners at once: a
// new owner's claim comes after every step its predecessor wrote... or the predecessor wrote
// none after it.
void expectOneOwnerAtATime(store::Store& st, const std::string& id) {
  auto claims = st.leaseHistory(id);
  ASSERT_TRUE(claims.isOk()) << claims.status().toString();
  ASSERT_FALSE(claims->empty()) << id << " was never claimed";
  for (size_t i = 0; i < claims->size(); ++i) {
    EXPECT_EQ((*claims)[i].epoch, static_cast<int64_t>(i) + 1) << id;
    if (i > 0) EXPECT_GE((*claims)[i].claimedAt, (*claims)[i - 1].claimedAt) << id;
  }
}

TEST_F(FleetTest, ThreeNodesShareJobsAndSurviveAKillNine) {
  makeSlowRepo(dir_.file("repo"), "0.3");
  // Slots for every job, so that the survivors can take node a's jobs over as soon as their
  // leases lapse rather than when a slot frees up.
  KilnProcess& a = startNode("node-a", {}, 24);
  // Node b serves one event stream per job, all on one token.
  KilnProcess& b = startNode("node-b", {"--max-streams-per-token", "64"}, 24);
  KilnProcess& c = startNode("node-c", {}, 24);
  constexpr int kJobs = 60;
  std::vector<std::string> ids;
  // Any node takes submissions; the store decides who runs what.
  KilnProcess* entry[] = {&a, &b, &c};
  for (int i = 0; i < kJobs; ++i)
    ids.push_back(createJob(*entry[i % 3], "Task " + std::to_string(i)));
  // Every job followed live by an SSE client on node b, which survives.
  std::vector<std::unique_ptr<StreamWatcher>> watchers;
  for (const auto& id : ids)
    watchers.push_back(std::make_unique<StreamWatcher>(b.port(), b.token(), id));

  // Kill node a while it runs jobs.
  std::vector<std::string> victims;
  ASSERT_TRUE(waitUntil(
      [&] {
        victims = ownedBy("node-a");
        return victims.size() >= 2;
      },
      60s))
      << logs();
  a.kill(SIGKILL);
  const int64_t killedAt = RealClock::instance().nowMs();
  victims = ownedBy("node-a");  // what it held when it died

  for (auto& w : watchers) w->wait();
  auto st = openStore();
  ASSERT_TRUE(st);
  std::set<std::string> ranSome;
  for (size_t i = 0; i < ids.size(); ++i) {
    SCOPED_TRACE(ids[i]);
    expectJobConsistent(*st, ids[i]);
    expectOneOwnerAtATime(*st, ids[i]);
    for (const auto& claim : *st->leaseHistory(ids[i])) ranSome.insert(claim.nodeId);
    // The SSE client on node b saw the job's whole history, live, with no gap or duplicate.
    const auto& seen = watchers[i]->events();
    auto stored = st->listEvents(ids[i], 0, 100000);
    ASSERT_TRUE(stored.isOk());
    ASSERT_EQ(seen.size(), stored->size()) << "stream and store disagree";
    for (size_t k = 0; k < seen.size(); ++k) {
      EXPECT_EQ(seen[k].id, std::to_string(k + 1));
      EXPECT_EQ(seen[k].type, (*stored)[k].type);
    }
  }
  EXPECT_EQ(ranSome, (std::set<std::string>{"node-a", "node-b", "node-c"}));
  // Node a's jobs were taken over by the others within the lease TTL + 5 s.
  ASSERT_FALSE(victims.empty());
  for (const auto& id : victims) {
    auto claims = *st->leaseHistory(id);
    auto after = std::find_if(claims.begin(), claims.end(),
                              [&](const store::LeaseClaim& c) { return c.claimedAt >= killedAt; });
    ASSERT_NE(after, claims.end()) << id << " was not taken over";
    EXPECT_NE(after->nodeId, "node-a");
    EXPECT_LE(after->claimedAt - killedAt, kLeaseMs + 5'000) << id;
  }
}

TEST_F(FleetTest, ADrainedNodeHandsItsJobsOver) {
  makeSlowRepo(dir_.file("repo"), "1");
  KilnProcess& a = startNode("node-a");
  KilnProcess& b = startNode("node-b");
  std::vector<std::string> ids;
  for (int i = 0; i < 8; ++i) ids.push_back(createJob(a, "Task " + std::to_string(i)));
  ASSERT_TRUE(waitUntil([&] { return ownedBy("node-a").size() >= 2; }, 60s)) << logs();

  // Drained through the other node's API: the request travels through the store.
  auto r = client(b)->post("/api/v1/nodes/node-a/drain");
  ASSERT_TRUE(r.isOk());
  ASSERT_EQ(r->status, 202) << r->body;
  const int64_t drainedAt = RealClock::instance().nowMs();
  EXPECT_TRUE(waitUntil(
      [&] {
        auto nodes = client(b)->get("/api/v1/nodes");
        if (!nodes.isOk()) return false;
        const json body = nodes->json();
        for (const auto& n : body["nodes"])
          if (n.value("nodeId", "") == "node-a") return n.value("draining", false);
        return false;
      },
      10s));
  // Its jobs stop at a step boundary and move to node b (--drain-timeout 0).
  EXPECT_TRUE(waitUntil([&] { return ownedBy("node-a").empty(); }, 30s)) << logs();

  auto st = openStore();
  ASSERT_TRUE(st);
  for (const auto& id : ids) {
    auto sse = SseReader::open("127.0.0.1", b.port(), "/api/v1/jobs/" + id + "/stream",
                               {{"Authorization", "Bearer " + b.token()}});
    ASSERT_TRUE(sse.isOk());
    ASSERT_FALSE((*sse)->readUntil("done", 180s).empty()) << id << "\n" << logs();
  }
  int moved = 0;
  for (const auto& id : ids) {
    SCOPED_TRACE(id);
    expectJobConsistent(*st, id);
    expectOneOwnerAtATime(*st, id);
    auto claims = *st->leaseHistory(id);
    for (const auto& c : claims) {
      // A draining node claims nothing new (a claim in flight as the drain landed aside).
      if (c.nodeId == "node-a") EXPECT_LT(c.claimedAt, drainedAt + 1'000);
    }
    moved += claims.size() > 1 && claims.front().nodeId == "node-a";
  }
  EXPECT_GT(moved, 0) << "no job moved from the drained node";
  // The drained node keeps serving the API.
  auto health = client(a)->get("/healthz");
  EXPECT_TRUE(health.isOk() && health->status == 200);
}

TEST_F(FleetTest, LosingTheDatabaseUnderLoadLosesNoJob) {
  makeSlowRepo(dir_.file("repo"), "0.5");
  KilnProcess& a = startNode("node-a");
  startNode("node-b");
  std::vector<std::string> ids;
  for (int i = 0; i < 12; ++i) ids.push_back(createJob(a, "Task " + std::to_string(i)));
  ASSERT_TRUE(
      waitUntil([&] { return !ownedBy("node-a").empty() || !ownedBy("node-b").empty(); }, 60s));

  pg_->stop();
  // Down for longer than the lease TTL: every lease lapses meanwhile.
  std::this_thread::sleep_for(std::chrono::milliseconds(kLeaseMs + 1'000));
  pg_->start();

  auto st = openStore();
  ASSERT_TRUE(st);
  EXPECT_TRUE(waitUntil(
      [&] {
        for (const auto& id : ids) {
          auto j = st->getJob(id);
          if (!j.isOk() || !store::isTerminal(j->status)) return false;
        }
        return true;
      },
      240s))
      << logs();
  for (const auto& id : ids) {
    SCOPED_TRACE(id);
    expectJobConsistent(*st, id);
    expectOneOwnerAtATime(*st, id);
  }
}

TEST_F(FleetTest, ANodeShortOfMemoryServesButDoesNotClaimAndStreamsJobsRunElsewhere) {
  makeSlowRepo(dir_.file("repo"), "0.2");
  // Node a asks for more free memory than any machine has: it serves the API but claims nothing.
  KilnProcess& a = startNode("node-a", {"--min-free-memory-mb", "100000000"});
  KilnProcess& b = startNode("node-b");
  std::vector<std::string> ids;
  for (int i = 0; i < 3; ++i) ids.push_back(createJob(a, "Task " + std::to_string(i)));
  std::vector<std::unique_ptr<StreamWatcher>> watchers;
  for (const auto& id : ids)
    watchers.push_back(std::make_unique<StreamWatcher>(a.port(), a.token(), id));
  for (auto& w : watchers) w->wait();
  auto st = openStore();
  ASSERT_TRUE(st) << logs();
  for (size_t i = 0; i < ids.size(); ++i) {
    SCOPED_TRACE(ids[i]);
    expectJobConsistent(*st, ids[i]);
    // Node a's SSE client saw the whole history of a job that ran on node b.
    auto stored = st->listEvents(ids[i], 0, 100000);
    ASSERT_TRUE(stored.isOk());
    const auto& seen = watchers[i]->events();
    ASSERT_EQ(seen.size(), stored->size()) << logs();
    for (size_t k = 0; k < seen.size(); ++k) EXPECT_EQ(seen[k].id, std::to_string(k + 1));
    // Replay from the middle: the same sequence numbers from either node.
    for (KilnProcess* k : {&a, &b}) {
      auto sse =
          SseReader::open("127.0.0.1", k->port(), "/api/v1/jobs/" + ids[i] + "/stream",
                          {{"Authorization", "Bearer " + k->token()}, {"Last-Event-ID", "2"}});
      ASSERT_TRUE(sse.isOk());
      auto rest = (*sse)->readUntil("done", 30s);
      ASSERT_EQ(rest.size(), stored->size() - 2);
      EXPECT_EQ(rest.front().id, "3");
    }
  }
  EXPECT_EQ(b.log().find("running job") == std::string::npos, false);
  EXPECT_EQ(a.log().find("running job"), std::string::npos) << a.log();
  auto nodes = client(b)->get("/api/v1/nodes");
  ASSERT_TRUE(nodes.isOk());
  std::map<std::string, json> byId;
  const json body = nodes->json();
  for (const auto& n : body["nodes"]) byId[n.value("nodeId", "")] = n;
  ASSERT_EQ(byId.size(), 2u) << nodes->body;
  EXPECT_EQ(byId["node-a"]["claiming"], false);
  EXPECT_EQ(byId["node-a"]["blockedBy"], "memory");
  EXPECT_EQ(byId["node-b"]["claiming"], true);
  EXPECT_EQ(byId["node-b"]["live"], true);
  EXPECT_EQ(byId["node-b"]["address"], "http://127.0.0.1:" + std::to_string(b.port()));
}

TEST_F(FleetTest, AWrongOrUnreachableStoreUrlFailsAtStartWithOneLine) {
  for (const std::string& url :
       {std::string("postgres://kiln:pw@127.0.0.1:1/kiln"),
        "postgresql://postgres@127.0.0.1:" + std::to_string(pg_->port()) + "/nope"}) {
    std::string out;
    int rc =
        shell(std::string(KILN_BINARY) + " serve --listen 127.0.0.1:0 --data-dir " +
                  shellQuote(dir_.file("bad")) + " --store " + shellQuote(url) + " 2>&1 >/dev/null",
              &out);
    EXPECT_EQ(rc, 1) << out;
    while (!out.empty() && out.back() == '\n') out.pop_back();
    EXPECT_EQ(out.find('\n'), std::string::npos) << "one line, got:\n" << out;
    EXPECT_NE(out.find("cannot connect"), std::string::npos) << out;
    EXPECT_EQ(out.find("pw@"), std::string::npos) << out;
  }
}

}  // namespace
}  // namespace kiln::testing
