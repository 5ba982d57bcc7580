#include "cli/follow.h"

#include <thread>

namespace kiln::cli {

Result<FollowResult> followJob(HttpClient& client, const std::string& jobId,
                               const RenderStyle& style, const FollowOptions& opts,
                               std::ostream& out) {
  FollowResult result;
  SseParser parser;  // shared across reconnects: it remembers Last-Event-ID
  int failures = 0;
  const std::string target = "/api/v1/jobs/" + jobId + "/stream";
  auto onEvent = [&](const SseEvent& ev) {
    failures = 0;
    ++result.events;
    auto payload = json::parse(ev.data, nullptr, false);
    if (payload.is_discarded()) payload = json{{"data", ev.data}};
    out << renderEvent(ev.event, payload, style) << std::flush;
    if (ev.event == "done") {
      result.sawDone = true;
      result.finalStatus = normalizeStatus(payload.value("status", ""));
      return false;
    }
    return true;
  };
  while (true) {
    auto idle = opts.untilDone ? std::chrono::milliseconds(0) : opts.quietAfter;
    Status st = client.streamEvents(target, parser, onEvent, idle);
    if (result.sawDone) return result;
    if (st.isOk() && !opts.untilDone) return result;  // went quiet: caught up
    if (!st.isOk() && st.code() != Code::kUnavailable) return st;
    if (++failures > opts.maxReconnects) {
      return st.isOk() ? Status(Code::kUnavailable, "event stream ended before the job finished")
                       : st;
    }
    // Dropped (or closed before done): back off, then resume after the last id seen.
    std::this_thread::sleep_for(std::chrono::milliseconds(100 << std::min(failures, 5)));
  }
}

}  // namespace kiln::cli
