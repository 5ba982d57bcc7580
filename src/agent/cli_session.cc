#include "agent/cli_session.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cctype>

#include "agent/cli_agent.h"
#include "agent/context.h"

namespace kiln::agent {
namespace {

using json = nlohmann::json;

// Sessions larger than this (base64) are not kept: the run after starts a new session.
constexpr size_t kMaxArchive = 32 << 20;

json sessionArgs(const std::string& agent, const std::string& id) {
  return {{"agent", agent},
          {"sessionId", id},
          {"dir", "~/" + sessionDir(agent)},
          {"encoding", "tar.gz, base64"}};
}

// A session id as the CLIs make them (UUIDs): nothing a shell pattern or a path would read.
bool plainSessionId(const std::string& id) {
  return !id.empty() && id.size() <= 128 && std::all_of(id.begin(), id.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_';
  });
}

}  // namespace

std::optional<CliSession> lastCliSession(const std::vector<store::Step>& steps,
                                         const std::string& agent) {
  for (auto it = steps.rbegin(); it != steps.rend(); ++it) {
    if (it->toolCalled != kSessionTool || it->phase != kSessionPhase) continue;
    const json& a = it->toolArguments;
    if (!a.is_object() || a.value("agent", "") != agent) continue;
    CliSession s{agent, a.value("sessionId", ""), it->toolOutput};
    if (s.id.empty() || s.archive.empty()) return std::nullopt;
    return s;
  }
  return std::nullopt;
}

Task<Status> restoreCliSession(runtime::RuntimeClient& rt, const CliSession& session) {
  runtime::ExecRequest req;
  req.cmd = "mkdir -p \"$HOME\" && cd \"$HOME\" && base64 -d | tar -xzf -";
  req.stdinData = session.archive;
  req.timeoutMs = 60'000;
  runtime::ChunkFn ignore = [](std::string_view, std::string_view) {};
  auto r = co_await rt.exec(req, ignore);
  if (!r.isOk()) co_return r.status();
  if (r->exitCode != 0) {
    co_return Status(Code::kUnprocessable, "restore the agent's session: " + r->output);
  }
  co_return Status::ok();
}

Task<std::optional<store::Step>> captureCliSession(runtime::RuntimeClient& rt,
                                                   const std::string& agent,
                                                   const std::string& sessionId) {
  const std::string dir = sessionDir(agent);
  if (dir.empty() || !plainSessionId(sessionId)) co_return std::nullopt;
  runtime::ExecRequest req;
  // Exit 3: the CLI has not written this session's transcript yet (it may do so only after its
  // first steps). Its dir alone is not enough: the CLI makes it before the transcript, and a
  // session kept without its transcript cannot be resumed ("No conversation found").
  // Both CLIs name the transcript after the session (<id>.jsonl, rollout-<time>-<id>.jsonl).
  req.cmd = "cd \"$HOME\" && { [ -n \"$(find " + shellQuote(dir) + " -type f -size +0 -name " +
            shellQuote("*" + sessionId + "*") + " -print -quit 2>/dev/null)\" ] || exit 3; } && " +
            "tar -czf - " + shellQuote(dir) + " 2>/dev/null | base64 -w0";
  req.timeoutMs = 60'000;
  req.maxHeadBytes = kMaxArchive;
  runtime::ChunkFn ignore = [](std::string_view, std::string_view) {};
  auto r = co_await rt.exec(req, ignore);
  if (r.isOk() && r->exitCode == 3) co_return std::nullopt;
  if (!r.isOk() || r->exitCode != 0 || r->truncated || r->output.empty()) {
    spdlog::warn("agent session {} not kept: {}", sessionId,
                 !r.isOk()          ? r.status().toString()
                 : r->truncated     ? std::string("its archive is over the size kept")
                 : r->exitCode != 0 ? "exit " + std::to_string(r->exitCode)
                                    : std::string("no archive"));
    co_return std::nullopt;
  }
  store::Step s;
  s.phase = kSessionPhase;
  s.toolCalled = kSessionTool;
  s.plannerThought = "Keep the agent's session " + sessionId + " for the job's next run.";
  s.toolArguments = sessionArgs(agent, sessionId);
  s.toolOutput = std::move(r->output);
  co_return s;
}

std::string cliPrompt(const std::vector<store::Step>& steps, const std::string& taskDesc) {
  for (auto it = steps.rbegin(); it != steps.rend(); ++it) {
    if (it->phase == kSessionPhase) continue;
    if (it->phase == kReplyPhase && !it->toolOutput.empty()) return it->toolOutput;
    break;
  }
  return taskDesc;
}

}  // namespace kiln::agent
