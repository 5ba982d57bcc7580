// Durable jobs through the real binary: paused jobs across restarts, workspaces rebuilt from the
// store, kill -9 at random points during concurrent jobs, and two nodes sharing one store.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <filesystem>
#include <random>
#include <set>
#include <thread>

#include "store/store.h"
#include "support/http_client.h"
#include "support/kiln_process.h"
#include "support/temp_dir.h"

namespace kiln::testing {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

// A repo whose `make test` takes a while and leaves a trace of every run in the workspace, so a
// second execution of the same call would show in the diff.
void makeSlowRepo(const std::string& dir, const std::string& sleepSeconds) {
  std::string out;
  int rc = shell("set -e; mkdir -p " + dir + " && cd " + dir +
                     " && git init -q -b main . && printf 'test:\\n\\tsleep " + sleepSeconds +
                     "\\n\\techo run >> runs.log\\n\\t@echo tests passed\\n' > Makefile && "
                     "git add -A && git -c user.name=t -c user.email=t@t commit -qm init",
                 &out);
  ASSERT_EQ(rc, 0) << out;
}

class DurableTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "needs root for namespace sandboxes";
  }

  static std::unique_ptr<HttpClient> client(const KilnProcess& k) {
    auto c = std::make_unique<HttpClient>("127.0.0.1", k.port());
    c->setBearer(k.token());
    return c;
  }

  static std::string createJob(const KilnProcess& k, const std::string& repo,
                               const std::string& task) {
    auto c = client(k);
    auto r = c->postJson("/api/v1/jobs", {{"repoUrl", repo}, {"taskDesc", task}});
    EXPECT_TRUE(r.isOk() && r->status == 201) << (r.isOk() ? r->body : r.status().toString());
    return r.isOk() ? r->json().value("jobId", "") : "";
  }

  static json getJob(const KilnProcess& k, const std::string& id) {
    auto c = client(k);
    auto r = c->get("/api/v1/jobs/" + id);
    return r.isOk() ? r->json() : json();
  }

  // Reads the stream from the start until an event of `type`.
  static std::vector<SseEvent> waitFor(const KilnProcess& k, const std::string& id,
                                       const std::string& type) {
    auto sse = SseReader::open("127.0.0.1", k.port(), "/api/v1/jobs/" + id + "/stream",
                               {{"Authorization", "Bearer " + k.token()}});
    EXPECT_TRUE(sse.isOk()) << sse.status().toString();
    if (!sse.isOk()) return {};
    return (*sse)->readUntil(type, 120s);
  }

  static std::string diffOf(const KilnProcess& k, const std::string& id) {
    auto c = client(k);
    auto r = c->get("/api/v1/jobs/" + id + "/diff");
    return r.isOk() ? r->body : "";
  }

  TempDir dir_;
};

TEST_F(DurableTest, PausedJobSurvivesRestartAndReplyResumesIt) {
  makeSampleRepo(dir_.file("repo"));
  KilnProcess kiln(dir_.file("data"));
  std::string id = createJob(kiln, dir_.file("repo"), "Add a license. Which license?");
  auto events = waitFor(kiln, id, "question");
  ASSERT_FALSE(events.empty());
  EXPECT_EQ(events.back().json().value("question", ""), "Which license?");
  for (int i = 0; i < 50 && getJob(kiln, id).value("status", "") != "PAUSED"; ++i)
    std::this_thread::sleep_for(100ms);
  ASSERT_EQ(getJob(kiln, id).value("status", ""), "PAUSED");

  kiln.restart();
  EXPECT_EQ(getJob(kiln, id).value("status", ""), "PAUSED") << kiln.log();
  auto c = client(kiln);
  auto r = c->postJson("/api/v1/jobs/" + id + "/reply", {{"message", "MIT, please"}});
  ASSERT_TRUE(r.isOk());
  ASSERT_EQ(r->status, 200) << r->body;
  auto done = waitFor(kiln, id, "done");
  ASSERT_FALSE(done.empty());
  EXPECT_EQ(done.back().json().value("status", ""), "COMPLETED") << kiln.log();
  EXPECT_NE(diffOf(kiln, id).find("MIT, please"), std::string::npos);
}

TEST_F(DurableTest, WorkspaceDeletedWhilePausedIsRebuiltFromTheStore) {
  makeSampleRepo(dir_.file("repo"));
  KilnProcess kiln(dir_.file("data"));
  std::string id = createJob(kiln, dir_.file("repo"), "Document the API. Which format?");
  waitFor(kiln, id, "question");
  for (int i = 0; i < 50 && getJob(kiln, id).value("status", "") != "PAUSED"; ++i)
    std::this_thread::sleep_for(100ms);
  std::string pausedDiff = diffOf(kiln, id);
  ASSERT_NE(pausedDiff.find("AGENT_TASK.md"), std::string::npos);

  std::filesystem::remove_all(kiln.dataDir() + "/workspaces/" + id);
  auto c = client(kiln);
  ASSERT_EQ(c->postJson("/api/v1/jobs/" + id + "/reply", {{"message", "Markdown"}})->status, 200);
  auto done = waitFor(kiln, id, "done");
  ASSERT_FALSE(done.empty());
  EXPECT_EQ(done.back().json().value("status", ""), "COMPLETED") << kiln.log();
  EXPECT_NE(kiln.log().find("rebuilt"), std::string::npos) << kiln.log();
  // Everything the job had written before the workspace vanished is still in its diff.
  std::string finalDiff = diffOf(kiln, id);
  std::istringstream lines(pausedDiff);
  for (std::string line; std::getline(lines, line);) {
    if (line.size() > 1 && line[0] == '+' && line[1] != '+')
      EXPECT_NE(finalDiff.find(line), std::string::npos) << line;
  }
  EXPECT_NE(finalDiff.find("Markdown"), std::string::npos);
}

// Checks what must hold for every job after any number of crashes.
void expectConsistent(store::Store& st, const std::string& id) {
  auto job = st.getJob(id);
  ASSERT_TRUE(job.isOk());
  EXPECT_EQ(store::jobStatusName(job->status), std::string("COMPLETED")) << id << " " << job->error.dump();
  auto steps = st.listSteps(id);
  ASSERT_TRUE(steps.isOk());
  int makeTestRuns = 0;
  for (size_t i = 0; i < steps->size(); ++i) {
    const auto& s = (*steps)[i];
    EXPECT_EQ(s.stepNumber, static_cast<int>(i) + 1) << id << ": step numbers have a gap";
    if (s.toolArguments.value("command", "") == "make test" &&
        s.toolOutput.find("[interrupted") == std::string::npos)
      ++makeTestRuns;
  }
  EXPECT_LE(makeTestRuns, 1) << id;
  auto events = st.listEvents(id, 0, 100000);
  ASSERT_TRUE(events.isOk());
  for (size_t i = 0; i < events->size(); ++i)
    EXPECT_EQ((*events)[i].seq, static_cast<int64_t>(i) + 1) << id << ": event seq gap";
  EXPECT_EQ(events->back().type, "done") << id;
  int dones = 0;
  for (const auto& e : *events) dones += e.type == "done";
  EXPECT_EQ(dones, 1) << id;
  // The test command's effect appears at most once: it never ran twice.
  std::string patch = st.latestPatch(id).value();
  size_t first = patch.find("+run");
  EXPECT_TRUE(first == std::string::npos || patch.find("+run", first + 1) == std::string::npos)
      << id << " ran `make test` twice:\n" << patch;
}

// This test found a use-after-free: g++ 12 destroyed a lambda temporary (owning a sandbox
// shared_ptr) twice in a co_await expression (BlockingPool::run, JobRun::destroySandbox).
TEST_F(DurableTest, KillNineAtRandomPointsLosesNothing) {
  makeSlowRepo(dir_.file("repo"), "0.4");
  KilnProcess kiln(dir_.file("data"));
  std::vector<std::string> ids;
  for (int i = 0; i < 20; ++i) ids.push_back(createJob(kiln, dir_.file("repo"), "Task " + std::to_string(i)));
  std::mt19937 rng(std::random_device{}());
  std::uniform_int_distribution<int> delayMs(50, 1500);
  for (int kill = 0; kill < 10; ++kill) {
    std::this_thread::sleep_for(std::chrono::milliseconds(delayMs(rng)));
    kiln.kill(SIGKILL);
    kiln.restart();
  }
  // Let every job finish after the last crash.
  for (const auto& id : ids) {
    auto done = waitFor(kiln, id, "done");
    ASSERT_FALSE(done.empty()) << id << "\n" << kiln.log();
  }
  kiln.kill(SIGTERM);
  // No sandbox outlived the server that created it (parent-death signal), crashes included.
  // A pid namespace takes a moment to die after its PID 1 got SIGKILL: poll, bounded.
  int left = -1;
  for (int i = 0; i < 100 && left != 0; ++i) {
    std::string out;
    shell("pgrep -c -f '[r]untime --listen-fd'", &out);
    left = std::atoi(out.c_str());
    if (left) std::this_thread::sleep_for(100ms);
  }
  EXPECT_EQ(left, 0) << "orphaned sandbox runtimes";
  auto st = store::Store::open({"sqlite:" + dir_.file("data") + "/kiln.db"});
  ASSERT_TRUE(st.isOk());
  for (const auto& id : ids) expectConsistent(**st, id);
}

TEST_F(DurableTest, TwoNodesNeverRunTheSameJobAtOnce) {
  makeSlowRepo(dir_.file("repo"), "3");
  std::string storeUrl = "sqlite:" + dir_.file("shared.db");
  std::vector<std::pair<std::string, std::string>> env = {{"KILN_LEASE_MS", "1500"}};
  KilnProcess a(dir_.file("a"), {"--store", storeUrl, "--node-id", "node-a"}, env);
  std::string id = createJob(a, dir_.file("repo"), "Slow task");
  // Wait until node a is inside `make test`, then freeze it past its lease.
  for (int i = 0; i < 300; ++i) {
    json j = getJob(a, id);
    if (j.value("steps", 0) >= 3) break;
    std::this_thread::sleep_for(20ms);
  }
  std::this_thread::sleep_for(300ms);
  ::kill(a.pid(), SIGSTOP);
  KilnProcess b(dir_.file("b"), {"--store", storeUrl, "--node-id", "node-b"}, env);
  auto done = waitFor(b, id, "done");
  ASSERT_FALSE(done.empty()) << b.log();
  EXPECT_EQ(done.back().json().value("status", ""), "COMPLETED") << b.log();
  auto st = store::Store::open({storeUrl});
  ASSERT_TRUE(st.isOk());
  size_t eventsBefore = (*st)->listEvents(id, 0, 100000)->size();
  size_t stepsBefore = (*st)->listSteps(id)->size();

  // Node a wakes up: its `make test` call returns, but it must notice the lease is gone and
  // write nothing.
  ::kill(a.pid(), SIGCONT);
  std::this_thread::sleep_for(4s);
  EXPECT_EQ((*st)->listEvents(id, 0, 100000)->size(), eventsBefore);
  EXPECT_EQ((*st)->listSteps(id)->size(), stepsBefore);
  EXPECT_NE(a.log().find("lease"), std::string::npos) << a.log();
  EXPECT_NE(b.log().find("rebuilt"), std::string::npos) << b.log();
  expectConsistent(**st, id);
  auto steps = (*st)->listSteps(id);
  bool interrupted = false;
  for (const auto& s : *steps) interrupted |= s.toolOutput.find("[interrupted") != std::string::npos;
  EXPECT_TRUE(interrupted) << "node b should have recorded node a's call as interrupted";
}

}  // namespace
}  // namespace kiln::testing
