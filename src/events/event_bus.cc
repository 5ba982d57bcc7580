#include "events/event_bus.h"

namespace kiln::events {

Task<void> Subscription::wait(std::chrono::milliseconds timeout) {
  if (pending_) {
    pending_ = false;
    co_return;
  }
  timer_.expires_after(timeout);
  boost::system::error_code ec;
  co_await timer_.async_wait(asio::redirect_error(asio::use_awaitable, ec));
  pending_ = false;
}

void Subscription::notify() {
  pending_ = true;
  timer_.cancel();
}

std::shared_ptr<Subscription> EventBus::subscribe(const std::string& jobId,
                                                  asio::any_io_executor ex) {
  auto sub = std::make_shared<Subscription>(ex);
  std::lock_guard lock(mu_);
  // Drop entries of subscriptions that are gone, so the map does not grow without bound.
  for (auto it = subs_.begin(); it != subs_.end();) {
    it = it->second.expired() ? subs_.erase(it) : std::next(it);
  }
  subs_.emplace(jobId, sub);
  return sub;
}

void EventBus::publish(const std::string& jobId) {
  std::lock_guard lock(mu_);
  auto [b, e] = subs_.equal_range(jobId);
  for (auto it = b; it != e; ++it) {
    if (auto sub = it->second.lock()) {
      asio::post(sub->timer_.get_executor(), [sub] { sub->notify(); });
    }
  }
}

void EventBus::publishAll() {
  std::lock_guard lock(mu_);
  for (auto& [id, weak] : subs_) {
    if (auto sub = weak.lock()) asio::post(sub->timer_.get_executor(), [sub] { sub->notify(); });
  }
}

}  // namespace kiln::events
