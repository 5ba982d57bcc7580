// BlockingPool: a small bounded thread pool for calls that block (SQLite, fork/exec, waitpid,
// mount). Coroutines on the I/O threads `co_await pool.run(fn)` and resume on their own executor
// when fn returns, so an I/O thread never blocks. Thread-safe.
#pragma once
#include <optional>
#include <type_traits>

#include "common/asio.h"

namespace kiln {

class BlockingPool {
 public:
  explicit BlockingPool(size_t threads) : pool_(threads) {}
  ~BlockingPool() { stop(); }

  // Runs fn on a pool thread; the awaiting coroutine resumes on its own executor.
  // fn is taken by forwarding reference, never by value: g++ 12 destroys a temporary passed by
  // value to a coroutine twice (a lambda capturing a shared_ptr was released twice). The
  // caller's temporary lives until its co_await completes, so the reference stays valid.
  template <class F>
  auto run(F&& fn) -> Task<std::invoke_result_t<std::decay_t<F>&>> {
    using R = std::invoke_result_t<std::decay_t<F>&>;
    if constexpr (std::is_void_v<R>) {
      co_await asio::co_spawn(
          pool_.get_executor(), [fn = std::decay_t<F>(std::forward<F>(fn))]() mutable -> Task<void> {
            fn();
            co_return;
          },
          asio::use_awaitable);
    } else {
      // co_spawn needs a default-constructible value type; Result<T> is not.
      std::optional<R> out = co_await asio::co_spawn(
          pool_.get_executor(),
          [fn = std::decay_t<F>(std::forward<F>(fn))]() mutable -> Task<std::optional<R>> {
            co_return std::optional<R>(fn());
          },
          asio::use_awaitable);
      co_return std::move(*out);
    }
  }

  asio::thread_pool::executor_type executor() { return pool_.get_executor(); }
  void stop() {
    pool_.stop();
    pool_.join();
  }

 private:
  asio::thread_pool pool_;
};

}  // namespace kiln
