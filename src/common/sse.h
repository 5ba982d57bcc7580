// SseParser: the one parser of text/event-stream (the WHATWG "server-sent events" format), for
// the CLI's job streams and the model APIs' streamed answers. Feed it bytes as they arrive, split
// anywhere; it returns each complete event. Lines end at CR, LF or CRLF, as the format says.
// Pure; not thread-safe.
#pragma once
#include <string>
#include <string_view>
#include <vector>

namespace kiln {

struct SseEvent {
  std::string id;     // empty when the event had no id: line
  std::string event;  // "message" when the event had no event: line
  std::string data;   // data: lines joined with '\n'
};

class SseParser {
 public:
  // Consumes `chunk` (any split, even mid-line) and returns the events it completed.
  std::vector<SseEvent> feed(std::string_view chunk);
  // The id of the last dispatched event that carried one: what to send as Last-Event-ID.
  const std::string& lastEventId() const { return lastEventId_; }

 private:
  void processLine(std::string_view line, std::vector<SseEvent>& out);

  std::string buffer_;  // bytes after the last complete line
  bool sawCr_ = false;  // previous chunk ended in '\r'; a leading '\n' belongs to it
  SseEvent pending_;
  bool hasData_ = false;
  bool hasFields_ = false;
  std::string lastEventId_;
};

}  // namespace kiln
