// The llm module's public face: providers that talk to hosted model APIs over HTTP. `openai`
// speaks Chat Completions (OpenAI and compatible servers: vLLM, llama.cpp, Ollama, OpenRouter);
// `anthropic` speaks the Messages API. Both stream by default, retry transient failures and
// price each turn from the PriceTable. A provider is used from one strand (the job's).
#pragma once
#include <chrono>
#include <memory>
#include <string>

#include "agent/provider.h"
#include "common/asio.h"
#include "common/result.h"
#include "llm/pricing.h"
#include "llm/retry.h"

namespace kiln::llm {

enum class Api { kOpenAi, kAnthropic };

struct LlmConfig {
  std::string apiKey;   // empty: no auth header (local OpenAI-compatible servers)
  std::string baseUrl;  // without a trailing slash
  std::string model;
  bool stream = true;
  int maxTokens = 0;  // 0: the API's default (Anthropic requires one: 4096 then)
  std::optional<double> temperature;
  RetryPolicy retry;
  std::chrono::milliseconds timeout{std::chrono::minutes(10)};
  std::chrono::seconds stallTimeout{120};
  const PriceTable* prices = nullptr;  // null: globalPrices()
};

// The config for `api` from the environment (OPENAI_API_KEY, OPENAI_BASE_URL, ANTHROPIC_API_KEY,
// ANTHROPIC_BASE_URL, KILN_LLM_MAX_ATTEMPTS, KILN_LLM_RETRY_BASE_MS) and the job's settings
// (model; spec keys stream, max_tokens, temperature). InvalidArgument when the key is missing
// for the hosted API or a spec value has the wrong type.
Result<LlmConfig> configFromEnv(Api api, const agent::ProviderSettings& settings);

// `ex` must be the strand the provider is called from: its HTTP I/O completes there.
std::unique_ptr<agent::Provider> makeOpenAiProvider(LlmConfig config, asio::any_io_executor ex);
std::unique_ptr<agent::Provider> makeAnthropicProvider(LlmConfig config, asio::any_io_executor ex);

}  // namespace kiln::llm
