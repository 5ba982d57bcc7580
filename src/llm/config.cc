#include <cstdlib>

#include "llm/llm.h"

namespace kiln::llm {
namespace {

std::string env(const char* name) {
  const char* v = std::getenv(name);
  return v ? v : "";
}

std::string withoutTrailingSlash(std::string url) {
  while (!url.empty() && url.back() == '/') url.pop_back();
  return url;
}

int envInt(const char* name, int fallback) {
  std::string v = env(name);
  char* end = nullptr;
  long n = std::strtol(v.c_str(), &end, 10);
  return v.empty() || *end != '\0' || n < 0 ? fallback : static_cast<int>(n);
}

Status applySpec(const nlohmann::json& spec, LlmConfig& cfg) {
  if (!spec.is_object()) return Status::ok();
  if (spec.contains("stream")) {
    if (!spec["stream"].is_boolean()) return invalidArgument("spec.stream must be a boolean");
    cfg.stream = spec["stream"].get<bool>();
  }
  if (spec.contains("max_tokens")) {
    if (!spec["max_tokens"].is_number_integer() || spec["max_tokens"].get<int64_t>() <= 0)
      return invalidArgument("spec.max_tokens must be a positive integer");
    cfg.maxTokens = spec["max_tokens"].get<int>();
  }
  if (spec.contains("temperature")) {
    if (!spec["temperature"].is_number()) return invalidArgument("spec.temperature: a number");
    cfg.temperature = spec["temperature"].get<double>();
  }
  return Status::ok();
}

}  // namespace

Result<LlmConfig> configFromEnv(Api api, const agent::ProviderSettings& settings) {
  LlmConfig cfg;
  bool openai = api == Api::kOpenAi;
  const char* keyVar = openai ? "OPENAI_API_KEY" : "ANTHROPIC_API_KEY";
  std::string base = env(openai ? "OPENAI_BASE_URL" : "ANTHROPIC_BASE_URL");
  bool hosted = base.empty();
  cfg.baseUrl = withoutTrailingSlash(
      hosted ? (openai ? "https://api.openai.com/v1" : "https://api.anthropic.com") : base);
  cfg.apiKey = env(keyVar);
  // Local OpenAI-compatible servers often need no key; the hosted APIs always do.
  if (cfg.apiKey.empty() && hosted)
    return invalidArgument(std::string(keyVar) + " is not set (needed for agent '" +
                           settings.agent + "')");
  cfg.model = !settings.model.empty() ? settings.model
              : openai                ? "gpt-4o-mini"
                                      : "claude-sonnet-4-5";
  cfg.retry.maxAttempts = std::max(1, envInt("KILN_LLM_MAX_ATTEMPTS", cfg.retry.maxAttempts));
  cfg.retry.baseDelay = std::chrono::milliseconds(
      envInt("KILN_LLM_RETRY_BASE_MS", static_cast<int>(cfg.retry.baseDelay.count())));
  Status st = applySpec(settings.spec, cfg);
  if (!st.isOk()) return st;
  return cfg;
}

}  // namespace kiln::llm
