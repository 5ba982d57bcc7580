#include "gateway/model_gateway.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <deque>
#include <mutex>
#include <set>

#include "gateway/gateway_metrics.h"
#include "llm/http.h"

namespace kiln::gateway {
namespace {

using json = nlohmann::json;
using UnixSocket = asio::local::stream_protocol::socket;
using Acceptor = asio::local::stream_protocol::acceptor;
using Request = http::request<http::string_body>;

constexpr size_t kHeaderLimit = 64 << 10;
// Agent CLIs send the whole conversation with every call.
constexpr size_t kBodyLimit = 64 << 20;
// A refused connection is retried (nothing reached the upstream) this many times in all, then
// the call fails with 502 and the gateway stops: an agent CLI would otherwise retry for minutes.
constexpr int kConnectAttempts = 3;
constexpr auto kConnectRetryDelay = std::chrono::milliseconds(300);

struct Route {
  ModelApi api;
  std::string rest;  // the path and query after the API's prefix
};

std::optional<Route> routeOf(std::string_view target) {
  static const std::pair<std::string_view, ModelApi> kPrefixes[] = {
      {"/anthropic", ModelApi::kAnthropic},
      {"/openai/v1", ModelApi::kOpenAi},
      {"/gemini", ModelApi::kGemini},
  };
  for (const auto& [prefix, api] : kPrefixes) {
    if (target.substr(0, prefix.size()) != prefix) continue;
    std::string_view rest = target.substr(prefix.size());
    if (rest.empty() || rest.front() == '/' || rest.front() == '?') {
      return Route{api, std::string(rest)};
    }
  }
  return std::nullopt;
}

bool sameSecret(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  unsigned char diff = 0;
  for (size_t i = 0; i < a.size(); ++i) diff |= static_cast<unsigned char>(a[i] ^ b[i]);
  return diff == 0;
}

// The `key` query parameter (Gemini's other way to send the key): its value, and the query
// without it.
std::string takeQueryKey(std::string& rest) {
  size_t q = rest.find('?');
  if (q == std::string::npos) return "";
  std::string query = rest.substr(q + 1), kept, key;
  size_t start = 0;
  while (start <= query.size()) {
    size_t amp = query.find('&', start);
    if (amp == std::string::npos) amp = query.size();
    std::string param = query.substr(start, amp - start);
    if (param.rfind("key=", 0) == 0) {
      key = param.substr(4);
    } else if (!param.empty()) {
      kept += (kept.empty() ? "" : "&") + param;
    }
    start = amp + 1;
  }
  rest = rest.substr(0, q) + (kept.empty() ? "" : "?" + kept);
  return key;
}

bool carriesKey(const Request& req, const std::string& queryKey, const std::string& key) {
  const std::string bearer = "Bearer " + key;
  std::string_view auth(req[http::field::authorization].data(),
                        req[http::field::authorization].size());
  std::string_view apiKey(req["x-api-key"].data(), req["x-api-key"].size());
  std::string_view googKey(req["x-goog-api-key"].data(), req["x-goog-api-key"].size());
  return sameSecret(auth, bearer) || sameSecret(apiKey, key) || sameSecret(googKey, key) ||
         sameSecret(queryKey, key);
}

// Request headers that are the gateway's to set (hop-by-hop, framing, credentials).
bool dropRequestHeader(std::string name) {
  for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  static const std::set<std::string> kDropped = {"host",
                                                 "content-length",
                                                 "connection",
                                                 "keep-alive",
                                                 "transfer-encoding",
                                                 "upgrade",
                                                 "te",
                                                 "trailer",
                                                 "expect",
                                                 "proxy-authorization",
                                                 "proxy-connection",
                                                 "accept-encoding",
                                                 "authorization",
                                                 "x-api-key",
                                                 "x-goog-api-key"};
  return kDropped.count(name) > 0;
}

bool dropResponseHeader(const std::string& lowerName) {
  static const std::set<std::string> kDropped = {"content-length", "content-encoding",
                                                 "transfer-encoding", "connection", "keep-alive"};
  return kDropped.count(lowerName) > 0;
}

std::string errorType(ModelApi api, int status) {
  if (api == ModelApi::kAnthropic) {
    switch (status) {
      case 400:
        return "invalid_request_error";
      case 401:
        return "authentication_error";
      case 404:
        return "not_found_error";
      case 413:
        return "request_too_large";
      default:
        return "api_error";
    }
  }
  if (api == ModelApi::kGemini) {
    switch (status) {
      case 400:
        return "INVALID_ARGUMENT";
      case 401:
        return "UNAUTHENTICATED";
      case 404:
        return "NOT_FOUND";
      default:
        return "UNAVAILABLE";
    }
  }
  return status == 401   ? "invalid_request_error"
         : status >= 500 ? "server_error"
                         : "invalid_request_error";
}

// An error in the shape the CLI's SDK understands, so it shows the message.
std::string errorBody(ModelApi api, int status, const std::string& message) {
  json err = json::object();
  err["message"] = message;
  json body = json::object();
  if (api == ModelApi::kAnthropic) {
    err["type"] = errorType(api, status);
    body["type"] = "error";
  } else if (api == ModelApi::kGemini) {
    err["code"] = status;
    err["status"] = errorType(api, status);
  } else {
    err["type"] = errorType(api, status);
    err["code"] = status == 400 ? "kiln_budget_exceeded" : "kiln_gateway";
  }
  body["error"] = std::move(err);
  return body.dump();
}

std::string statusLine(int status) {
  auto reason = http::obsolete_reason(http::int_to_status(static_cast<unsigned>(status)));
  return "HTTP/1.1 " + std::to_string(status) + " " + std::string(reason.data(), reason.size()) +
         "\r\n";
}

// A response head; with a length, the body follows whole, else in chunks.
std::string responseHead(int status, const std::map<std::string, std::string>& headers,
                         std::optional<size_t> length, bool keepAlive) {
  std::string out = statusLine(status);
  for (const auto& [name, value] : headers) {
    if (!dropResponseHeader(name)) out += name + ": " + value + "\r\n";
  }
  out += length ? "content-length: " + std::to_string(*length) + "\r\n"
                : std::string("transfer-encoding: chunked\r\n");
  if (!keepAlive) out += "connection: close\r\n";
  return out + "\r\n";
}

std::string chunk(std::string_view data) {
  return fmt::format("{:x}\r\n", data.size()) + std::string(data) + "\r\n";
}

std::string jsonResponse(ModelApi api, int status, const std::string& message, bool keepAlive) {
  const std::string body = errorBody(api, status, message);
  const std::map<std::string, std::string> headers = {{"content-type", "application/json"}};
  return responseHead(status, headers, body.size(), keepAlive) + body;
}

// The model the call asked for: the body's "model", or Gemini's models/<name>:<method> path.
std::string requestedModel(ModelApi api, const std::string& rest, const std::string& body) {
  if (api == ModelApi::kGemini) {
    size_t at = rest.find("/models/");
    if (at == std::string::npos) return "";
    size_t end = rest.find_first_of(":?/", at + 8);
    return rest.substr(at + 8, end == std::string::npos ? end : end - at - 8);
  }
  json j = json::parse(body, nullptr, false);
  return j.is_object() && j.contains("model") && j["model"].is_string()
             ? j["model"].get<std::string>()
             : "";
}

// Writes a relayed call's bytes to the client in order, without holding up curl's callbacks.
// Lives on the handling coroutine's frame, which drains it before returning.
class ClientWriter {
 public:
  explicit ClientWriter(UnixSocket& sock) : sock_(sock), idle_(sock.get_executor()) {}

  void push(std::string bytes) {
    if (failed_) return;
    queue_.push_back(std::move(bytes));
    if (!writing_) {
      writing_ = true;
      asio::co_spawn(sock_.get_executor(), write(), asio::detached);
    }
  }

  // True once everything pushed was written.
  Task<bool> drain() {
    while (writing_) {
      idle_.expires_at(asio::steady_timer::time_point::max());
      boost::system::error_code ec;
      co_await idle_.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    }
    co_return !failed_;
  }

 private:
  Task<void> write() {
    while (!queue_.empty()) {
      std::string bytes = std::move(queue_.front());
      queue_.pop_front();
      boost::system::error_code ec;
      co_await asio::async_write(sock_, asio::buffer(bytes),
                                 asio::redirect_error(asio::use_awaitable, ec));
      if (ec) {
        failed_ = true;  // the CLI went away; the upstream call still completes and is metered
        queue_.clear();
      }
    }
    writing_ = false;
    idle_.cancel();
  }

  UnixSocket& sock_;
  asio::steady_timer idle_;
  std::deque<std::string> queue_;
  bool writing_ = false;
  bool failed_ = false;
};

class Core : public std::enable_shared_from_this<Core> {
 public:
  Core(asio::any_io_executor ex, GatewayOptions opts)
      : opts_(std::move(opts)),
        ex_(ex),
        acceptor_(ex),
        http_(std::make_unique<llm::HttpClient>(ex)),
        prices_(opts_.prices ? opts_.prices : &llm::globalPrices()) {}

  Status listen();
  static Task<void> acceptLoop(std::shared_ptr<Core> self);
  // Strand only: stops accepting, closes the clients' connections, ends the upstream calls.
  void close();

  GatewayUsage takeUsage() {
    std::lock_guard lock(mu_);
    return std::exchange(pending_, GatewayUsage{});
  }
  std::vector<ModelCall> calls() const {
    std::lock_guard lock(mu_);
    return calls_;
  }
  std::optional<GatewayStop> stopped() const {
    std::lock_guard lock(mu_);
    return stop_;
  }
  asio::any_io_executor executor() const { return ex_; }

 private:
  static Task<void> serve(std::shared_ptr<Core> self, std::shared_ptr<UnixSocket> sock);
  // Answers one request; false when the connection must close.
  Task<bool> handle(UnixSocket& sock, Request& req);
  Task<bool> relay(UnixSocket& sock, Request& req, const Route& route);
  llm::HttpRequest upstreamRequest(const Request& req, const Upstream& up,
                                   const std::string& rest) const;
  // The stop the budget calls for, if it is spent. Caller holds mu_.
  std::optional<GatewayStop> overBudget() const;
  void stopWith(const GatewayStop& s);
  void record(const ModelCall& c);
  void log(const Request& req, int status, const std::string& detail) const {
    spdlog::debug("gateway {}: {} {} -> {} {}", opts_.label, std::string(req.method_string()),
                  std::string(req.target()), status, detail);
  }

  const GatewayOptions opts_;
  asio::any_io_executor ex_;
  Acceptor acceptor_;
  std::unique_ptr<llm::HttpClient> http_;  // strand only; reset by close()
  std::set<UnixSocket*> clients_;          // strand only
  bool closed_ = false;                    // strand only
  const llm::PriceTable* prices_;

  mutable std::mutex mu_;
  GatewayUsage pending_;             // GUARDED_BY(mu_)
  GatewayUsage total_;               // GUARDED_BY(mu_)
  std::vector<ModelCall> calls_;     // GUARDED_BY(mu_)
  std::optional<GatewayStop> stop_;  // GUARDED_BY(mu_)
};

Status Core::listen() {
  if (opts_.socketPath.size() >= sizeof(sockaddr_un::sun_path)) {
    return invalidArgument("model gateway: socket path too long: " + opts_.socketPath);
  }
  boost::system::error_code ec;
  ::unlink(opts_.socketPath.c_str());
  acceptor_.open(asio::local::stream_protocol(), ec);
  if (!ec) acceptor_.bind(asio::local::stream_protocol::endpoint(opts_.socketPath), ec);
  if (!ec) acceptor_.listen(64, ec);
  if (ec)
    return internalError("model gateway: listen on " + opts_.socketPath + ": " + ec.message());
  ::chmod(opts_.socketPath.c_str(), 0600);
  return Status::ok();
}

Task<void> Core::acceptLoop(std::shared_ptr<Core> self) {
  asio::steady_timer backoff(self->ex_);
  while (!self->closed_) {
    auto sock = std::make_shared<UnixSocket>(self->ex_);
    boost::system::error_code ec;
    co_await self->acceptor_.async_accept(*sock, asio::redirect_error(asio::use_awaitable, ec));
    if (self->closed_ || ec == asio::error::operation_aborted) co_return;
    if (ec) {  // out of fds and the like: back off instead of spinning
      backoff.expires_after(std::chrono::milliseconds(50));
      co_await backoff.async_wait(asio::redirect_error(asio::use_awaitable, ec));
      continue;
    }
    asio::co_spawn(self->ex_, serve(self, sock), asio::detached);
  }
}

void Core::close() {
  closed_ = true;
  boost::system::error_code ec;
  acceptor_.close(ec);
  for (UnixSocket* s : clients_) s->close(ec);
  http_.reset();  // calls in flight end with "shut down"
  ::unlink(opts_.socketPath.c_str());
}

Task<void> Core::serve(std::shared_ptr<Core> self, std::shared_ptr<UnixSocket> sock) {
  self->clients_.insert(sock.get());
  beast::flat_buffer buffer;
  for (;;) {
    http::request_parser<http::string_body> parser;
    parser.header_limit(kHeaderLimit);
    parser.body_limit(kBodyLimit);
    boost::system::error_code ec;
    co_await http::async_read(*sock, buffer, parser, asio::redirect_error(asio::use_awaitable, ec));
    if (ec == http::error::body_limit) {
      const std::string tooLarge = jsonResponse(ModelApi::kOpenAi, 413, "request too large", false);
      co_await asio::async_write(*sock, asio::buffer(tooLarge),
                                 asio::redirect_error(asio::use_awaitable, ec));
      break;
    }
    if (ec || self->closed_) break;
    Request req = parser.release();
    if (!co_await self->handle(*sock, req)) break;
  }
  self->clients_.erase(sock.get());
  boost::system::error_code ignored;
  sock->close(ignored);
}

Task<bool> Core::handle(UnixSocket& sock, Request& req) {
  const bool keepAlive = req.keep_alive();
  const std::string target(req.target());
  std::optional<Route> route = routeOf(target);
  std::string refusal;
  int status = 0;
  ModelApi api = route ? route->api : ModelApi::kOpenAi;
  std::string queryKey = route && route->api == ModelApi::kGemini ? takeQueryKey(route->rest) : "";
  if (!route) {
    status = 404;
    refusal = "kiln model gateway: no API at " + target +
              " (use the base URLs in ANTHROPIC_BASE_URL, OPENAI_BASE_URL, GOOGLE_GEMINI_BASE_URL)";
  } else if (!carriesKey(req, queryKey, opts_.placeholderKey)) {
    status = 401;
    refusal = "kiln model gateway: this sandbox's API key is missing or wrong";
    gatewayMetrics().countRefusal("auth");
  } else {
    std::optional<GatewayStop> stop;
    {
      std::lock_guard lock(mu_);
      stop = stop_ ? stop_ : overBudget();
    }
    if (stop) {
      const bool spent = stop->code == "budget_exceeded" || stop->code == "quota_exceeded";
      status = spent ? 400 : 503;
      refusal = "kiln model gateway: " + stop->message;
      gatewayMetrics().countRefusal(spent ? "budget" : "stopped");
      stopWith(*stop);
    } else if (closed_) {
      status = 503;
      refusal = "kiln model gateway: shutting down";
    }
  }
  if (status != 0) {
    log(req, status, refusal);
    const std::string response = jsonResponse(api, status, refusal, keepAlive);
    boost::system::error_code ec;
    co_await asio::async_write(sock, asio::buffer(response),
                               asio::redirect_error(asio::use_awaitable, ec));
    co_return keepAlive && !ec;
  }
  co_return co_await relay(sock, req, *route);
}

llm::HttpRequest Core::upstreamRequest(const Request& req, const Upstream& up,
                                       const std::string& rest) const {
  llm::HttpRequest out;
  out.method = std::string(req.method_string());
  out.url = up.baseUrl + rest;
  out.body = req.body();
  for (const auto& field : req) {
    const std::string name(field.name_string());
    if (dropRequestHeader(name)) continue;
    out.headers.push_back(name + ": " + std::string(field.value()));
  }
  for (const auto& h : up.authHeaders) out.headers.push_back(h);
  return out;
}

Task<bool> Core::relay(UnixSocket& sock, Request& req, const Route& route) {
  const bool keepAlive = req.keep_alive();
  const Upstream* up = opts_.upstreams.forApi(route.api);
  if (up == nullptr) {
    const std::string message =
        std::string("kiln model gateway: no upstream is configured for ") + modelApiName(route.api);
    const std::string response = jsonResponse(route.api, 502, message, keepAlive);
    boost::system::error_code ec;
    co_await asio::async_write(sock, asio::buffer(response),
                               asio::redirect_error(asio::use_awaitable, ec));
    co_return keepAlive && !ec;
  }
  const llm::HttpRequest upstream = upstreamRequest(req, *up, route.rest);
  ClientWriter writer(sock);
  std::unique_ptr<UsageMeter> meter;
  bool headSent = false;
  llm::HeadFn onHead = [&](const llm::HttpResponse& head) {
    headSent = true;
    const bool sse = head.header("content-type").rfind("text/event-stream", 0) == 0;
    meter = std::make_unique<UsageMeter>(route.api, sse);
    writer.push(responseHead(static_cast<int>(head.status), head.headers, std::nullopt, keepAlive));
  };
  llm::ChunkFn onChunk = [&](std::string_view bytes) {
    if (bytes.empty()) return;
    if (meter) meter->feed(bytes);
    writer.push(chunk(bytes));
  };
  Result<llm::HttpResponse> resp = Status(Code::kUnavailable, "not sent");
  for (int attempt = 1; attempt <= kConnectAttempts; ++attempt) {
    if (closed_ || !http_) {
      resp = Status(Code::kUnavailable, "the gateway is shutting down");
      break;
    }
    resp = co_await http_->post(upstream, onChunk, onHead);
    if (resp.isOk() || headSent || resp.status().code() != Code::kUnavailable) break;
    if (attempt < kConnectAttempts) {
      asio::steady_timer wait(ex_);
      wait.expires_after(kConnectRetryDelay * attempt);
      boost::system::error_code ec;
      co_await wait.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    }
  }
  ModelCall call;
  call.api = route.api;
  call.model = requestedModel(route.api, route.rest, req.body());
  bool open = keepAlive;
  if (!resp.isOk()) {
    call.status = 0;
    const std::string why = resp.status().message();
    if (headSent) {
      open = false;  // the stream broke off: the CLI sees the connection end mid-body
    } else {
      const int status = resp.status().code() == Code::kDeadlineExceeded ? 504 : 502;
      const std::string message =
          "kiln model gateway: the model API at " + up->baseUrl + " did not answer: " + why;
      writer.push(jsonResponse(route.api, status, message, keepAlive));
      if (!closed_) {
        stopWith(GatewayStop{"llm_error", "",
                             "the model API at " + up->baseUrl + " did not answer: " + why});
      }
    }
    log(req, 0, why);
  } else if (headSent) {
    call.status = static_cast<int>(resp->status);
    writer.push("0\r\n\r\n");
    CallUsage usage = meter->finish();
    if (call.model.empty()) call.model = usage.model;
    call.tokensIn = usage.tokensIn;
    call.tokensOut = usage.tokensOut;
    call.usd = prices_->costUsd(call.model, call.tokensIn, call.tokensOut);
    log(req, call.status,
        fmt::format("in={} out={} usd={:.6f}", call.tokensIn, call.tokensOut, call.usd));
  } else {
    // An error answer (kept whole by the client), or a success without a body.
    call.status = static_cast<int>(resp->status);
    writer.push(responseHead(call.status, resp->headers, resp->body.size(), keepAlive) +
                resp->body);
    log(req, call.status, resp->body.substr(0, 200));
  }
  record(call);
  const bool written = co_await writer.drain();
  co_return open&& written;
}

std::optional<GatewayStop> Core::overBudget() const {
  const GatewayBudget& b = opts_.budget;
  const double usd = b.spentUsd + total_.usd;
  const int64_t tokens = b.spentTokens + total_.tokensIn + total_.tokensOut;
  if (b.maxUsd && usd >= *b.maxUsd) {
    return GatewayStop{
        "budget_exceeded", "maxUsd",
        fmt::format("the job's model spend reached its maxUsd limit of ${} (spent ${:.6f})",
                    *b.maxUsd, usd)};
  }
  if (b.tenantUsdLeft && total_.usd >= *b.tenantUsdLeft) {
    return GatewayStop{
        "quota_exceeded", "usdPerDay",
        fmt::format("the job's tenant spent its usdPerDay quota (${:.6f} left at the run's "
                    "start, this run spent ${:.6f})",
                    *b.tenantUsdLeft, total_.usd)};
  }
  if (b.maxTokens && tokens >= *b.maxTokens) {
    return GatewayStop{
        "budget_exceeded", "maxTokens",
        fmt::format("the job's model tokens reached its maxTokens limit of {} (used {})",
                    *b.maxTokens, tokens)};
  }
  return std::nullopt;
}

void Core::stopWith(const GatewayStop& s) {
  {
    std::lock_guard lock(mu_);
    if (stop_) return;
    stop_ = s;
  }
  spdlog::warn("gateway {}: stopped passing model calls: {}: {}", opts_.label, s.code, s.message);
  if (opts_.onStop) opts_.onStop(s);
}

void Core::record(const ModelCall& c) {
  gatewayMetrics().countCall(modelApiName(c.api), c.status, c.tokensIn, c.tokensOut, c.usd);
  std::lock_guard lock(mu_);
  calls_.push_back(c);
  for (GatewayUsage* u : {&pending_, &total_}) {
    u->calls += 1;
    u->tokensIn += c.tokensIn;
    u->tokensOut += c.tokensOut;
    u->usd += c.usd;
  }
}

class ModelGatewayImpl : public ModelGateway {
 public:
  explicit ModelGatewayImpl(std::shared_ptr<Core> core) : core_(std::move(core)) {}
  ~ModelGatewayImpl() override {
    std::shared_ptr<Core> core = std::move(core_);
    asio::post(core->executor(), [core] { core->close(); });
  }

  // ModelGateway
  GatewayUsage takeUsage() override { return core_->takeUsage(); }
  std::vector<ModelCall> calls() const override { return core_->calls(); }
  std::optional<GatewayStop> stopped() const override { return core_->stopped(); }

 private:
  std::shared_ptr<Core> core_;
};

std::string withoutTrailingSlash(std::string url) {
  while (!url.empty() && url.back() == '/') url.pop_back();
  return url;
}

}  // namespace

const Upstream* Upstreams::forApi(ModelApi api) const {
  const std::optional<Upstream>& u = api == ModelApi::kAnthropic ? anthropic
                                     : api == ModelApi::kOpenAi  ? openai
                                                                 : gemini;
  return u ? &*u : nullptr;
}

Upstreams upstreamsFromEnv(const EnvLookup& env) {
  auto get = [&](const char* name) { return env(name).value_or(""); };
  auto base = [&](const char* name, const char* fallback) {
    std::string v = get(name);
    return withoutTrailingSlash(v.empty() ? fallback : v);
  };
  Upstreams u;
  u.anthropic = Upstream{base("ANTHROPIC_BASE_URL", "https://api.anthropic.com"), {}};
  if (!get("ANTHROPIC_API_KEY").empty()) {
    u.anthropic->authHeaders.push_back("x-api-key: " + get("ANTHROPIC_API_KEY"));
  } else if (!get("ANTHROPIC_AUTH_TOKEN").empty()) {
    u.anthropic->authHeaders.push_back("Authorization: Bearer " + get("ANTHROPIC_AUTH_TOKEN"));
  }
  u.openai = Upstream{base("OPENAI_BASE_URL", "https://api.openai.com/v1"), {}};
  const std::string openaiKey =
      !get("OPENAI_API_KEY").empty() ? get("OPENAI_API_KEY") : get("CODEX_API_KEY");
  if (!openaiKey.empty()) u.openai->authHeaders.push_back("Authorization: Bearer " + openaiKey);
  u.gemini =
      Upstream{base("GOOGLE_GEMINI_BASE_URL", "https://generativelanguage.googleapis.com"), {}};
  const std::string geminiKey =
      !get("GEMINI_API_KEY").empty() ? get("GEMINI_API_KEY") : get("GOOGLE_API_KEY");
  if (!geminiKey.empty()) u.gemini->authHeaders.push_back("x-goog-api-key: " + geminiKey);
  return u;
}

std::vector<std::pair<std::string, std::string>> sandboxEnv(const std::string& placeholderKey) {
  const std::string base = "http://127.0.0.1:" + std::to_string(runtime::kModelGatewayPort);
  return {{"ANTHROPIC_BASE_URL", base + "/anthropic"}, {"ANTHROPIC_API_KEY", placeholderKey},
          {"OPENAI_BASE_URL", base + "/openai/v1"},    {"OPENAI_API_KEY", placeholderKey},
          {"CODEX_API_KEY", placeholderKey},           {"GOOGLE_GEMINI_BASE_URL", base + "/gemini"},
          {"GEMINI_API_KEY", placeholderKey}};
}

Result<std::unique_ptr<ModelGateway>> startModelGateway(asio::any_io_executor io,
                                                        GatewayOptions opts) {
  if (opts.placeholderKey.empty()) return invalidArgument("model gateway: no placeholder key");
  auto core = std::make_shared<Core>(asio::make_strand(io), std::move(opts));
  RETURN_IF_ERROR(core->listen());
  asio::co_spawn(core->executor(), Core::acceptLoop(core), asio::detached);
  return std::unique_ptr<ModelGateway>(new ModelGatewayImpl(core));
}

}  // namespace kiln::gateway
