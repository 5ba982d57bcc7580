// Following a job's event stream (GET /api/v1/jobs/{id}/stream) and printing it, reconnecting
// with Last-Event-ID when the connection drops so nothing is lost or shown twice.
#pragma once
#include <chrono>
#include <functional>
#include <ostream>
#include <string>

#include "cli/http_client.h"
#include "cli/render.h"

namespace kiln::cli {

struct FollowOptions {
  bool untilDone = true;  // false: stop once the replay goes quiet (`kiln logs` without -f)
  std::chrono::milliseconds quietAfter{1500};
  int maxReconnects = 8;  // consecutive failures before giving up
};

struct FollowResult {
  bool sawDone = false;
  std::string finalStatus;  // from the done event, normalized; empty when not seen
  int64_t events = 0;
};

// Prints events to `out` as they arrive. Fails only when the server cannot be reached again or
// answers with an API error (unknown job, bad token).
Result<FollowResult> followJob(HttpClient& client, const std::string& jobId,
                               const RenderStyle& style, const FollowOptions& opts,
                               std::ostream& out);

}  // namespace kiln::cli
