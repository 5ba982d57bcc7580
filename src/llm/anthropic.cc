// Messages API wire format: POST {base}/v1/messages with a top-level system prompt, content
// blocks (text, tool_use, tool_result) and tools with input_schema; streaming is a sequence of
// typed SSE events (message_start, content_block_*, message_delta, message_stop).
#include <map>
#include <random>

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

// The request body, with tool inputs passed through as the model wrote them: the JSON tree holds
// a placeholder string where each raw input goes, replaced in the serialized text. The nonce
// keeps a model's own text from ever matching a placeholder.
class WireBody {
 public:
  WireBody()
      : nonce_(std::to_string(std::random_device{}()) + std::to_string(std::random_device{}())) {}

  // The tool_use input for `c`: a placeholder for its raw text when that is a JSON object.
  json input(const ToolCall& c) {
    const std::string& raw = c.rawArguments;
    size_t first = raw.find_first_not_of(" \t\r\n");
    if (first != std::string::npos && raw[first] == '{' && json::accept(raw)) {
      std::string placeholder = "\x01kiln-raw-" + nonce_ + "-" + std::to_string(raws_.size());
      raws_.emplace_back(dumpJson(json(placeholder)), raw);
      return placeholder;
    }
    return c.arguments.is_object() ? c.arguments : json::object();
  }

  std::string dump(const json& body) const {
    std::string out = dumpJson(body);
    for (const auto& [quoted, raw] : raws_) {
      size_t at = out.find(quoted);
      if (at != std::string::npos) out.replace(at, quoted.size(), raw);
    }
    return out;
  }

 private:
  std::string nonce_;
  std::vector<std::pair<std::string, std::string>> raws_;  // (placeholder as dumped, raw text)
};

json textBlock(const std::string& text) {
  json b = json::object();
  b["type"] = "text";
  // The API rejects empty text blocks.
  b["text"] = text.empty() ? "(empty)" : text;
  return b;
}

json contentBlocks(const Message& m, WireBody& wire) {
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
    b["input"] = wire.input(c);
    blocks.push_back(std::move(b));
  }
  return blocks;
}

// Tool results travel in user turns, and the API wants user and assistant turns to alternate,
// so consecutive messages of one role are merged: a turn's parallel calls are one assistant
// message, and all their results one user message, in order.
json wireMessages(const std::vector<Message>& context, WireBody& wire) {
  json out = json::array();
  for (const Message& m : context) {
    if (m.role == "system") continue;
    std::string role = m.role == "assistant" ? "assistant" : "user";
    json blocks = contentBlocks(m, wire);
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

json anthropicTools(const agent::TaskInfo& task) {
  json tools = json::array();
  for (const json& schema : agent::toolSchemas(task)) {
    json t = json::object();
    t["name"] = schema["name"];
    t["description"] = schema["description"];
    t["input_schema"] = schema["parameters"];
    tools.push_back(std::move(t));
  }
  return tools;
}

std::string anthropicRequestBody(const LlmConfig& cfg, const agent::TaskInfo& task,
                                 const std::vector<Message>& context) {
  WireBody wire;
  json body = json::object();
  body["model"] = cfg.model;
  body["max_tokens"] = cfg.maxTokens > 0 ? cfg.maxTokens : 4096;
  std::string system;
  for (const Message& m : context) {
    if (m.role == "system") system += (system.empty() ? "" : "\n\n") + m.content;
  }
  if (!system.empty()) body["system"] = system;
  body["messages"] = wireMessages(context, wire);
  body["tools"] = anthropicTools(task);
  if (cfg.temperature) body["temperature"] = *cfg.temperature;
  if (cfg.stream) body["stream"] = true;
  return wire.dump(body);
}

// Token counts of a turn. message_delta carries running totals of each field it has (input and
// cache tokens too), so every field present replaces what message_start said.
struct Usage {
  int64_t input = 0, cacheCreation = 0, cacheRead = 0, output = 0;

  void take(const json& usage) {
    if (!usage.is_object()) return;
    auto field = [&usage](const char* name, int64_t& into) {
      if (usage.contains(name) && usage[name].is_number_integer()) into = usage[name];
    };
    field("input_tokens", input);
    field("cache_creation_input_tokens", cacheCreation);
    field("cache_read_input_tokens", cacheRead);
    field("output_tokens", output);
  }

  void into(ModelTurn& turn) const {
    // Cached prompt tokens are billed differently, but they are prompt tokens all the same.
    turn.tokensIn = input + cacheCreation + cacheRead;
    turn.tokensOut = output;
  }
};

// A refusal (stop_reason "refusal") is the turn's text: what the model wrote, then the API's
// explanation from stop_details, so the step never reads as an empty turn.
void markRefusal(const json& stopDetails, ModelTurn& turn) {
  turn.refusal = true;
  std::string explanation, category;
  if (stopDetails.is_object()) {
    if (stopDetails.contains("explanation") && stopDetails["explanation"].is_string())
      explanation = stopDetails["explanation"];
    if (stopDetails.contains("category") && stopDetails["category"].is_string())
      category = stopDetails["category"];
  }
  if (explanation.empty() && turn.thought.empty())
    explanation = "The model declined to answer" +
                  (category.empty() ? std::string() : " (category: " + category + ")") + ".";
  if (!explanation.empty()) turn.thought += (turn.thought.empty() ? "" : "\n\n") + explanation;
}

ToolCall toolCall(std::string id, std::string name, std::string raw) {
  ToolCall call;
  call.id = std::move(id);
  call.name = std::move(name);
  call.arguments = parseToolArguments(raw);
  call.rawArguments = std::move(raw);
  return call;
}

void addBlock(const std::string& body, size_t index, const json& b, ModelTurn& turn) {
  if (!b.is_object()) return;
  std::string type = b.value("type", "");
  if (type == "text") {
    turn.thought += b.value("text", "");
  } else if (type == "tool_use") {
    const json& in = b.contains("input") ? b["input"] : json::object();
    std::string raw;
    if (in.is_string()) {
      raw = in.get<std::string>();
    } else if (auto text = rawJsonAt(body, {"content", index, "input"})) {
      raw = std::string(*text);  // byte for byte, key order and spacing as the API sent them
    } else {
      raw = dumpJson(in);
    }
    turn.calls.push_back(toolCall(b.value("id", ""), b.value("name", ""), std::move(raw)));
  }
}

Result<ModelTurn> parseMessage(const std::string& body) {
  json j = json::parse(body, nullptr, false);
  if (!j.is_object() || !j.contains("content") || !j["content"].is_array())
    return Status(Code::kUnavailable, "malformed messages response: " + body.substr(0, 200));
  ModelTurn turn;
  for (size_t i = 0; i < j["content"].size(); ++i) addBlock(body, i, j["content"][i], turn);
  Usage usage;
  usage.take(j.value("usage", json::object()));
  usage.into(turn);
  if (j.value("stop_reason", json()) == "refusal")
    markRefusal(j.value("stop_details", json()), turn);
  return turn;
}

// Assembles a streamed message from its events; tool input arrives as partial JSON text.
class AnthropicParser : public TurnParser {
 public:
  AnthropicParser(bool stream) : stream_(stream) {}

  void onBytes(std::string_view bytes) override {
    for (const SseEvent& e : sse_.feed(bytes)) onEvent(e.event, e.data);
  }

  Result<ModelTurn> finish(const HttpResponse& resp) override {
    if (!stream_) return parseMessage(resp.body);
    if (!error_.empty()) return Status(Code::kUnavailable, "stream error: " + error_);
    // Ended by message_stop or by a message_delta with a stop reason (a server that closes
    // without message_stop), like the OpenAI parser's [DONE] or finish_reason.
    if (!stopped_ && stopReason_.empty()) return Status(Code::kUnavailable, kStreamEndedEarly);
    for (auto& [index, b] : blocks_) {
      if (b.type == "text") {
        turn_.thought += b.text;
      } else if (b.type == "tool_use") {
        const std::string& raw = b.text.empty() ? b.startInput : b.text;
        turn_.calls.push_back(toolCall(b.id, b.name, raw));
      }
    }
    usage_.into(turn_);
    if (stopReason_ == "refusal") markRefusal(stopDetails_, turn_);
    return turn_;
  }

 private:
  struct Block {
    std::string type, id, name, text;  // text: the text, or the tool input's JSON
    std::string startInput;            // a tool input given whole at the start (some proxies do)
  };

  void onEvent(const std::string& event, const std::string& data) {
    json j = json::parse(data, nullptr, false);
    if (!j.is_object()) return;
    std::string type = j.value("type", event);
    if (type == "message_start") {
      const json& msg = j.value("message", json::object());
      if (msg.is_object()) usage_.take(msg.value("usage", json::object()));
    } else if (type == "content_block_start") {
      startBlock(j.value("index", 0), j.value("content_block", json::object()));
    } else if (type == "content_block_delta") {
      addDelta(j.value("index", 0), j.value("delta", json::object()));
    } else if (type == "message_delta") {
      usage_.take(j.value("usage", json::object()));
      const json& delta = j.value("delta", json::object());
      if (delta.is_object() && delta.contains("stop_reason") && delta["stop_reason"].is_string()) {
        stopReason_ = delta["stop_reason"];
        stopDetails_ = delta.value("stop_details", json());
      }
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
    const json& in = cb.contains("input") ? cb["input"] : json();
    if (b.type == "tool_use" && in.is_object() && !in.empty()) b.startInput = dumpJson(in);
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
  Usage usage_;
  std::map<int, Block> blocks_;
  bool stopped_ = false;
  std::string stopReason_;
  json stopDetails_;
  std::string error_;
};

class AnthropicProvider : public HttpProvider {
 public:
  using HttpProvider::HttpProvider;
  std::string name() const override { return "anthropic"; }

 protected:
  HttpRequest buildRequest(const agent::TaskInfo& task,
                           const std::vector<Message>& context) const override {
    std::vector<std::string> headers = {"anthropic-version: 2023-06-01"};
    if (!config().apiKey.empty()) headers.push_back("x-api-key: " + config().apiKey);
    return postJson("/v1/messages", std::move(headers),
                    anthropicRequestBody(config(), task, context));
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
