#include "agent/terminal_stream.h"

#include <spdlog/spdlog.h>

namespace kiln::agent {

void TerminalStream::push(std::string_view stream, std::string_view data) {
  // Merge with the previous chunk of the same stream while it is still waiting, so a chatty
  // command costs few store writes.
  if (!pending_.empty() && pending_.back().payload["stream"] == stream &&
      pending_.back().payload["data"].get_ref<const std::string&>().size() < 16384) {
    pending_.back().payload["data"].get_ref<std::string&>().append(data);
  } else {
    pending_.push_back({"terminal", {{"stream", stream}, {"data", std::string(data)}}});
  }
  if (!flushing_) {
    flushing_ = true;
    asio::co_spawn(ex_, flush(), asio::detached);
  }
}

Task<void> TerminalStream::flush() {
  while (!pending_.empty()) {
    std::vector<store::NewEvent> batch = std::move(pending_);
    pending_.clear();
    auto r = co_await pool_.run([&] { return store_.appendEvents(jobId_, batch); });
    if (!r.isOk()) spdlog::error("job {}: terminal events: {}", jobId_, r.status().toString());
    bus_.publish(jobId_);
  }
  flushing_ = false;
  idle_.cancel();
}

Task<void> TerminalStream::drain() {
  while (flushing_ || !pending_.empty()) {
    if (!flushing_) {
      flushing_ = true;
      co_await flush();
      continue;
    }
    idle_.expires_at(asio::steady_timer::time_point::max());
    boost::system::error_code ec;
    co_await idle_.async_wait(asio::redirect_error(asio::use_awaitable, ec));
  }
}

}  // namespace kiln::agent
