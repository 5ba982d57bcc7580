#include "runtime/event_log.h"

#include <chrono>

namespace kiln::runtime {

void EventLog::append(const std::string& type, nlohmann::json fields) {
  if (!fields.is_object()) fields = nlohmann::json::object();
  fields["type"] = type;
  fields["atMs"] = std::chrono::duration_cast<std::chrono::milliseconds>(
                       std::chrono::system_clock::now().time_since_epoch())
                       .count();
  std::lock_guard lock(mu_);
  fields["seq"] = ++seq_;
  events_.push_back(std::move(fields));
  while (events_.size() > capacity_) events_.pop_front();
}

std::vector<nlohmann::json> EventLog::since(int64_t after, size_t limit) const {
  std::vector<nlohmann::json> out;
  std::lock_guard lock(mu_);
  for (const auto& e : events_) {
    if (out.size() >= limit) break;
    if (e.value("seq", int64_t{0}) > after) out.push_back(e);
  }
  return out;
}

}  // namespace kiln::runtime
