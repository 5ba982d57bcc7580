// RedactingSink: an spdlog sink that redacts the values LiveSecrets knows (secrets/redact.h)
// from every log line before handing it to the sink it wraps. The process's default logger
// writes through one, so no log line of any module can print a job's secret. Thread-safe as
// spdlog's *_mt sinks are.
#pragma once
#include <spdlog/sinks/base_sink.h>

#include <memory>
#include <mutex>

#include "secrets/redact.h"

namespace kiln::secrets {

class RedactingSink : public spdlog::sinks::base_sink<std::mutex> {
 public:
  explicit RedactingSink(std::shared_ptr<spdlog::sinks::sink> inner) : inner_(std::move(inner)) {}

 protected:
  void sink_it_(const spdlog::details::log_msg& msg) override {
    const Redactions r = LiveSecrets::process().all();
    if (r.empty()) {
      inner_->log(msg);
      return;
    }
    std::string text(msg.payload.data(), msg.payload.size());
    r.apply(text);
    spdlog::details::log_msg copy = msg;
    copy.payload = text;
    inner_->log(copy);
  }
  void flush_() override { inner_->flush(); }
  void set_pattern_(const std::string& pattern) override { inner_->set_pattern(pattern); }
  void set_formatter_(std::unique_ptr<spdlog::formatter> f) override {
    inner_->set_formatter(std::move(f));
  }

 private:
  std::shared_ptr<spdlog::sinks::sink> inner_;
};

}  // namespace kiln::secrets
