// What the agents that drive a CLI or an ACP server (cli_agent, cli_output, acp_agent, verify)
// share to turn their peer's output into steps and terminal text: the caps and the JSON lookups
// that never throw. Pure; thread-safe.
#pragma once
#include <cstddef>
#include <nlohmann/json.hpp>
#include <string>

namespace kiln::agent {

// A step keeps at most this much of a tool's output.
inline constexpr size_t kMaxStepOutput = 256 << 10;
// The terminal shows at most this much of one tool result.
inline constexpr size_t kTerminalResultBytes = 2048;
// A failure quotes at most this much of the end of an output.
inline constexpr size_t kTailBytes = 4096;

// s, cut after n bytes with a note of how many more there were.
std::string capped(const std::string& s, size_t n);
// s ending in a newline (unless empty).
std::string withNewline(std::string s);
// The last kTailBytes of s.
std::string tailOf(const std::string& s);
// j[key] when j is an object holding a string there, else "".
std::string stringAt(const nlohmann::json& j, const char* key);
// j[key], or null when j is no object or lacks key.
const nlohmann::json& fieldAt(const nlohmann::json& j, const char* key);

}  // namespace kiln::agent
