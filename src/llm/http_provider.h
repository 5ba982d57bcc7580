// HttpProvider: the part of the OpenAI and Anthropic providers that does not depend on the wire
// format: one HTTP exchange per turn, retries with backoff, usage pricing. Subclasses build the
// request and parse the answer. Used from one strand; not thread-safe.
#pragma once
#include <random>
#include <string_view>

#include "agent/provider.h"
#include "llm/http.h"
#include "llm/llm.h"

namespace kiln::llm {

// Parses one attempt's answer. A fresh parser per attempt, so a retried stream starts clean.
class TurnParser {
 public:
  virtual ~TurnParser() = default;
  // Body bytes of a 2xx streaming response, as they arrive.
  virtual void onBytes(std::string_view bytes) = 0;
  // The turn once the exchange is over. kUnavailable for a truncated or garbled answer (retried).
  virtual Result<agent::ModelTurn> finish(const HttpResponse& resp) = 0;
};

class HttpProvider : public agent::Provider {
 public:
  HttpProvider(LlmConfig config, asio::any_io_executor ex);

  // Provider
  Task<Result<agent::ModelTurn>> next(const agent::TaskInfo& task,
                                      const std::vector<agent::Message>& context) override;

  const LlmConfig& config() const { return config_; }

 protected:
  virtual HttpRequest buildRequest(const agent::TaskInfo& task,
                                   const std::vector<agent::Message>& context) const = 0;
  virtual std::unique_ptr<TurnParser> makeParser() const = 0;
  // A JSON POST to baseUrl + path with the wire format's own headers (auth, version); adds
  // Content-Type, and Accept: text/event-stream when streaming. `body` is the JSON text.
  HttpRequest postJson(const std::string& path, std::vector<std::string> headers,
                       std::string body) const;

 private:
  HttpRequest request(const agent::TaskInfo& task,
                      const std::vector<agent::Message>& context) const;
  double jitter();

  LlmConfig config_;
  asio::any_io_executor ex_;
  HttpClient http_;
  std::mt19937 rng_;
};

// Shared by both wire formats.
// Why a stream that closed before the turn's end marker is retried.
inline constexpr const char* kStreamEndedEarly = "stream ended before the turn was finished";
// Tool-call arguments from the model's JSON text; invalid JSON or a non-object becomes
// {"_raw": text, "_error": why} so the loop can answer with an error observation.
nlohmann::json parseToolArguments(const std::string& text);
// Serializes for the wire; invalid UTF-8 (binary tool output) is replaced, never thrown on.
std::string dumpJson(const nlohmann::json& j);
// The arguments as the model originally wrote them: the raw text when the provider kept it, else
// the "_raw" of unparsable arguments, else `arguments` serialized.
std::string toolArgumentsText(const agent::ToolCall& call);

}  // namespace kiln::llm
