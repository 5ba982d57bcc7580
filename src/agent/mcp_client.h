// The MCP servers of a job's built-in agent (the job's `mcpServers`), started inside its sandbox
// at each run, one after the other: each server's stdio reaches kiln over the sandbox's channel
// (src/agent/sandbox_process.h), and kiln speaks MCP to it (JSON-RPC 2.0, one object per line:
// initialize, notifications/initialized, tools/list) before the first model turn. Their tools
// are offered to the model as `mcp__<server>__<tool>` beside kiln's own, and each call the model
// makes of one is a tools/call recorded as a step like any other. A server that does not start
// fails the job (`mcp_failed`); one that dies later turns its calls into error observations.
// Used from the job's strand; nothing here is thread-safe.
#pragma once
#include <chrono>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "agent/provider.h"
#include "agent/tools.h"
#include "api/request/job_spec.h"
#include "common/asio.h"
#include "common/result.h"
#include "runtime/client.h"

namespace kiln::agent {

class AcpConnection;
struct SandboxProcess;

// A tool as the model sees it ("mcp__fs__write_file": letters, digits, '_' and '-', at most 64)
// for a server's tool name (any text). Pure.
std::string mcpToolName(const std::string& server, const std::string& tool);
// The model's view of an MCP tool: {name, description, parameters}. Pure.
nlohmann::json mcpToolSchema(const std::string& server, const nlohmann::json& tool);
// What the model sees of a tools/call result: its text content (other content named), the
// structured content when there is no text; and whether it is an error. Pure.
Observation mcpObservation(const nlohmann::json& result);

class McpServers {
 public:
  struct Options {
    std::map<std::string, std::string> env;  // every server's base environment (PATH, ...)
    std::string workdir = "/workspace";      // where they run, and the root they are told of
    int64_t timeLeftMs = 3'600'000;  // the job's wall-clock budget left: no server outlives it
    std::chrono::milliseconds startTimeout{std::chrono::seconds(60)};
  };

  // Starts `servers` in order over `channel` (listening on the job's strand). The Status names
  // the server and why (its exit status and stderr when it ended).
  static Task<Result<std::unique_ptr<McpServers>>> start(
      const std::vector<api::request::McpServerSpec>& servers,
      std::shared_ptr<runtime::RuntimeClient> rt, asio::local::stream_protocol::acceptor& channel,
      const Options& options);
  // Closes the connections and, unless stop() did, asks the processes to end (not waited for).
  ~McpServers();

  // The tools, as TaskInfo::extraTools.
  const std::vector<nlohmann::json>& schemas() const { return schemas_; }
  bool offers(const std::string& toolName) const { return tools_.count(toolName) > 0; }
  // Calls the tool; a failure of the server is an error observation. At most `timeoutMs`.
  Task<Observation> call(const ToolCall& call, int64_t timeoutMs);
  // Ends the servers and waits (a few seconds at most) for their commands to return.
  Task<void> stop();

 private:
  struct Server {
    std::string name;
    std::string pidFile;
    std::shared_ptr<SandboxProcess> proc;
    std::shared_ptr<AcpConnection> conn;
    size_t tools = 0;  // offered so far
  };
  struct Tool {
    size_t server = 0;
    std::string name;  // the server's own name for it
    bool readOnly = false;
  };
  McpServers(asio::any_io_executor ex, std::shared_ptr<runtime::RuntimeClient> rt)
      : ex_(std::move(ex)), rt_(std::move(rt)) {}
  // Kills every server by its pid file (a server already gone is no error).
  runtime::ExecRequest killRequest() const;
  void closeConnections();
  // Waits a moment for a server whose connection closed to end (its exit status and stderr).
  static Task<void> awaitExit(SandboxProcess& proc);
  // Adds what a tools/list answer of servers_[server] lists.
  void addTools(size_t server, const nlohmann::json& listed);

  asio::any_io_executor ex_;
  std::shared_ptr<runtime::RuntimeClient> rt_;
  std::vector<Server> servers_;
  std::map<std::string, Tool> tools_;  // by the model's name
  std::vector<nlohmann::json> schemas_;
  bool stopped_ = false;
};

}  // namespace kiln::agent
