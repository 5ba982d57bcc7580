// Test fixture for the API: the real ApiServer on port 0 on a real io_context, a real SQLite
// store in a temp dir, the real EventBus, and a fake JobControl that records what it is told.
#pragma once
#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <mutex>
#include <thread>

#include "api/server.h"
#include "common/ids.h"
#include "secrets/secret_box.h"
#include "support/http_client.h"

namespace kiln::api {

class FakeJobControl : public scheduler::JobControl {
 public:
  void wake() override {
    std::lock_guard l(mu_);
    wakes_++;
  }
  void stopped(const std::string& id) override {
    std::lock_guard l(mu_);
    stopped_.push_back(id);
  }
  void replied(const std::string& id) override {
    std::lock_guard l(mu_);
    replied_.push_back(id);
  }
  int wakes() {
    std::lock_guard l(mu_);
    return wakes_;
  }
  std::vector<std::string> stoppedIds() {
    std::lock_guard l(mu_);
    return stopped_;
  }
  std::vector<std::string> repliedIds() {
    std::lock_guard l(mu_);
    return replied_;
  }

 private:
  std::mutex mu_;
  int wakes_ = 0;
  std::vector<std::string> stopped_;
  std::vector<std::string> replied_;
};

class ApiFixture : public ::testing::Test {
 protected:
  static constexpr const char* kToken = "token-tenant-a";
  static constexpr const char* kOtherToken = "token-tenant-b";
  // An admin token of the operator tenant "default" (nodes, /metrics, quotas).
  static constexpr const char* kOperatorToken = "token-operator";
  // The server's token key (ApiOptions::tokenKey).
  static constexpr const char* kTokenKey = "test-token-key-0123456789abcdef-0123456789";

  void SetUp() override {
    char tmpl[] = "/tmp/kiln-api-test-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    auto store = store::Store::open({"sqlite:" + dir_ + "/kiln.db"});
    ASSERT_TRUE(store.isOk()) << store.status().toString();
    store_ = std::move(*store);
    for (auto [tenant, token] : {std::pair{"a", kToken}, std::pair{"b", kOtherToken}}) {
      ASSERT_NO_FATAL_FAILURE(addToken(token, tenant, store::Role::kAdmin));
    }
    addToken(kOperatorToken, store::kOperatorTenant, store::Role::kAdmin);
    pool_ = std::make_unique<BlockingPool>(2);
    startServer(options());
  }

  void TearDown() override {
    stopServer();
    pool_.reset();
    store_.reset();
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  virtual ApiOptions options() {
    ApiOptions o;
    o.listen = "127.0.0.1:0";
    o.checkRepoReachable = false;
    o.tokenKey = kTokenKey;
    return o;
  }

  // Registers `token` (its hash under kTokenKey) for `tenant` with `role`; returns its id.
  std::string addToken(const std::string& token, const std::string& tenant, store::Role role) {
    EXPECT_TRUE(store_->ensureTenant(tenant, tenant).isOk());
    store::ApiToken t;
    t.id = "tok_" + randomToken(8);
    t.tenantId = tenant;
    t.name = token;
    t.role = role;
    EXPECT_TRUE(store_->addToken(hmacSha256Hex(kTokenKey, token), t).isOk());
    return t.id;
  }

  void startServer(const ApiOptions& opts) {
    work_.emplace(ioc_.get_executor());
    ApiDeps deps{store_.get(), &bus_, &jobs_, pool_.get(), &clock_};
    deps.secretBox = box_.get();
    auto server = ApiServer::start(ioc_, opts, deps);
    ASSERT_TRUE(server.isOk()) << server.status().toString();
    server_ = std::move(*server);
    for (int i = 0; i < 2; ++i) threads_.emplace_back([this] { ioc_.run(); });
    client_ = std::make_unique<testing::HttpClient>("127.0.0.1", server_->port());
    client_->setBearer(kToken);
  }

  void stopServer() {
    if (server_) server_->stop();
    work_.reset();
    ioc_.stop();
    for (auto& t : threads_) t.join();
    threads_.clear();
    server_.reset();
  }

  // Creates a job over HTTP and returns its id.
  std::string createJob(const std::string& task = "do it") {
    auto res = client_->postJson(
        "/api/v1/jobs",
        nlohmann::json{{"repoUrl", "https://example.com/r.git"}, {"taskDesc", task}});
    EXPECT_TRUE(res.isOk());
    if (!res.isOk()) return "";
    EXPECT_EQ(res->status, 201) << res->body;
    return res->json().value("jobId", "");
  }

  void setStatus(const std::string& id, store::JobStatus s) {
    store::JobUpdate u;
    u.status = s;
    u.events = {{"status", {{"status", store::jobStatusName(s)}}}};
    auto r = store_->updateJob(id, u);
    ASSERT_TRUE(r.isOk() && r->applied);
  }

  std::unique_ptr<testing::SseReader> openSse(const std::string& target,
                                              testing::Headers headers = {}) {
    headers["Authorization"] = std::string("Bearer ") + kToken;
    auto r = testing::SseReader::open("127.0.0.1", server_->port(), target, headers);
    EXPECT_TRUE(r.isOk()) << r.status().toString();
    return r.isOk() ? std::move(*r) : nullptr;
  }

  std::string dir_;
  std::unique_ptr<store::Store> store_;
  std::unique_ptr<secrets::SecretBox> box_ =
      secrets::SecretBox::fromKey(std::string(32, 'k')).value();
  std::unique_ptr<BlockingPool> pool_;
  events::EventBus bus_;
  FakeJobControl jobs_;
  FakeClock clock_;
  asio::io_context ioc_;
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work_;
  std::vector<std::thread> threads_;
  std::unique_ptr<ApiServer> server_;
  std::unique_ptr<testing::HttpClient> client_;
};

// Expects a JSON error body with `code` and a non-empty message.
inline void expectError(const Result<testing::HttpResponse>& res, int status,
                        const std::string& code) {
  ASSERT_TRUE(res.isOk()) << res.status().toString();
  EXPECT_EQ(res->status, status) << res->body;
  auto j = res->json();
  ASSERT_TRUE(j.is_object()) << res->body;
  EXPECT_EQ(j["error"]["code"], code) << res->body;
  EXPECT_FALSE(j["error"].value("message", "").empty()) << res->body;
  EXPECT_EQ(res->header("content-type"), "application/json");
}

}  // namespace kiln::api
