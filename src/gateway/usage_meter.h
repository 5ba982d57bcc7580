// UsageMeter: reads the tokens a model API call used from its response as the bytes pass
// through the gateway: a JSON body, or an SSE stream (Anthropic Messages, OpenAI Chat
// Completions and Responses, Gemini generateContent). Pure; one per call; not thread-safe.
#pragma once
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "common/sse.h"

namespace kiln::gateway {

// The wire formats the gateway relays, each under its own path prefix (/anthropic, /openai,
// /gemini).
enum class ModelApi { kAnthropic, kOpenAi, kGemini };

const char* modelApiName(ModelApi api);

struct CallUsage {
  std::string model;     // as the response names it; "" when it does not
  int64_t tokensIn = 0;  // prompt tokens, cached ones included
  int64_t tokensOut = 0;
};

class UsageMeter {
 public:
  // `stream`: the body is text/event-stream.
  UsageMeter(ModelApi api, bool stream);

  void feed(std::string_view bytes);
  // The usage once the body is complete.
  CallUsage finish();

 private:
  void onEvent(const std::string& data);
  void absorb(const nlohmann::json& j);

  ModelApi api_;
  bool stream_;
  std::string body_;  // a JSON body, kept whole
  SseParser sse_;  // src/common/sse.h, the one parser of text/event-stream
  CallUsage usage_;
};

}  // namespace kiln::gateway
