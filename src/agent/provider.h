// Provider: the model side of the agent loop. Given the context so far, it returns the next
// assistant turn: a thought and the tool calls to make. Implementations: mock (deterministic,
// no key), openai, anthropic (llm/), cli (an external agent CLI). Not thread-safe: one job uses
// one provider from its own strand.
#pragma once
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "common/asio.h"
#include "common/result.h"

namespace kiln::agent {

using nlohmann::json;

struct ToolCall {
  std::string id;  // provider's call id, echoed back with the result
  std::string name;
  json arguments = json::object();
  // The arguments exactly as the model wrote them (JSON text), sent back in place of
  // `arguments` so the history is the model's own bytes. Empty: serialize `arguments`.
  std::string rawArguments;
};

struct Message {
  std::string role;  // system | user | assistant | tool
  std::string content;
  std::vector<ToolCall> toolCalls;  // assistant messages
  std::string toolCallId;           // tool messages
  std::string toolName;             // tool messages
  bool refusal = false;             // assistant messages: `content` is the model's refusal
};

struct ModelTurn {
  std::string thought;
  std::vector<ToolCall> calls;  // in the order the model made them
  bool refusal = false;         // the model refused: `thought` is its refusal (and the reason)
  int64_t tokensIn = 0;
  int64_t tokensOut = 0;
  double usd = 0;
};

// What the provider knows about the job it is working on.
struct TaskInfo {
  std::string jobId;
  std::string taskDesc;
  std::string repoUrl;
  std::string model;
  // What the tools run in, for their descriptions: the sandbox's shell ("bash", or "sh" when the
  // image has no bash) and the directory the repository is checked out in.
  std::string shell = "bash";
  std::string workdir = "/workspace";
  // Tools besides kiln's own, in the same form as toolSchemas' ({name, description,
  // parameters}): the job's MCP servers' (src/agent/mcp_client.h).
  std::vector<json> extraTools;
};

class Provider {
 public:
  virtual ~Provider() = default;
  virtual Task<Result<ModelTurn>> next(const TaskInfo& task,
                                       const std::vector<Message>& context) = 0;
  virtual std::string name() const = 0;
};

// What a job asks of its provider.
struct ProviderSettings {
  std::string agent = "mock";  // mock | openai | anthropic | cli | claude | codex | cursor
  std::string model;
  json spec = json::object();  // the job's options (command for cli, …)
};

// Creates the provider for a job (provider_factory.cc). `ex` is the job's strand: network I/O
// of the provider completes there. InvalidArgument if the agent is unknown or misconfigured.
Result<std::unique_ptr<Provider>> makeProvider(const ProviderSettings& settings,
                                               asio::any_io_executor ex);

}  // namespace kiln::agent
