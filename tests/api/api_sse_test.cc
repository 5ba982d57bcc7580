// The SSE event stream: replay from Last-Event-ID / ?after=, live delivery, and the end of the
// stream.
#include "api/api_fixture.h"

namespace kiln::api {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;
using store::JobStatus;

class ApiSseTest : public ApiFixture {
 protected:
  // Appends `n` terminal events; returns their seqs.
  std::vector<int64_t> appendLines(const std::string& id, int n) {
    std::vector<store::NewEvent> evs;
    for (int i = 0; i < n; ++i) {
      evs.push_back({"terminal", {{"stream", "stdout"}, {"data", "line " + std::to_string(i)}}});
    }
    store::JobUpdate u;
    u.events = evs;
    auto r = store_->updateJob(id, u);
    EXPECT_TRUE(r.isOk());
    std::vector<int64_t> seqs;
    for (const auto& e : r->events) seqs.push_back(e.seq);
    bus_.publish(id);
    return seqs;
  }
};

TEST_F(ApiSseTest, LastEventIdReplaysExactlyTheEventsAfterIt) {
  std::string id = createJob();  // seq 1: status QUEUED
  appendLines(id, 5);            // seq 2..6
  setStatus(id, JobStatus::kFailed);
  store::JobUpdate done;
  done.events = {{"done", {{"status", "FAILED"}}}};
  ASSERT_TRUE(store_->updateJob(id, done).isOk());  // seq 8

  auto sse = openSse("/api/v1/jobs/" + id + "/stream", {{"Last-Event-ID", "4"}});
  ASSERT_TRUE(sse);
  EXPECT_EQ(sse->status(), 200);
  EXPECT_EQ(sse->headers().at("content-type"), "text/event-stream");
  EXPECT_EQ(sse->headers().at("cache-control"), "no-cache");
  auto events = sse->readUntil("done", 10s);
  std::vector<std::string> ids;
  for (const auto& e : events) ids.push_back(e.id);
  EXPECT_EQ(ids, (std::vector<std::string>{"5", "6", "7", "8"}));
  ASSERT_EQ(events.size(), 4u);
  EXPECT_EQ(events[0].type, "terminal");
  EXPECT_EQ(events[0].json()["data"], "line 3");
  EXPECT_EQ(events[2].type, "status");
  EXPECT_EQ(events[3].type, "done");
  // The server closes the stream after `done`.
  EXPECT_FALSE(sse->next(5s));
  EXPECT_TRUE(sse->closed());
}

TEST_F(ApiSseTest, AfterQueryParameterAlsoResumes) {
  std::string id = createJob();
  appendLines(id, 3);  // seq 2..4
  auto sse = openSse("/api/v1/jobs/" + id + "/stream?after=3");
  ASSERT_TRUE(sse);
  auto ev = sse->next(10s);
  ASSERT_TRUE(ev);
  EXPECT_EQ(ev->id, "4");
  EXPECT_EQ(ev->json()["data"], "line 2");
}

TEST_F(ApiSseTest, EventAppendedAfterConnectingIsDeliveredLive) {
  std::string id = createJob();
  setStatus(id, JobStatus::kRunning);  // seq 2
  auto sse = openSse("/api/v1/jobs/" + id + "/stream");
  ASSERT_TRUE(sse);
  auto replayed = sse->next(10s);
  ASSERT_TRUE(replayed);
  EXPECT_EQ(replayed->id, "1");
  ASSERT_TRUE(sse->next(10s));  // seq 2

  auto seqs = appendLines(id, 1);
  auto live = sse->next(10s);
  ASSERT_TRUE(live);
  EXPECT_EQ(live->id, std::to_string(seqs[0]));
  EXPECT_EQ(live->type, "terminal");
  EXPECT_EQ(live->json()["stream"], "stdout");

  // Stopping the job over the API ends the stream with `done`.
  ASSERT_EQ(client_->post("/api/v1/jobs/" + id + "/stop")->status, 200);
  auto rest = sse->readUntil("done", 10s);
  ASSERT_FALSE(rest.empty());
  EXPECT_EQ(rest.back().type, "done");
  EXPECT_EQ(rest.back().json()["status"], "STOPPED");
  EXPECT_FALSE(sse->next(5s));
  EXPECT_TRUE(sse->closed());
}

TEST_F(ApiSseTest, FinishedJobWithoutDoneEventClosesAfterReplay) {
  std::string id = createJob();
  setStatus(id, JobStatus::kCompleted);
  auto sse = openSse("/api/v1/jobs/" + id + "/stream");
  ASSERT_TRUE(sse);
  auto events = sse->readUntil("done", 10s);
  EXPECT_EQ(events.size(), 2u);
  EXPECT_TRUE(sse->closed());
}

TEST_F(ApiSseTest, TasksEventsIsTheSameStream) {
  auto res = client_->postJson("/api/v1/tasks", json{{"prompt", "hi"}});
  ASSERT_TRUE(res.isOk());
  std::string id = res->json()["taskId"];
  auto sse = openSse("/api/v1/tasks/" + id + "/events");
  ASSERT_TRUE(sse);
  auto ev = sse->next(10s);
  ASSERT_TRUE(ev);
  EXPECT_EQ(ev->id, "1");
  EXPECT_EQ(ev->type, "status");
  EXPECT_EQ(ev->json()["status"], "QUEUED");
}

TEST_F(ApiSseTest, StreamErrorsAreJson) {
  auto sse = openSse("/api/v1/jobs/" + newUuid() + "/stream");
  ASSERT_TRUE(sse);
  EXPECT_EQ(sse->status(), 404);
  EXPECT_NE(sse->errorBody().find("not_found"), std::string::npos);

  std::string id = createJob();
  sse = openSse("/api/v1/jobs/" + id + "/stream", {{"Last-Event-ID", "abc"}});
  ASSERT_TRUE(sse);
  EXPECT_EQ(sse->status(), 400);
  EXPECT_NE(sse->errorBody().find("invalid_argument"), std::string::npos);

  auto noAuth =
      testing::SseReader::open("127.0.0.1", server_->port(), "/api/v1/jobs/" + id + "/stream");
  ASSERT_TRUE(noAuth.isOk());
  EXPECT_EQ((*noAuth)->status(), 401);
}

TEST_F(ApiSseTest, OpenStreamsAreCountedAndEndWhenTheServerStops) {
  std::string id = createJob();
  auto sse = openSse("/api/v1/jobs/" + id + "/stream");
  ASSERT_TRUE(sse);
  ASSERT_TRUE(sse->next(10s));
  client_->setBearer(kOperatorToken);
  auto metrics = client_->get("/metrics");
  ASSERT_TRUE(metrics.isOk());
  EXPECT_NE(metrics->body.find("kiln_sse_clients 1\n"), std::string::npos) << metrics->body;
  server_->stop();
  EXPECT_FALSE(sse->next(10s));
  EXPECT_TRUE(sse->closed());
}

}  // namespace
}  // namespace kiln::api
