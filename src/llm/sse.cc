#include "llm/sse.h"

namespace kiln::llm {

void SseParser::feed(std::string_view bytes) {
  buf_.append(bytes);
  size_t start = 0;
  while (start < buf_.size()) {
    // A line ends at CR, LF or CRLF; the LF of a CRLF split across two feeds is skipped here.
    if (afterCr_ && buf_[start] == '\n') {
      afterCr_ = false;
      ++start;
      continue;
    }
    afterCr_ = false;
    size_t eol = buf_.find_first_of("\r\n", start);
    if (eol == std::string::npos) break;
    line(std::string_view(buf_.data() + start, eol - start));
    afterCr_ = buf_[eol] == '\r';
    start = eol + 1;
  }
  buf_.erase(0, start);
}

void SseParser::line(std::string_view l) {
  if (l.empty()) {  // a blank line ends the event
    if (hasData_) onEvent_(event_, data_);
    event_.clear();
    data_.clear();
    hasData_ = false;
    return;
  }
  if (l.front() == ':') return;  // a comment (keep-alive)
  size_t colon = l.find(':');
  std::string_view field = l.substr(0, colon);
  std::string_view value = colon == std::string_view::npos ? "" : l.substr(colon + 1);
  if (!value.empty() && value.front() == ' ') value.remove_prefix(1);
  if (field == "event") {
    event_ = value;
  } else if (field == "data") {
    if (hasData_) data_ += '\n';
    data_ += value;
    hasData_ = true;
  }
}

}  // namespace kiln::llm
