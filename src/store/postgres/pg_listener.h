// Listener: one dedicated connection that LISTENs to the store's channels and hands each
// NOTIFY to a handler as a StoreSignal, on its own thread. Reconnects with backoff when the
// connection drops and then sends kResync, since notifications sent meanwhile are lost.
#pragma once
#include <atomic>
#include <string>
#include <thread>

#include "store/store.h"

struct pg_conn;

namespace kiln::store::postgres {

class Listener {
 public:
  Listener(std::string url, SignalHandler handler);
  // Stops the thread; the handler is not called after it returns.
  ~Listener();
  Listener(const Listener&) = delete;

 private:
  void run();
  // Listens on one connection until it breaks or stop is asked. False when stopping.
  bool listen(::pg_conn* conn);
  // Waits up to ms, or until the destructor wakes it. False when stopping.
  bool pause(int64_t ms);

  const std::string url_;
  const SignalHandler handler_;
  int wakeFd_ = -1;  // eventfd: the destructor's wake-up
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace kiln::store::postgres
