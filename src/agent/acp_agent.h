// ACP agents (`"agent": "acp"` with a `command`): an agent that speaks the Agent Client Protocol
// (JSON-RPC over its stdio, e.g. `claude-code-acp`) runs inside the sandbox, and kiln is its
// client. The agent's stdio is a TCP connection inside the sandbox to 127.0.0.1:3130, which the
// runtime relays to a unix socket kiln listens on (CliGateway's acp.sock), so kiln talks to it
// as the run goes: initialize, session/new (or session/load to resume), one session/prompt turn
// with the task. Its session/update notifications become `terminal` text and steps (each tool
// call with its result), and each session/request_permission goes to kiln's approval gates.
// Used from the job's strand; nothing here is thread-safe.
#pragma once
#include <chrono>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "agent/cli_agent.h"
#include "agent/cli_output.h"
#include "common/asio.h"
#include "common/result.h"
#include "runtime/client.h"

namespace kiln::agent {

class TerminalStream;

// Turns session/update notifications into terminal text and steps. Pure; never fails on odd
// input.
class AcpUpdates {
 public:
  // One notification's `update` object.
  void update(const nlohmann::json& u);
  std::string takeTerminal() { return std::exchange(terminal_, std::string()); }
  std::vector<CliStep> takeSteps() { return std::exchange(steps_, std::vector<CliStep>()); }
  // The tool kind ("execute", "edit", ...) and title the agent gave a tool call so far.
  std::string kindOf(const std::string& toolCallId) const;
  std::string titleOf(const std::string& toolCallId) const;
  // Ends the turn: tool calls without a result become error steps, and the text after the last
  // tool call (the agent's answer) a final `planning` step. Returns that text.
  std::string finish();

 private:
  struct Tool {
    std::string name, kind, title;
    nlohmann::json input = nlohmann::json::object();
    std::string thought;
    bool shown = false;
  };
  void toolCall(const nlohmann::json& u, bool first);
  void finishTool(const std::string& id, const nlohmann::json& u, bool failed);

  std::map<std::string, Tool> open_;
  std::string text_;  // the agent's message since the last tool call
  std::string terminal_;
  std::vector<CliStep> steps_;
};

// What the job runner lends an ACP run.
struct AcpHooks {
  std::function<Task<Status>(CliStep&)> recordStep;
  // Decides a permission request for a tool call of the gate `gate` ("bash" for commands,
  // "edit" for file changes, else the ACP tool kind): true to allow. May pause the job for a
  // human (kiln approve) before it answers.
  std::function<Task<bool>(const std::string& gate, const std::string& detail)> permit;
  // The agent's session id, once it has one (kept with the job for a resume).
  std::function<void(const std::string& sessionId)> onSession;
};

struct AcpRun {
  std::vector<std::string> argv;  // the agent's command
  std::map<std::string, std::string> env;
  std::string prompt;
  std::string resumeSessionId;  // "" for a new session
  std::string workdir = "/workspace";  // the session's cwd: the sandbox's workdir
  std::chrono::milliseconds initializeTimeout{std::chrono::seconds(30)};
};

// Runs the agent for one prompt turn. `channel` listens on the host end of the agent's stdio.
// Failures of the agent (no answer to initialize, exits early, a JSON-RPC error) come back as
// CliOutcome::failure with a message that names the agent's command; a Status only for the
// runtime's transport.
Task<Result<CliOutcome>> runAcpAgent(const AcpRun& run, int timeoutMs, runtime::RuntimeClient& rt,
                                     asio::local::stream_protocol::acceptor& channel,
                                     TerminalStream& terminal, AcpHooks& hooks);

// The shell command that connects fd 0 and 1 of `argv` to the channel (bash's /dev/tcp) and
// keeps its pid in /tmp/.kiln-acp.pid. Public for tests.
std::string acpBridgeCommand(const std::vector<std::string>& argv);

}  // namespace kiln::agent
