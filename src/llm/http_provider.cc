#include "llm/http_provider.h"

#include <spdlog/spdlog.h>

namespace kiln::llm {
namespace {

using agent::Message;
using agent::ModelTurn;
using nlohmann::json;

// What one attempt came to.
struct Attempt {
  Status status;
  ModelTurn turn;
  bool retryable = false;
  std::optional<std::chrono::milliseconds> retryAfter;
};

Attempt settle(const Result<HttpResponse>& resp, TurnParser& parser) {
  Attempt a;
  if (!resp.isOk()) {
    a.status = resp.status();
    a.retryable = isRetryable(a.status, nullptr);
    return a;
  }
  a.status = statusForResponse(*resp);
  if (!a.status.isOk()) {
    a.retryable = isRetryable(a.status, &*resp);
    a.retryAfter = parseRetryAfter(resp->header("retry-after"));
    return a;
  }
  Result<ModelTurn> turn = parser.finish(*resp);
  if (!turn.isOk()) {
    a.status = turn.status();
    a.retryable = isRetryable(a.status, nullptr);
    return a;
  }
  a.turn = std::move(turn).value();
  return a;
}

}  // namespace

json parseToolArguments(const std::string& text) {
  if (text.find_first_not_of(" \t\r\n") == std::string::npos) return json::object();
  json j = json::parse(text, nullptr, false);
  if (j.is_object()) return j;
  json bad = json::object();
  bad["_raw"] = text;
  bad["_error"] = j.is_discarded() ? "tool arguments are not valid JSON"
                                   : "tool arguments must be a JSON object";
  return bad;
}

std::string toolArgumentsText(const agent::ToolCall& call) {
  if (!call.rawArguments.empty()) return call.rawArguments;
  const json& args = call.arguments;
  if (args.is_object() && args.contains("_raw") && args["_raw"].is_string())
    return args["_raw"].get<std::string>();
  return dumpJson(args);
}

std::string dumpJson(const json& j) {
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

HttpProvider::HttpProvider(LlmConfig config, asio::any_io_executor ex)
    : config_(std::move(config)), ex_(ex), http_(ex), rng_(std::random_device{}()) {}

HttpRequest HttpProvider::postJson(const std::string& path, std::vector<std::string> headers,
                                   std::string body) const {
  HttpRequest req;
  req.url = config_.baseUrl + path;
  req.headers.push_back("Content-Type: application/json");
  if (config_.stream) req.headers.push_back("Accept: text/event-stream");
  for (auto& h : headers) req.headers.push_back(std::move(h));
  req.body = std::move(body);
  return req;
}

HttpRequest HttpProvider::request(const agent::TaskInfo& task,
                                  const std::vector<Message>& context) const {
  HttpRequest req = buildRequest(task, context);
  req.timeout = config_.timeout;
  req.stallTimeout = config_.stallTimeout;
  return req;
}

double HttpProvider::jitter() { return std::uniform_real_distribution<double>(0, 1)(rng_); }

Task<Result<ModelTurn>> HttpProvider::next(const agent::TaskInfo& task,
                                           const std::vector<Message>& context) {
  HttpRequest req = request(task, context);
  for (int attempt = 1;; ++attempt) {
    std::unique_ptr<TurnParser> parser = makeParser();
    ChunkFn sink;
    if (config_.stream) sink = [p = parser.get()](std::string_view b) { p->onBytes(b); };
    Result<HttpResponse> resp = co_await http_.post(req, std::move(sink));
    Attempt a = settle(resp, *parser);
    if (a.status.isOk()) {
      const PriceTable& prices = config_.prices ? *config_.prices : globalPrices();
      a.turn.usd = prices.costUsd(config_.model, a.turn.tokensIn, a.turn.tokensOut);
      co_return std::move(a.turn);
    }
    std::string ctx = name() + " (" + config_.model + ")";
    if (!a.retryable) co_return a.status.withContext(ctx);
    if (attempt >= config_.retry.maxAttempts)
      co_return a.status.withContext(ctx + ", gave up after " + std::to_string(attempt) +
                                     " attempts");
    if (a.retryAfter && *a.retryAfter > config_.retry.maxRetryAfter)
      co_return a.status.withContext(ctx + ", Retry-After too long");
    auto delay = backoffDelay(config_.retry, attempt, a.retryAfter, jitter());
    spdlog::warn("{}: attempt {} failed ({}); retrying in {} ms", ctx, attempt, a.status.toString(),
                 delay.count());
    asio::steady_timer timer(ex_);
    timer.expires_after(delay);
    boost::system::error_code ec;
    co_await timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
  }
}

}  // namespace kiln::llm
