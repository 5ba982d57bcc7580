// followJob against a scripted in-process HTTP server: reconnect with Last-Event-ID, API errors.
#include <gtest/gtest.h>

#include <sstream>
#include <thread>
#include <vector>

#include "cli/follow.h"
#include "common/asio.h"

namespace kiln::cli {
namespace {

using tcp = asio::ip::tcp;

// Serves one scripted raw response per connection, in order, and records each request head.
class ScriptedServer {
 public:
  explicit ScriptedServer(std::vector<std::string> responses)
      : acceptor_(ioc_, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0)),
        responses_(std::move(responses)) {
    thread_ = std::thread([this] { serve(); });
  }
  ~ScriptedServer() { thread_.join(); }

  std::string url() const {
    return "http://127.0.0.1:" + std::to_string(acceptor_.local_endpoint().port());
  }
  // Only read after the client is done (the server thread has finished its script).
  const std::vector<std::string>& requests() const { return requests_; }

 private:
  void serve() {
    for (const auto& response : responses_) {
      tcp::socket socket(ioc_);
      beast::error_code ec;
      acceptor_.accept(socket, ec);
      if (ec) return;
      std::string head;
      asio::read_until(socket, asio::dynamic_buffer(head), "\r\n\r\n", ec);
      requests_.push_back(head);
      asio::write(socket, asio::buffer(response), ec);
      socket.shutdown(tcp::socket::shutdown_both, ec);
    }
  }

  asio::io_context ioc_;
  tcp::acceptor acceptor_;
  std::vector<std::string> responses_;
  std::vector<std::string> requests_;
  std::thread thread_;
};

std::string sseResponse(const std::string& events) {
  return "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n" + events;
}

TEST(CliFollowTest, ResumesWithLastEventIdAfterDroppedConnection) {
  std::string out;
  std::vector<std::string> requests;
  {
    ScriptedServer server({
        sseResponse("id: 1\nevent: status\ndata: {\"status\":\"RUNNING\"}\n\n"
                    "id: 2\nevent: step\ndata: {\"stepNumber\":1,\"toolCalled\":\"bash\"}\n\n"),
        sseResponse("id: 3\nevent: done\ndata: {\"status\":\"COMPLETED\"}\n\n"),
    });
    HttpClient client(server.url(), "tok");
    std::ostringstream os;
    auto res = followJob(client, "j1", RenderStyle{}, FollowOptions{}, os);
    ASSERT_TRUE(res.isOk()) << res.status().toString();
    EXPECT_TRUE(res->sawDone);
    EXPECT_EQ(res->finalStatus, "COMPLETED");
    EXPECT_EQ(res->events, 3);
    out = os.str();
    requests = server.requests();
  }
  EXPECT_EQ(out, "● RUNNING\n[step 1] bash\ndone: COMPLETED\n");
  ASSERT_EQ(requests.size(), 2u);
  EXPECT_EQ(requests[0].rfind("GET /api/v1/jobs/j1/stream HTTP/1.1\r\n", 0), 0u) << requests[0];
  EXPECT_NE(requests[0].find("Authorization: Bearer tok\r\n"), std::string::npos);
  EXPECT_EQ(requests[0].find("Last-Event-ID"), std::string::npos);
  EXPECT_NE(requests[1].find("Last-Event-ID: 2\r\n"), std::string::npos) << requests[1];
}

TEST(CliFollowTest, UnknownJobIsAnApiErrorWithoutRetry) {
  std::string body = R"({"error":{"code":"not_found","message":"no job j9"}})";
  ScriptedServer server(
      {"HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\n"
       "Content-Length: " +
       std::to_string(body.size()) + "\r\n\r\n" + body});
  HttpClient client(server.url(), "tok");
  std::ostringstream os;
  auto res = followJob(client, "j9", RenderStyle{}, FollowOptions{}, os);
  ASSERT_FALSE(res.isOk());
  EXPECT_EQ(res.status().code(), Code::kNotFound);
  EXPECT_EQ(res.status().message(), "not_found: no job j9");
}

TEST(CliFollowTest, GivesUpWithClearErrorWhenServerIsGone) {
  HttpClient client("http://127.0.0.1:1", "");
  std::ostringstream os;
  FollowOptions opts;
  opts.maxReconnects = 1;
  auto res = followJob(client, "j", RenderStyle{}, opts, os);
  ASSERT_FALSE(res.isOk());
  EXPECT_EQ(res.status().code(), Code::kUnavailable);
  EXPECT_EQ(res.status().message().rfind("cannot reach kiln server at http://127.0.0.1:1", 0), 0u)
      << res.status().message();
}

TEST(CliHttpClientTest, ParsesServerUrls) {
  auto u = parseHttpUrl("http://example.com:8080/base/");
  ASSERT_TRUE(u.isOk());
  EXPECT_EQ(u->host, "example.com");
  EXPECT_EQ(u->port, "8080");
  EXPECT_EQ(u->basePath, "/base");
  auto d = parseHttpUrl("http://[::1]:9");
  ASSERT_TRUE(d.isOk());
  EXPECT_EQ(d->host, "::1");
  EXPECT_EQ(parseHttpUrl("http://h")->port, "80");
  EXPECT_FALSE(parseHttpUrl("https://h").isOk());
  EXPECT_FALSE(parseHttpUrl("h:1").isOk());
  // One URL parser for all of kiln: user info is not part of the host, the scheme has no case.
  EXPECT_EQ(parseHttpUrl("http://user@h:81")->host, "h");
  EXPECT_EQ(parseHttpUrl("HTTP://h:81")->port, "81");
}

TEST(CliHttpClientTest, ApiErrorFallsBackToStatusLine) {
  EXPECT_EQ(apiError({500, "text/plain", "oops"}).message(), "HTTP 500: oops");
  EXPECT_EQ(apiError({409, "", R"({"error":{"code":"conflict","message":"m"}})"}).code(),
            Code::kConflict);
  // Rate limits and timeouts keep their codes (the CLI once read both as internal).
  EXPECT_EQ(apiError({429, "", ""}).code(), Code::kResourceExhausted);
  EXPECT_EQ(apiError({504, "", ""}).code(), Code::kDeadlineExceeded);
}

}  // namespace
}  // namespace kiln::cli
