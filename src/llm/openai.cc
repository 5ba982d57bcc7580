// Chat Completions wire format: POST {base}/chat/completions with messages, tools (type
// function) and, when streaming, SSE chunks whose tool-call deltas arrive by index.
#include <map>

#include "agent/tools.h"
#include "common/sse.h"
#include "llm/http_provider.h"
#include "llm/raw_json.h"

namespace kiln::llm {
namespace {

using agent::Message;
using agent::ModelTurn;
using agent::ToolCall;
using nlohmann::json;

json assistantMessage(const Message& m) {
  json j = json::object();
  j["role"] = "assistant";
  if (m.refusal) {  // sent back as the API gave it: no content, the refusal beside it
    j["content"] = nullptr;
    j["refusal"] = m.content;
  } else if (m.toolCalls.empty()) {
    j["content"] = m.content;
  } else {
    j["content"] = m.content.empty() ? json(nullptr) : json(m.content);
  }
  if (m.toolCalls.empty()) return j;
  json calls = json::array();
  for (const ToolCall& c : m.toolCalls) {
    json fn = json::object();
    fn["name"] = c.name;
    fn["arguments"] = toolArgumentsText(c);
    json call = json::object();
    call["id"] = c.id;
    call["type"] = "function";
    call["function"] = std::move(fn);
    calls.push_back(std::move(call));
  }
  j["tool_calls"] = std::move(calls);
  return j;
}

json wireMessage(const Message& m) {
  if (m.role == "assistant") return assistantMessage(m);
  json j = json::object();
  j["role"] = m.role;
  j["content"] = m.content;
  if (m.role == "tool") j["tool_call_id"] = m.toolCallId;
  return j;
}

json openAiTools(const agent::TaskInfo& task) {
  json tools = json::array();
  for (const json& schema : agent::toolSchemas(task)) {
    json t = json::object();
    t["type"] = "function";
    t["function"] = schema;
    tools.push_back(std::move(t));
  }
  return tools;
}

json openAiRequestBody(const LlmConfig& cfg, const agent::TaskInfo& task,
                 const std::vector<Message>& context) {
  json body = json::object();
  body["model"] = cfg.model;
  json messages = json::array();
  for (const Message& m : context) messages.push_back(wireMessage(m));
  body["messages"] = std::move(messages);
  body["tools"] = openAiTools(task);
  if (cfg.maxTokens > 0) body["max_tokens"] = cfg.maxTokens;
  if (cfg.temperature) body["temperature"] = *cfg.temperature;
  if (cfg.stream) {
    body["stream"] = true;
    body["stream_options"] = json::object();
    body["stream_options"]["include_usage"] = true;
  }
  return body;
}

void addUsage(const json& usage, ModelTurn& turn) {
  if (!usage.is_object()) return;
  turn.tokensIn = usage.value("prompt_tokens", int64_t{0});
  turn.tokensOut = usage.value("completion_tokens", int64_t{0});
}

std::string callId(const json& j, size_t index) {
  if (j.contains("id") && j["id"].is_string() && !j["id"].get<std::string>().empty())
    return j["id"].get<std::string>();
  return "call_" + std::to_string(index);  // some compatible servers send no ids
}

// A refusal joins whatever content came with it; the turn is marked so it goes back as one.
void addRefusal(const std::string& refusal, ModelTurn& turn) {
  if (refusal.empty()) return;
  turn.refusal = true;
  turn.thought += (turn.thought.empty() ? "" : "\n\n") + refusal;
}

Result<ModelTurn> parseCompletion(const std::string& body) {
  json j = json::parse(body, nullptr, false);
  if (!j.is_object() || !j.contains("choices") || !j["choices"].is_array() ||
      j["choices"].empty() || !j["choices"][0].is_object())
    return Status(Code::kUnavailable, "malformed chat completion: " + body.substr(0, 200));
  ModelTurn turn;
  const json& msg = j["choices"][0].value("message", json::object());
  if (msg.contains("content") && msg["content"].is_string()) turn.thought = msg["content"];
  if (msg.contains("refusal") && msg["refusal"].is_string()) addRefusal(msg["refusal"], turn);
  const json& calls = msg.contains("tool_calls") && msg["tool_calls"].is_array() ? msg["tool_calls"]
                                                                                 : json::array();
  for (size_t i = 0; i < calls.size(); ++i) {
    const json& c = calls[i];
    if (!c.is_object()) continue;
    const json& fn = c.value("function", json::object());
    ToolCall call;
    call.id = callId(c, i);
    call.name = fn.value("name", "");
    const json& args = fn.contains("arguments") ? fn["arguments"] : json();
    if (args.is_string()) {
      call.rawArguments = args.get<std::string>();
      call.arguments = parseToolArguments(call.rawArguments);
    } else if (args.is_object()) {  // some compatible servers send an object: keep its text
      call.arguments = args;
      auto raw = rawJsonAt(
          body, {"choices", size_t{0}, "message", "tool_calls", i, "function", "arguments"});
      if (raw) call.rawArguments = std::string(*raw);
    }
    turn.calls.push_back(std::move(call));
  }
  addUsage(j.value("usage", json()), turn);
  return turn;
}

// Assembles a streamed completion: content deltas are appended, tool calls are keyed by their
// index and their argument text arrives in pieces.
class OpenAiParser : public TurnParser {
 public:
  OpenAiParser(bool stream) : stream_(stream) {}

  void onBytes(std::string_view bytes) override {
    for (const SseEvent& e : sse_.feed(bytes)) onEvent(e.event, e.data);
  }

  Result<ModelTurn> finish(const HttpResponse& resp) override {
    if (!stream_) return parseCompletion(resp.body);
    if (!error_.empty()) return Status(Code::kUnavailable, "stream error: " + error_);
    // Ended by [DONE] or by a finish_reason (some servers close without [DONE]), like the
    // Anthropic parser's message_stop or stop message_delta.
    if (!done_ && !finished_) return Status(Code::kUnavailable, kStreamEndedEarly);
    for (auto& [index, p] : partial_) {
      ToolCall call;
      call.id = p.id.empty() ? "call_" + std::to_string(index) : p.id;
      call.name = p.name;
      call.arguments = parseToolArguments(p.args);
      call.rawArguments = p.args;
      turn_.calls.push_back(std::move(call));
    }
    addRefusal(refusal_, turn_);
    return turn_;
  }

 private:
  struct PartialCall {
    std::string id, name, args;
  };

  void onEvent(const std::string& /*event*/, const std::string& data) {
    if (data == "[DONE]") {
      done_ = true;
      return;
    }
    json j = json::parse(data, nullptr, false);
    if (!j.is_object()) return;
    if (j.contains("error")) error_ = apiErrorMessage(data);
    if (j.contains("usage")) addUsage(j["usage"], turn_);
    if (!j.contains("choices") || !j["choices"].is_array()) return;
    for (const json& choice : j["choices"]) {
      if (!choice.is_object()) continue;
      if (choice.contains("finish_reason") && choice["finish_reason"].is_string()) finished_ = true;
      if (choice.contains("delta") && choice["delta"].is_object()) onDelta(choice["delta"]);
    }
  }

  void onDelta(const json& delta) {
    if (delta.contains("content") && delta["content"].is_string())
      turn_.thought += delta["content"].get<std::string>();
    if (delta.contains("refusal") && delta["refusal"].is_string())
      refusal_ += delta["refusal"].get<std::string>();
    if (!delta.contains("tool_calls") || !delta["tool_calls"].is_array()) return;
    for (const json& tc : delta["tool_calls"]) {
      if (!tc.is_object()) continue;
      int index =
          tc.contains("index") && tc["index"].is_number_integer() ? tc["index"].get<int>() : 0;
      PartialCall& p = partial_[index];
      if (tc.contains("id") && tc["id"].is_string()) p.id = tc["id"];
      const json& fn = tc.value("function", json::object());
      if (fn.contains("name") && fn["name"].is_string()) p.name += fn["name"].get<std::string>();
      if (fn.contains("arguments") && fn["arguments"].is_string())
        p.args += fn["arguments"].get<std::string>();
    }
  }

  bool stream_;
  SseParser sse_;
  ModelTurn turn_;
  std::map<int, PartialCall> partial_;
  std::string refusal_;  // streamed apart from the content
  bool done_ = false;
  bool finished_ = false;
  std::string error_;
};

class OpenAiProvider : public HttpProvider {
 public:
  using HttpProvider::HttpProvider;
  std::string name() const override { return "openai"; }

 protected:
  HttpRequest buildRequest(const agent::TaskInfo& task,
                           const std::vector<Message>& context) const override {
    std::vector<std::string> headers;
    if (!config().apiKey.empty()) headers.push_back("Authorization: Bearer " + config().apiKey);
    return postJson("/chat/completions", std::move(headers),
                    dumpJson(openAiRequestBody(config(), task, context)));
  }

  std::unique_ptr<TurnParser> makeParser() const override {
    return std::make_unique<OpenAiParser>(config().stream);
  }
};

}  // namespace

std::unique_ptr<agent::Provider> makeOpenAiProvider(LlmConfig config, asio::any_io_executor ex) {
  return std::make_unique<OpenAiProvider>(std::move(config), ex);
}

}  // namespace kiln::llm
