#include "cli/http_client.h"

#include <limits>

#include "common/asio.h"
#include "common/http_error.h"
#include "common/url.h"

namespace kiln::cli {

namespace {

using tcp = asio::ip::tcp;

// One TCP connection driven by its own io_context. Operations are async so that the stream's
// expiry (timeouts) applies, then run to completion before returning: synchronous to callers.
class Connection {
 public:
  explicit Connection(const HttpUrl& url) : url_(url), stream_(ioc_) {}

  Status connect(std::chrono::milliseconds timeout) {
    tcp::resolver resolver(ioc_);
    beast::error_code ec;
    auto results = resolver.resolve(url_.host, url_.port, ec);
    if (ec) return unreachable("resolve: " + ec.message());
    stream_.expires_after(timeout);
    stream_.async_connect(results, [&](beast::error_code e, const tcp::endpoint&) { ec = e; });
    run();
    if (ec) return unreachable(ec.message());
    return Status::ok();
  }

  template <class Message>
  Status write(Message& msg, std::chrono::milliseconds timeout) {
    beast::error_code ec;
    stream_.expires_after(timeout);
    http::async_write(stream_, msg, [&](beast::error_code e, size_t) { ec = e; });
    run();
    return ec ? unreachable("write: " + ec.message()) : Status::ok();
  }

  enum class Read { kHeader, kSome, kWhole };

  // Reads into `parser`; kSome returns after any progress, so streamed bytes surface at once.
  // `need_buffer` is not an error for buffer bodies. A zero timeout waits forever.
  template <class Parser>
  beast::error_code read(Parser& parser, std::chrono::milliseconds timeout, Read mode) {
    beast::error_code ec;
    if (timeout.count() > 0) {
      stream_.expires_after(timeout);
    } else {
      stream_.expires_never();
    }
    auto done = [&](beast::error_code e, size_t) { ec = e; };
    if (mode == Read::kHeader) {
      http::async_read_header(stream_, buffer_, parser, done);
    } else if (mode == Read::kSome) {
      http::async_read_some(stream_, buffer_, parser, done);
    } else {
      http::async_read(stream_, buffer_, parser, done);
    }
    run();
    if (ec == http::error::need_buffer) ec = {};
    return ec;
  }

  void close() {
    beast::error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_both, ec);
  }

  Status unreachable(const std::string& what) const {
    return Status(Code::kUnavailable, "cannot reach kiln server at http://" + url_.host + ":" +
                                          url_.port + " (" + what + ")");
  }

 private:
  void run() {
    ioc_.restart();
    ioc_.run();
  }

  HttpUrl url_;
  asio::io_context ioc_;
  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
};

}  // namespace

Result<HttpUrl> parseHttpUrl(const std::string& url) {
  Result<Url> u = parseUrl(url);
  if (u && u->scheme == "https") {
    return invalidArgument("https is not supported by the kiln CLI: " + url);
  }
  if (!u || u->scheme != "http") return invalidArgument("server URL must be http://…: " + url);
  HttpUrl out;
  out.host = u->host;
  out.port = u->port.empty() ? "80" : u->port;
  out.basePath = u->path;
  while (!out.basePath.empty() && out.basePath.back() == '/') out.basePath.pop_back();
  return out;
}

Status apiError(const HttpResponse& resp) { return statusFromHttpError(resp.status, resp.body); }

Result<json> jsonBody(const HttpResponse& resp) {
  if (resp.status < 200 || resp.status > 299) return apiError(resp);
  auto j = json::parse(resp.body, nullptr, false);
  if (j.is_discarded()) return internalError("server sent malformed JSON");
  return j;
}

HttpClient::HttpClient(std::string baseUrl, std::string token)
    : baseUrl_(std::move(baseUrl)), token_(std::move(token)) {}

Result<HttpResponse> HttpClient::get(const std::string& target, std::chrono::milliseconds timeout) {
  return request("GET", target, "", timeout);
}

Result<HttpResponse> HttpClient::postJson(const std::string& target, const json& body,
                                          std::chrono::milliseconds timeout) {
  return request("POST", target, body.dump(), timeout);
}

Result<HttpResponse> HttpClient::sendJson(const std::string& method, const std::string& target,
                                          const json& body, std::chrono::milliseconds timeout) {
  return request(method, target, body.dump(), timeout);
}

Result<HttpResponse> HttpClient::request(const std::string& method, const std::string& target,
                                         const std::string& body,
                                         std::chrono::milliseconds timeout) {
  ASSIGN_OR_RETURN(HttpUrl url, parseHttpUrl(baseUrl_));
  Connection conn(url);
  RETURN_IF_ERROR(conn.connect(timeout));
  http::request<http::string_body> req(http::string_to_verb(method), url.basePath + target, 11);
  req.set(http::field::host, url.host);
  req.set(http::field::user_agent, "kiln-cli");
  if (!token_.empty()) req.set(http::field::authorization, "Bearer " + token_);
  if (method == "POST" || method == "PUT") {
    req.set(http::field::content_type, "application/json");
    req.body() = body;
  }
  req.prepare_payload();
  RETURN_IF_ERROR(conn.write(req, timeout));
  http::response_parser<http::string_body> parser;
  parser.body_limit(std::numeric_limits<uint64_t>::max());
  if (auto ec = conn.read(parser, timeout, Connection::Read::kWhole))
    return conn.unreachable("read: " + ec.message());
  conn.close();
  HttpResponse resp;
  resp.status = static_cast<int>(parser.get().result_int());
  resp.contentType = std::string(parser.get()[http::field::content_type]);
  resp.body = std::move(parser.get().body());
  return resp;
}

Status HttpClient::streamEvents(const std::string& target, SseParser& parser,
                                const std::function<bool(const SseEvent&)>& onEvent,
                                std::chrono::milliseconds idleTimeout) {
  ASSIGN_OR_RETURN(HttpUrl url, parseHttpUrl(baseUrl_));
  Connection conn(url);
  RETURN_IF_ERROR(conn.connect(std::chrono::seconds(10)));
  http::request<http::empty_body> req(http::verb::get, url.basePath + target, 11);
  req.set(http::field::host, url.host);
  req.set(http::field::accept, "text/event-stream");
  if (!token_.empty()) req.set(http::field::authorization, "Bearer " + token_);
  if (!parser.lastEventId().empty()) req.set("Last-Event-ID", parser.lastEventId());
  RETURN_IF_ERROR(conn.write(req, std::chrono::seconds(10)));

  http::response_parser<http::buffer_body> resp;
  resp.body_limit(std::numeric_limits<uint64_t>::max());
  if (auto ec = conn.read(resp, std::chrono::seconds(30), Connection::Read::kHeader)) {
    return conn.unreachable("read: " + ec.message());
  }
  int status = static_cast<int>(resp.get().result_int());
  if (status != 200) {
    // Error bodies are small JSON; read them whole through a string parser.
    http::response_parser<http::string_body> whole(std::move(resp));
    (void)conn.read(whole, std::chrono::seconds(10), Connection::Read::kWhole);
    return apiError(HttpResponse{status, "", whole.get().body()});
  }
  char chunk[8192];
  while (!resp.is_done()) {
    resp.get().body().data = chunk;
    resp.get().body().size = sizeof chunk;
    auto ec = conn.read(resp, idleTimeout, Connection::Read::kSome);
    if (ec == beast::error::timeout) return Status::ok();
    if (ec == http::error::end_of_stream || ec == asio::error::eof) {
      return conn.unreachable("stream ended early");
    }
    if (ec) return conn.unreachable("stream: " + ec.message());
    size_t n = sizeof chunk - resp.get().body().size;
    for (const auto& ev : parser.feed(std::string_view(chunk, n))) {
      if (!onEvent(ev)) return Status::ok();
    }
  }
  return Status::ok();
}

}  // namespace kiln::cli
