// The API's limits over real sockets (docs/api.md, "Limits"): oversized heads and bodies, deep
// JSON, clients that trickle bytes, too many connections or event streams, local repository
// paths, and /metrics behind a token or on its own address — each refused with its JSON error
// while other clients keep being served.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <thread>

#include "api/api_fixture.h"

namespace kiln::api {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;
using SteadyClock = std::chrono::steady_clock;

// A plain blocking TCP connection to the server, for clients that misbehave on purpose.
class RawConnection {
 public:
  explicit RawConnection(uint16_t port) {
    fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd_ >= 0 && connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
      ::close(fd_);
      fd_ = -1;
    }
  }
  ~RawConnection() {
    if (fd_ >= 0) ::close(fd_);
  }
  RawConnection(const RawConnection&) = delete;
  RawConnection& operator=(const RawConnection&) = delete;

  bool connected() const { return fd_ >= 0; }
  bool send(const std::string& bytes) {
    return fd_ >= 0 && ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL) ==
                           static_cast<ssize_t>(bytes.size());
  }
  // Waits up to `timeout` for bytes; appends them to received(). False once the server closed
  // the connection (or reset it).
  bool poll(std::chrono::milliseconds timeout) {
    if (fd_ < 0) return false;
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(timeout.count())) <= 0) return true;
    char buf[4096];
    ssize_t n = recv(fd_, buf, sizeof buf, 0);
    if (n <= 0) return false;
    received_.append(buf, static_cast<size_t>(n));
    return true;
  }
  // Everything until the server closes the connection, or the deadline.
  std::string readAll(std::chrono::milliseconds timeout) {
    auto deadline = SteadyClock::now() + timeout;
    while (SteadyClock::now() < deadline && poll(100ms)) {
    }
    return received_;
  }
  const std::string& received() const { return received_; }

 private:
  int fd_ = -1;
  std::string received_;
};

// The JSON error of a raw HTTP answer, or a discarded value.
json errorOf(const std::string& raw) {
  auto at = raw.find("\r\n\r\n");
  if (at == std::string::npos) return json(json::value_t::discarded);
  return json::parse(raw.substr(at + 4), nullptr, false);
}

std::string deepArray(int depth) { return std::string(depth, '[') + std::string(depth, ']'); }

class ApiLimitsTest : public ApiFixture {
 protected:
  ApiOptions options() override {
    ApiOptions o = ApiFixture::options();
    o.requestTimeout = 1s;
    o.maxStreamsPerToken = 2;
    return o;
  }
};

TEST_F(ApiLimitsTest, HeadersOverTheLimitAre431) {
  RawConnection c(server_->port());
  ASSERT_TRUE(c.connected());
  ASSERT_TRUE(c.send("GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + std::string(20'000, 'a') +
                     "\r\n\r\n"));
  std::string raw = c.readAll(10s);
  EXPECT_EQ(raw.rfind("HTTP/1.1 431 ", 0), 0u) << raw;
  EXPECT_EQ(errorOf(raw)["error"]["code"], "headers_too_large") << raw;
  // A head just under the limit is served.
  auto ok = client_->get("/healthz", {{"X-Big", std::string(15'000, 'a')}});
  ASSERT_TRUE(ok.isOk()) << ok.status().toString();
  EXPECT_EQ(ok->status, 200);
}

TEST_F(ApiLimitsTest, DeepJsonIs400AndBracketsInStringsDoNotCount) {
  expectError(client_->post("/api/v1/jobs", deepArray(65)), 400, "json_too_deep");
  expectError(client_->post("/api/v1/jobs/" + newUuid() + "/reply",
                            R"({"message":)" + deepArray(100'000) + "}"),
              400, "json_too_deep");
  // 64 levels are parsed and reach the validator, which names the unknown field.
  json body = {{"repoUrl", "https://e.com/r"}, {"taskDesc", "x"}};
  std::string text = body.dump();
  text.insert(text.size() - 1, R"(,"deep":)" + deepArray(63));
  expectError(client_->post("/api/v1/jobs", text), 400, "invalid_argument");
  // Brackets inside strings are text.
  auto res = client_->postJson("/api/v1/jobs",
                               {{"repoUrl", "https://e.com/r"}, {"taskDesc", deepArray(1000)}});
  ASSERT_TRUE(res.isOk());
  EXPECT_EQ(res->status, 201) << res->body;
}

// The acceptance test of the limits: while clients send oversized heads and bodies, deep JSON,
// and trickle heads and bodies byte by byte, another client's requests all succeed, and every
// trickling client is cut off.
TEST_F(ApiLimitsTest, OversizedDeepAndSlowRequestsAreRefusedWhileAnotherClientIsServed) {
  constexpr int kSlowClients = 6;
  std::atomic<int> cutOff{0};
  std::atomic<int> answeredSlow{0};
  std::vector<std::thread> slow;
  for (int i = 0; i < kSlowClients; ++i) {
    slow.emplace_back([&, i] {
      RawConnection c(server_->port());
      // Half trickle their head, half a body they announced.
      std::string start = i % 2 == 0 ? "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: "
                                     : "POST /api/v1/jobs HTTP/1.1\r\nHost: x\r\nAuthorization: "
                                       "Bearer token-tenant-a\r\nContent-Length: 100000\r\n\r\n";
      if (!c.send(start)) return;
      auto deadline = SteadyClock::now() + 20s;
      while (SteadyClock::now() < deadline) {
        if (!c.send("a") || !c.poll(50ms)) {
          cutOff++;
          break;
        }
      }
      if (!c.received().empty()) answeredSlow++;
    });
  }

  testing::HttpClient abuser("127.0.0.1", server_->port());
  abuser.setBearer(kToken);
  int successes = 0;
  int failures = 0;
  int rounds = 0;
  auto deadline = SteadyClock::now() + 30s;
  while ((cutOff < kSlowClients || successes < 20) && SteadyClock::now() < deadline) {
    auto res = client_->get("/api/v1/jobs");
    (res.isOk() && res->status == 200 ? successes : failures)++;
    if (rounds++ % 5 == 0) {
      expectError(abuser.post("/api/v1/jobs", std::string((1 << 20) + 1, 'x')), 413,
                  "payload_too_large");
      expectError(abuser.get("/healthz", {{"X-Big", std::string(20'000, 'a')}}), 431,
                  "headers_too_large");
      expectError(abuser.post("/api/v1/jobs", deepArray(1000)), 400, "json_too_deep");
    }
  }
  for (auto& t : slow) t.join();
  EXPECT_EQ(cutOff, kSlowClients) << "trickling clients were not cut off";
  EXPECT_EQ(answeredSlow, 0) << "a trickled request was answered";
  EXPECT_EQ(failures, 0) << successes << " requests of the other client succeeded";
  EXPECT_GE(successes, 20);
}

TEST_F(ApiLimitsTest, StreamsPerTokenAreCappedWith429) {
  std::string id = createJob();
  auto a = openSse("/api/v1/jobs/" + id + "/stream");
  auto b = openSse("/api/v1/jobs/" + id + "/stream");
  ASSERT_TRUE(a && b);
  ASSERT_EQ(a->status(), 200);
  ASSERT_EQ(b->status(), 200);
  auto third = openSse("/api/v1/jobs/" + id + "/stream");
  ASSERT_TRUE(third);
  EXPECT_EQ(third->status(), 429);
  EXPECT_EQ(third->headers().count("retry-after"), 1u);
  auto err = json::parse(third->errorBody(), nullptr, false);
  EXPECT_EQ(err["error"]["code"], "too_many_streams") << third->errorBody();

  // Another token has its own streams.
  testing::HttpClient other("127.0.0.1", server_->port());
  other.setBearer(kOtherToken);
  auto created =
      other.postJson("/api/v1/jobs", {{"repoUrl", "https://e.com/r"}, {"taskDesc", "x"}});
  ASSERT_TRUE(created.isOk());
  std::string otherId = created->json().value("jobId", "");
  auto mine =
      testing::SseReader::open("127.0.0.1", server_->port(), "/api/v1/jobs/" + otherId + "/stream",
                               {{"Authorization", std::string("Bearer ") + kOtherToken}});
  ASSERT_TRUE(mine.isOk());
  EXPECT_EQ((*mine)->status(), 200);

  // Once the job is done its streams end and give their slots back.
  store::JobUpdate u;
  u.status = store::JobStatus::kStopped;
  u.events = {{"done", {{"status", "STOPPED"}}}};
  ASSERT_TRUE(store_->updateJob(id, u).isOk());
  bus_.publish(id);
  for (auto* s : {a.get(), b.get()}) {
    auto events = s->readUntil("done", 10s);
    ASSERT_FALSE(events.empty());
    EXPECT_EQ(events.back().type, "done");
  }
  int status = 0;
  for (auto until = SteadyClock::now() + 10s; SteadyClock::now() < until && status != 200;) {
    auto again = openSse("/api/v1/jobs/" + id + "/stream");
    ASSERT_TRUE(again);
    status = again->status();
  }
  EXPECT_EQ(status, 200) << "the ended streams kept their slots";
}

class ApiConnectionCapTest : public ApiFixture {
 protected:
  ApiOptions options() override {
    ApiOptions o = ApiFixture::options();
    o.maxConnections = 3;
    return o;
  }
};

TEST_F(ApiConnectionCapTest, ConnectionsOverTheCapAre503UntilOneCloses) {
  // Three served keep-alive connections: client_ and two more.
  auto second = std::make_unique<testing::HttpClient>("127.0.0.1", server_->port());
  testing::HttpClient third("127.0.0.1", server_->port());
  for (auto* c : {client_.get(), second.get(), &third}) {
    auto res = c->get("/healthz");
    ASSERT_TRUE(res.isOk()) << res.status().toString();
    ASSERT_EQ(res->status, 200);
  }

  RawConnection over(server_->port());
  std::string raw = over.readAll(10s);
  EXPECT_EQ(raw.rfind("HTTP/1.1 503 ", 0), 0u) << raw;
  EXPECT_EQ(errorOf(raw)["error"]["code"], "too_many_connections") << raw;
  // The open ones are still served.
  auto still = client_->get("/healthz");
  ASSERT_TRUE(still.isOk()) << still.status().toString();
  EXPECT_EQ(still->status, 200);

  second.reset();
  int status = 0;
  for (auto until = SteadyClock::now() + 10s; SteadyClock::now() < until && status != 200;) {
    testing::HttpClient fresh("127.0.0.1", server_->port());
    auto res = fresh.get("/healthz", {{"Connection", "close"}});
    status = res.isOk() ? res->status : 0;
  }
  EXPECT_EQ(status, 200) << "a closed connection did not free its place";
}

class ApiLocalRepoTest : public ApiFixture {
 protected:
  ApiOptions options() override {
    namespace fs = std::filesystem;
    for (auto d : {"allowed/repo", "allowed/data/repos/cached", "elsewhere/repo"}) {
      fs::create_directories(dir_ + "/" + d);
    }
    fs::create_directory_symlink(dir_ + "/elsewhere/repo", dir_ + "/allowed/link");
    ApiOptions o = ApiFixture::options();
    o.allowLocalRepos = {dir_ + "/allowed"};
    o.dataDir = dir_ + "/allowed/data";
    return o;
  }

  Result<testing::HttpResponse> create(const std::string& repoUrl) {
    return client_->postJson("/api/v1/jobs", {{"repoUrl", repoUrl}, {"taskDesc", "x"}});
  }
};

TEST_F(ApiLocalRepoTest, LocalPathsOnlyUnderAllowedDirsAndNeverInTheDataDir) {
  auto ok = create(dir_ + "/allowed/repo");
  ASSERT_TRUE(ok.isOk());
  ASSERT_EQ(ok->status, 201) << ok->body;
  auto job = store_->getJob(ok->json()["jobId"].get<std::string>());
  ASSERT_TRUE(job.isOk());
  EXPECT_EQ(job->repoUrl, std::filesystem::canonical(dir_ + "/allowed/repo").string());
  for (const std::string& accepted :
       {"file://" + dir_ + "/allowed/repo", std::string("https://example.com/r.git")}) {
    auto res = create(accepted);
    ASSERT_TRUE(res.isOk());
    EXPECT_EQ(res->status, 201) << accepted << ": " << res->body;
  }

  for (const std::string& refused : {dir_ + "/elsewhere/repo", "file://" + dir_ + "/elsewhere/repo",
                                     dir_ + "/allowed/../elsewhere/repo", dir_ + "/allowed/link",
                                     dir_ + "/allowed/data/repos/cached",
                                     "file://" + dir_ + "/allowed/data", std::string("/")}) {
    SCOPED_TRACE(refused);
    auto res = create(refused);
    expectError(res, 403, "local_repo_forbidden");
    if (res.isOk()) {
      EXPECT_EQ(res->json()["error"].value("message", "").rfind("repoUrl: ", 0), 0u);
    }
  }
}

class ApiDefaultsTest : public ApiFixture {};

TEST_F(ApiDefaultsTest, WithoutAllowLocalReposNoLocalPathIsAccepted) {
  expectError(client_->postJson("/api/v1/jobs", {{"repoUrl", dir_}, {"taskDesc", "x"}}), 403,
              "local_repo_forbidden");
  expectError(client_->postJson("/api/v1/tasks", {{"prompt", "x"}, {"repoUrl", "file://" + dir_}}),
              403, "local_repo_forbidden");
}

class ApiMetricsListenTest : public ApiFixture {
 protected:
  ApiOptions options() override {
    ApiOptions o = ApiFixture::options();
    o.metricsListen = "127.0.0.1:0";
    return o;
  }
};

TEST_F(ApiMetricsListenTest, MetricsAreOpenOnTheirOwnAddressOnly) {
  ASSERT_NE(server_->metricsPort(), 0);
  ASSERT_NE(server_->metricsPort(), server_->port());
  testing::HttpClient metrics("127.0.0.1", server_->metricsPort());
  auto res = metrics.get("/metrics");
  ASSERT_TRUE(res.isOk());
  EXPECT_EQ(res->status, 200);
  EXPECT_NE(res->body.find("kiln_jobs{status=\"QUEUED\"} 0\n"), std::string::npos) << res->body;
  auto health = metrics.get("/healthz");
  ASSERT_TRUE(health.isOk());
  EXPECT_EQ(health->status, 200);
  // Only metrics there: the API answers on its own port.
  metrics.setBearer(kToken);
  expectError(metrics.get("/api/v1/jobs"), 404, "not_found");
  client_->setBearer("");
  expectError(client_->get("/metrics"), 401, "unauthenticated");
}

}  // namespace
}  // namespace kiln::api
