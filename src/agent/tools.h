// Tools: the fixed set of actions an agent can take, each executed through the sandbox's runtime
// contract: bash, read_file, write_file, edit_file, search, list_dir, ask_user, finish. Bad
// arguments become an error observation for the model, never a crash. Not thread-safe: used
// from the job's strand.
#pragma once
#include <string>

#include <nlohmann/json.hpp>

#include "agent/provider.h"
#include "common/asio.h"
#include "runtime/client.h"

namespace kiln::agent {

struct Observation {
  std::string output;      // what the model sees
  bool isError = false;    // the call failed (bad arguments, non-zero exit, …)
  int exitCode = 0;        // bash only
  bool mutating = false;   // the call tried to change the workspace
  bool finish = false;     // finish: the job is done; output is the summary
  bool askUser = false;    // ask_user: pause; output is the question
  bool outOfTime = false;  // bash: killed because the job's wall-clock budget ran out
};

// JSON-schema descriptions of the tools, in OpenAI function format (name, description,
// parameters). Providers translate this into their wire format.
const nlohmann::json& toolSchemas();

class ToolExecutor {
 public:
  ToolExecutor(runtime::RuntimeClient& rt, runtime::ChunkFn onTerminal)
      : rt_(rt), onTerminal_(std::move(onTerminal)) {}

  Task<Observation> execute(const ToolCall& call);
  // What is left of the job's wall-clock budget (0 = no cap): no command outlives it.
  void setTimeLeftMs(int64_t ms) { timeLeftMs_ = ms; }

 private:
  Task<Observation> bash(const nlohmann::json& args);
  Task<Observation> viaRuntime(const std::string& path, const nlohmann::json& body, bool mutating,
                               std::string (*render)(const nlohmann::json&));

  runtime::RuntimeClient& rt_;
  runtime::ChunkFn onTerminal_;
  int64_t timeLeftMs_ = 0;
};

}  // namespace kiln::agent
