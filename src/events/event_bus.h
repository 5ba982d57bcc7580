// EventBus: in-process wake-ups for job events. The store is the source of truth (events are
// appended there first, with their seq); the bus only tells waiting readers (SSE streams, the
// CLI's follower) that a job has new events so they re-read from the store; a reader sleeps
// until then. Readers re-read at a slow interval only for events written by another process
// sharing the store.
// Thread-safe.
#pragma once
#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "common/asio.h"

namespace kiln::events {

// One reader's wake-up channel. Create with EventBus::subscribe; use only from the executor it
// was created with (a strand).
class Subscription {
 public:
  Subscription(asio::any_io_executor ex) : timer_(ex) {}
  // Returns when an event was published for the job since the last wait, or after `timeout`.
  Task<void> wait(std::chrono::milliseconds timeout);

 private:
  friend class EventBus;
  void notify();  // runs on the subscription's executor
  asio::steady_timer timer_;
  bool pending_ = false;
};

class EventBus {
 public:
  // The subscription is removed when the returned pointer is dropped.
  std::shared_ptr<Subscription> subscribe(const std::string& jobId, asio::any_io_executor ex);
  void publish(const std::string& jobId);
  // Wakes every subscriber (shutdown).
  void publishAll();

 private:
  std::mutex mu_;
  std::multimap<std::string, std::weak_ptr<Subscription>> subs_;  // GUARDED_BY(mu_)
};

}  // namespace kiln::events
