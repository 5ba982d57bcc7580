// Tenants, tokens, roles and quotas through the real binary (docs/api.md, "Tenants, tokens and
// roles", "Quotas"), on SQLite and on PostgreSQL: tokens made by `kiln token create` on the data
// dir with no server and through the API, every route docs/api.md lists called with another
// tenant's, a revoked and a viewer's token, a node with another token key refused, quotas
// answering 429 with Retry-After, and two nodes of a fleet never starting more of a tenant's jobs
// than its maxRunning.
#include <gtest/gtest.h>
#include <unistd.h>

#include <fstream>
#include <map>
#include <regex>
#include <sstream>
#include <thread>

#include "common/clock.h"
#include "common/files.h"
#include "common/ids.h"
#include "store/store.h"
#include "support/http_client.h"
#include "support/kiln_process.h"
#include "support/postgres_server.h"
#include "support/slow_repo.h"
#include "support/temp_dir.h"

namespace kiln::testing {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

constexpr const char* kFleetKey = "tenancy-test-token-key-0123456789abcdef";

// Every route heading of docs/api.md: "GET /api/v1/jobs/{id}", ...
std::vector<std::string> documentedRoutes() {
  std::ifstream in(std::string(KILN_SOURCE_DIR) + "/docs/api.md");
  std::stringstream ss;
  ss << in.rdbuf();
  const std::string doc = ss.str();
  static const std::regex kHeading(R"(\n### `(GET|POST) ([^` ?]+))");
  std::vector<std::string> out;
  for (std::sregex_iterator it(doc.begin(), doc.end(), kHeading), end; it != end; ++it) {
    out.push_back((*it)[1].str() + " " + (*it)[2].str());
  }
  return out;
}

// What each documented route answers another tenant's admin token and a viewer of the object's
// tenant (a revoked token is 401 on every route that needs a token).
struct Expected {
  bool open = false;      // no token needed: nothing to check
  int otherTenant = 0;    // 0: the route has no object of another tenant (a collection)
  int viewer = 200;       // 403 for writes and the operator's routes
  std::string body = "";  // for POSTs
  bool stream = false;    // an event stream: a viewer's 200 is not read here
};

const std::map<std::string, Expected>& expectations() {
  static const std::map<std::string, Expected> kRoutes = {
      {"POST /api/v1/jobs", {false, 0, 403, R"({"repoUrl":"REPO","taskDesc":"x"})"}},
      {"GET /api/v1/jobs", {false, 0, 200}},
      {"GET /api/v1/jobs/{id}", {false, 404, 200}},
      {"GET /api/v1/jobs/{id}/steps", {false, 404, 200}},
      {"GET /api/v1/jobs/{id}/diff", {false, 404, 200}},
      {"GET /api/v1/jobs/{id}/stream", {false, 404, 200, "", true}},
      {"POST /api/v1/jobs/{id}/stop", {false, 404, 403, "{}"}},
      {"POST /api/v1/jobs/{id}/reply", {false, 404, 403, R"({"message":"B"})"}},
      {"POST /api/v1/jobs/{id}/approve", {false, 404, 403, "{}"}},
      {"POST /api/v1/jobs/{id}/continue", {false, 404, 403, R"({"taskDesc":"more"})"}},
      {"POST /api/v1/tasks", {false, 0, 403, R"({"prompt":"x"})"}},
      {"GET /api/v1/tasks/{id}/events", {false, 404, 200, "", true}},
      {"GET /healthz", {true}},
      {"GET /metrics", {false, 403, 403}},
      {"GET /api/v1/nodes", {false, 403, 403}},
      {"POST /api/v1/nodes/{id}/drain", {false, 403, 403, "{}"}},
      // The other tenant's admin names this tenant in the body or query: 404.
      {"POST /api/v1/tokens", {false, 404, 403, R"({"tenant":"acme","role":"viewer"})"}},
      {"GET /api/v1/tokens", {false, 404, 403}},
      {"POST /api/v1/tokens/{id}/revoke", {false, 404, 403, "{}"}},
      {"GET /api/v1/tenants/{id}/quota", {false, 404, 200}},
      // Quotas are set by the operator only.
      {"POST /api/v1/tenants/{id}/quota", {false, 403, 403, R"({"maxRunning":100})"}},
      // The tenant's own secrets (names and modes, never values): any role may list them.
      {"GET /api/v1/secrets", {false, 0, 200}},
      {"GET /", {true}},
      {"GET /assets/{name}", {true}},
  };
  return kRoutes;
}

class TenancyTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (GetParam() == "postgres") {
      KILN_REQUIRE_POSTGRES(pg);
      storeUrl_ = pg->createDatabase();
      args_ = {"--store", storeUrl_};
      // A fleet's key comes from the environment; a single node's from its data dir.
      env_ = {{"KILN_TOKEN_KEY", kFleetKey}};
    }
    dataDir_ = dir_.file("data");
  }

  // Runs the kiln CLI on the data dir with `args`; its stdout (stderr dropped) in `out`.
  int kiln(const std::string& args, std::string& out, bool withStderr = false) {
    std::string cmd;
    for (const auto& [k, v] : env_) cmd += k + "=" + shellQuote(v) + " ";
    if (!storeUrl_.empty()) cmd += "KILN_STORE=" + shellQuote(storeUrl_) + " ";
    cmd += std::string(KILN_BINARY) + " --data-dir " + shellQuote(dataDir_) + " " + args;
    if (!withStderr) cmd += " 2>/dev/null";
    out.clear();
    return shell(cmd, &out);
  }

  // `kiln token create ... --json` as JSON ({tokenId, token, ...}).
  json createToken(const std::string& args) {
    std::string out;
    EXPECT_EQ(kiln("token create --json " + args, out), 0) << out;
    json j = json::parse(out, nullptr, false);
    EXPECT_TRUE(j.is_object()) << out;
    return j.is_object() ? j : json::object();
  }

  std::unique_ptr<HttpClient> client(const std::string& token) {
    auto c = std::make_unique<HttpClient>("127.0.0.1", node_->port());
    c->setBearer(token);
    return c;
  }

  TempDir dir_;
  std::string dataDir_;
  std::string storeUrl_;
  std::vector<std::string> args_;
  std::vector<std::pair<std::string, std::string>> env_;
  std::unique_ptr<KilnProcess> node_;
};

INSTANTIATE_TEST_SUITE_P(Engines, TenancyTest, ::testing::Values("sqlite", "postgres"),
                         [](const auto& info) { return info.param; });

TEST_P(TenancyTest, TokensFromTheCliAndEveryDocumentedRouteKeepTenantsApart) {
  makeSampleRepo(dir_.file("repo"));
  // No server yet: the token is made on the data dir's store, and printed once, alone on the
  // last line.
  std::string out;
  ASSERT_EQ(kiln("token create --tenant acme --role admin --name boot", out), 0) << out;
  ASSERT_FALSE(out.empty());
  std::string lines = out.substr(0, out.size() - 1);  // the last newline
  const std::string acmeAdmin = lines.substr(lines.rfind('\n') + 1);
  ASSERT_EQ(acmeAdmin.rfind("kiln_", 0), 0u) << out;
  EXPECT_EQ(acmeAdmin.size(), 5u + 48u) << out;
  ASSERT_EQ(kiln("token list", out), 0) << out;
  EXPECT_NE(out.find("acme"), std::string::npos) << out;
  EXPECT_NE(out.find("boot"), std::string::npos) << out;
  EXPECT_EQ(out.find(acmeAdmin), std::string::npos) << "a list never shows a token";
  // Only a keyed hash is stored: neither the token nor its plain SHA-256.
  if (GetParam() == "sqlite") {
    std::string db = kiln::readFile(dataDir_ + "/kiln.db").valueOr("");
    EXPECT_EQ(db.find(acmeAdmin), std::string::npos);
    EXPECT_EQ(db.find(sha256Hex(acmeAdmin)), std::string::npos);
  }

  node_ = std::make_unique<KilnProcess>(dataDir_, args_, env_);
  auto acme = client(acmeAdmin);
  auto listed = acme->get("/api/v1/jobs");
  ASSERT_TRUE(listed.isOk());
  ASSERT_EQ(listed->status, 200) << listed->body << node_->log();

  // Through the API: acme's admin makes its viewer and member tokens; the operator (the data
  // dir's admin.token) makes the other tenant's admin.
  const json viewer = createToken("--token " + acmeAdmin + " --role viewer --name dash");
  const json member = createToken("--token " + acmeAdmin + " --name ci");
  const json doomed = createToken("--token " + acmeAdmin + " --name doomed");
  const json rival = createToken("--tenant rival --role admin");
  EXPECT_EQ(viewer.value("role", ""), "viewer");
  EXPECT_EQ(member.value("role", ""), "member");
  EXPECT_EQ(member.value("tenant", ""), "acme");
  EXPECT_EQ(rival.value("tenant", ""), "rival");
  // A tenant's admin makes no token for another tenant.
  EXPECT_NE(kiln("token create --token " + acmeAdmin + " --tenant rival", out), 0);
  ASSERT_EQ(kiln("token revoke --token " + acmeAdmin + " " + doomed.value("tokenId", ""), out), 0)
      << out;

  // acme's job, and a token of acme that another tenant might name.
  auto created =
      client(member.value("token", ""))
          ->postJson("/api/v1/jobs", {{"repoUrl", dir_.file("repo")}, {"taskDesc", "x"}});
  ASSERT_TRUE(created.isOk());
  ASSERT_EQ(created->status, 201) << created->body;
  const std::string jobId = created->json().value("jobId", "");
  const std::string tokenId = viewer.value("tokenId", "");

  auto other = client(rival.value("token", ""));
  auto view = client(viewer.value("token", ""));
  auto revoked = client(doomed.value("token", ""));
  std::set<std::string> seen;
  for (const std::string& route : documentedRoutes()) {
    SCOPED_TRACE(route);
    seen.insert(route);
    auto e = expectations().find(route);
    ASSERT_NE(e, expectations().end()) << "a documented route this test does not call";
    if (e->second.open) continue;
    const std::string method = route.substr(0, route.find(' '));
    std::string path = route.substr(route.find(' ') + 1);
    std::string target = jobId;
    if (path.rfind("/api/v1/tokens/", 0) == 0) target = tokenId;
    if (path.rfind("/api/v1/tenants/", 0) == 0) target = "acme";
    if (path.rfind("/api/v1/nodes/", 0) == 0) target = "no-such-node";
    path = std::regex_replace(path, std::regex(R"(\{id\})"), target);
    std::string body = std::regex_replace(e->second.body, std::regex("REPO"), dir_.file("repo"));
    auto call = [&](HttpClient& c, const std::string& p) {
      return c.request(method == "GET" ? http::verb::get : http::verb::post, p, body);
    };
    auto expect = [&](HttpClient& c, const std::string& p, int status, const char* who) {
      auto res = call(c, p);
      ASSERT_TRUE(res.isOk()) << who << ": " << res.status().toString();
      EXPECT_EQ(res->status, status) << who << ": " << res->body;
      if (status >= 400) {
        const json err = res->json();
        const char* code = status == 401   ? "unauthenticated"
                           : status == 403 ? "permission_denied"
                                           : "not_found";
        EXPECT_EQ(err["error"].value("code", ""), code) << who << ": " << res->body;
        EXPECT_FALSE(err["error"].value("message", "").empty()) << who;
      }
    };
    expect(*revoked, path, 401, "a revoked token");
    if (e->second.otherTenant != 0) {
      // The list of tokens names acme in its query.
      expect(*other, path == "/api/v1/tokens" ? path + "?tenant=acme" : path, e->second.otherTenant,
             "another tenant's admin");
    }
    if (e->second.viewer == 403 || !e->second.stream) {
      expect(*view, path, e->second.viewer, "a viewer");
    }
  }
  for (const auto& [route, e] : expectations()) {
    EXPECT_TRUE(seen.count(route)) << route << " is called here but not documented";
  }
  // Another tenant's list holds none of acme's jobs; its own does.
  auto theirs = other->get("/api/v1/jobs");
  ASSERT_TRUE(theirs.isOk());
  EXPECT_EQ(theirs->body.find(jobId), std::string::npos);
  auto ours = view->get("/api/v1/jobs");
  ASSERT_TRUE(ours.isOk());
  EXPECT_NE(ours->body.find(jobId), std::string::npos);
  // acme's admin lists acme's tokens only; revoked ones with their time.
  auto tokens = acme->get("/api/v1/tokens");
  ASSERT_TRUE(tokens.isOk());
  ASSERT_EQ(tokens->status, 200) << tokens->body;
  bool sawRevoked = false;
  const json list = tokens->json();
  for (const auto& t : list["tokens"]) {
    EXPECT_EQ(t.value("tenant", ""), "acme");
    EXPECT_FALSE(t.contains("token"));
    if (t.value("tokenId", "") == doomed.value("tokenId", "")) {
      sawRevoked = t["revokedAt"].is_string();
    }
  }
  EXPECT_TRUE(sawRevoked) << tokens->body;

  // A node whose token key differs from the store's refuses to start, saying why.
  std::vector<std::string> args = args_;
  std::vector<std::pair<std::string, std::string>> env;
  if (GetParam() == "postgres") {
    env = {{"KILN_TOKEN_KEY", "another-token-key-0123456789abcdef-xyz"}};
  } else {
    args = {"--store", "sqlite:" + dataDir_ + "/kiln.db"};  // its own data dir's key file
  }
  try {
    KilnProcess stranger(dir_.file("stranger"), args, env);
    ADD_FAILURE() << "a node with another token key started";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("token key"), std::string::npos) << e.what();
  }
}

TEST_P(TenancyTest, OverAQuotaASubmissionIs429WithRetryAfter) {
  node_ = std::make_unique<KilnProcess>(dataDir_, args_, env_);
  makeSampleRepo(dir_.file("repo"));
  auto op = client(node_->token());
  auto made = op->postJson("/api/v1/tokens", {{"tenant", "q"}, {"name", "ci"}});
  ASSERT_TRUE(made.isOk());
  ASSERT_EQ(made->status, 201) << made->body;
  auto q = client(made->json().value("token", ""));
  const json job = {{"repoUrl", dir_.file("repo")}, {"taskDesc", "x"}};
  auto expect429 = [&](const char* quota, int64_t minRetry, int64_t maxRetry) {
    auto res = q->postJson("/api/v1/jobs", job);
    ASSERT_TRUE(res.isOk());
    ASSERT_EQ(res->status, 429) << res->body;
    const json err = res->json()["error"];
    EXPECT_EQ(err.value("code", ""), "quota_exceeded");
    EXPECT_EQ(err.value("quota", ""), quota);
    EXPECT_FALSE(err.value("message", "").empty());
    const std::string retry = res->header("retry-after");
    ASSERT_FALSE(retry.empty()) << "no Retry-After";
    EXPECT_GE(std::stoll(retry), minRetry) << retry;
    EXPECT_LE(std::stoll(retry), maxRetry) << retry;
    EXPECT_EQ(err.value("retryAfterSeconds", int64_t{-1}), std::stoll(retry));
  };
  std::string out;
  // The quota is the operator's to set.
  EXPECT_NE(
      kiln("tenant quota set q --token " + made->json().value("token", "") + " --jobs-per-hour 1",
           out, true),
      0);
  EXPECT_NE(out.find("operator"), std::string::npos) << out;
  ASSERT_EQ(kiln("tenant quota set q --jobs-per-hour 1", out), 0) << out;
  auto first = q->postJson("/api/v1/jobs", job);
  ASSERT_TRUE(first.isOk());
  ASSERT_EQ(first->status, 201) << first->body;
  expect429("jobsPerHour", 3500, 3600);
  ASSERT_EQ(kiln("tenant quota set q --jobs-per-hour none --max-running 0", out), 0) << out;
  expect429("maxRunning", 1, 60);
  ASSERT_EQ(kiln("tenant quota set q --max-running none --usd-per-day 0", out), 0) << out;
  expect429("usdPerDay", 1, 86'400);
  ASSERT_EQ(kiln("tenant quota show q --json", out), 0) << out;
  const json shown = json::parse(out, nullptr, false);
  ASSERT_TRUE(shown.is_object()) << out;
  EXPECT_TRUE(shown["maxRunning"].is_null());
  EXPECT_TRUE(shown["jobsPerHour"].is_null());
  EXPECT_EQ(shown["usdPerDay"], 0.0);
  EXPECT_EQ(shown["usage"]["jobsLastHour"], 1);
  // Without quotas the tenant submits again.
  ASSERT_EQ(kiln("tenant quota set q --usd-per-day none", out), 0) << out;
  auto again = q->postJson("/api/v1/jobs", job);
  ASSERT_TRUE(again.isOk());
  EXPECT_EQ(again->status, 201) << again->body;
}

// Two nodes of a fleet on PostgreSQL, each with free slots, never run more of a tenant's jobs
// at once than its maxRunning: its queued jobs (in before the quota was lowered) start one at a
// time, whichever node claims them, and all of them complete.
TEST(TenancyFleetTest, TwoNodesNeverStartMoreThanATenantsMaxRunning) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root for namespace sandboxes";
  KILN_REQUIRE_POSTGRES(pg);
  TempDir dir;
  const std::string url = pg->createDatabase();
  makeSlowRepo(dir.file("repo"), "0.5");
  std::vector<std::string> ids;
  {
    auto st = store::Store::open({url});
    ASSERT_TRUE(st.isOk()) << st.status().toString();
    ASSERT_TRUE((*st)->ensureTenant("acme", "acme").isOk());
    for (int i = 0; i < 3; ++i) {
      store::Job j;
      j.id = newUuid();
      j.tenantId = "acme";
      j.repoUrl = dir.file("repo");
      j.taskDesc = "Task " + std::to_string(i);
      ASSERT_TRUE((*st)->createJob(j, {{"status", {{"status", "QUEUED"}}}}).isOk());
      ids.push_back(j.id);
    }
    store::TenantQuota quota;
    quota.maxRunning = 1;
    ASSERT_TRUE((*st)->setQuota("acme", quota).isOk());
  }
  std::vector<std::unique_ptr<KilnProcess>> nodes;
  for (const char* name : {"node-a", "node-b"}) {
    nodes.push_back(std::make_unique<KilnProcess>(
        dir.file(name), std::vector<std::string>{"--store", url, "--node-id", name},
        std::vector<std::pair<std::string, std::string>>{{"KILN_TOKEN_KEY", kFleetKey}}));
  }
  auto st = store::Store::open({url});
  ASSERT_TRUE(st.isOk());
  auto deadline = std::chrono::steady_clock::now() + 180s;
  int maxSeen = 0;
  for (;;) {
    int live = 0, done = 0;
    for (const auto& id : ids) {
      auto job = (*st)->getJob(id);
      ASSERT_TRUE(job.isOk()) << job.status().toString();
      done += store::isTerminal(job->status);
    }
    auto usage = (*st)->tenantUsage("acme", RealClock::instance().nowMs());
    ASSERT_TRUE(usage.isOk());
    live = static_cast<int>(usage->running);
    maxSeen = std::max(maxSeen, live);
    ASSERT_LE(live, 1) << "two of the tenant's jobs run at once";
    if (done == static_cast<int>(ids.size())) break;
    ASSERT_LT(std::chrono::steady_clock::now(), deadline) << nodes[0]->log() << nodes[1]->log();
    std::this_thread::sleep_for(50ms);
  }
  EXPECT_EQ(maxSeen, 1);
  // After the fact, from the owner-change log: each job was first claimed only after the one
  // before it had finished (its done event).
  std::vector<std::pair<int64_t, int64_t>> spans;  // first claim, done
  for (const auto& id : ids) {
    auto job = (*st)->getJob(id);
    EXPECT_EQ(store::jobStatusName(job->status), std::string("COMPLETED"));
    auto claims = (*st)->leaseHistory(id);
    ASSERT_TRUE(claims.isOk() && !claims->empty());
    int64_t doneAt = 0;
    for (const auto& e : *(*st)->listEvents(id, 0, 100000))
      if (e.type == "done") doneAt = e.createdAt;
    spans.push_back({claims->front().claimedAt, doneAt});
  }
  std::sort(spans.begin(), spans.end());
  for (size_t i = 1; i < spans.size(); ++i) {
    EXPECT_GE(spans[i].first, spans[i - 1].second)
        << "job " << i << " started before job " << i - 1 << " finished";
  }
}

}  // namespace
}  // namespace kiln::testing
