// SignalWatcher: turns SIGINT/SIGTERM into a callback on a dedicated thread (sigwait), so the
// handler may take locks and make HTTP calls. Construct it before starting other threads: it
// blocks the signals in the calling thread and every thread created afterwards inherits that.
// The destructor stops the thread and restores the previous signal mask.
#pragma once
#include <signal.h>

#include <atomic>
#include <functional>
#include <thread>

namespace kiln::cli {

class SignalWatcher {
 public:
  // `onSignal(signo, count)`: count is 1 for the first signal, 2 for the second, ...
  explicit SignalWatcher(std::function<void(int, int)> onSignal);
  ~SignalWatcher();
  SignalWatcher(const SignalWatcher&) = delete;
  SignalWatcher& operator=(const SignalWatcher&) = delete;

 private:
  void loop();

  std::function<void(int, int)> onSignal_;
  sigset_t set_;
  sigset_t previous_;
  std::atomic<bool> stopping_{false};
  std::thread thread_;
};

}  // namespace kiln::cli
