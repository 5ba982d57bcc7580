#include "agent/terminal_stream.h"

#include <spdlog/spdlog.h>

#include <utility>

namespace kiln::agent {

void TerminalStream::push(std::string_view stream, std::string_view data) {
  if (leaseLost_) return;
  if (secrets_ && !secrets_->empty()) {
    std::string& held = heldBack_[std::string(stream)];
    std::string text = std::move(held) + std::string(data);
    const size_t keep = secrets_->partialAtEnd(text);
    held = text.substr(text.size() - keep);
    text.resize(text.size() - keep);
    if (!text.empty()) queue(stream, text);
    return;
  }
  queue(stream, data);
}

void TerminalStream::queue(std::string_view stream, std::string_view data) {
  // Merge with the previous chunk of the same stream while it is still waiting, so a chatty
  // command costs few store writes.
  if (!pending_.empty() && pending_.back().payload["stream"] == stream &&
      pending_.back().payload["data"].get_ref<const std::string&>().size() < 16384) {
    pending_.back().payload["data"].get_ref<std::string&>().append(data);
  } else {
    pending_.push_back({"terminal", {{"stream", stream}, {"data", std::string(data)}}});
  }
  startFlush();
}

void TerminalStream::startFlush() {
  if (!flushing_) {
    flushing_ = true;
    asio::co_spawn(ex_, flush(), asio::detached);
  }
}

Task<void> TerminalStream::flush() {
  while (!pending_.empty()) {
    std::vector<store::NewEvent> batch = std::move(pending_);
    pending_.clear();
    Result<std::vector<store::Event>> r = internalError("terminal events: not written");
    // flush() runs detached: an exception here would vanish and leave drain() waiting forever.
    try {
      r = co_await pool_.run([&] { return store_.appendEvents(jobId_, lease_, batch); });
    } catch (const std::exception& e) {
      r = internalError(std::string("terminal events threw: ") + e.what());
    }
    if (r.isOk()) {
      bus_.publish(jobId_);
    } else if (r.status().code() == Code::kConflict) {
      spdlog::warn("job {}: terminal output dropped: {}", jobId_, r.status().message());
      leaseLost_ = true;
      pending_.clear();
    } else {
      spdlog::error("job {}: terminal events: {}", jobId_, r.status().toString());
    }
  }
  flushing_ = false;
  idle_.cancel();
}

Task<void> TerminalStream::drain() {
  // The output ended: what was held back is all there is.
  for (auto& [stream, held] : heldBack_) {
    if (!held.empty() && !leaseLost_) queue(stream, std::exchange(held, std::string()));
  }
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
