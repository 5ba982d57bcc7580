#include "agent/cli_output.h"

#include "agent/tool_text.h"
#include "common/json_fields.h"

namespace kiln::agent {
namespace {

using json = nlohmann::json;

// A line longer than this is not waited for: it is shown raw instead of parsed.
constexpr size_t kMaxJsonLine = 8 << 20;
int64_t integer(const json& j, const char* key) {
  const json& v = fieldAt(j, key);
  return v.is_number() ? v.get<int64_t>() : 0;
}

// Claude's tool_result content: a string, or an array of blocks of which the text ones count.
std::string resultText(const json& content) {
  if (content.is_string()) return content.get<std::string>();
  if (!content.is_array()) return content.is_null() ? "" : content.dump();
  std::string out;
  for (const auto& b : content) {
    if (!b.is_object()) continue;
    if (stringAt(b, "type") == "text") {
      if (!out.empty()) out += "\n";
      out += stringAt(b, "text");
    } else {
      out += "[" + stringAt(b, "type") + "]";
    }
  }
  return out;
}

// The one argument that says most about a call, for the terminal.
std::string argumentPreview(const json& args) {
  if (!args.is_object()) return capped(args.dump(), 200);
  for (const char* key : {"command", "file_path", "path", "pattern", "query", "url"}) {
    std::string v = stringAt(args, key);
    if (!v.empty()) return capped(v, 200);
  }
  return capped(args.dump(-1, ' ', false, json::error_handler_t::replace), 200);
}

}  // namespace

void AgentOutputParser::feed(std::string_view data) {
  size_t pos = 0;
  while (pos < data.size()) {
    if (rawLine_) {
      size_t nl = data.find('\n', pos);
      size_t end = nl == std::string_view::npos ? data.size() : nl + 1;
      terminal_.append(data.substr(pos, end - pos));
      rawLine_ = nl == std::string_view::npos;
      pos = end;
      continue;
    }
    // A line that does not open with '{' is plain text: pass it through at once, so the output
    // of a text-mode CLI (progress without newlines) is not held back.
    if (pending_.empty() && data[pos] != '{') {
      rawLine_ = true;
      continue;
    }
    size_t nl = data.find('\n', pos);
    if (nl == std::string_view::npos) {
      pending_.append(data.substr(pos));
      if (pending_.size() > kMaxJsonLine) {
        terminal_ += pending_;
        pending_.clear();
        rawLine_ = true;
      }
      return;
    }
    pending_.append(data.substr(pos, nl - pos));
    line(pending_);
    pending_.clear();
    pos = nl + 1;
  }
}

void AgentOutputParser::finish() {
  if (!pending_.empty()) {
    line(pending_);
    pending_.clear();
  }
  rawLine_ = false;
  const std::vector<std::string> unanswered = openOrder_;  // toolFinished edits openOrder_
  for (const auto& id : unanswered) {
    toolFinished(id, "[the CLI reported no result for this call]", true);
  }
  if (!thought_.empty() && finalText_.empty()) finalText_ = thought_;
}

std::string AgentOutputParser::takeTerminal() { return std::exchange(terminal_, std::string()); }

std::vector<CliStep> AgentOutputParser::takeSteps() {
  return std::exchange(steps_, std::vector<CliStep>());
}

void AgentOutputParser::line(std::string_view text) {
  json j = json::parse(text, nullptr, false);
  bool handled = false;
  if (!j.is_discarded() && j.is_object() && j.contains("type") && j["type"].is_string()) {
    // Shapes drift between CLI versions; a field of an unexpected type makes the line raw text
    // rather than ending the job.
    try {
      handled = claudeLine(j) || codexLine(j);
    } catch (const json::exception&) {
      handled = false;
    }
  }
  if (handled) {
    structured_ = true;
  } else {
    terminal_.append(text);
    terminal_ += '\n';
  }
}

void AgentOutputParser::thought(const std::string& text) {
  if (text.empty()) return;
  if (!thought_.empty()) thought_ += "\n";
  thought_ += text;
}

void AgentOutputParser::toolStarted(const std::string& id, const std::string& name,
                                    const json& args) {
  terminal_ += "→ " + name + " " + argumentPreview(args) + "\n";
  if (!open_.count(id)) openOrder_.push_back(id);
  open_[id] = PendingTool{name, args.is_null() ? json::object() : args, std::move(thought_)};
  thought_.clear();
}

void AgentOutputParser::toolFinished(const std::string& id, const std::string& output,
                                     bool isError) {
  auto it = open_.find(id);
  CliStep s;
  if (it != open_.end()) {
    s.step.toolCalled = it->second.name;
    s.step.toolArguments = it->second.arguments;
    s.step.plannerThought = it->second.thought;
    open_.erase(it);
  } else {
    s.step.toolCalled = "tool";
  }
  std::erase(openOrder_, id);
  s.step.phase = "acting";
  s.step.toolOutput = capped(output, kMaxStepOutput);
  s.isError = isError;
  terminal_ += withNewline(capped(output, kTerminalResultBytes));
  steps_.push_back(std::move(s));
}

void AgentOutputParser::resultStep(const std::string& text, const json& usage, double usd,
                                   bool isError) {
  CliStep s;
  s.step.phase = "planning";
  s.step.plannerThought = thought_.empty() ? text : thought_;
  thought_.clear();
  if (isError) s.step.toolOutput = text;
  if (usage.is_object()) {
    s.step.tokensIn = integer(usage, "input_tokens") +
                      integer(usage, "cache_creation_input_tokens") +
                      integer(usage, "cache_read_input_tokens");
    s.step.tokensOut = integer(usage, "output_tokens");
  }
  s.step.usd = usd;
  s.isError = isError;
  steps_.push_back(std::move(s));
}

// Claude Code and Cursor stream-json: system, assistant, user, result (+ Cursor's tool_call).
bool AgentOutputParser::claudeLine(const json& j) {
  const std::string type = stringAt(j, "type");
  if (type == "system") {
    if (stringAt(j, "subtype") == "init") {
      if (!stringAt(j, "session_id").empty()) sessionId_ = stringAt(j, "session_id");
      terminal_ += "[agent session started" +
                   (stringAt(j, "model").empty() ? "" : ", model " + stringAt(j, "model")) + "]\n";
    }
    return true;
  }
  if (type == "stream_event" || type == "thinking") return true;  // partial deltas: not shown
  if (type == "tool_call") return cursorToolCall(j);
  if (type == "assistant" || type == "user") {
    const json& msg = fieldAt(j, "message");
    if (!msg.is_object()) return false;
    const json& content = fieldAt(msg, "content");
    if (content.is_string()) {
      if (type == "assistant") thought(content.get<std::string>());
      terminal_ += withNewline(content.get<std::string>());
      return true;
    }
    if (!content.is_array()) return false;
    for (const auto& b : content) {
      if (!b.is_object()) continue;
      const std::string bt = stringAt(b, "type");
      if (bt == "text" && type == "assistant") {
        thought(stringAt(b, "text"));
        terminal_ += withNewline(stringAt(b, "text"));
      } else if (bt == "thinking") {
        thought(stringAt(b, "thinking"));
      } else if (bt == "tool_use") {
        toolStarted(stringAt(b, "id"), stringAt(b, "name"), fieldAt(b, "input"));
      } else if (bt == "tool_result") {
        const json& err = fieldAt(b, "is_error");
        toolFinished(stringAt(b, "tool_use_id"), resultText(fieldAt(b, "content")),
                     err.is_boolean() && err.get<bool>());
      }
    }
    return true;
  }
  if (type == "result") {
    const json& err = fieldAt(j, "is_error");
    bool isError = (err.is_boolean() && err.get<bool>()) ||
                   (stringAt(j, "subtype") != "" && stringAt(j, "subtype") != "success");
    std::string text = stringAt(j, "result");
    if (!text.empty()) finalText_ = text;
    const json& cost = fieldAt(j, "total_cost_usd");
    double usd = cost.is_number() ? cost.get<double>() : 0;
    terminal_ += "[agent finished" + std::string(isError ? " with an error" : "") +
                 (usd > 0 ? ", $" + std::to_string(usd) : "") + "]\n";
    resultStep(text, fieldAt(j, "usage"), usd, isError);
    return true;
  }
  return false;
}

// Cursor: {"type":"tool_call","subtype":"started"|"completed","call_id":…,
//          "tool_call":{"<kind>ToolCall":{"args":{…},"result":{…}}}}
bool AgentOutputParser::cursorToolCall(const json& j) {
  const json& call = fieldAt(j, "tool_call");
  if (!call.is_object() || call.empty()) return false;
  const std::string kind = call.begin().key();
  const json& body = call.begin().value();
  std::string name = kind;
  if (name.size() > 8 && name.ends_with("ToolCall")) name.resize(name.size() - 8);
  const std::string id = stringAt(j, "call_id");
  const std::string subtype = stringAt(j, "subtype");
  if (subtype == "started") {
    toolStarted(id, name, fieldAt(body, "args"));
  } else if (subtype == "completed") {
    if (!open_.count(id)) toolStarted(id, name, fieldAt(body, "args"));
    const json& result = fieldAt(body, "result");
    bool isError = result.is_object() && !result.contains("success");
    toolFinished(id,
                 result.is_null() ? "" : result.dump(2, ' ', false, json::error_handler_t::replace),
                 isError);
  }
  return true;
}

// Codex `exec --json`: thread.started, turn.started/completed/failed, item.*, error.
bool AgentOutputParser::codexLine(const json& j) {
  const std::string type = stringAt(j, "type");
  if (type == "thread.started" && !stringAt(j, "thread_id").empty()) sessionId_ = stringAt(j, "thread_id");
  if (type == "thread.started" || type == "turn.started") return true;
  if (type == "turn.completed") {
    resultStep(finalText_, fieldAt(j, "usage"), 0, false);
    return true;
  }
  if (type == "turn.failed" || type == "error") {
    std::string msg = type == "error" ? stringAt(j, "message") : stringAt(fieldAt(j, "error"), "message");
    terminal_ += "error: " + msg + "\n";
    if (type == "turn.failed") resultStep(msg, json(), 0, true);
    return true;
  }
  if (type.rfind("item.", 0) == 0) {
    const json& item = fieldAt(j, "item");
    return item.is_object() && codexItem(type, item);
  }
  return false;
}

bool AgentOutputParser::codexItem(const std::string& event, const json& item) {
  // Early versions named the item kind `item_type`.
  std::string kind = stringAt(item, "type").empty() ? stringAt(item, "item_type") : stringAt(item, "type");
  const std::string id = stringAt(item, "id");
  bool completed = event == "item.completed";
  if (kind == "command_execution") {
    json args = {{"command", stringAt(item, "command")}};
    if (!open_.count(id)) toolStarted(id, kind, args);
    if (completed) {
      const json& code = fieldAt(item, "exit_code");
      bool failed = (code.is_number() && code.get<int>() != 0) || stringAt(item, "status") == "failed";
      std::string out = stringAt(item, "aggregated_output");
      if (code.is_number())
        out = withNewline(out) + "[exit " + std::to_string(code.get<int>()) + "]";
      toolFinished(id, out, failed);
    }
    return true;
  }
  if (kind == "mcp_tool_call") {
    if (!open_.count(id)) {
      toolStarted(id, stringAt(item, "server") + "." + stringAt(item, "tool"), fieldAt(item, "arguments"));
    }
    if (completed) {
      const json& result = fieldAt(item, "result");
      const json& error = fieldAt(item, "error");
      bool failed = !error.is_null() || stringAt(item, "status") == "failed";
      std::string out = failed ? (error.is_object() ? stringAt(error, "message") : error.dump())
                               : (result.is_null() ? "" : result.dump());
      toolFinished(id, out, failed);
    }
    return true;
  }
  if (!completed) return true;
  if (kind == "agent_message" || kind == "assistant_message") {
    finalText_ = stringAt(item, "text");
    thought(finalText_);
    terminal_ += withNewline(finalText_);
  } else if (kind == "reasoning") {
    thought(stringAt(item, "text"));
  } else if (kind == "file_change" || kind == "web_search") {
    json args = kind == "file_change" ? json{{"changes", fieldAt(item, "changes")}}
                                      : json{{"query", stringAt(item, "query")}};
    toolStarted(id, kind, args);
    toolFinished(id, stringAt(item, "status"), stringAt(item, "status") == "failed");
  } else if (kind == "error") {
    terminal_ += "error: " + stringAt(item, "message") + "\n";
  }
  return true;
}

}  // namespace kiln::agent
