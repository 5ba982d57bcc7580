// SseParser: splits a text/event-stream body, fed in arbitrary pieces, into events (the `event:`
// name and the joined `data:` lines). Lines end at CR, LF or CRLF. Not thread-safe.
#pragma once
#include <functional>
#include <string>
#include <string_view>

namespace kiln::llm {

class SseParser {
 public:
  using EventFn = std::function<void(const std::string& event, const std::string& data)>;
  explicit SseParser(EventFn onEvent) : onEvent_(std::move(onEvent)) {}

  void feed(std::string_view bytes);

 private:
  void line(std::string_view l);

  EventFn onEvent_;
  std::string buf_;
  std::string event_;
  std::string data_;
  bool hasData_ = false;
  bool afterCr_ = false;  // the last line ended with a CR: a leading LF is its CRLF's
};

}  // namespace kiln::llm
