// GET /api/v1/nodes, POST /api/v1/nodes/{id}/drain and the per-node gauges of /metrics.
#include "api/api_fixture.h"
#include "common/ids.h"

namespace kiln::api {
namespace {

class ApiNodesTest : public ApiFixture {
 protected:
  static constexpr const char* kAdminToken = "token-admin";

  void SetUp() override {
    ApiFixture::SetUp();
    addToken(kAdminToken, "default", store::Role::kAdmin);
    admin_ = std::make_unique<testing::HttpClient>("127.0.0.1", server_->port());
    admin_->setBearer(kAdminToken);
  }

  void heartbeat(const std::string& id, int64_t ageMs, int running, bool draining = false) {
    store::NodeRecord n;
    n.id = id;
    n.address = "http://127.0.0.1:9";
    n.version = "9.9.9";
    n.startedAt = clock_.nowMs() - 60'000;
    n.heartbeatAt = clock_.nowMs() - ageMs;
    n.runningJobs = running;
    n.maxJobs = 4;
    n.draining = draining;
    n.claiming = !draining;
    n.figures = {{"diskFreeBytes", 5 << 20},
                 {"memAvailableBytes", 7 << 20},
                 {"blockedBy", draining ? "draining" : ""}};
    ASSERT_TRUE(store_->heartbeatNode(n).isOk());
  }

  std::unique_ptr<testing::HttpClient> admin_;
};

TEST_F(ApiNodesTest, ListsNodesWithTheirFigures) {
  heartbeat("node-a", 1'000, 2);
  heartbeat("node-b", 60'000, 0, true);
  auto r = admin_->get("/api/v1/nodes");
  ASSERT_TRUE(r.isOk());
  ASSERT_EQ(r->status, 200) << r->body;
  auto nodes = r->json()["nodes"];
  ASSERT_EQ(nodes.size(), 2u);
  EXPECT_EQ(nodes[0]["nodeId"], "node-a");
  EXPECT_EQ(nodes[0]["address"], "http://127.0.0.1:9");
  EXPECT_EQ(nodes[0]["version"], "9.9.9");
  EXPECT_EQ(nodes[0]["runningJobs"], 2);
  EXPECT_EQ(nodes[0]["maxJobs"], 4);
  EXPECT_EQ(nodes[0]["claiming"], true);
  EXPECT_EQ(nodes[0]["draining"], false);
  EXPECT_EQ(nodes[0]["live"], true);
  EXPECT_EQ(nodes[0]["diskFreeBytes"], 5 << 20);
  EXPECT_TRUE(nodes[0]["lastHeartbeat"].is_string());
  EXPECT_EQ(nodes[1]["draining"], true);
  EXPECT_EQ(nodes[1]["blockedBy"], "draining");
  EXPECT_EQ(nodes[1]["live"], false) << "a minute without a heartbeat";

  auto m = admin_->get("/metrics");
  ASSERT_TRUE(m.isOk());
  EXPECT_NE(m->body.find("kiln_node_running_jobs{node=\"node-a\"} 2\n"), std::string::npos)
      << m->body;
  EXPECT_NE(m->body.find("kiln_node_draining{node=\"node-b\"} 1\n"), std::string::npos);
  EXPECT_NE(m->body.find("kiln_node_heartbeat_age_seconds{node=\"node-b\"} 60\n"),
            std::string::npos);
}

TEST_F(ApiNodesTest, DrainMarksTheNodeForItsNextHeartbeat) {
  heartbeat("node-a", 0, 1);
  auto r = admin_->post("/api/v1/nodes/node-a/drain");
  ASSERT_TRUE(r.isOk());
  EXPECT_EQ(r->status, 202) << r->body;
  EXPECT_EQ(r->json()["draining"], true);
  store::NodeRecord n;
  n.id = "node-a";
  n.startedAt = clock_.nowMs() - 60'000;
  n.heartbeatAt = clock_.nowMs();
  EXPECT_TRUE(store_->heartbeatNode(n).value()) << "the node learns of the drain";

  auto missing = admin_->post("/api/v1/nodes/nope/drain");
  ASSERT_TRUE(missing.isOk());
  EXPECT_EQ(missing->status, 404);
  EXPECT_EQ(missing->json()["error"]["code"], "not_found");
}

TEST_F(ApiNodesTest, OnlyTheAdminTokenSeesOrDrainsNodes) {
  heartbeat("node-a", 0, 1);
  for (auto [verb, path] : {std::pair{http::verb::get, "/api/v1/nodes"},
                            std::pair{http::verb::post, "/api/v1/nodes/node-a/drain"}}) {
    auto r = client_->request(verb, path);
    ASSERT_TRUE(r.isOk());
    EXPECT_EQ(r->status, 403) << path;
    EXPECT_EQ(r->json()["error"]["code"], "permission_denied");
  }
  store::NodeRecord n;
  n.id = "node-a";
  n.startedAt = clock_.nowMs() - 60'000;
  n.heartbeatAt = clock_.nowMs();
  EXPECT_FALSE(store_->heartbeatNode(n).value()) << "a refused drain changes nothing";
}

}  // namespace
}  // namespace kiln::api
