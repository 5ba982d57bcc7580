// Retry policy for LLM API calls: which failures are worth another try, and how long to wait
// (exponential backoff with jitter, honouring Retry-After). Pure functions; thread-safe.
#pragma once
#include <chrono>
#include <optional>
#include <string>

#include "common/result.h"
#include "llm/http.h"

namespace kiln::llm {

struct RetryPolicy {
  int maxAttempts = 5;  // tries in total, the first included
  std::chrono::milliseconds baseDelay{1000};
  std::chrono::milliseconds maxDelay{30000};
  // A Retry-After longer than this is not waited for: the call fails instead.
  std::chrono::milliseconds maxRetryAfter{std::chrono::minutes(2)};
};

// The status for a finished exchange: ok for 2xx; kUnauthenticated for 401/403 (no retry);
// kResourceExhausted for 429; kUnavailable for 408/409/5xx; kInvalidArgument for other 4xx.
// The message carries the API's own error message when the body has one.
Status statusForResponse(const HttpResponse& resp);

// Whether a failed attempt may succeed when repeated.
bool isRetryable(const Status& st, const HttpResponse* resp);

// Retry-After as a delay: delta-seconds (fractions allowed) or an HTTP date; nullopt if absent
// or unparseable.
std::optional<std::chrono::milliseconds> parseRetryAfter(const std::string& value);

// The wait before attempt `attempt + 1` (attempt counts from 1). `jitter01` in [0, 1).
std::chrono::milliseconds backoffDelay(const RetryPolicy& policy, int attempt,
                                       std::optional<std::chrono::milliseconds> retryAfter,
                                       double jitter01);

// The error message in an OpenAI or Anthropic error body ({"error": {"message": …}}), or the
// start of the raw body.
std::string apiErrorMessage(const std::string& body);

}  // namespace kiln::llm
