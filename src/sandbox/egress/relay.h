// Relay: copies bytes both ways between two connected stream sockets (a CONNECT tunnel, the
// runtime's TCP-to-unix forwarding) until both directions end, then closes both. All of a
// relay's handlers run on the executor of its sockets, which must be one strand (or a
// single-threaded io_context). Nothing here throws.
#pragma once
#include <array>
#include <chrono>
#include <memory>
#include <string>

#include "common/asio.h"

namespace kiln::sandbox::egress {

struct RelayOptions {
  // Written to b before anything read from a (bytes the client sent past the request header).
  std::string pending;
  // When false, bytes from a are read and dropped instead of forwarded: after a plain-HTTP
  // request, a pipelined second request must not reach the first request's host unchecked.
  bool forwardAtoB = true;
  // Both sockets are closed after this long without a byte either way.
  std::chrono::seconds idle = std::chrono::minutes(10);
  // Kept alive until the relay ends.
  std::shared_ptr<void> owner;
};

namespace relay_detail {

template <class A, class B>
struct Pair {
  Pair(A a, B b, std::chrono::seconds idle, std::shared_ptr<void> owner)
      : owner(std::move(owner)),
        a(std::move(a)),
        b(std::move(b)),
        timer(this->a.get_executor()),
        idle(idle) {}
  std::shared_ptr<void> owner;
  A a;
  B b;
  asio::steady_timer timer;
  std::chrono::seconds idle;
  std::chrono::steady_clock::time_point last = std::chrono::steady_clock::now();
  int running = 2;

  void finishOne() {
    if (--running > 0) return;
    boost::system::error_code ec;
    a.close(ec);
    b.close(ec);
    timer.cancel();
  }
  void closeBoth() {
    boost::system::error_code ec;
    a.close(ec);
    b.close(ec);
  }
};

// Copies from -> to; on EOF half-closes `to` so the peer sees the end of this direction.
template <class P, class From, class To>
Task<void> pump(std::shared_ptr<P> pair, From& from, To& to, std::string pending, bool forward) {
  boost::system::error_code ec;
  if (!pending.empty()) {
    co_await asio::async_write(to, asio::buffer(pending),
                               asio::redirect_error(asio::use_awaitable, ec));
  }
  std::array<char, 64 * 1024> buf;
  while (!ec) {
    size_t n = co_await from.async_read_some(asio::buffer(buf),
                                             asio::redirect_error(asio::use_awaitable, ec));
    if (ec) break;
    pair->last = std::chrono::steady_clock::now();
    if (!forward) continue;
    co_await asio::async_write(to, asio::buffer(buf.data(), n),
                               asio::redirect_error(asio::use_awaitable, ec));
  }
  boost::system::error_code ignored;
  if (ec == asio::error::eof) {
    to.shutdown(asio::socket_base::shutdown_send, ignored);
  } else {
    pair->closeBoth();  // a reset or a failed write ends the other direction too
  }
  pair->finishOne();
}

template <class P>
Task<void> watchIdle(std::shared_ptr<P> pair) {
  while (pair->running > 0) {
    pair->timer.expires_after(pair->idle / 4 + std::chrono::seconds(1));
    boost::system::error_code ec;
    co_await pair->timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    if (pair->running == 0) co_return;
    if (std::chrono::steady_clock::now() - pair->last > pair->idle) {
      pair->closeBoth();
      co_return;
    }
  }
}

}  // namespace relay_detail

// Starts relaying; returns at once. Takes ownership of both sockets.
template <class A, class B>
void startRelay(A a, B b, RelayOptions opts) {
  using P = relay_detail::Pair<A, B>;
  auto pair = std::make_shared<P>(std::move(a), std::move(b), opts.idle, opts.owner);
  auto ex = pair->a.get_executor();
  const std::string none;
  asio::co_spawn(ex, relay_detail::pump(pair, pair->a, pair->b, opts.pending, opts.forwardAtoB),
                 asio::detached);
  asio::co_spawn(ex, relay_detail::pump(pair, pair->b, pair->a, none, true), asio::detached);
  asio::co_spawn(ex, relay_detail::watchIdle(pair), asio::detached);
}

}  // namespace kiln::sandbox::egress
