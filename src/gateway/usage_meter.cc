#include "gateway/usage_meter.h"

#include <algorithm>

namespace kiln::gateway {
namespace {

using nlohmann::json;

// A JSON body is kept for its usage only; one past this size is not metered (no model answer is
// anywhere near it).
constexpr size_t kMaxJsonBody = 64 << 20;

int64_t count(const json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_number_integer() ? it->get<int64_t>() : 0;
}

const json* object(const json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_object() ? &*it : nullptr;
}

std::string text(const json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : "";
}

}  // namespace

const char* modelApiName(ModelApi api) {
  switch (api) {
    case ModelApi::kAnthropic:
      return "anthropic";
    case ModelApi::kOpenAi:
      return "openai";
    case ModelApi::kGemini:
      return "gemini";
  }
  return "unknown";
}

UsageMeter::UsageMeter(ModelApi api, bool stream)
    : api_(api),
      stream_(stream) {}

void UsageMeter::feed(std::string_view bytes) {
  if (stream_) {
    for (const SseEvent& e : sse_.feed(bytes)) onEvent(e.data);
  } else if (body_.size() + bytes.size() <= kMaxJsonBody) {
    body_.append(bytes);
  }
}

CallUsage UsageMeter::finish() {
  if (stream_) {
    for (const SseEvent& e : sse_.feed("\n\n")) onEvent(e.data);  // a last event without its blank line
  } else {
    json j = json::parse(body_, nullptr, false);
    if (j.is_object()) absorb(j);
  }
  return usage_;
}

void UsageMeter::onEvent(const std::string& data) {
  if (data.empty() || data == "[DONE]") return;
  json j = json::parse(data, nullptr, false);
  if (j.is_object()) absorb(j);
}

// One JSON object of the answer: a whole body, or one streamed event. Each format reports usage
// in its own place; a later report of the same call replaces an earlier one, except that
// Anthropic's message_delta carries only the output count (its input count came with
// message_start).
void UsageMeter::absorb(const json& j) {
  if (api_ == ModelApi::kGemini) {
    if (const json* u = object(j, "usageMetadata")) {
      usage_.tokensIn = count(*u, "promptTokenCount");
      usage_.tokensOut = count(*u, "candidatesTokenCount") + count(*u, "thoughtsTokenCount");
    }
    if (!text(j, "modelVersion").empty()) usage_.model = text(j, "modelVersion");
    return;
  }
  const json* holder = &j;
  // Anthropic's message_start and OpenAI Responses' response.* events wrap the message.
  if (const json* m = object(j, "message")) holder = m;
  if (const json* r = object(j, "response")) holder = r;
  if (!text(*holder, "model").empty()) usage_.model = text(*holder, "model");
  const json* u = object(*holder, "usage");
  if (u == nullptr) return;
  if (api_ == ModelApi::kAnthropic) {
    const int64_t in = count(*u, "input_tokens") + count(*u, "cache_creation_input_tokens") +
                       count(*u, "cache_read_input_tokens");
    usage_.tokensIn = std::max(usage_.tokensIn, in);
    if (u->contains("output_tokens")) usage_.tokensOut = count(*u, "output_tokens");
    return;
  }
  if (u->contains("prompt_tokens")) {  // Chat Completions
    usage_.tokensIn = count(*u, "prompt_tokens");
    usage_.tokensOut = count(*u, "completion_tokens");
  } else {  // Responses
    usage_.tokensIn = count(*u, "input_tokens");
    usage_.tokensOut = count(*u, "output_tokens");
  }
}

}  // namespace kiln::gateway
