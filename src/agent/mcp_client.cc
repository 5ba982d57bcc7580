#include "agent/mcp_client.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cctype>
#include <climits>

#include "agent/acp_connection.h"
#include "agent/sandbox_process.h"
#include "agent/tool_text.h"

namespace kiln::agent {
namespace {

using json = nlohmann::json;
using Socket = asio::local::stream_protocol::socket;

constexpr const char* kProtocolVersion = "2025-06-18";
constexpr size_t kMaxToolsPerServer = 128;
constexpr size_t kMaxToolName = 64;
constexpr size_t kMaxDescription = 1024;
constexpr size_t kMaxSchemaBytes = 64 << 10;
constexpr int kMaxListPages = 16;
// After kiln closes its stdin a server has this long to end before it is killed, and the kill
// as long again.
constexpr auto kStopGrace = std::chrono::seconds(3);
// A server whose connection closed has this long to end: its exit status and stderr say more
// than the closed connection.
constexpr auto kExitReportWait = std::chrono::seconds(2);

// JSON bodies are built in plain functions: g++ 12 miscompiles some braced initializer lists
// inside coroutines.
json mcpInitializeParams() {
  json p = json::object();
  p["protocolVersion"] = kProtocolVersion;
  p["capabilities"] = {{"roots", {{"listChanged", false}}}};
  p["clientInfo"] = {{"name", "kiln"}, {"version", "1"}};
  return p;
}

json mcpListParams(const std::string& cursor) {
  json p = json::object();
  if (!cursor.empty()) p["cursor"] = cursor;
  return p;
}

json mcpCallParams(const std::string& tool, const json& arguments) {
  json p = json::object();
  p["name"] = tool;
  p["arguments"] = arguments;
  return p;
}

// What kiln answers a server's own requests: ping, and the one root (the workdir).
Result<json> serverRequestAnswer(const std::string& method, const std::string& workdir) {
  if (method == "ping") return json::object();
  if (method == "roots/list") {
    json root = {{"uri", "file://" + workdir}, {"name", "workspace"}};
    return json{{"roots", json::array({root})}};
  }
  return Status(Code::kNotFound, "kiln does not offer " + method);
}

runtime::ExecRequest mcpServerExec(const api::request::McpServerSpec& spec,
                                   const std::string& pidFile, const McpServers::Options& o) {
  runtime::ExecRequest req;
  req.cmd = channelBridgeCommand(spec.command, pidFile, "kiln-mcp");
  req.env = o.env;
  for (const auto& [name, value] : spec.env) req.env[name] = value;
  req.timeoutMs = static_cast<int>(std::clamp<int64_t>(o.timeLeftMs, 1000, INT32_MAX));
  return req;
}

// The process's own coroutine owns the runtime client it uses, so the server may outlive the
// run that started it (it ends with the sandbox).
Task<void> runMcpServer(std::shared_ptr<runtime::RuntimeClient> rt, runtime::ExecRequest req,
                        std::shared_ptr<SandboxProcess> proc) {
  runtime::ChunkFn none;
  co_await runSandboxProcess(*rt, req, none, proc);
}

Task<void> killMcpServers(std::shared_ptr<runtime::RuntimeClient> rt, runtime::ExecRequest req) {
  runtime::ChunkFn none;
  (void)co_await rt->exec(req, none);
}

std::string badMcpArguments(const ToolCall& call) {
  if (std::string e = unparsedArguments(call); !e.empty()) return e;
  if (!call.arguments.is_object())
    return "the arguments of " + call.name + " must be a JSON object";
  return "";
}

}  // namespace

std::string mcpToolName(const std::string& server, const std::string& tool) {
  std::string name = "mcp__" + server + "__" + tool;
  for (char& c : name) {
    const bool ok = std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-';
    if (!ok) c = '_';
  }
  if (name.size() > kMaxToolName) name.resize(kMaxToolName);
  return name;
}

json mcpToolSchema(const std::string& server, const json& tool) {
  json params = fieldAt(tool, "inputSchema");
  if (!params.is_object() || params.dump().size() > kMaxSchemaBytes) {
    params = {{"type", "object"}, {"properties", json::object()}};
  }
  params.erase("$schema");
  if (!params.contains("type")) params["type"] = "object";
  std::string description = stringAt(tool, "description");
  if (description.empty()) description = stringAt(tool, "title");
  return {{"name", mcpToolName(server, stringAt(tool, "name"))},
          {"description", "(MCP server " + server + ") " + capped(description, kMaxDescription)},
          {"parameters", std::move(params)}};
}

Observation mcpObservation(const json& result) {
  std::string text;
  const json& content = fieldAt(result, "content");
  if (content.is_array()) {
    for (const json& block : content) {
      const std::string type = stringAt(block, "type");
      std::string part;
      if (type == "text") {
        part = stringAt(block, "text");
      } else if (type == "resource") {
        const json& r = fieldAt(block, "resource");
        part = stringAt(r, "text");
        if (part.empty()) part = "[resource " + stringAt(r, "uri") + "]";
      } else if (type == "resource_link") {
        part = "[resource link " + stringAt(block, "uri") + "]";
      } else if (!type.empty()) {
        part = "[" + type + " content" +
               (stringAt(block, "mimeType").empty() ? "" : ", " + stringAt(block, "mimeType")) +
               "]";
      }
      if (!text.empty() && !part.empty()) text += "\n";
      text += part;
    }
  }
  const json& structured = fieldAt(result, "structuredContent");
  if (text.empty() && !structured.is_null())
    text = structured.dump(2, ' ', false, json::error_handler_t::replace);
  if (text.empty()) text = "(no output)";
  Observation o;
  o.output = capped(text, kMaxStepOutput);
  const json& isError = fieldAt(result, "isError");
  o.isError = isError.is_boolean() && isError.get<bool>();
  return o;
}

Task<Result<std::unique_ptr<McpServers>>> McpServers::start(
    const std::vector<api::request::McpServerSpec>& servers,
    std::shared_ptr<runtime::RuntimeClient> rt, asio::local::stream_protocol::acceptor& channel,
    const Options& options) {
  const asio::any_io_executor ex = co_await asio::this_coro::executor;
  std::unique_ptr<McpServers> out(new McpServers(ex, rt));
  for (const api::request::McpServerSpec& spec : servers) {
    const std::string who = "MCP server '" + spec.name + "' " + describeCommand(spec.command);
    Server server;
    server.name = spec.name;
    server.pidFile = "/tmp/.kiln-mcp-" + spec.name + ".pid";
    server.proc = std::make_shared<SandboxProcess>(ex);
    const runtime::ExecRequest req = mcpServerExec(spec, server.pidFile, options);
    std::shared_ptr<SandboxProcess> proc = server.proc;
    asio::co_spawn(ex, runMcpServer(rt, req, proc), asio::detached);
    out->servers_.push_back(server);  // from here on stop() ends it

    // The bridge connects before it starts the server: the channel is accepted at once, unless
    // bash itself failed.
    auto socket = std::make_shared<Socket>(ex);
    channel.async_accept(*socket, [proc, socket](const boost::system::error_code& ec) {
      if (!ec) proc->accepted = true;
      proc->wake.cancel();
    });
    const auto until = std::chrono::steady_clock::now() + options.startTimeout;
    std::function<bool()> accepted = [&proc] { return proc->accepted; };
    co_await waitFor(*proc, accepted, until);
    if (!proc->accepted) {
      boost::system::error_code ignored;
      channel.cancel(ignored);
      co_await out->stop();
      co_return Status(Code::kUnavailable, who + " never connected its stdio" + exitDetail(*proc));
    }
    const std::string workdir = options.workdir;
    AcpConnection::RequestHandler onRequest = [workdir](const std::string& method,
                                                        const json&) -> Task<Result<json>> {
      co_return serverRequestAnswer(method, workdir);
    };
    AcpConnection::NotificationHandler onNotification = [](const std::string&, const json&) {};
    auto conn = std::make_shared<AcpConnection>(std::move(*socket), onRequest, onNotification);
    conn->start();
    out->servers_.back().conn = conn;

    const json init = mcpInitializeParams();
    auto initialized = co_await conn->call("initialize", init, options.startTimeout);
    Status failed;
    if (!initialized.isOk()) {
      failed = Status(Code::kUnavailable,
                      who + " did not answer initialize: " + initialized.status().message());
    } else {
      conn->notify("notifications/initialized", json());
      std::string cursor;
      for (int page = 0; page < kMaxListPages; ++page) {
        const json params = mcpListParams(cursor);
        auto listed = co_await conn->call("tools/list", params, options.startTimeout);
        if (!listed.isOk()) {
          failed = Status(Code::kUnavailable,
                          who + " did not list its tools: " + listed.status().message());
          break;
        }
        out->addTools(out->servers_.size() - 1, *listed);
        cursor = stringAt(*listed, "nextCursor");
        if (cursor.empty()) break;
      }
    }
    if (!failed.isOk()) {
      co_await awaitExit(*proc);
      const std::string detail = exitDetail(*proc);
      co_await out->stop();
      co_return Status(Code::kUnavailable, failed.message() + detail);
    }
    spdlog::info("{} started", who);
  }
  co_return std::move(out);
}

void McpServers::addTools(size_t server, const json& listed) {
  const std::string& name = servers_[server].name;
  const json& tools = fieldAt(listed, "tools");
  if (!tools.is_array()) return;
  size_t& added = servers_[server].tools;  // over every page of its list
  for (const json& t : tools) {
    if (stringAt(t, "name").empty()) continue;
    if (added == kMaxToolsPerServer) {
      spdlog::warn("MCP server '{}': tools past the first {} are not offered", name,
                   kMaxToolsPerServer);
      break;
    }
    json schema = mcpToolSchema(name, t);
    const std::string exposed = schema["name"].get<std::string>();
    if (tools_.count(exposed)) {
      spdlog::warn("MCP server '{}': tool '{}' is not offered: its name {} is taken", name,
                   stringAt(t, "name"), exposed);
      continue;
    }
    Tool tool;
    tool.server = server;
    tool.name = stringAt(t, "name");
    const json& readOnly = fieldAt(fieldAt(t, "annotations"), "readOnlyHint");
    tool.readOnly = readOnly.is_boolean() && readOnly.get<bool>();
    tools_[exposed] = tool;
    schemas_.push_back(std::move(schema));
    ++added;
  }
}

Task<Observation> McpServers::call(const ToolCall& call, int64_t timeoutMs) {
  auto it = tools_.find(call.name);
  if (it == tools_.end()) co_return errorObservation("unknown tool '" + call.name + "'");
  const Tool tool = it->second;
  if (std::string bad = badMcpArguments(call); !bad.empty()) co_return errorObservation(bad);
  Server& server = servers_[tool.server];
  if (!server.conn || server.conn->closed()) {
    co_await awaitExit(*server.proc);
    co_return errorObservation("the MCP server '" + server.name + "' is gone" +
                               exitDetail(*server.proc) + "; its tools cannot run");
  }
  const json params = mcpCallParams(tool.name, call.arguments);
  const auto timeout = std::chrono::milliseconds(std::max<int64_t>(timeoutMs, 1));
  auto answer = co_await server.conn->call("tools/call", params, timeout);
  Observation obs;
  if (!answer.isOk()) {
    const Status& st = answer.status();
    std::string why;
    if (st.code() == Code::kUnprocessable) {
      why = st.message();  // a JSON-RPC error answer
    } else if (st.code() == Code::kDeadlineExceeded) {
      why = "no answer within " + std::to_string(timeout.count() / 1000) + " s";
    } else {
      co_await awaitExit(*server.proc);
      why = "the server is gone" + exitDetail(*server.proc);
    }
    obs = errorObservation("MCP server '" + server.name + "': " + tool.name + ": " + why);
  } else {
    obs = mcpObservation(*answer);
  }
  // What a tool does is the server's: diffed after, unless it says it only reads, but never
  // taken for an attempt to change the workspace (three calls that change no file are no loop).
  obs.mayChangeWorkspace = !tool.readOnly;
  co_return obs;
}

Task<void> McpServers::awaitExit(SandboxProcess& proc) {
  std::function<bool()> never = [] { return false; };
  co_await waitFor(proc, never, std::chrono::steady_clock::now() + kExitReportWait);
}

runtime::ExecRequest McpServers::killRequest() const {
  std::string files;
  for (const Server& s : servers_) files += " " + s.pidFile;
  runtime::ExecRequest kill;
  kill.cmd = "kill $(cat" + files + " 2>/dev/null) 2>/dev/null; true";
  kill.timeoutMs = 10'000;
  return kill;
}

void McpServers::closeConnections() {
  for (Server& s : servers_)
    if (s.conn) s.conn->close();
}

Task<void> McpServers::stop() {
  if (stopped_) co_return;
  stopped_ = true;
  // Most servers end when their stdin closes; the others are killed.
  closeConnections();
  auto running = [this] {
    for (const Server& s : servers_)
      if (!s.proc->done) return true;
    return false;
  };
  for (int round = 0; round < 2 && running(); ++round) {
    if (round == 1) {
      const runtime::ExecRequest kill = killRequest();
      runtime::ChunkFn none;
      (void)co_await rt_->exec(kill, none);
    }
    const auto deadline = std::chrono::steady_clock::now() + kStopGrace;
    for (Server& s : servers_) {
      std::function<bool()> ended = [&s] { return s.proc->done; };
      co_await waitFor(*s.proc, ended, deadline);
    }
  }
}

McpServers::~McpServers() {
  if (stopped_) return;
  closeConnections();
  runtime::ExecRequest kill = killRequest();
  std::shared_ptr<runtime::RuntimeClient> rt = rt_;
  asio::co_spawn(ex_, killMcpServers(rt, kill), asio::detached);
}

}  // namespace kiln::agent
