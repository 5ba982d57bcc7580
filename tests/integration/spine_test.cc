// End to end through the real binary: `kiln serve` on a free port, a job over HTTP on a local
// git repo, the SSE stream to `done`, the stored steps and diff, and Last-Event-ID replay.
#include <gtest/gtest.h>
#include <unistd.h>

#include "support/http_client.h"
#include "support/kiln_process.h"
#include "support/temp_dir.h"
#include "workspace/cache.h"

namespace kiln::testing {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

class SpineTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "needs root for namespace sandboxes";
    makeSampleRepo(dir_.file("repo"));
    kiln_ = std::make_unique<KilnProcess>(dir_.file("data"));
    client_ = std::make_unique<HttpClient>("127.0.0.1", kiln_->port());
    client_->setBearer(kiln_->token());
  }

  std::string createJob(const json& body) {
    auto r = client_->postJson("/api/v1/jobs", body);
    EXPECT_TRUE(r.isOk());
    EXPECT_EQ(r->status, 201) << r->body;
    return r->json().value("jobId", "");
  }

  std::vector<SseEvent> stream(const std::string& jobId, const Headers& extra = {}) {
    Headers h = extra;
    h["Authorization"] = "Bearer " + kiln_->token();
    auto sse = SseReader::open("127.0.0.1", kiln_->port(), "/api/v1/jobs/" + jobId + "/stream", h);
    EXPECT_TRUE(sse.isOk());
    EXPECT_EQ((*sse)->status(), 200);
    return (*sse)->readUntil("done", 120s);
  }

  TempDir dir_;
  std::unique_ptr<KilnProcess> kiln_;
  std::unique_ptr<HttpClient> client_;
};

TEST_F(SpineTest, MockJobRunsEndToEndAndReplaysFromLastEventId) {
  std::string id = createJob({{"repoUrl", dir_.file("repo")}, {"taskDesc", "Add a greeting"}});
  ASSERT_FALSE(id.empty());

  std::vector<SseEvent> events = stream(id);
  ASSERT_FALSE(events.empty()) << kiln_->log();
  EXPECT_EQ(events.back().type, "done") << kiln_->log();
  EXPECT_EQ(events.back().json().value("status", ""), "COMPLETED") << events.back().data;
  // ids are the per-job sequence: 1, 2, 3, … with no gap.
  for (size_t i = 0; i < events.size(); ++i) EXPECT_EQ(events[i].id, std::to_string(i + 1));
  bool sawTerminal = false, sawStep = false, sawDiff = false;
  for (const auto& e : events) {
    sawTerminal |= e.type == "terminal";
    sawStep |= e.type == "step";
    sawDiff |= e.type == "diff";
  }
  EXPECT_TRUE(sawTerminal && sawStep && sawDiff);

  auto job = client_->get("/api/v1/jobs/" + id);
  ASSERT_TRUE(job.isOk());
  EXPECT_EQ(job->json().value("status", ""), "COMPLETED") << job->body;

  auto diff = client_->get("/api/v1/jobs/" + id + "/diff");
  ASSERT_TRUE(diff.isOk());
  EXPECT_EQ(diff->status, 200);
  EXPECT_NE(diff->body.find("AGENT_TASK.md"), std::string::npos) << diff->body;
  EXPECT_NE(diff->body.find("Add a greeting"), std::string::npos);

  auto steps = client_->get("/api/v1/jobs/" + id + "/steps");
  ASSERT_TRUE(steps.isOk());
  json s = steps->json();
  if (s.is_object()) s = s["steps"];
  ASSERT_TRUE(s.is_array()) << steps->body;
  ASSERT_GE(s.size(), 5u);
  std::vector<std::string> tools;
  for (const auto& st : s) tools.push_back(st.value("toolCalled", ""));
  EXPECT_EQ(tools[0], "bash");
  EXPECT_NE(std::find(tools.begin(), tools.end(), "write_file"), tools.end());
  EXPECT_NE(std::find(tools.begin(), tools.end(), "finish"), tools.end());
  EXPECT_EQ(tools.back(), "git_commit");
  // The repo's `make test` ran inside the sandbox.
  bool ranTests = false;
  for (const auto& st : s) ranTests |= st.value("toolOutput", "").find("tests passed") != std::string::npos;
  EXPECT_TRUE(ranTests) << steps->body;

  // Reconnecting with Last-Event-ID: N replays exactly the events after N.
  const size_t n = 3;
  std::vector<SseEvent> replay = stream(id, {{"Last-Event-ID", std::to_string(n)}});
  ASSERT_EQ(replay.size(), events.size() - n);
  for (size_t i = 0; i < replay.size(); ++i) {
    EXPECT_EQ(replay[i].id, events[i + n].id);
    EXPECT_EQ(replay[i].type, events[i + n].type);
    EXPECT_EQ(replay[i].data, events[i + n].data);
  }

  // The work is committed on kiln/<jobId> in the job's workspace: an overlay mounted while a run
  // of the job is going. Once the server stopped (its runs ended), mount it to look.
  kiln_->kill(SIGTERM);
  workspace::Workspaces ws(dir_.file("data") + "/workspaces", dir_.file("data") + "/repos");
  EXPECT_FALSE(workspace::isMountPoint(ws.mountDir(id))) << "the workspace stayed mounted";
  ASSERT_TRUE(ws.reattach(id));
  std::string out;
  EXPECT_EQ(shell("git -c safe.directory=* -C " + ws.dir(id) + " log --oneline kiln/" + id, &out), 0) << out;
  ws.release(id);
}

TEST_F(SpineTest, BadInputGetsJsonErrorsAndTheServerKeepsServing) {
  struct Case {
    std::string body;
    int status;
  };
  std::vector<Case> cases = {
      {"{not json", 400},
      {json{{"taskDesc", "x"}}.dump(), 400},                                   // no repoUrl
      {json{{"repoUrl", dir_.file("repo")}}.dump(), 400},                      // no taskDesc
      {json{{"repoUrl", 42}, {"taskDesc", "x"}}.dump(), 400},                  // wrong type
      {json{{"repoUrl", "ftp://example.com/r"}, {"taskDesc", "x"}}.dump(), 400},  // bad URL
      {json{{"repoUrl", "file://" + dir_.file("nope")}, {"taskDesc", "x"}}.dump(), 422},
      {json{{"repoUrl", dir_.file("repo")}, {"taskDesc", std::string(1 << 21, 'a')}}.dump(), 413},
  };
  for (const auto& c : cases) {
    auto r = client_->post("/api/v1/jobs", c.body, {{"Content-Type", "application/json"}});
    if (!r.isOk()) {
      // A server may close the connection right after a 413; that is fine, crashing is not.
      EXPECT_EQ(c.status, 413) << r.status().toString();
      continue;
    }
    EXPECT_EQ(r->status, c.status) << c.body.substr(0, 100) << " → " << r->body;
    json err = r->json();
    ASSERT_TRUE(err.is_object()) << r->body;
    EXPECT_TRUE(err["error"]["code"].is_string()) << r->body;
    EXPECT_TRUE(err["error"]["message"].is_string()) << r->body;
  }
  auto unknown = client_->get("/api/v1/jobs/00000000-0000-4000-8000-000000000000");
  ASSERT_TRUE(unknown.isOk());
  EXPECT_EQ(unknown->status, 404);
  EXPECT_EQ(unknown->json()["error"]["code"], "not_found");

  HttpClient fresh("127.0.0.1", kiln_->port());
  auto health = fresh.get("/healthz");
  ASSERT_TRUE(health.isOk());
  EXPECT_EQ(health->status, 200);
}

// Counts processes whose whole command line is `needle`.
int countProcesses(const std::string& needle) {
  std::string out;
  shell("pgrep -c -f -x '" + needle + "'", &out);  // -x: never the shell running pgrep
  return std::atoi(out.c_str());
}

TEST_F(SpineTest, StopKillsTheSandboxAndEndsTheJob) {
  std::string out;
  ASSERT_EQ(shell("cd " + dir_.file("repo") +
                      " && printf 'test:\\n\\tsleep 600\\n' > Makefile && git commit -qam slow "
                      "--author 't <t@t>' -c user.name=t -c user.email=t@t 2>&1 || "
                      "git -c user.name=t -c user.email=t@t commit -qam slow",
                  &out),
            0)
      << out;
  std::string id = createJob({{"repoUrl", dir_.file("repo")}, {"taskDesc", "Run the slow tests"}});
  // Wait until the job is inside `make test` (a `sleep 600` in its sandbox).
  for (int i = 0; i < 200 && countProcesses("sleep 600") == 0; ++i) usleep(50'000);
  ASSERT_GT(countProcesses("sleep 600"), 0) << kiln_->log();

  auto r = client_->post("/api/v1/jobs/" + id + "/stop");
  ASSERT_TRUE(r.isOk());
  EXPECT_EQ(r->status, 200) << r->body;
  EXPECT_EQ(r->json().value("status", ""), "stopped");
  std::vector<SseEvent> events = stream(id);
  ASSERT_FALSE(events.empty());
  EXPECT_EQ(events.back().json().value("status", ""), "STOPPED");
  // The sandbox and everything in it are gone.
  for (int i = 0; i < 100 && countProcesses("sleep 600") > 0; ++i) usleep(50'000);
  EXPECT_EQ(countProcesses("sleep 600"), 0);
  EXPECT_EQ(client_->get("/api/v1/jobs/" + id)->json().value("status", ""), "STOPPED");
  // A second stop is a conflict, not a crash.
  EXPECT_EQ(client_->post("/api/v1/jobs/" + id + "/stop")->status, 409);
}

}  // namespace
}  // namespace kiln::testing
