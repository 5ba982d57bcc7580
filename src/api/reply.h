// Reply: what a route handler answers, before it is put on the wire. Either a complete response
// (status, content type, body) or a hand-off of the connection to an SSE stream. Errors use the
// stable JSON shape {"error":{"code","message"}} from docs/api.md. Plain values; not shared.
#pragma once
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "common/result.h"

namespace kiln::api {

using nlohmann::json;

// An SSE stream the session should run after the handler returns.
struct SseRequest {
  std::string jobId;
  int64_t afterSeq = 0;
  std::string streamKey;  // open streams are capped per key (the bearer token's hash)
};

struct Reply {
  int status = 200;
  std::string contentType = "application/json";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;
  std::optional<SseRequest> sse;
};

// An API error: HTTP status plus a stable code string. Most codes come from kiln::Code via
// codeName(); a few are more precise than any Code (invalid_json, repo_unreachable, ...).
struct ApiError {
  int status = 500;
  std::string code = "internal";
  std::string message;

  static ApiError fromStatus(const Status& s);
  static ApiError invalidJson(std::string m) { return {400, "invalid_json", std::move(m)}; }
  static ApiError invalidArgument(std::string m) { return {400, "invalid_argument", std::move(m)}; }
  static ApiError notFound(std::string m) { return {404, "not_found", std::move(m)}; }
  static ApiError conflict(std::string m) { return {409, "conflict", std::move(m)}; }
  static ApiError unauthenticated(std::string m) { return {401, "unauthenticated", std::move(m)}; }
  static ApiError internal(std::string m) { return {500, "internal", std::move(m)}; }
};

// Serialises JSON without throwing: invalid UTF-8 (tool output can hold anything) is replaced.
std::string dumpJson(const json& j);

Reply jsonReply(int status, const json& body);
Reply errorReply(const ApiError& e);
Reply errorReply(const Status& s);

}  // namespace kiln::api
