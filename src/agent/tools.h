// Tools: the fixed set of actions an agent can take, each executed through the sandbox's runtime
// contract: bash, read_file, write_file, edit_file, search, list_dir, ask_user, finish. Bad
// arguments become an error observation for the model, never a crash. Not thread-safe: used
// from the job's strand.
#pragma once
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>

#include "agent/provider.h"
#include "common/asio.h"
#include "runtime/client.h"

namespace kiln::agent {

struct Observation {
  std::string output;      // what the model sees
  bool isError = false;    // the call failed (bad arguments, non-zero exit, …)
  int exitCode = 0;        // bash only
  bool mutating = false;   // the call tried to change the workspace
  // The call may have changed the workspace, without trying to (an MCP tool): diffed after it,
  // but no attempted change for the loop detector.
  bool mayChangeWorkspace = false;
  bool finish = false;     // finish: the job is done; output is the summary
  bool askUser = false;    // ask_user: pause; output is the question
  bool outOfTime = false;  // bash: killed because the job's wall-clock budget ran out
  // bash in session mode: the shell's state after the call ({cwd, env}), to be recorded so a
  // resumed job's new shell starts from it; null otherwise.
  nlohmann::json shellState;
};

// An observation of a failed call: "error: <msg>".
Observation errorObservation(std::string msg);
// Why the call's arguments cannot be used because the provider could not parse what the model
// wrote (llm/http_provider.h: `_error`, `_raw`), or "".
std::string unparsedArguments(const ToolCall& call);

// How the bash tool runs commands (the job's `sandbox.shell`): each in a fresh `bash -c`
// (default), each in a fresh login shell `bash -lc`, or all in one persistent shell per job.
enum class ShellMode { kFresh, kLogin, kSession };
std::optional<ShellMode> parseShellMode(std::string_view name);

struct ShellOptions {
  ShellMode mode = ShellMode::kFresh;
  std::string workdir = "/workspace";      // where commands start
  std::map<std::string, std::string> env;  // on top of the runtime's base environment
  int timeoutMs = 120'000;                 // per command, unless the call asks for another
  // Session mode: the state the shell starts from when the job's shell is gone (a resume).
  nlohmann::json restore;
};

// JSON-schema descriptions of the tools, in OpenAI function format (name, description,
// parameters), for the job's sandbox (its shell and workdir). Providers translate this into their
// wire format.
nlohmann::json toolSchemas(const TaskInfo& task);

class ToolExecutor {
 public:
  ToolExecutor(runtime::RuntimeClient& rt, runtime::ChunkFn onTerminal, ShellOptions shell = {})
      : rt_(rt), onTerminal_(std::move(onTerminal)), shell_(std::move(shell)) {}

  Task<Observation> execute(const ToolCall& call);
  // What is left of the job's wall-clock budget (0 = no cap): no command outlives it.
  void setTimeLeftMs(int64_t ms) { timeLeftMs_ = ms; }

 private:
  Task<Observation> bash(const nlohmann::json& args);
  Task<Observation> viaRuntime(const std::string& path, const nlohmann::json& body, bool mutating,
                               std::string (*render)(const nlohmann::json&));

  runtime::RuntimeClient& rt_;
  runtime::ChunkFn onTerminal_;
  ShellOptions shell_;
  int64_t timeLeftMs_ = 0;
};

}  // namespace kiln::agent
