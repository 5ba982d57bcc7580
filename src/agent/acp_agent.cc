#include "agent/acp_agent.h"

#include <spdlog/spdlog.h>

#include "agent/acp_connection.h"
#include "agent/sandbox_process.h"
#include "agent/step_writer.h"
#include "agent/terminal_stream.h"
#include "agent/tool_text.h"

namespace kiln::agent {
namespace {

using json = nlohmann::json;
using Socket = asio::local::stream_protocol::socket;

// After its turn, the agent is asked to exit (SIGTERM); its command ends within this.
constexpr int kStopTimeoutMs = 10'000;

// The text of ACP content: a content block, or a tool call's content list (text blocks, diffs).
std::string contentText(const json& content) {
  if (content.is_string()) return content.get<std::string>();
  if (content.is_object()) {
    if (stringAt(content, "type") == "text") return stringAt(content, "text");
    if (stringAt(content, "type") == "content") return contentText(fieldAt(content, "content"));
    if (stringAt(content, "type") == "diff") {
      return "--- " + stringAt(content, "path") + "\n" + stringAt(content, "oldText") + "\n+++ " +
             stringAt(content, "path") + "\n" + stringAt(content, "newText");
    }
    return "";
  }
  std::string out;
  if (content.is_array()) {
    for (const auto& c : content) {
      std::string t = contentText(c);
      if (t.empty()) continue;
      if (!out.empty()) out += "\n";
      out += t;
    }
  }
  return out;
}

// The approval gate a tool kind belongs to (docs/api.md, `approvals`).
std::string gateFor(const std::string& kind) {
  if (kind == "execute") return "bash";
  if (kind == "edit" || kind == "delete" || kind == "move") return "edit";
  return kind.empty() ? "other" : kind;
}

// The option of one of `kinds` (in order of preference) the agent offered.
std::string optionOf(const json& options, std::initializer_list<const char*> kinds) {
  if (!options.is_array()) return "";
  for (const char* kind : kinds) {
    for (const auto& o : options) {
      if (stringAt(o, "kind") == kind && !stringAt(o, "optionId").empty())
        return stringAt(o, "optionId");
    }
  }
  return "";
}

json selected(const std::string& optionId) {
  json outcome = json::object();
  if (optionId.empty()) {
    outcome["outcome"] = "cancelled";
  } else {
    outcome["outcome"] = "selected";
    outcome["optionId"] = optionId;
  }
  json r = json::object();
  r["outcome"] = std::move(outcome);
  return r;
}

json initializeParams() {
  json fs = json::object();
  fs["readTextFile"] = false;
  fs["writeTextFile"] = false;
  json caps = json::object();
  caps["fs"] = std::move(fs);
  caps["terminal"] = false;
  json info = json::object();
  info["name"] = "kiln";
  info["version"] = "1";
  json p = json::object();
  p["protocolVersion"] = 1;
  p["clientCapabilities"] = std::move(caps);
  p["clientInfo"] = std::move(info);
  return p;
}

json sessionParams(const std::string& sessionId, const std::string& workdir) {
  json p = json::object();
  if (!sessionId.empty()) p["sessionId"] = sessionId;
  p["cwd"] = workdir;
  p["mcpServers"] = json::array();
  return p;
}

json promptParams(const std::string& sessionId, const std::string& prompt) {
  json block = json::object();
  block["type"] = "text";
  block["text"] = prompt;
  json p = json::object();
  p["sessionId"] = sessionId;
  p["prompt"] = json::array({block});
  return p;
}

json wallFailure() {
  json f = json::object();
  f["code"] = "budget_exceeded";
  f["limit"] = "maxWallSeconds";
  f["message"] = "the ACP agent's turn ran longer than the job's time limit";
  return f;
}

json agentFailure(const std::string& message, int exitCode) {
  json f = json::object();
  f["code"] = "agent_failed";
  f["message"] = message;
  if (exitCode >= 0) f["exitCode"] = exitCode;
  return f;
}

void forward(AcpUpdates& updates, TerminalStream& terminal, StepWriter& writer) {
  std::string text = updates.takeTerminal();
  if (!text.empty()) terminal.push("stdout", text);
  for (auto& s : updates.takeSteps()) writer.push(std::move(s));
}

}  // namespace

// --- AcpUpdates ------------------------------------------------------------------------------

std::string AcpUpdates::kindOf(const std::string& id) const {
  auto it = open_.find(id);
  return it == open_.end() ? "" : it->second.kind;
}

std::string AcpUpdates::titleOf(const std::string& id) const {
  auto it = open_.find(id);
  return it == open_.end() ? "" : it->second.title;
}

void AcpUpdates::update(const json& u) {
  if (!u.is_object()) return;
  const std::string kind = stringAt(u, "sessionUpdate");
  if (kind == "agent_message_chunk") {
    const std::string t = contentText(fieldAt(u, "content"));
    text_ += t;
    terminal_ += t;
  } else if (kind == "agent_thought_chunk") {
    text_ += contentText(fieldAt(u, "content"));
  } else if (kind == "tool_call") {
    toolCall(u, true);
  } else if (kind == "tool_call_update") {
    toolCall(u, false);
    const std::string status = stringAt(u, "status");
    if (status == "completed" || status == "failed") {
      finishTool(stringAt(u, "toolCallId"), u, status == "failed");
    }
  } else if (kind == "plan") {
    const json& entries = fieldAt(u, "entries");
    if (entries.is_array()) {
      terminal_ += withNewline("") + "[plan]\n";
      for (const auto& e : entries) terminal_ += "  - " + stringAt(e, "content") + "\n";
    }
  }
}

void AcpUpdates::toolCall(const json& u, bool first) {
  const std::string id = stringAt(u, "toolCallId");
  if (id.empty()) return;
  Tool& t = open_[id];
  if (first && t.name.empty()) {
    t.thought = std::exchange(text_, std::string());
    if (!t.thought.empty()) terminal_ += "\n";
  }
  const json& meta = fieldAt(fieldAt(u, "_meta"), "claudeCode");
  if (!stringAt(meta, "toolName").empty()) t.name = stringAt(meta, "toolName");
  if (!stringAt(u, "kind").empty()) t.kind = stringAt(u, "kind");
  if (!stringAt(u, "title").empty()) t.title = stringAt(u, "title");
  if (t.name.empty()) t.name = !t.kind.empty() ? t.kind : t.title;
  const json& input = fieldAt(u, "rawInput");
  if (input.is_object() && !input.empty()) t.input = input;
  if (!t.shown && !t.input.empty()) {
    t.shown = true;
    terminal_ += "→ " + capped(t.title.empty() ? t.name : t.title, 200) + "\n";
  }
  const std::string status = stringAt(u, "status");
  if (status == "completed" || status == "failed") finishTool(id, u, status == "failed");
}

void AcpUpdates::finishTool(const std::string& id, const json& u, bool failed) {
  auto it = open_.find(id);
  if (it == open_.end()) return;
  Tool t = std::move(it->second);
  open_.erase(it);
  const json& raw = fieldAt(u, "rawOutput");
  std::string output = raw.is_string() ? raw.get<std::string>()
                       : raw.is_null() ? contentText(fieldAt(u, "content"))
                                       : raw.dump(-1, ' ', false, json::error_handler_t::replace);
  if (!t.shown) terminal_ += "→ " + capped(t.title.empty() ? t.name : t.title, 200) + "\n";
  terminal_ += withNewline(capped(output, kTerminalResultBytes));
  CliStep s;
  s.step.phase = "acting";
  s.step.toolCalled = t.name.empty() ? "tool" : t.name;
  s.step.toolArguments = t.input;
  s.step.plannerThought = t.thought;
  s.step.toolOutput = capped(output, kMaxStepOutput);
  s.isError = failed;
  steps_.push_back(std::move(s));
}

std::string AcpUpdates::finish() {
  std::vector<std::string> ids;
  for (const auto& [id, t] : open_) ids.push_back(id);
  for (const auto& id : ids) {
    json none = json::object();
    none["rawOutput"] = "[the agent reported no result for this call]";
    finishTool(id, none, true);
  }
  std::string answer = std::exchange(text_, std::string());
  CliStep s;
  s.step.phase = "planning";
  s.step.plannerThought = answer;
  steps_.push_back(std::move(s));
  terminal_ += withNewline("") + "[agent finished its turn]\n";
  return answer;
}

// --- the run -----------------------------------------------------------------------------------

std::string acpBridgeCommand(const std::vector<std::string>& argv) {
  return channelBridgeCommand(argv, "/tmp/.kiln-acp.pid", "kiln-acp");
}

Task<Result<CliOutcome>> runAcpAgent(const AcpRun& run, int timeoutMs, runtime::RuntimeClient& rt,
                                     asio::local::stream_protocol::acceptor& channel,
                                     TerminalStream& terminal, AcpHooks& hooks) {
  const asio::any_io_executor ex = co_await asio::this_coro::executor;
  const std::string who = describeCommand(run.argv);
  CliHooks writerHooks;
  writerHooks.recordStep = hooks.recordStep;
  StepWriter writer(ex, writerHooks);
  AcpUpdates updates;
  bool loading = false;  // session/load replays the history: not this run's steps

  runtime::ExecRequest req;
  req.cmd = acpBridgeCommand(run.argv);
  req.env = run.env;  // cwd: the sandbox's workdir
  req.timeoutMs = timeoutMs;
  auto proc = std::make_shared<SandboxProcess>(ex);
  runtime::ChunkFn toTerminal = [&terminal](std::string_view stream, std::string_view data) {
    terminal.push(stream, data);
  };
  asio::co_spawn(ex, runSandboxProcess(rt, req, toTerminal, proc), asio::detached);

  // The bridge connects before it starts the agent: the channel is accepted at once, unless
  // bash itself failed.
  Socket socket(ex);
  channel.async_accept(socket, [proc](const boost::system::error_code& ec) {
    if (!ec) proc->accepted = true;
    proc->wake.cancel();
  });
  auto until = std::chrono::steady_clock::now() + run.initializeTimeout;
  std::function<bool()> accepted = [&proc] { return proc->accepted; };
  co_await waitFor(*proc, accepted, until);

  std::shared_ptr<AcpConnection> conn;
  CliOutcome out;
  std::string sessionId;
  if (proc->accepted) {
    AcpConnection::NotificationHandler onNotify = [&](const std::string& method,
                                                      const json& params) {
      if (method != "session/update" || loading) return;
      updates.update(fieldAt(params, "update"));
      forward(updates, terminal, writer);
    };
    AcpConnection::RequestHandler onRequest = [&](const std::string& method,
                                                  const json& params) -> Task<Result<json>> {
      if (method != "session/request_permission") {
        co_return Status(Code::kNotFound, "kiln does not offer " + method);
      }
      const json& call = fieldAt(params, "toolCall");
      const std::string id = stringAt(call, "toolCallId");
      std::string kind = updates.kindOf(id);
      if (kind.empty()) kind = stringAt(call, "kind");
      std::string detail = updates.titleOf(id);
      if (detail.empty()) detail = stringAt(call, "title");
      const json& input = fieldAt(call, "rawInput");
      if (!stringAt(input, "command").empty()) detail = stringAt(input, "command");
      const std::string gate = gateFor(kind);
      const bool allowed = co_await hooks.permit(gate, detail);
      const json& options = fieldAt(params, "options");
      co_return selected(allowed ? optionOf(options, {"allow_once", "allow_always"})
                                 : optionOf(options, {"reject_once", "reject_always"}));
    };
    conn = std::make_shared<AcpConnection>(std::move(socket), onRequest, onNotify);
    conn->start();

    const json initParams = initializeParams();
    auto init = co_await conn->call("initialize", initParams, run.initializeTimeout);
    if (!init.isOk()) {
      // Whatever ended the wait, the agent's own exit says most: give it a moment to finish.
      std::function<bool()> never = [] { return false; };
      co_await waitFor(*proc, never, std::chrono::steady_clock::now() + std::chrono::seconds(2));
      const std::string why = init.status().code() == Code::kDeadlineExceeded
                                  ? "did not answer initialize within " +
                                        std::to_string(run.initializeTimeout.count() / 1000) + " s"
                                  : "failed at initialize: " + init.status().message();
      out.failure = agentFailure("the ACP agent " + who + " " + why + exitDetail(*proc), -1);
    } else {
      const json& caps = fieldAt(*init, "agentCapabilities");
      const json& canLoad = fieldAt(caps, "loadSession");
      if (!run.resumeSessionId.empty() && canLoad.is_boolean() && canLoad.get<bool>()) {
        loading = true;
        const json loadParams = sessionParams(run.resumeSessionId, run.workdir);
        auto loaded = co_await conn->call("session/load", loadParams, run.initializeTimeout);
        loading = false;
        if (loaded.isOk()) {
          sessionId = run.resumeSessionId;
          terminal.push("stdout", "[resumed ACP session " + sessionId + "]\n");
        } else {
          terminal.push("stdout", "[could not resume ACP session " + run.resumeSessionId + ": " +
                                      loaded.status().message() + "; starting anew]\n");
        }
      }
      if (sessionId.empty()) {
        const json newParams = sessionParams("", run.workdir);
        auto created = co_await conn->call("session/new", newParams, run.initializeTimeout);
        if (created.isOk()) sessionId = stringAt(*created, "sessionId");
        if (sessionId.empty()) {
          out.failure = agentFailure("the ACP agent " + who + " did not start a session: " +
                                         (created.isOk() ? "no sessionId in " + created->dump()
                                                         : created.status().message()) +
                                         exitDetail(*proc),
                                     -1);
        }
      }
    }
    if (out.failure.is_null()) {
      if (hooks.onSession) hooks.onSession(sessionId);
      const json prompt = promptParams(sessionId, run.prompt);
      auto turn =
          co_await conn->call("session/prompt", prompt, std::chrono::milliseconds(timeoutMs));
      forward(updates, terminal, writer);
      if (!turn.isOk()) {
        out.failure = turn.status().code() == Code::kDeadlineExceeded
                          ? wallFailure()
                          : agentFailure("the ACP agent " + who + " failed its turn: " +
                                             turn.status().message() + exitDetail(*proc),
                                         -1);
      } else {
        const std::string stop = stringAt(*turn, "stopReason");
        out.summary = updates.finish();
        forward(updates, terminal, writer);
        if (out.summary.empty()) out.summary = "The ACP agent ended its turn (" + stop + ").";
        if (stop == "refusal" || stop == "cancelled") {
          out.failure = agentFailure("the ACP agent ended its turn: " + stop, -1);
        }
      }
    }
  } else {
    out.failure =
        agentFailure("the ACP agent " + who + " never connected its stdio" + exitDetail(*proc), -1);
  }

  // The agent does not exit when its stdin closes: it is asked to, and its command waited for.
  if (!proc->done) {
    runtime::ExecRequest stop;
    stop.cmd = "kill $(cat /tmp/.kiln-acp.pid 2>/dev/null) 2>/dev/null; true";
    stop.timeoutMs = kStopTimeoutMs;
    runtime::ChunkFn ignore = [](std::string_view, std::string_view) {};
    (void)co_await rt.exec(stop, ignore);
  }
  if (conn) conn->close();
  boost::system::error_code ignored;
  channel.close(ignored);
  std::function<bool()> never = [] { return false; };
  co_await waitFor(*proc, never, std::chrono::steady_clock::time_point::max());
  // A permission request still waiting for a human sees the connection closed and ends.
  while (conn && conn->handling() > 0) {
    asio::steady_timer tick(ex);
    tick.expires_after(std::chrono::milliseconds(20));
    boost::system::error_code ec;
    co_await tick.async_wait(asio::redirect_error(asio::use_awaitable, ec));
  }
  Status written = co_await writer.drain();
  co_await terminal.drain();
  if (!written.isOk()) co_return written;
  if (!proc->result.isOk() && out.failure.is_null()) co_return proc->result.status();
  if (proc->result.isOk()) {
    out.exitCode = proc->result->exitCode;
    out.timedOut = proc->result->timedOut;
    out.outputTail = tailOf(proc->result->output);
  }
  co_return out;
}

}  // namespace kiln::agent
