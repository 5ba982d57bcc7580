// StepWriter: hands the steps an agent CLI's output yields to CliHooks::recordStep one at a
// time and in order, without holding up the output stream: steps are queued and a single writer
// coroutine drains the queue. Used from the job's strand only.
#pragma once
#include <vector>

#include "agent/cli_agent.h"
#include "common/asio.h"

namespace kiln::agent {

class StepWriter {
 public:
  StepWriter(asio::any_io_executor ex, CliHooks& hooks) : ex_(ex), hooks_(hooks), idle_(ex) {}

  void push(CliStep s) {
    queue_.push_back(std::move(s));
    if (!writing_) {
      writing_ = true;
      asio::co_spawn(ex_, write(), asio::detached);
    }
  }

  // Returns once every queued step was handed to recordStep; the first failure, if any.
  Task<Status> drain() {
    while (writing_) {
      idle_.expires_at(asio::steady_timer::time_point::max());
      boost::system::error_code ec;
      co_await idle_.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    }
    co_return status_;
  }

 private:
  Task<void> write() {
    while (!queue_.empty()) {
      CliStep s = std::move(queue_.front());
      queue_.erase(queue_.begin());
      // After a failure (the lease is gone, the store is down) the rest are dropped: the job
      // ends on that failure anyway.
      if (!status_.isOk()) continue;
      Status st = co_await hooks_.recordStep(s);
      if (!st.isOk()) status_ = st;
    }
    writing_ = false;
    idle_.cancel();
  }

  asio::any_io_executor ex_;
  CliHooks& hooks_;
  std::vector<CliStep> queue_;
  bool writing_ = false;
  Status status_;
  asio::steady_timer idle_;
};

}  // namespace kiln::agent
