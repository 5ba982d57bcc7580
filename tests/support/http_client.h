// A small blocking HTTP/1.1 client for tests: real sockets, Beast underneath, every call bounded
// by a timeout (no test hangs on a broken server). HttpClient keeps one keep-alive connection
// and reconnects when the server closed it. SseReader follows a text/event-stream response.
// Not thread-safe; use one per test thread.
#pragma once
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "common/asio.h"
#include "common/result.h"

namespace kiln::testing {

using Headers = std::map<std::string, std::string>;

struct HttpResponse {
  int status = 0;
  Headers headers;  // keys lower-cased
  std::string body;

  std::string header(const std::string& name) const;
  // The body as JSON; discarded (is_discarded()) if it is not JSON.
  nlohmann::json json() const;
};

class HttpClient {
 public:
  HttpClient(std::string host, uint16_t port);
  ~HttpClient();

  // Sent with every request as "Authorization: Bearer <token>" unless empty.
  void setBearer(std::string token) { bearer_ = std::move(token); }
  void setTimeout(std::chrono::milliseconds t) { timeout_ = t; }

  Result<HttpResponse> request(http::verb method, const std::string& target,
                               const std::string& body = "", const Headers& headers = {});
  Result<HttpResponse> get(const std::string& target, const Headers& headers = {}) {
    return request(http::verb::get, target, "", headers);
  }
  // Sends `body` as application/json.
  Result<HttpResponse> post(const std::string& target, const std::string& body = "",
                            const Headers& headers = {}) {
    return request(http::verb::post, target, body, headers);
  }
  Result<HttpResponse> postJson(const std::string& target, const nlohmann::json& body,
                                const Headers& headers = {}) {
    return request(http::verb::post, target, body.dump(), headers);
  }

  // Writes raw bytes on a fresh connection and returns everything the server sends until it
  // closes the connection or the timeout passes.
  Result<std::string> rawExchange(const std::string& bytes);

 private:
  Result<HttpResponse> attempt(http::request<http::string_body>& req);
  Status connect();

  std::string host_;
  uint16_t port_;
  std::string bearer_;
  std::chrono::milliseconds timeout_{10'000};
  asio::io_context ioc_;
  std::unique_ptr<beast::tcp_stream> stream_;
  beast::flat_buffer buffer_;
};

struct SseEvent {
  std::string id;
  std::string type = "message";
  std::string data;
  nlohmann::json json() const;
};

class SseReader {
 public:
  // Opens GET `target` and reads the response head. The status and headers are available even
  // when the server did not answer with an event stream (then the body is in errorBody()).
  static Result<std::unique_ptr<SseReader>> open(
      const std::string& host, uint16_t port, const std::string& target,
      const Headers& headers = {}, std::chrono::milliseconds timeout = std::chrono::seconds(10));
  ~SseReader();

  int status() const { return status_; }
  const Headers& headers() const { return headers_; }
  std::string errorBody();

  // The next event, or nullopt when the stream ended or `timeout` passed first (see closed()).
  std::optional<SseEvent> next(std::chrono::milliseconds timeout);
  // Events until one of `type` (included), the end of the stream, or the timeout.
  std::vector<SseEvent> readUntil(const std::string& type, std::chrono::milliseconds timeout);
  bool closed() const { return closed_; }
  // Comment lines seen so far (": keepalive").
  int comments() const { return comments_; }

 private:
  SseReader() = default;
  bool readMore(std::chrono::steady_clock::time_point deadline);
  std::optional<SseEvent> parseOne();

  asio::io_context ioc_;
  std::unique_ptr<beast::tcp_stream> stream_;
  int status_ = 0;
  Headers headers_;
  std::string pending_;  // bytes read but not yet parsed
  bool closed_ = false;
  int comments_ = 0;
};

}  // namespace kiln::testing
