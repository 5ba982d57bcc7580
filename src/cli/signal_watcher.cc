#include "cli/signal_watcher.h"

#include <pthread.h>

namespace kiln::cli {

SignalWatcher::SignalWatcher(std::function<void(int, int)> onSignal)
    : onSignal_(std::move(onSignal)) {
  sigemptyset(&set_);
  sigaddset(&set_, SIGINT);
  sigaddset(&set_, SIGTERM);
  // SIGUSR1 only wakes the thread for shutdown.
  sigaddset(&set_, SIGUSR1);
  pthread_sigmask(SIG_BLOCK, &set_, &previous_);
  thread_ = std::thread([this] { loop(); });
}

SignalWatcher::~SignalWatcher() {
  stopping_ = true;
  pthread_kill(thread_.native_handle(), SIGUSR1);
  thread_.join();
  pthread_sigmask(SIG_SETMASK, &previous_, nullptr);
}

void SignalWatcher::loop() {
  int count = 0;
  while (true) {
    int signo = 0;
    if (sigwait(&set_, &signo) != 0) continue;
    if (stopping_) return;
    if (signo == SIGUSR1) continue;
    onSignal_(signo, ++count);
  }
}

}  // namespace kiln::cli
