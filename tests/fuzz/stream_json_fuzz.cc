// The agent CLIs' stream-json output (agent::AgentOutputParser): any bytes, in chunks of any
// size, as a CLI's stdout would arrive. Input: a chunk size byte, then the stream.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "agent/cli_output.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const size_t chunk = data[0] % 64 + 1;
  std::string_view rest(reinterpret_cast<const char*>(data + 1), size - 1);
  kiln::agent::AgentOutputParser parser;
  while (!rest.empty()) {
    size_t n = std::min(chunk, rest.size());
    parser.feed(rest.substr(0, n));
    rest.remove_prefix(n);
    (void)parser.takeTerminal();
    (void)parser.takeSteps();
  }
  parser.finish();
  (void)parser.takeTerminal();
  for (const auto& s : parser.takeSteps()) {
    // Steps are stored and served as JSON: every field must serialise.
    (void)s.step.toolArguments.dump(-1, ' ', false, nlohmann::json::error_handler_t::strict);
  }
  return 0;
}
