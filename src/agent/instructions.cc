#include "agent/instructions.h"

#include <spdlog/spdlog.h>

#include <algorithm>

#include "agent/cli_agent.h"
#include "agent/job_events.h"
#include "agent/tool_text.h"

namespace kiln::agent {
namespace {

using json = nlohmann::json;

constexpr const char* kInstructionsFile = "AGENTS.md";

size_t depthOf(const std::string& path) { return std::count(path.begin(), path.end(), '/'); }

// "the whole repository" for the root file, else "files under dir/".
std::string scopeOf(const std::string& path) {
  const size_t slash = path.rfind('/');
  if (slash == std::string::npos) return "the whole repository";
  return "files under " + path.substr(0, slash + 1);
}

// Tracked and untracked (not ignored) files named AGENTS.md, at any depth, NUL-separated.
runtime::ExecRequest listRequest() {
  runtime::ExecRequest req;
  req.cmd = std::string("git ls-files -z --cached --others --exclude-standard -- ':(glob)**/") +
            kInstructionsFile + "'";
  req.timeoutMs = 30'000;
  return req;
}

}  // namespace

std::vector<std::string> instructionPaths(const std::string& lsFilesZ) {
  std::vector<std::string> paths;
  size_t start = 0;
  while (start < lsFilesZ.size()) {
    size_t end = lsFilesZ.find('\0', start);
    // Output cut short ends in a partial path: only NUL-terminated ones count.
    if (end == std::string::npos) break;
    std::string path = lsFilesZ.substr(start, end - start);
    start = end + 1;
    const size_t slash = path.rfind('/');
    const std::string name = slash == std::string::npos ? path : path.substr(slash + 1);
    if (name == kInstructionsFile) paths.push_back(std::move(path));
  }
  std::sort(paths.begin(), paths.end(), [](const std::string& a, const std::string& b) {
    const size_t da = depthOf(a), db = depthOf(b);
    return da != db ? da < db : a < b;
  });
  paths.erase(std::unique(paths.begin(), paths.end()), paths.end());
  if (paths.size() > kMaxInstructionFiles) paths.resize(kMaxInstructionFiles);
  return paths;
}

store::Step instructionsStep(int stepNumber, const std::vector<InstructionFile>& files) {
  store::Step s;
  s.stepNumber = stepNumber;
  s.phase = kInstructionsPhase;
  std::string text =
      "[Repository instructions: the repo's AGENTS.md files, for you to follow. Each applies to "
      "the files under its directory; where two disagree, the one nearest to the file at hand "
      "wins, and the task you were given wins over both.]\n";
  json paths = json::array();
  std::vector<std::string> left;
  size_t used = 0;
  for (const InstructionFile& f : files) {
    paths.push_back(f.path);
    std::string body = withNewline(capped(f.content, kMaxInstructionFileBytes));
    if (used + body.size() > kMaxInstructionBytes) {
      left.push_back(f.path);
      continue;
    }
    used += body.size();
    text += "\n--- " + f.path + " (" + scopeOf(f.path) + ") ---\n" + body;
  }
  if (!left.empty()) {
    text += "\n[Not included, for lack of room: read these before you work in their directories:";
    for (const std::string& p : left) text += " " + p;
    text += "]\n";
  }
  s.toolArguments = {{"files", paths}};
  s.toolOutput = std::move(text);
  return s;
}

Task<PhaseOutcome> recordInstructions(JobSession& s) {
  // Codex and the other CLIs read the repo's files themselves; Claude Code's preset runs in
  // --bare mode, which reads none, and gets these (cli_turns.cc).
  if (!s.steps.empty() || !takesKilnInstructions(s.job().agent, s.spec()))
    co_return PhaseOutcome::next();
  const std::string& id = s.job().id;
  const runtime::ExecRequest req = listRequest();
  runtime::ChunkFn noStreaming;
  auto listed = co_await s.rt->exec(req, noStreaming);
  if (!listed.isOk() || listed->exitCode != 0) {
    spdlog::warn("job {}: AGENTS.md files not listed, the job goes on without them: {}", id,
                 listed.isOk() ? "git ls-files exited " + std::to_string(listed->exitCode) + ": " +
                                     tailOf(listed->output)
                               : listed.status().message());
    co_return PhaseOutcome::next();
  }
  std::vector<InstructionFile> files;
  for (const std::string& path : instructionPaths(listed->output)) {
    const std::string readPath = "/files/read";
    const json body = {{"path", path}};
    auto read = co_await s.rt->call(readPath, body);
    if (!read.isOk()) {
      spdlog::warn("job {}: {} not read: {}", id, path, read.status().message());
      continue;
    }
    files.push_back({path, stringAt(*read, "content")});
  }
  if (files.empty()) co_return PhaseOutcome::next();
  const store::Step step = instructionsStep(s.nextStep, files);
  PhaseOutcome o = co_await s.record(step, eventList(stepEvent(step, false)));
  if (!o.goesOn()) co_return o;
  ++s.nextStep;
  spdlog::info("job {}: {} AGENTS.md file(s) in the system prompt", id, files.size());
  co_return o;
}

}  // namespace kiln::agent
