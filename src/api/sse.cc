#include "api/sse.h"

#include <algorithm>

#include "api/job_view.h"

namespace kiln::api {
namespace {

using Clock = std::chrono::steady_clock;
constexpr auto kKeepalive = std::chrono::seconds(15);
// A follower sleeps until the event bus says its job has new events: every writer in this
// process publishes there after its transaction commits. It also re-reads at the keepalive
// interval, which is the only way it learns of events written by another process sharing the
// store (a second node on one SQLite file) until the engine can notify across processes.
constexpr auto kOtherWritersInterval = kKeepalive;
constexpr int kBatch = 500;

Task<bool> writeText(beast::tcp_stream& stream, const std::string& text) {
  boost::system::error_code ec;
  stream.expires_after(kWriteTimeout);
  co_await asio::async_write(stream, asio::buffer(text),
                             asio::redirect_error(asio::use_awaitable, ec));
  co_return !ec;
}

Task<bool> writeHead(beast::tcp_stream& stream, unsigned version) {
  http::response<http::empty_body> res{http::status::ok, version};
  res.set(http::field::server, "kiln");
  res.set(http::field::content_type, "text/event-stream");
  res.set(http::field::cache_control, "no-cache");
  res.set("X-Accel-Buffering", "no");
  // No Content-Length: the stream ends when the server closes the connection.
  res.keep_alive(false);
  http::response_serializer<http::empty_body> sr{res};
  boost::system::error_code ec;
  stream.expires_after(kWriteTimeout);
  co_await http::async_write_header(stream, sr, asio::redirect_error(asio::use_awaitable, ec));
  co_return !ec;
}

// Follows one job's events; each method runs on the connection's strand.
class EventFollower {
 public:
  EventFollower(beast::tcp_stream& stream, ServerEnv& env, const SseRequest& sse)
      : stream_(stream),
        env_(env),
        jobId_(sse.jobId),
        tokenHash_(sse.streamKey),
        lastSeq_(sse.afterSeq) {}

  Task<void> run() {
    auto sub = env_.deps.bus->subscribe(jobId_, co_await asio::this_coro::executor);
    bool checkTerminal = true;  // the job may have finished before the client connected
    while (!env_.stopping) {
      // A token revoked meanwhile ends its streams.
      if (Clock::now() - lastTokenCheck_ >= kKeepalive && co_await tokenRevoked()) co_return;
      auto batch = co_await readEvents();
      if (!batch) co_return;
      if (!batch->empty()) {
        if (!co_await send(*batch) || batch->back().type == "done") co_return;
        // Read again at once: more may be waiting, and an empty read then checks whether the
        // job has finished.
        checkTerminal = true;
        continue;
      } else if (checkTerminal || Clock::now() - lastTerminalCheck_ >= kKeepalive) {
        checkTerminal = false;
        if (co_await finishedAndDrained()) co_return;
      }
      if (Clock::now() - lastWrite_ >= kKeepalive) {
        static const std::string kComment = ": keepalive\n\n";
        if (!co_await writeText(stream_, kComment)) co_return;
        lastWrite_ = Clock::now();
      }
      co_await sub->wait(
          std::chrono::duration_cast<std::chrono::milliseconds>(kOtherWritersInterval));
    }
  }

 private:
  Task<std::optional<std::vector<store::Event>>> readEvents() {
    auto* store = env_.deps.store;
    auto res =
        co_await env_.deps.pool->run([&] { return store->listEvents(jobId_, lastSeq_, kBatch); });
    if (!res) co_return std::nullopt;
    co_return std::move(*res);
  }

  Task<bool> send(const std::vector<store::Event>& events) {
    std::string text;
    for (const auto& e : events) text += sseFrame(e);
    if (!co_await writeText(stream_, text)) co_return false;
    lastSeq_ = events.back().seq;
    lastWrite_ = Clock::now();
    co_return true;
  }

  // True once the stream's token is unknown or revoked (a store error is not a revocation).
  Task<bool> tokenRevoked() {
    lastTokenCheck_ = Clock::now();
    auto* store = env_.deps.store;
    auto grant = co_await env_.deps.pool->run([&] { return store->tokenGrant(tokenHash_); });
    co_return !grant && grant.status().code() == Code::kUnauthenticated;
  }

  // True when the job is terminal and every event is sent. The status is read before the
  // events: a status change and its events are committed together, so none can be missed.
  Task<bool> finishedAndDrained() {
    lastTerminalCheck_ = Clock::now();
    auto* store = env_.deps.store;
    auto job = co_await env_.deps.pool->run([&] { return store->getJob(jobId_); });
    if (!job) co_return job.status().code() == Code::kNotFound;
    if (!store::isTerminal(job->status)) co_return false;
    for (;;) {
      auto batch = co_await readEvents();
      if (!batch || batch->empty()) co_return true;
      if (!co_await send(*batch)) co_return true;
    }
  }

  beast::tcp_stream& stream_;
  ServerEnv& env_;
  std::string jobId_;
  std::string tokenHash_;
  int64_t lastSeq_;
  Clock::time_point lastTokenCheck_ = Clock::now();
  Clock::time_point lastWrite_ = Clock::now();
  Clock::time_point lastTerminalCheck_ = Clock::now();
};

}  // namespace

Task<void> runSseStream(beast::tcp_stream& stream, ServerEnv& env, const SseRequest& sse,
                        unsigned httpVersion) {
  SseClientGauge gauge(env.metrics);
  if (!co_await writeHead(stream, httpVersion)) co_return;
  EventFollower follower(stream, env, sse);
  co_await follower.run();
}

}  // namespace kiln::api
