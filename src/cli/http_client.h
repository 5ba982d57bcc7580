// HttpClient: the CLI's small synchronous HTTP/1.1 client for the kiln API (plain http://, one
// connection per request), with bearer auth and a server-sent-events reader. Not thread-safe:
// one client per thread.
#pragma once
#include <chrono>
#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>

#include "common/result.h"
#include "common/sse.h"

namespace kiln::cli {

using nlohmann::json;

struct HttpUrl {
  std::string host;
  std::string port;
  std::string basePath;  // "" or "/prefix" without a trailing slash
};

// Accepts "http://host[:port][/prefix]". https is not supported by the CLI.
Result<HttpUrl> parseHttpUrl(const std::string& url);

struct HttpResponse {
  int status = 0;
  std::string contentType;
  std::string body;
};

// The API's error body {"error":{"code","message"}} as a Status (statusFromHttpError).
Status apiError(const HttpResponse& resp);

// Parses a 2xx JSON body, or turns anything else into apiError / a parse error.
Result<json> jsonBody(const HttpResponse& resp);

class HttpClient {
 public:
  HttpClient(std::string baseUrl, std::string token);

  const std::string& baseUrl() const { return baseUrl_; }
  const std::string& token() const { return token_; }

  // `target` is the path and query, e.g. "/api/v1/jobs?limit=5".
  Result<HttpResponse> get(const std::string& target,
                           std::chrono::milliseconds timeout = std::chrono::seconds(30));
  Result<HttpResponse> postJson(const std::string& target, const json& body,
                                std::chrono::milliseconds timeout = std::chrono::seconds(60));

  // PUT carries `body`; DELETE none.
  Result<HttpResponse> sendJson(const std::string& method, const std::string& target,
                                const json& body,
                                std::chrono::milliseconds timeout = std::chrono::seconds(60));

  // Reads the SSE stream at `target`, sending Last-Event-ID when `parser.lastEventId()` is set
  // (so passing the same parser again resumes). Calls `onEvent` for each event as it arrives;
  // returns ok when `onEvent` returns false or the server ends the stream, an error when the
  // connection fails or drops. `idleTimeout` > 0 ends the read (ok) after that long without data.
  Status streamEvents(const std::string& target, SseParser& parser,
                      const std::function<bool(const SseEvent&)>& onEvent,
                      std::chrono::milliseconds idleTimeout = std::chrono::milliseconds(0));

 private:
  Result<HttpResponse> request(const std::string& method, const std::string& target,
                               const std::string& body, std::chrono::milliseconds timeout);

  std::string baseUrl_;
  std::string token_;
};

}  // namespace kiln::cli
