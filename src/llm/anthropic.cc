// Messages API wire format: POST {base}/v1/messages with a top-level system prompt, content
// blocks (text, tool_use, tool_result) and tools with input_schema; streaming is a sequence of
// typed SSE events (message_start, content_block_*, message_delta, message_stop).
#include <map>

#include "agent/tools.h"
#include "llm/http_provider.h"
#include "llm/sse.h"

namespace kiln::llm {
namespace {

using agent::Message;
using agent::ModelTurn;
using agent::ToolCall;
using nlohmann::json;

json textBlock(const std::string& text) {
  json b = json::object();
  b["type"] = "text";
  // The API rejects empty text blocks.
  b["text"] = text.empty() ? "(empty)" : text;
  return b;
}

json contentBlocks(const Message& m) {
  json blocks = json::array();
  if (m.role == "tool") {
    json b = json::object();
    b["type"] = "tool_result";
    b["tool_use_id"] = m.toolCallId;
    b["content"] = m.content.empty() ? "(no output)" : m.content;
    blocks.push_back(std::move(b));
    return blocks;
  }
  if (!m.content.empty() || m.toolCalls.empty()) blocks.push_back(textBlock(m.content));
  for (const ToolCall& c : m.toolCalls) {
    json b = json::object();
    b["type"] = "tool_use";
    b["id"] = c.id;
    b["name"] = c.name;
    b["input"] = c.arguments.is_object() ? c.arguments : json::object();
    blocks.push_back(std::move(b));
  }
  return blocks;
}

// Tool results travel in user turns, and the API wants user and assistant turns to alternate,
// so consecutive messages of one role are merged.
json wireMessages(const std::vector<Message>& context) {
  json out = json::array();
  for (const Message& m : context) {
    if (m.role == "system") continue;
    std::string role = m.role == "assistant" ? "assistant" : "user";
    json blocks = contentBlocks(m);
    if (!out.empty() && out.back()["role"] == role) {
      for (auto& b : blocks) out.back()["content"].push_back(std::move(b));
      continue;
    }
    json msg = json::object();
    msg["role"] = role;
    msg["content"] = std::move(blocks);
    out.push_back(std::move(msg));
  }
  return out;
}

json wireTools() {
  json tools = json::array();
  for (const json& schema : agent::toolSchemas()) {
    json t = json::object();
    t["name"] = schema["name"];
    t["description"] = schema["description"];
    t["input_schema"] = schema["parameters"];
    tools.push_back(std::move(t));
  }
  return tools;
}

json requestBody(const LlmConfig& cfg, const std::vector<Message>& context) {
  json body = json::object();
  body["model"] = cfg.model;
  body["max_tokens"] = cfg.maxTokens > 0 ? cfg.maxTokens : 4096;
  std::string system;
  for (const Message& m : context) {
    if (m.role == "system") system += (system.empty() ? "" : "\n\n") + m.content;
  }
  if (!system.empty()) body["system"] = system;
  body["messages"] = wireMessages(context);
  body["tools"] = wireTools();
  if (cfg.temperature) body["temperature"] = *cfg.temperature;
  if (cfg.stream) body["stream"] = true;
  return body;
}

int64_t inputTokens(const json& usage) {
  if (!usage.is_object()) return 0;
  // Cached prompt tokens are billed differently, but they are prompt tokens all the same.
  return usage.value("input_tokens", int64_t{0}) +
         usage.value("cache_creation_input_tokens", int64_t{0}) +
         usage.value("cache_read_input_tokens", int64_t{0});
}

void addBlock(const json& b, ModelTurn& turn) {
  if (!b.is_object()) return;
  std::string type = b.value("type", "");
  if (type == "text") {
    turn.thought += b.value("text", "");
  } else if (type == "tool_use") {
    ToolCall call;
    call.id = b.value("id", "");
    call.name = b.value("name", "");
    const json& in = b.contains("input") ? b["input"] : json::object();
    call.arguments = in.is_object()   ? in
                     : in.is_string() ? parseToolArguments(in.get<std::string>())
                                      : parseToolArguments(dumpJson(in));
    turn.calls.push_back(std::move(call));
  }
}

Result<ModelTurn> parseMessage(const std::string& body) {
  json j = json::parse(body, nullptr, false);
  if (!j.is_object() || !j.contains("content") || !j["content"].is_array())
    return Status(Code::kUnavailable, "malformed messages response: " + body.substr(0, 200));
  ModelTurn turn;
  for (const json& b : j["content"]) addBlock(b, turn);
  const json& usage = j.value("usage", json::object());
  turn.tokensIn = inputTokens(usage);
  turn.tokensOut = usage.is_object() ? usage.value("output_tokens", int64_t{0}) : 0;
  return turn;
}

// Assembles a streamed message from its events; tool input arrives as partial JSON text.
class AnthropicParser : public TurnParser {
 public:
  AnthropicParser(bool stream)
      : stream_(stream), sse_([this](auto& e, auto& d) { onEvent(e, d); }) {}

  void onBytes(std::string_view bytes) override { sse_.feed(bytes); }

  Result<ModelTurn> finish(const HttpResponse& resp) override {
    if (!stream_) return parseMessage(resp.body);
    if (!error_.empty()) return Status(Code::kUnavailable, "stream error: " + error_);
    if (!stopped_) return Status(Code::kUnavailable, "stream ended before message_stop");
    for (auto& [index, b] : blocks_) {
      if (b.type == "text") {
        turn_.thought += b.text;
      } else if (b.type == "tool_use") {
        ToolCall call;
        call.id = b.id;
        call.name = b.name;
        call.arguments = parseToolArguments(b.text);
        turn_.calls.push_back(std::move(call));
      }
    }
    return turn_;
  }

 private:
  struct Block {
    std::string type, id, name, text;  // text: the text, or the tool input's JSON
  };

  void onEvent(const std::string& event, const std::string& data) {
    json j = json::parse(data, nullptr, false);
    if (!j.is_object()) return;
    std::string type = j.value("type", event);
    if (type == "message_start") {
      const json& msg = j.value("message", json::object());
      const json& usage = msg.is_object() ? msg.value("usage", json::object()) : json::object();
      turn_.tokensIn = inputTokens(usage);
      if (usage.is_object()) turn_.tokensOut = usage.value("output_tokens", int64_t{0});
    } else if (type == "content_block_start") {
      startBlock(j.value("index", 0), j.value("content_block", json::object()));
    } else if (type == "content_block_delta") {
      addDelta(j.value("index", 0), j.value("delta", json::object()));
    } else if (type == "message_delta") {
      const json& usage = j.value("usage", json::object());
      if (usage.is_object() && usage.contains("output_tokens"))
        turn_.tokensOut = usage.value("output_tokens", int64_t{0});
    } else if (type == "message_stop") {
      stopped_ = true;
    } else if (type == "error") {
      error_ = apiErrorMessage(data);
    }
  }

  void startBlock(int index, const json& cb) {
    if (!cb.is_object()) return;
    Block& b = blocks_[index];
    b.type = cb.value("type", "");
    b.id = cb.value("id", "");
    b.name = cb.value("name", "");
    if (b.type == "text") b.text = cb.value("text", "");
  }

  void addDelta(int index, const json& d) {
    if (!d.is_object()) return;
    Block& b = blocks_[index];
    std::string type = d.value("type", "");
    if (type == "text_delta") b.text += d.value("text", "");
    if (type == "input_json_delta") b.text += d.value("partial_json", "");
  }

  bool stream_;
  SseParser sse_;
  ModelTurn turn_;
  std::map<int, Block> blocks_;
  bool stopped_ = false;
  std::string error_;
};

class AnthropicProvider : public HttpProvider {
 public:
  using HttpProvider::HttpProvider;
  std::string name() const override { return "anthropic"; }

 protected:
  HttpRequest buildRequest(const std::vector<Message>& context) const override {
    std::vector<std::string> headers = {"anthropic-version: 2023-06-01"};
    if (!config().apiKey.empty()) headers.push_back("x-api-key: " + config().apiKey);
    return postJson("/v1/messages", std::move(headers), requestBody(config(), context));
  }

  std::unique_ptr<TurnParser> makeParser() const override {
    return std::make_unique<AnthropicParser>(config().stream);
  }
};

}  // namespace

std::unique_ptr<agent::Provider> makeAnthropicProvider(LlmConfig config, asio::any_io_executor ex) {
  return std::make_unique<AnthropicProvider>(std::move(config), ex);
}

}  // namespace kiln::llm
