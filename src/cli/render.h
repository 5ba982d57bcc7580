// Turns API data into terminal text: the live event view of `kiln run` / `kiln logs` and the
// `kiln jobs` table. Pure functions (no I/O, time passed in), so the output is unit-tested.
#pragma once
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

namespace kiln::cli {

using nlohmann::json;

struct RenderStyle {
  bool color = false;    // ANSI escapes; on only when stdout is a terminal
  std::string jobId;     // for hints such as "answer with: kiln reply <id> ..."
  int previewLines = 3;  // tool output lines shown under a step
  int maxLineWidth = 120;
};

// One SSE event (type + JSON payload) as zero or more lines, each ending in '\n'.
std::string renderEvent(const std::string& type, const json& payload, const RenderStyle& style);

// Step line: "[step 3] bash ls -la" plus the thought and a short preview of the tool output.
std::string renderStep(const json& step, const RenderStyle& style);

// A short, single-line form of tool arguments: the command for bash-like tools, "k=v ..."
// otherwise, cut to `maxWidth` with an ellipsis.
std::string summarizeArgs(const json& args, size_t maxWidth);

// `kiln jobs` table: id, status, steps, usd, age, repo, task. `nowMs` is the current time.
std::string renderJobsTable(const json& jobs, int64_t nowMs);

// Milliseconds since the epoch from a number or an RFC 3339 UTC string
// ("2026-11-23T10:50:59.123Z"); 0 when it is neither.
int64_t parseTimeMs(const json& t);

// "5s", "3m", "2h", "4d".
std::string formatAge(int64_t ms);

// Cuts `s` to `width` characters (UTF-8 aware enough not to split a sequence), adding "…".
std::string truncate(const std::string& s, size_t width);

// Process exit code for a final job status: COMPLETED 0, FAILED 2, STOPPED 3, otherwise 1.
int exitCodeForStatus(const std::string& status);

// Upper-cases a status so "stopped" and "STOPPED" compare equal.
std::string normalizeStatus(std::string status);

}  // namespace kiln::cli
