#include "sandbox/egress/session.h"

#include <spdlog/spdlog.h>

#include "sandbox/egress/relay.h"
#include "sandbox/egress/target.h"

namespace kiln::sandbox::egress {
namespace {

using tcp = asio::ip::tcp;
using UnixSocket = asio::local::stream_protocol::socket;
using Request = http::request<http::string_body>;

constexpr size_t kSessionHeaderLimit = 16 * 1024;
// Plain-HTTP request bodies are buffered whole; uploads of any size go through CONNECT (HTTPS).
constexpr size_t kBodyLimit = 1 << 20;
// From accept to relaying: reading the request, resolving and connecting upstream.
constexpr auto kSetupTimeout = std::chrono::seconds(30);

std::string textResponse(int status, const char* reason, const std::string& text) {
  const std::string body = "kiln egress proxy: " + text + "\n";
  return "HTTP/1.1 " + std::to_string(status) + " " + reason +
         "\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: " +
         std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n" + body;
}

// RFC 9110 7.6.1 / 9112 3.2.2: the proxy drops hop-by-hop fields and rewrites Host from the
// absolute URI; Connection: close makes the upstream end the exchange after one response.
void prepareForwarded(Request& req, const ProxyTarget& t) {
  req.target(t.originForm);
  req.erase("Proxy-Connection");
  req.erase(http::field::proxy_authorization);
  req.erase(http::field::keep_alive);
  req.erase(http::field::upgrade);
  req.set(http::field::host, t.hostHeader);
  req.set(http::field::connection, "close");
  req.chunked(false);
  req.prepare_payload();
}

class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(UnixSocket client, std::shared_ptr<ListenerConfig> config)
      : config_(std::move(config)),
        client_(std::move(client)),
        upstream_(client_.get_executor()),
        resolver_(client_.get_executor()),
        deadline_(client_.get_executor()) {}
  ~Session() { --config_->active; }

  static Task<void> run(std::shared_ptr<Session> self) {
    co_await self->serve();
    // Whatever happened, the setup phase is over: stop the watchdog, which holds the session
    // (and the client's socket, unless a relay took it) for up to 30 s otherwise.
    self->setupDone_ = true;
    self->deadline_.cancel();
    boost::system::error_code ec;
    self->client_.close(ec);
  }
  static Task<void> watch(std::shared_ptr<Session> self) { co_await self->watchSetup(); }

 private:
  Task<void> serve();
  Task<void> watchSetup();
  Task<void> refuse(int status, const char* reason, const std::string& text);
  void log(std::string_view what, const std::string& detail) const {
    spdlog::debug("egress {}: {} {}: {}", config_->label, what, target_, detail);
  }

  std::shared_ptr<ListenerConfig> config_;
  UnixSocket client_;
  tcp::socket upstream_;
  tcp::resolver resolver_;
  asio::steady_timer deadline_;
  beast::flat_buffer buffer_;
  std::string target_;  // the request line's method and target, for logs
  bool setupDone_ = false;
};

Task<void> Session::watchSetup() {
  deadline_.expires_after(kSetupTimeout);
  boost::system::error_code ec;
  co_await deadline_.async_wait(asio::redirect_error(asio::use_awaitable, ec));
  if (setupDone_ || ec == asio::error::operation_aborted) co_return;
  log("timed out", "no request, resolution or connection within 30 s");
  resolver_.cancel();
  boost::system::error_code ignored;
  client_.close(ignored);
  upstream_.close(ignored);
}

Task<void> Session::refuse(int status, const char* reason, const std::string& text) {
  log(status == 403 ? "refused" : "failed", text);
  const std::string response = textResponse(status, reason, text);
  boost::system::error_code ec;
  co_await asio::async_write(client_, asio::buffer(response),
                             asio::redirect_error(asio::use_awaitable, ec));
  client_.shutdown(asio::socket_base::shutdown_send, ec);
}

Task<void> Session::serve() {
  boost::system::error_code ec;
  http::request_parser<http::string_body> parser;
  parser.header_limit(kSessionHeaderLimit);
  parser.body_limit(kBodyLimit);
  co_await http::async_read(client_, buffer_, parser,
                            asio::redirect_error(asio::use_awaitable, ec));
  if (ec) {
    if (ec == http::error::end_of_stream || ec == asio::error::eof || !client_.is_open()) {
      co_return;
    }
    target_ = "(unparsed)";
    if (ec == http::error::body_limit) {
      const std::string why = "plain-HTTP request body over 1 MiB (use https:// for uploads)";
      co_await refuse(413, "Payload Too Large", why);
    } else {
      const std::string why = "malformed request: " + ec.message();
      co_await refuse(400, "Bad Request", why);
    }
    co_return;
  }
  Request req = parser.release();
  const bool connect = req.method() == http::verb::connect;
  target_ = std::string(req.method_string()) + " " + std::string(req.target());
  const std::string_view rawTarget(req.target().data(), req.target().size());
  Result<ProxyTarget> parsed = parseProxyTarget(connect, rawTarget);
  if (!parsed) {
    const std::string why = parsed.status().message();
    co_await refuse(400, "Bad Request", why);
    co_return;
  }
  const ProxyTarget t = std::move(parsed).value();
  const Verdict verdict = config_->allow.checkHost(t.host, t.port);
  if (!verdict.allowed) {
    co_await refuse(403, "Forbidden", verdict.reason);
    co_return;
  }
  const std::string port = std::to_string(t.port);
  tcp::resolver::results_type results = co_await resolver_.async_resolve(
      t.host, port, tcp::resolver::numeric_service, asio::redirect_error(asio::use_awaitable, ec));
  if (ec) {
    const std::string why = "cannot resolve " + t.host + ": " + ec.message();
    co_await refuse(502, "Bad Gateway", why);
    co_return;
  }
  std::vector<asio::ip::address> addresses;
  for (const auto& entry : results) addresses.push_back(entry.endpoint().address());
  const Verdict resolved = config_->allow.checkResolved(t.host, t.port, addresses);
  if (!resolved.allowed) {
    co_await refuse(403, "Forbidden", resolved.reason);
    co_return;
  }
  co_await asio::async_connect(upstream_, results, asio::redirect_error(asio::use_awaitable, ec));
  if (ec) {
    const std::string why = "cannot connect to " + t.host + ":" + port + ": " + ec.message();
    co_await refuse(502, "Bad Gateway", why);
    co_return;
  }
  RelayOptions relay;
  std::vector<SecretRule> secrets;
  if (connect) secrets = config_->intercept.rulesFor(t.host, t.port);
  if (connect) {
    static const std::string kEstablished = "HTTP/1.1 200 Connection established\r\n\r\n";
    co_await asio::async_write(client_, asio::buffer(kEstablished),
                               asio::redirect_error(asio::use_awaitable, ec));
    // Bytes the client sent right after the header (a TLS hello) are already buffered.
    relay.pending = beast::buffers_to_string(buffer_.data());
  } else {
    prepareForwarded(req, t);
    co_await http::async_write(upstream_, req, asio::redirect_error(asio::use_awaitable, ec));
    relay.forwardAtoB = false;
  }
  if (ec) {
    const std::string why = "write: " + ec.message();
    log("failed", why);
    co_return;
  }
  log("allowed", "via " + upstream_.remote_endpoint(ec).address().to_string());
  if (!secrets.empty()) {
    // A client that sent TLS bytes before the 200 cannot be intercepted: refuse, never tunnel
    // a host whose secrets would then be missing (or its placeholder leak to it unreplaced).
    if (buffer_.size() != 0) {
      log("failed", "TLS data before the tunnel was established");
      co_return;
    }
    auto context = config_->intercept.ca->serverContext(normalizeHost(t.host));
    if (!context) {
      log("failed", context.status().message());
      co_return;
    }
    startIntercept(std::move(client_), std::move(upstream_), normalizeHost(t.host),
                   std::move(secrets), std::move(context).value(), shared_from_this());
    co_return;
  }
  buffer_ = beast::flat_buffer();
  relay.owner = shared_from_this();  // the connection counts as active until the relay ends
  startRelay(std::move(client_), std::move(upstream_), relay);
}

}  // namespace

void startSession(UnixSocket client, std::shared_ptr<ListenerConfig> config) {
  ++config->active;
  const asio::any_io_executor ex = client.get_executor();
  auto session = std::make_shared<Session>(std::move(client), std::move(config));
  asio::co_spawn(ex, Session::watch(session), asio::detached);
  asio::co_spawn(ex, Session::run(session), asio::detached);
}

}  // namespace kiln::sandbox::egress
