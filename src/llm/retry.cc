#include "llm/retry.h"

#include <time.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <nlohmann/json.hpp>

namespace kiln::llm {

using nlohmann::json;

std::string apiErrorMessage(const std::string& body) {
  json j = json::parse(body, nullptr, false);
  if (j.is_object()) {
    const json& err = j.contains("error") ? j["error"] : j;
    if (err.is_object() && err.contains("message") && err["message"].is_string())
      return err["message"].get<std::string>();
    if (err.is_string()) return err.get<std::string>();
  }
  return body.substr(0, 300);
}

namespace {

std::string errorType(const std::string& body) {
  json j = json::parse(body, nullptr, false);
  if (!j.is_object() || !j.contains("error") || !j["error"].is_object()) return "";
  const json& e = j["error"];
  for (const char* k : {"code", "type"})
    if (e.contains(k) && e[k].is_string()) return e[k].get<std::string>();
  return "";
}

}  // namespace

Status statusForResponse(const HttpResponse& resp) {
  long s = resp.status;
  if (s >= 200 && s < 300) return Status::ok();
  std::string msg = "HTTP " + std::to_string(s) + ": " + apiErrorMessage(resp.body);
  if (s == 401 || s == 403)
    return Status(Code::kUnauthenticated,
                  "the LLM API rejected the credentials (check the API key): " + msg);
  if (s == 429) return Status(Code::kResourceExhausted, msg);
  if (s == 408 || s == 409 || s >= 500) return Status(Code::kUnavailable, msg);
  return invalidArgument(msg);
}

bool isRetryable(const Status& st, const HttpResponse* resp) {
  // A 429 for an exhausted quota does not get better by waiting.
  if (resp && resp->status == 429 && errorType(resp->body) == "insufficient_quota") return false;
  return st.code() == Code::kResourceExhausted || st.code() == Code::kUnavailable ||
         st.code() == Code::kDeadlineExceeded;
}

std::optional<std::chrono::milliseconds> parseRetryAfter(const std::string& value) {
  if (value.empty()) return std::nullopt;
  char* end = nullptr;
  double secs = std::strtod(value.c_str(), &end);
  if (end != value.c_str() && *end == '\0') {
    if (!std::isfinite(secs) || secs < 0) return std::nullopt;
    return std::chrono::milliseconds(static_cast<int64_t>(secs * 1000));
  }
  struct tm tm = {};
  if (!strptime(value.c_str(), "%a, %d %b %Y %H:%M:%S GMT", &tm)) return std::nullopt;
  time_t at = timegm(&tm);
  time_t now = time(nullptr);
  return std::chrono::milliseconds(std::max<int64_t>(0, (at - now) * 1000));
}

std::chrono::milliseconds backoffDelay(const RetryPolicy& policy, int attempt,
                                       std::optional<std::chrono::milliseconds> retryAfter,
                                       double jitter01) {
  if (retryAfter) return *retryAfter;
  double cap =
      static_cast<double>(policy.baseDelay.count()) * std::pow(2.0, std::clamp(attempt - 1, 0, 30));
  cap = std::min(cap, static_cast<double>(policy.maxDelay.count()));
  // Half fixed, half random: spreads a crowd of clients without ever retrying at once.
  return std::chrono::milliseconds(static_cast<int64_t>(cap / 2 + cap / 2 * jitter01));
}

}  // namespace kiln::llm
