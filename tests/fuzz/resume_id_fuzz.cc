// The SSE resume id: Last-Event-ID and ?after= (request::parseResumeSeq). Input: the header
// value, a newline, the query value.
#include <cstddef>
#include <cstdint>
#include <string>

#include "api/request/jobs.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string in(reinterpret_cast<const char*>(data), size);
  size_t nl = in.find('\n');
  std::string header = in.substr(0, nl);
  std::string after = nl == std::string::npos ? "" : in.substr(nl + 1);
  auto seq = kiln::api::request::parseResumeSeq(header, after);
  if (seq.isOk() && *seq < 0) __builtin_trap();  // a resume point is never negative
  return 0;
}
