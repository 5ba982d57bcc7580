// The session of an agent CLI, kept with its job: after a run, the CLI's session files (under
// the sandbox user's home, sessionDir()) are read out of the sandbox and stored as a step
// (phase "session", tool "agent_session"); the next run of the job (a `continue`, an answered
// approval, a takeover by another node) writes them back and resumes that session instead of
// starting blind. Used from the job's strand.
#pragma once
#include <optional>
#include <string>
#include <vector>

#include "common/asio.h"
#include "common/result.h"
#include "runtime/client.h"
#include "store/store.h"

namespace kiln::agent {

inline constexpr const char* kSessionPhase = "session";
inline constexpr const char* kSessionTool = "agent_session";

struct CliSession {
  std::string agent;
  std::string id;
  std::string archive;  // the session dir as tar.gz, base64
};

// The newest session of `agent` among the job's steps (oldest first), if any.
std::optional<CliSession> lastCliSession(const std::vector<store::Step>& steps,
                                         const std::string& agent);

// Writes the session's files back under the sandbox user's home.
Task<Status> restoreCliSession(runtime::RuntimeClient& rt, const CliSession& session);

// Reads `agent`'s session dir out of the sandbox into a step to record (its number unset), or
// nullopt when the agent keeps none or the dir is missing.
Task<std::optional<store::Step>> captureCliSession(runtime::RuntimeClient& rt,
                                                   const std::string& agent,
                                                   const std::string& sessionId);

// What this run asks the CLI: a human's answer when it is the newest step (a `continue`, a
// refused approval), else the task.
std::string cliPrompt(const std::vector<store::Step>& steps, const std::string& taskDesc);

}  // namespace kiln::agent
