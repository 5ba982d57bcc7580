// The job routes over real HTTP: auth, create/get/list, validation, state rules.
#include "api/api_fixture.h"

namespace kiln::api {
namespace {

using nlohmann::json;
using store::JobStatus;

class ApiJobsTest : public ApiFixture {};

TEST_F(ApiJobsTest, MissingOrWrongTokenIs401Json) {
  client_->setBearer("");
  expectError(client_->get("/api/v1/jobs"), 401, "unauthenticated");
  expectError(client_->get("/api/v1/jobs", {{"Authorization", "Basic abc"}}), 401,
              "unauthenticated");
  client_->setBearer("not-a-token");
  expectError(client_->get("/api/v1/jobs"), 401, "unauthenticated");
  expectError(client_->postJson("/api/v1/jobs", json{{"repoUrl", "x"}}), 401, "unauthenticated");
}

TEST_F(ApiJobsTest, HealthzIsOpen) {
  client_->setBearer("");
  auto res = client_->get("/healthz");
  ASSERT_TRUE(res.isOk());
  EXPECT_EQ(res->status, 200);
  EXPECT_EQ(res->json()["status"], "ok");
}

TEST_F(ApiJobsTest, CreateThenGetReturnsTheJob) {
  auto res = client_->postJson("/api/v1/jobs", json{{"repoUrl", "https://example.com/r.git"},
                                                    {"taskDesc", "fix the bug"},
                                                    {"ref", "main"},
                                                    {"agent", "mock"},
                                                    {"model", "m1"},
                                                    {"limits", {{"maxSteps", 5}, {"maxUsd", 1.5}}},
                                                    {"sandbox", {{"cpus", 2}, {"memoryMb", 512}}},
                                                    {"push", false},
                                                    {"approvals", {"commit"}}});
  ASSERT_TRUE(res.isOk());
  ASSERT_EQ(res->status, 201) << res->body;
  std::string id = res->json()["jobId"];
  EXPECT_TRUE(isUuid(id));
  EXPECT_EQ(res->json()["status"], "QUEUED");
  EXPECT_EQ(res->header("location"), "/api/v1/jobs/" + id);
  EXPECT_EQ(jobs_.wakes(), 1);

  auto got = client_->get("/api/v1/jobs/" + id);
  ASSERT_TRUE(got.isOk());
  ASSERT_EQ(got->status, 200) << got->body;
  json j = got->json();
  EXPECT_EQ(j["jobId"], id);
  EXPECT_EQ(j["status"], "QUEUED");
  EXPECT_EQ(j["repoUrl"], "https://example.com/r.git");
  EXPECT_EQ(j["ref"], "main");
  EXPECT_EQ(j["taskDesc"], "fix the bug");
  EXPECT_EQ(j["model"], "m1");
  EXPECT_EQ(j["limits"]["maxSteps"], 5);
  EXPECT_EQ(j["spec"]["sandbox"]["memoryMb"], 512);
  EXPECT_EQ(j["spec"]["approvals"][0], "commit");
  EXPECT_EQ(j["steps"], 0);
  EXPECT_EQ(j["tokenSpendUsd"], 0);
  EXPECT_TRUE(j["createdAt"].is_string());
  EXPECT_TRUE(j["error"].is_null());

  // The create is recorded as the job's first event.
  auto events = store_->listEvents(id, 0, 10);
  ASSERT_TRUE(events.isOk());
  ASSERT_EQ(events->size(), 1u);
  EXPECT_EQ((*events)[0].type, "status");
}

TEST_F(ApiJobsTest, ListPagesWithCursorAndFiltersByStatus) {
  std::set<std::string> created;
  for (int i = 0; i < 5; ++i) {
    clock_.advanceMs(1000);
    created.insert(createJob("task " + std::to_string(i)));
  }
  std::set<std::string> seen;
  std::string target = "/api/v1/jobs?limit=2";
  int pages = 0;
  for (;;) {
    auto res = client_->get(target);
    ASSERT_TRUE(res.isOk());
    ASSERT_EQ(res->status, 200) << res->body;
    json j = res->json();
    EXPECT_LE(j["jobs"].size(), 2u);
    for (const auto& job : j["jobs"]) seen.insert(job["jobId"].get<std::string>());
    ++pages;
    if (j["nextCursor"].is_null()) break;
    target = "/api/v1/jobs?limit=2&cursor=" + j["nextCursor"].get<std::string>();
    ASSERT_LT(pages, 10);
  }
  EXPECT_EQ(pages, 3);
  EXPECT_EQ(seen, created);

  setStatus(*created.begin(), JobStatus::kRunning);
  auto running = client_->get("/api/v1/jobs?status=RUNNING");
  ASSERT_TRUE(running.isOk());
  ASSERT_EQ(running->json()["jobs"].size(), 1u);
  EXPECT_EQ(running->json()["jobs"][0]["jobId"], *created.begin());

  expectError(client_->get("/api/v1/jobs?status=BOGUS"), 400, "invalid_argument");
  expectError(client_->get("/api/v1/jobs?limit=0"), 400, "invalid_argument");
  expectError(client_->get("/api/v1/jobs?limit=abc"), 400, "invalid_argument");
}

TEST_F(ApiJobsTest, OtherTenantsJobsAreInvisible) {
  std::string id = createJob();
  client_->setBearer(kOtherToken);
  expectError(client_->get("/api/v1/jobs/" + id), 404, "not_found");
  expectError(client_->post("/api/v1/jobs/" + id + "/stop"), 404, "not_found");
  auto list = client_->get("/api/v1/jobs");
  ASSERT_TRUE(list.isOk());
  EXPECT_TRUE(list->json()["jobs"].empty());
}

TEST_F(ApiJobsTest, ValidationErrorsAreJsonAndTheServerKeepsServing) {
  struct Case {
    std::string body;
    std::string code;
  };
  std::vector<Case> cases = {
      {"{not json", "invalid_json"},
      {"[1,2]", "invalid_argument"},
      {R"({"taskDesc":"x"})", "invalid_argument"},
      {R"({"repoUrl":"https://e.com/r"})", "invalid_argument"},
      {R"({"repoUrl":42,"taskDesc":"x"})", "invalid_argument"},
      {R"({"repoUrl":"https://e.com/r","taskDesc":""})", "invalid_argument"},
      {R"({"repoUrl":"https://e.com/r","taskDesc":"x","limits":{"maxSteps":0}})",
       "invalid_argument"},
      {R"({"repoUrl":"https://e.com/r","taskDesc":"x","limits":{"maxSteps":"5"}})",
       "invalid_argument"},
      {R"({"repoUrl":"https://e.com/r","taskDesc":"x","limits":{"maxUsd":-1}})",
       "invalid_argument"},
      {R"({"repoUrl":"https://e.com/r","taskDesc":"x","limits":{"bogus":1}})", "invalid_argument"},
      {R"({"repoUrl":"https://e.com/r","taskDesc":"x","limits":[]})", "invalid_argument"},
      {R"({"repoUrl":"https://e.com/r","taskDesc":"x","sandbox":{"cpus":"two"}})",
       "invalid_argument"},
      {R"({"repoUrl":"https://e.com/r","taskDesc":"x","sandbox":{"network":"open"}})",
       "invalid_argument"},
      {R"({"repoUrl":"https://e.com/r","taskDesc":"x","push":"yes"})", "invalid_argument"},
      {R"({"repoUrl":"https://e.com/r","taskDesc":"x","agent":"Bad Agent"})", "invalid_argument"},
      {R"({"repoUrl":"https://e.com/r","taskDesc":"x","surprise":1})", "invalid_argument"},
      {R"({"repoUrl":"https://e.com/r","taskDesc":"x","cli":{"promptVia":"file"}})",
       "invalid_argument"},
      {R"({"repoUrl":"https://e.com/r","taskDesc":"x","cli":{"env":"KEY"}})", "invalid_argument"},
      {R"({"repoUrl":"https://e.com/r","taskDesc":"x","cli":{"bogus":1}})", "invalid_argument"},
      {R"({"repoUrl":"ftp://e.com/r","taskDesc":"x"})", "invalid_argument"},
      {R"({"repoUrl":"/definitely/not/a/dir","taskDesc":"x"})", "invalid_argument"},
      {"\xff\xfe", "invalid_json"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.body);
    expectError(client_->post("/api/v1/jobs", c.body), 400, c.code);
  }
  EXPECT_EQ(jobs_.wakes(), 0);
  EXPECT_FALSE(createJob().empty());
}

// The sandbox's shape (issue 17): an unknown shell mode, a variable that is not a name or is
// kiln's, a PATH that reaches outside the sandbox's directories, a command timeout out of range:
// 400, and the message names the field and says why.
TEST_F(ApiJobsTest, ABadShellEnvCommandTimeoutOrVerifyIs400AndSaysWhy) {
  struct Case {
    json extra;
    std::string says;
  };
  std::vector<Case> cases = {
      {{{"sandbox", {{"shell", "zsh"}}}}, "sandbox.shell must be"},
      {{{"sandbox", {{"env", {{"PATH", "bin:/usr/bin"}}}}}}, "sandbox.env.PATH"},
      {{{"sandbox", {{"env", {{"PATH", "/usr/bin::/bin"}}}}}}, "sandbox.env.PATH"},
      {{{"sandbox", {{"env", {{"PATH", "/workspace/../../host/bin"}}}}}}, "'..'"},
      {{{"sandbox", {{"env", {{"1X", "a"}}}}}}, "not a variable name"},
      {{{"sandbox", {{"env", {{"KILN_TOKEN", "a"}}}}}}, "KILN_"},
      {{{"sandbox", {{"env", {{"X", 1}}}}}}, "sandbox.env.X must be a string"},
      {{{"sandbox", {{"env", "X=1"}}}}, "sandbox.env must be an object"},
      {{{"limits", {{"commandTimeoutSeconds", 0}}}}, "limits.commandTimeoutSeconds"},
      {{{"verify", {{"command", ""}}}}, "verify.command"},
      {{{"verify", {{"command", "pytest"}, {"maxRetries", 99}}}}, "verify.maxRetries"},
  };
  for (const auto& c : cases) {
    json body = c.extra;
    body["repoUrl"] = "https://e.com/r";
    body["taskDesc"] = "x";
    SCOPED_TRACE(body.dump());
    auto r = client_->postJson("/api/v1/jobs", body);
    expectError(r, 400, "invalid_argument");
    if (r.isOk()) EXPECT_NE(r->body.find(c.says), std::string::npos) << r->body;
  }
  EXPECT_EQ(jobs_.wakes(), 0);
  json good = {
      {"repoUrl", "https://e.com/r"},
      {"taskDesc", "x"},
      {"sandbox", {{"shell", "session"}, {"env", {{"PATH", "/opt/v/bin:/usr/bin"}, {"X_1", ""}}}}},
      {"limits", {{"commandTimeoutSeconds", 600}}}};
  auto r = client_->postJson("/api/v1/jobs", good);
  ASSERT_TRUE(r.isOk());
  EXPECT_EQ(r->status, 201) << r->body;
}

TEST_F(ApiJobsTest, BodyOverOneMiBIs413AndTheServerKeepsServing) {
  std::string big =
      R"({"repoUrl":"https://e.com/r","taskDesc":")" + std::string((1 << 20) + 10, 'a') + "\"}";
  expectError(client_->post("/api/v1/jobs", big), 413, "payload_too_large");
  auto health = client_->get("/healthz");
  ASSERT_TRUE(health.isOk());
  EXPECT_EQ(health->status, 200);
}

TEST_F(ApiJobsTest, UnknownIdsRoutesAndMethods) {
  expectError(client_->get("/api/v1/jobs/" + newUuid()), 404, "not_found");
  expectError(client_->get("/api/v1/jobs/not-a-uuid"), 404, "not_found");
  expectError(client_->get("/api/v1/jobs/" + newUuid() + "/steps"), 404, "not_found");
  expectError(client_->get("/api/v1/nope"), 404, "not_found");
  expectError(client_->request(http::verb::delete_, "/api/v1/jobs"), 405, "method_not_allowed");
  expectError(client_->get("/api/v1/jobs/" + newUuid() + "/stop"), 405, "method_not_allowed");
}

TEST_F(ApiJobsTest, MalformedHttpGetsA400AndOtherConnectionsAreServed) {
  auto raw = client_->rawExchange("GARBAGE\r\n\r\n");
  ASSERT_TRUE(raw.isOk());
  EXPECT_NE(raw->find(" 400 "), std::string::npos) << *raw;
  EXPECT_NE(raw->find("bad_request"), std::string::npos) << *raw;
  raw = client_->rawExchange("GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: zz\r\n\r\n");
  ASSERT_TRUE(raw.isOk());
  EXPECT_NE(raw->find(" 400 "), std::string::npos) << *raw;
  raw = client_->rawExchange("GET /healthz?%zz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  ASSERT_TRUE(raw.isOk());
  EXPECT_NE(raw->find(" 400 "), std::string::npos) << *raw;
  auto health = client_->get("/healthz");
  ASSERT_TRUE(health.isOk());
  EXPECT_EQ(health->status, 200);
}

TEST_F(ApiJobsTest, StepsAndDiffComeFromTheStore) {
  std::string id = createJob();
  store::Step step;
  step.jobId = id;
  step.stepNumber = 1;
  step.plannerThought = "look around";
  step.toolCalled = "bash";
  step.toolArguments = {{"cmd", "ls"}};
  step.toolOutput = "README\n\xff";  // not UTF-8: must still serialise
  step.workspacePatch = "diff --git a/AGENT_TASK.md b/AGENT_TASK.md\n";
  step.tokensIn = 10;
  step.tokensOut = 3;
  step.usd = 0.01;
  step.executedAt = clock_.nowMs();
  auto claimed = store_->claimJob("node", clock_.nowMs(), 60'000);
  ASSERT_TRUE(claimed.isOk() && claimed->has_value());
  const store::Lease lease{"node", (*claimed)->leaseEpoch};
  ASSERT_TRUE(store_->recordStep(step, lease, {{"step", {{"stepNumber", 1}}}}).isOk());

  auto steps = client_->get("/api/v1/jobs/" + id + "/steps");
  ASSERT_TRUE(steps.isOk());
  ASSERT_EQ(steps->status, 200) << steps->body;
  json s = steps->json();
  ASSERT_EQ(s.size(), 1u);
  EXPECT_EQ(s[0]["stepNumber"], 1);
  EXPECT_EQ(s[0]["toolCalled"], "bash");
  EXPECT_EQ(s[0]["toolArguments"]["cmd"], "ls");
  EXPECT_EQ(s[0]["tokens"]["in"], 10);
  EXPECT_EQ(s[0]["tokens"]["out"], 3);
  EXPECT_TRUE(s[0]["executedAt"].is_string());

  auto diff = client_->get("/api/v1/jobs/" + id + "/diff");
  ASSERT_TRUE(diff.isOk());
  EXPECT_EQ(diff->status, 200);
  EXPECT_EQ(diff->header("content-type").rfind("text/x-diff", 0), 0u);
  EXPECT_EQ(diff->body, *step.workspacePatch);

  auto job = client_->get("/api/v1/jobs/" + id);
  EXPECT_EQ(job->json()["steps"], 1);
  EXPECT_EQ(job->json()["tokensIn"], 10);
}

}  // namespace
}  // namespace kiln::api
