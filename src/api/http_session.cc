#include "api/http_session.h"

#include <spdlog/spdlog.h>

#include "api/request/fields.h"
#include "api/routes/auth.h"
#include "api/sse.h"

namespace kiln::api {
namespace {

constexpr auto kLingerTime = std::chrono::seconds(2);
constexpr size_t kLingerBytes = 8 << 20;
// A client told to retry a stream later waits at least this long.
constexpr const char* kStreamRetryAfterSeconds = "5";

auto ecToken(boost::system::error_code& ec) {
  return asio::redirect_error(asio::use_awaitable, ec);
}

}  // namespace

uint64_t SessionRegistry::add(std::weak_ptr<HttpSession> s) {
  std::lock_guard lock(mu_);
  sessions_.emplace(++next_, std::move(s));
  return next_;
}

void SessionRegistry::remove(uint64_t id) {
  std::lock_guard lock(mu_);
  sessions_.erase(id);
}

size_t SessionRegistry::size() {
  std::lock_guard lock(mu_);
  return sessions_.size();
}

void SessionRegistry::closeAll() {
  std::lock_guard lock(mu_);
  for (auto& [id, weak] : sessions_) {
    if (auto s = weak.lock()) s->close();
  }
}

HttpSession::HttpSession(asio::ip::tcp::socket socket, std::shared_ptr<ServerEnv> env,
                         std::shared_ptr<const Router> router,
                         std::shared_ptr<SessionRegistry> registry, bool overCapacity)
    : stream_(std::move(socket)),
      env_(std::move(env)),
      router_(std::move(router)),
      registry_(std::move(registry)),
      overCapacity_(overCapacity) {}

void HttpSession::close() {
  asio::post(stream_.get_executor(), [self = shared_from_this()] {
    boost::system::error_code ec;
    self->stream_.socket().shutdown(asio::ip::tcp::socket::shutdown_both, ec);
    self->stream_.close();
  });
}

Task<void> HttpSession::run() {
  if (overCapacity_) {
    env_->metrics.countRequest(503);
    const ApiError busy{503, "too_many_connections",
                        "the server has " + std::to_string(env_->opts.maxConnections) +
                            " connections open; retry later"};
    co_await writeErrorAndLinger(11, busy);
    co_return;
  }
  uint64_t regId = registry_->add(weak_from_this());
  while (!env_->stopping) {
    Request req;
    if (!co_await readRequest(req)) break;
    Reply reply = co_await dispatch(req);
    if (reply.sse) {
      if (!co_await stream(req, *reply.sse)) break;
      continue;
    }
    env_->metrics.countRequest(reply.status);
    if (!co_await writeReply(req, reply) || !req.keep_alive()) break;
  }
  boost::system::error_code ec;
  stream_.socket().shutdown(asio::ip::tcp::socket::shutdown_send, ec);
  stream_.close();
  registry_->remove(regId);
}

Task<bool> HttpSession::readRequest(Request& req) {
  http::request_parser<http::string_body> parser;
  parser.header_limit(env_->opts.maxHeaderBytes);
  parser.body_limit(env_->opts.maxBodyBytes);
  boost::system::error_code ec;
  // One deadline for the whole request, head and body: a client that trickles bytes is cut off
  // when it runs out, however steadily it sends.
  stream_.expires_after(env_->opts.requestTimeout);
  co_await http::async_read_header(stream_, buffer_, parser, ecToken(ec));
  if (!ec && !parser.is_done()) {
    // curl waits for this before sending bodies over 1 KiB.
    if (beast::iequals(parser.get()[http::field::expect], "100-continue")) {
      http::response<http::empty_body> cont{http::status::continue_, parser.get().version()};
      co_await http::async_write(stream_, cont, ecToken(ec));
    }
    if (!ec) co_await http::async_read(stream_, buffer_, parser, ecToken(ec));
  }
  if (ec == http::error::end_of_stream || ec == asio::error::eof || ec == beast::error::timeout ||
      ec == asio::error::operation_aborted || ec == asio::error::connection_reset ||
      ec == asio::error::bad_descriptor) {
    co_return false;
  }
  if (ec) {
    const ApiError refused = readError(ec);
    env_->metrics.countRequest(refused.status);
    co_await writeErrorAndLinger(11, refused);
    co_return false;
  }
  req = parser.release();
  co_return true;
}

ApiError HttpSession::readError(const boost::system::error_code& ec) const {
  if (ec == http::error::body_limit) {
    return {413, "payload_too_large",
            "request body exceeds " + std::to_string(env_->opts.maxBodyBytes) + " bytes"};
  }
  if (ec == http::error::header_limit) {
    return {
        431, "headers_too_large",
        "request line and headers exceed " + std::to_string(env_->opts.maxHeaderBytes) + " bytes"};
  }
  return {400, "bad_request", "malformed HTTP request: " + ec.message()};
}

// Answers, then reads and drops what the client is still sending so that closing does not
// reset the connection before the client has read the answer.
Task<void> HttpSession::writeErrorAndLinger(unsigned version, const ApiError& e) {
  Reply reply = errorReply(e);
  http::response<http::string_body> res{static_cast<http::status>(reply.status), version};
  res.set(http::field::content_type, reply.contentType);
  res.keep_alive(false);
  res.body() = reply.body;
  res.prepare_payload();
  boost::system::error_code ec;
  stream_.expires_after(kWriteTimeout);
  co_await http::async_write(stream_, res, ecToken(ec));
  if (ec) co_return;
  stream_.socket().shutdown(asio::ip::tcp::socket::shutdown_send, ec);
  stream_.expires_after(kLingerTime);
  std::vector<char> sink(64 * 1024);
  size_t total = 0;
  while (!ec && total < kLingerBytes) {
    total += co_await stream_.async_read_some(asio::buffer(sink), ecToken(ec));
  }
}

Task<Reply> HttpSession::dispatch(const Request& req) {
  try {
    co_return co_await route(req);
  } catch (const std::exception& e) {
    spdlog::error("api: {} {}: unhandled exception: {}", std::string(req.method_string()),
                  std::string(req.target()), e.what());
  } catch (...) {
    spdlog::error("api: {} {}: unhandled exception", std::string(req.method_string()),
                  std::string(req.target()));
  }
  co_return errorReply(ApiError::internal("internal error"));
}

Task<Reply> HttpSession::route(const Request& req) {
  std::string path;
  std::map<std::string, std::string> query;
  if (!splitTarget(std::string_view(req.target().data(), req.target().size()), path, query)) {
    co_return errorReply(ApiError::invalidArgument("malformed request target"));
  }
  auto match = router_->match(req.method(), path);
  if (match.kind == Router::MatchKind::kNotFound) {
    co_return errorReply(ApiError::notFound("no route for " + path));
  }
  if (match.kind == Router::MatchKind::kMethodNotAllowed) {
    Reply r = errorReply(ApiError{405, "method_not_allowed",
                                  std::string(req.method_string()) + " is not allowed on " + path});
    r.headers.emplace_back("Allow", match.allow);
    co_return r;
  }
  if (request::nestsDeeperThan(req.body(), request::kMaxJsonDepth)) {
    co_return errorReply(ApiError{400, "json_too_deep",
                                  "request body nests arrays and objects deeper than " +
                                      std::to_string(request::kMaxJsonDepth) + " levels"});
  }
  api::Request ctx{*env_, req, "", "", std::move(match.params), std::move(query)};
  if (match.access != Access::kOpen) {
    Status st = co_await authorize(ctx, match.access);
    if (!st) co_return errorReply(st);
  }
  co_return co_await (*match.handler)(ctx);
}

Task<bool> HttpSession::stream(const Request& req, const SseRequest& sse) {
  auto slot = env_->streams.tryAcquire(sse.streamKey, env_->opts.maxStreamsPerToken);
  if (!slot) {
    Reply busy =
        errorReply(ApiError{429, "too_many_streams",
                            "this token has " + std::to_string(env_->opts.maxStreamsPerToken) +
                                " event streams open; close one or retry later"});
    busy.headers.emplace_back("Retry-After", kStreamRetryAfterSeconds);
    env_->metrics.countRequest(busy.status);
    co_return co_await writeReply(req, busy) && req.keep_alive();
  }
  env_->metrics.countRequest(200);
  co_await runSseStream(stream_, *env_, sse, req.version());
  co_return false;
}

Task<bool> HttpSession::writeReply(const Request& req, const Reply& reply) {
  http::response<http::string_body> res{static_cast<http::status>(reply.status), req.version()};
  res.set(http::field::server, "kiln");
  res.set(http::field::content_type, reply.contentType);
  for (const auto& [k, v] : reply.headers) res.set(k, v);
  res.keep_alive(req.keep_alive());
  res.body() = reply.body;
  res.prepare_payload();
  boost::system::error_code ec;
  stream_.expires_after(kWriteTimeout);
  co_await http::async_write(stream_, res, ecToken(ec));
  co_return !ec;
}

}  // namespace kiln::api
