#include "sandbox/egress/intercept.h"

#include <openssl/x509v3.h>
#include <spdlog/spdlog.h>

#include <boost/asio/ssl.hpp>
#include <boost/beast/ssl.hpp>

namespace kiln::sandbox::egress {
namespace {

using tcp = asio::ip::tcp;
using UnixSocket = asio::local::stream_protocol::socket;
namespace ssl = asio::ssl;

constexpr size_t kInterceptHeaderLimit = 64 * 1024;
constexpr auto kHandshakeTimeout = std::chrono::seconds(30);
constexpr auto kIdle = std::chrono::minutes(10);

// The upstream side verifies the real host against the node's trust store (OpenSSL's default
// paths, which honour SSL_CERT_FILE / SSL_CERT_DIR), as any client would.
ssl::context& upstreamContext() {
  static ssl::context* ctx = [] {
    auto* c = new ssl::context(ssl::context::tls_client);
    boost::system::error_code ec;
    c->set_default_verify_paths(ec);
    c->set_verify_mode(ssl::verify_peer, ec);
    SSL_CTX_set_min_proto_version(c->native_handle(), TLS1_2_VERSION);
    return c;
  }();
  return *ctx;
}

// SNI and the name (or IP) the upstream certificate must carry.
bool expectHost(SSL* ssl, const std::string& host) {
  boost::system::error_code ec;
  asio::ip::make_address(host, ec);
  X509_VERIFY_PARAM* param = SSL_get0_param(ssl);
  if (!ec) return X509_VERIFY_PARAM_set1_ip_asc(param, host.c_str()) == 1;
  return SSL_set_tlsext_host_name(ssl, host.c_str()) == 1 && SSL_set1_host(ssl, host.c_str()) == 1;
}

using BodyRequest = http::request<http::buffer_body>;

void injectInto(BodyRequest& req, const std::vector<SecretRule>& rules) {
  std::string target(req.target());
  if (injectSecrets(target, rules)) req.target(target);
  std::vector<std::pair<http::fields::const_iterator, std::string>> changed;
  for (auto it = req.begin(); it != req.end(); ++it) {
    std::string value(it->value());
    if (injectSecrets(value, rules)) changed.emplace_back(it, std::move(value));
  }
  for (auto& [it, value] : changed) {
    const std::string name(it->name_string());
    req.erase(it);
    req.insert(name, value);
  }
}

class Tunnel : public std::enable_shared_from_this<Tunnel> {
 public:
  Tunnel(UnixSocket client, tcp::socket upstream, std::string host, std::vector<SecretRule> rules,
         ssl::context& serverContext, std::shared_ptr<void> owner)
      : owner_(std::move(owner)),
        host_(std::move(host)),
        rules_(std::move(rules)),
        client_(std::move(client), serverContext),
        upstream_(std::move(upstream), upstreamContext()),
        timer_(client_.get_executor()) {}

  static Task<void> run(std::shared_ptr<Tunnel> self) { co_await self->serve(); }
  static Task<void> pump(std::shared_ptr<Tunnel> self) { co_await self->responses(); }
  static Task<void> watch(std::shared_ptr<Tunnel> self) { co_await self->watchIdle(); }

 private:
  Task<void> serve();
  Task<void> requests();
  Task<void> responses();
  Task<void> watchIdle();
  void close() {
    closed_ = true;
    boost::system::error_code ec;
    beast::get_lowest_layer(client_).close(ec);
    beast::get_lowest_layer(upstream_).close(ec);
    timer_.cancel();
  }
  void log(const std::string& what) const { spdlog::debug("egress intercept {}: {}", host_, what); }

  std::shared_ptr<void> owner_;
  const std::string host_;
  const std::vector<SecretRule> rules_;
  beast::ssl_stream<UnixSocket> client_;
  beast::ssl_stream<tcp::socket> upstream_;
  asio::steady_timer timer_;
  std::chrono::steady_clock::time_point last_ = std::chrono::steady_clock::now();
  bool handshaken_ = false;
  bool closed_ = false;
};

Task<void> Tunnel::serve() {
  boost::system::error_code ec;
  co_await client_.async_handshake(ssl::stream_base::server,
                                   asio::redirect_error(asio::use_awaitable, ec));
  if (ec) {
    log("client handshake: " + ec.message());
    close();
    co_return;
  }
  if (!expectHost(upstream_.native_handle(), host_)) {
    log("cannot set the expected upstream name");
    close();
    co_return;
  }
  co_await upstream_.async_handshake(ssl::stream_base::client,
                                     asio::redirect_error(asio::use_awaitable, ec));
  if (ec) {
    // The sandbox's client sees the connection end: it never gets a certificate kiln did not
    // verify.
    spdlog::warn("egress intercept {}: upstream TLS failed: {}", host_, ec.message());
    close();
    co_return;
  }
  handshaken_ = true;
  asio::co_spawn(client_.get_executor(), pump(shared_from_this()), asio::detached);
  co_await requests();
}

// Request by request: the header is read whole and gets the values; the body is streamed
// through in 64 KiB pieces (never held whole: the sandbox must not make the node buffer an
// upload), re-chunked when it came chunked.
Task<void> Tunnel::requests() {
  beast::flat_buffer buffer;
  boost::system::error_code ec;
  std::array<char, 64 * 1024> piece;
  while (!closed_) {
    http::request_parser<http::buffer_body> parser;
    parser.header_limit(kInterceptHeaderLimit);
    // Not boost::none: Boost 1.74 compares a length with it as larger (and refuses).
    parser.body_limit(std::numeric_limits<std::uint64_t>::max());
    co_await http::async_read_header(client_, buffer, parser,
                                     asio::redirect_error(asio::use_awaitable, ec));
    if (ec) break;
    last_ = std::chrono::steady_clock::now();
    BodyRequest& req = parser.get();
    injectInto(req, rules_);
    http::request_serializer<http::buffer_body> serializer(req);
    co_await http::async_write_header(upstream_, serializer,
                                      asio::redirect_error(asio::use_awaitable, ec));
    if (ec) break;
    while (!parser.is_done()) {
      req.body().data = piece.data();
      req.body().size = piece.size();
      co_await http::async_read(client_, buffer, parser,
                                asio::redirect_error(asio::use_awaitable, ec));
      if (ec == http::error::need_buffer) ec = {};
      if (ec) break;
      last_ = std::chrono::steady_clock::now();
      req.body().size = piece.size() - req.body().size;
      req.body().data = piece.data();
      req.body().more = !parser.is_done();
      co_await http::async_write(upstream_, serializer,
                                 asio::redirect_error(asio::use_awaitable, ec));
      if (ec == http::error::need_buffer) ec = {};
      if (ec) break;
    }
    if (ec) break;
    if (!serializer.is_done()) {
      // A request without a body (or whose last piece ended it): finish its serialization.
      req.body().data = nullptr;
      req.body().size = 0;
      req.body().more = false;
      co_await http::async_write(upstream_, serializer,
                                 asio::redirect_error(asio::use_awaitable, ec));
      if (ec == http::error::need_buffer) ec = {};
      if (ec) break;
    }
  }
  if (ec && ec != http::error::end_of_stream && ec != asio::error::eof &&
      ec != ssl::error::stream_truncated && !closed_) {
    log("request: " + ec.message());
  }
  close();
}

Task<void> Tunnel::responses() {
  std::array<char, 64 * 1024> buf;
  boost::system::error_code ec;
  while (!closed_) {
    size_t n = co_await upstream_.async_read_some(asio::buffer(buf),
                                                  asio::redirect_error(asio::use_awaitable, ec));
    if (ec) break;
    last_ = std::chrono::steady_clock::now();
    co_await asio::async_write(client_, asio::buffer(buf.data(), n),
                               asio::redirect_error(asio::use_awaitable, ec));
    if (ec) break;
  }
  // The upstream ended its side (or failed): so does the tunnel, once all it sent was relayed.
  if (!closed_) {
    boost::system::error_code ignored;
    co_await client_.async_shutdown(asio::redirect_error(asio::use_awaitable, ignored));
  }
  close();
}

Task<void> Tunnel::watchIdle() {
  while (!closed_) {
    timer_.expires_after(handshaken_ ? kIdle / 4 : kHandshakeTimeout);
    boost::system::error_code ec;
    co_await timer_.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    if (closed_) co_return;
    const auto idleFor = std::chrono::steady_clock::now() - last_;
    if ((!handshaken_ && idleFor >= kHandshakeTimeout) || idleFor > kIdle) {
      log("idle: closed");
      close();
    }
  }
}

}  // namespace

std::vector<SecretRule> Interception::rulesFor(const std::string& host, uint16_t port) const {
  std::vector<SecretRule> out;
  for (const auto& r : rules)
    if (r.hosts.checkHost(host, port).allowed) out.push_back(r);
  return out;
}

bool injectSecrets(std::string& text, const std::vector<SecretRule>& rules) {
  bool changed = false;
  for (const auto& r : rules) {
    for (size_t at = text.find(r.placeholder); at != std::string::npos;
         at = text.find(r.placeholder, at + r.value.size())) {
      text.replace(at, r.placeholder.size(), r.value);
      changed = true;
    }
  }
  return changed;
}

void startIntercept(UnixSocket client, tcp::socket upstream, const std::string& host,
                    std::vector<SecretRule> rules, std::shared_ptr<ssl::context> serverContext,
                    std::shared_ptr<void> owner) {
  const asio::any_io_executor ex = client.get_executor();
  auto tunnel = std::make_shared<Tunnel>(std::move(client), std::move(upstream), host,
                                         std::move(rules), *serverContext, std::move(owner));
  asio::co_spawn(ex, Tunnel::watch(tunnel), asio::detached);
  asio::co_spawn(ex, Tunnel::run(tunnel), asio::detached);
}

}  // namespace kiln::sandbox::egress
