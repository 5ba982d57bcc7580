// EventLog: what happened inside the sandbox that nobody asked about synchronously — commands
// started and ended (including git run for the contract's /git routes), and orphans (processes
// left behind by a command, re-parented to PID 1) reaped — served by GET /events?after=N.
// Keeps the newest 1000 events; sequence numbers start at 1 and never repeat. Thread-safe.
#pragma once
#include <cstdint>
#include <deque>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace kiln::runtime {

class EventLog {
 public:
  explicit EventLog(size_t capacity = 1000) : capacity_(capacity) {}
  // Appends {"seq", "type", "atMs", ...fields}.
  void append(const std::string& type, nlohmann::json fields);
  // Events with seq > after, oldest first, at most `limit`.
  std::vector<nlohmann::json> since(int64_t after, size_t limit) const;

 private:
  const size_t capacity_;
  mutable std::mutex mu_;
  std::deque<nlohmann::json> events_;  // GUARDED_BY(mu_)
  int64_t seq_ = 0;                    // GUARDED_BY(mu_)
};

}  // namespace kiln::runtime
