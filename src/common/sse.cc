#include "common/sse.h"

namespace kiln {

std::vector<SseEvent> SseParser::feed(std::string_view chunk) {
  std::vector<SseEvent> out;
  size_t i = 0;
  // A CRLF split across chunks: the '\r' already ended the line.
  if (sawCr_ && !chunk.empty() && chunk[0] == '\n') i = 1;
  sawCr_ = false;
  for (; i < chunk.size(); ++i) {
    char c = chunk[i];
    if (c != '\r' && c != '\n') {
      buffer_.push_back(c);
      continue;
    }
    processLine(buffer_, out);
    buffer_.clear();
    if (c == '\r') {
      if (i + 1 < chunk.size()) {
        if (chunk[i + 1] == '\n') ++i;
      } else {
        sawCr_ = true;
      }
    }
  }
  return out;
}

void SseParser::processLine(std::string_view line, std::vector<SseEvent>& out) {
  if (line.empty()) {
    if (hasFields_ && hasData_) {
      if (pending_.event.empty()) pending_.event = "message";
      out.push_back(std::move(pending_));
    }
    pending_ = SseEvent{};
    pending_.id = lastEventId_;
    hasData_ = hasFields_ = false;
    return;
  }
  if (line.front() == ':') return;  // comment / keep-alive
  size_t colon = line.find(':');
  std::string_view field = line.substr(0, colon);
  std::string_view value;
  if (colon != std::string_view::npos) {
    value = line.substr(colon + 1);
    if (!value.empty() && value.front() == ' ') value.remove_prefix(1);
  }
  hasFields_ = true;
  if (field == "data") {
    if (hasData_) pending_.data.push_back('\n');
    pending_.data.append(value);
    hasData_ = true;
  } else if (field == "event") {
    pending_.event = std::string(value);
  } else if (field == "id") {
    if (value.find('\0') == std::string_view::npos) {
      pending_.id = std::string(value);
      lastEventId_ = pending_.id;
    }
  }
}

}  // namespace kiln
