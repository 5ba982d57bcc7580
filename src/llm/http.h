// HttpClient: async HTTP POST for LLM APIs on libcurl's multi interface, driven by an Asio
// executor (socket readiness through posix::stream_descriptor, curl's timer through a
// steady_timer); no thread per request. One client owns one multi handle and keeps connections
// alive between calls. Not thread-safe: construct it on, and call it only from, one strand (the
// job's); every curl call and every completion handler runs there.
#pragma once
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/asio.h"
#include "common/result.h"

namespace kiln::llm {

struct HttpRequest {
  std::string method = "POST";  // or "GET" (no body), or any other verb (with the body)
  std::string url;
  std::vector<std::string> headers;  // "Name: value"
  std::string body;
  std::chrono::milliseconds timeout{std::chrono::minutes(10)};  // the whole exchange
  std::chrono::milliseconds connectTimeout{std::chrono::seconds(15)};
  // A stream that delivers nothing for this long is dead (curl's low-speed limit).
  std::chrono::seconds stallTimeout{120};
};

struct HttpResponse {
  long status = 0;
  std::map<std::string, std::string> headers;  // names lower-cased; the last value wins
  std::string body;  // the whole body, except for 2xx bodies that went to onChunk

  std::string header(const std::string& lowerName) const {
    auto it = headers.find(lowerName);
    return it == headers.end() ? "" : it->second;
  }
};

// Receives body bytes as they arrive, for 2xx responses only (error bodies stay in `body`).
using ChunkFn = std::function<void(std::string_view)>;
// Called once with the status and headers of a 2xx response, before its first body chunk.
using HeadFn = std::function<void(const HttpResponse& head)>;

class HttpClient {
 public:
  explicit HttpClient(asio::any_io_executor ex);
  ~HttpClient();
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  // Sends `req` (a POST unless req.method says otherwise). A response with any status is a
  // value; transport failures are statuses: kDeadlineExceeded (timeout, stall) or kUnavailable
  // (DNS, connect, reset, TLS).
  Task<Result<HttpResponse>> post(const HttpRequest& req, ChunkFn onChunk = {}, HeadFn onHead = {});

  class Multi;  // the multi handle and its Asio plumbing (http.cc)

 private:
  std::shared_ptr<Multi> multi_;
};

}  // namespace kiln::llm
