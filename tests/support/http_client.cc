#include "support/http_client.h"

#include <algorithm>
#include <cctype>

namespace kiln::testing {
namespace {

using tcp = asio::ip::tcp;
using SteadyClock = std::chrono::steady_clock;

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}

template <class Fields>
Headers collectHeaders(const Fields& fields) {
  Headers out;
  for (const auto& f : fields) out[lower(std::string(f.name_string()))] = std::string(f.value());
  return out;
}

Status ioError(const std::string& what, const boost::system::error_code& ec) {
  return Status(Code::kUnavailable, what + ": " + ec.message());
}

// Runs `ioc` until the started operations finish or `deadline` passes; on the deadline it
// cancels the socket's operations. True if they finished in time.
bool runUntil(asio::io_context& ioc, tcp::socket& socket, SteadyClock::time_point deadline) {
  ioc.restart();
  ioc.run_until(deadline);
  if (ioc.stopped()) return true;
  boost::system::error_code ec;
  socket.cancel(ec);
  ioc.restart();
  ioc.run();
  return false;
}

}  // namespace

std::string HttpResponse::header(const std::string& name) const {
  auto it = headers.find(lower(name));
  return it == headers.end() ? "" : it->second;
}

nlohmann::json HttpResponse::json() const { return nlohmann::json::parse(body, nullptr, false); }

nlohmann::json SseEvent::json() const { return nlohmann::json::parse(data, nullptr, false); }

HttpClient::HttpClient(std::string host, uint16_t port) : host_(std::move(host)), port_(port) {}
HttpClient::~HttpClient() = default;

Status HttpClient::connect() {
  boost::system::error_code ec;
  auto addr = asio::ip::make_address(host_, ec);
  if (ec) return ioError("address " + host_, ec);
  stream_ = std::make_unique<beast::tcp_stream>(ioc_);
  buffer_.clear();
  stream_->expires_after(timeout_);
  stream_->async_connect(tcp::endpoint(addr, port_), [&](auto e) { ec = e; });
  ioc_.restart();
  ioc_.run();
  if (ec) {
    stream_.reset();
    return ioError("connect", ec);
  }
  return Status::ok();
}

Result<HttpResponse> HttpClient::request(http::verb method, const std::string& target,
                                         const std::string& body, const Headers& headers) {
  http::request<http::string_body> req{method, target, 11};
  req.set(http::field::host, host_ + ":" + std::to_string(port_));
  if (!bearer_.empty()) req.set(http::field::authorization, "Bearer " + bearer_);
  if (!body.empty()) req.set(http::field::content_type, "application/json");
  for (const auto& [k, v] : headers) req.set(k, v);
  req.body() = body;
  req.prepare_payload();
  bool reused = stream_ != nullptr;
  auto res = attempt(req);
  // A kept-alive connection may have been closed by the server since the last request.
  if (!res && reused) res = attempt(req);
  return res;
}

Result<HttpResponse> HttpClient::attempt(http::request<http::string_body>& req) {
  if (!stream_) RETURN_IF_ERROR(connect());
  boost::system::error_code ec;
  stream_->expires_after(timeout_);
  http::async_write(*stream_, req, [&](auto e, size_t) { ec = e; });
  ioc_.restart();
  ioc_.run();
  // A server that rejects early (413) may close while we still write; its answer is readable.
  bool writeFailed = static_cast<bool>(ec);
  http::response_parser<http::string_body> parser;
  parser.body_limit(std::numeric_limits<uint64_t>::max());
  stream_->expires_after(timeout_);
  http::async_read(*stream_, buffer_, parser, [&](auto e, size_t) { ec = e; });
  ioc_.restart();
  ioc_.run();
  if (ec) {
    stream_.reset();
    return ioError(writeFailed ? "write/read" : "read", ec);
  }
  auto res = parser.release();
  HttpResponse out;
  out.status = res.result_int();
  out.headers = collectHeaders(res);
  out.body = std::move(res.body());
  if (!res.keep_alive()) stream_.reset();
  return out;
}

Result<std::string> HttpClient::rawExchange(const std::string& bytes) {
  boost::system::error_code ec;
  auto addr = asio::ip::make_address(host_, ec);
  if (ec) return ioError("address", ec);
  asio::io_context ioc;
  tcp::socket socket(ioc);
  auto deadline = SteadyClock::now() + timeout_;
  socket.async_connect(tcp::endpoint(addr, port_), [&](auto e) { ec = e; });
  if (!runUntil(ioc, socket, deadline) || ec) return ioError("connect", ec);
  asio::async_write(socket, asio::buffer(bytes), [&](auto e, size_t) { ec = e; });
  runUntil(ioc, socket, deadline);
  std::string out;
  char buf[4096];
  std::function<void(boost::system::error_code, size_t)> onRead = [&](auto e, size_t n) {
    out.append(buf, n);
    if (!e) socket.async_read_some(asio::buffer(buf), onRead);
  };
  socket.async_read_some(asio::buffer(buf), onRead);
  runUntil(ioc, socket, deadline);
  return out;
}

Result<std::unique_ptr<SseReader>> SseReader::open(const std::string& host, uint16_t port,
                                                   const std::string& target,
                                                   const Headers& headers,
                                                   std::chrono::milliseconds timeout) {
  std::unique_ptr<SseReader> r(new SseReader());
  boost::system::error_code ec;
  auto addr = asio::ip::make_address(host, ec);
  if (ec) return ioError("address", ec);
  auto deadline = SteadyClock::now() + timeout;
  r->stream_ = std::make_unique<beast::tcp_stream>(r->ioc_);
  auto& socket = r->stream_->socket();
  socket.async_connect(tcp::endpoint(addr, port), [&](auto e) { ec = e; });
  if (!runUntil(r->ioc_, socket, deadline) || ec) return ioError("connect", ec);

  http::request<http::empty_body> req{http::verb::get, target, 11};
  req.set(http::field::host, host + ":" + std::to_string(port));
  req.set(http::field::accept, "text/event-stream");
  for (const auto& [k, v] : headers) req.set(k, v);
  http::async_write(socket, req, [&](auto e, size_t) { ec = e; });
  if (!runUntil(r->ioc_, socket, deadline) || ec) return ioError("write", ec);

  beast::flat_buffer buf;
  http::response_parser<http::empty_body> parser;
  http::async_read_header(socket, buf, parser, [&](auto e, size_t) { ec = e; });
  if (!runUntil(r->ioc_, socket, deadline) || ec) return ioError("read header", ec);
  r->status_ = parser.get().result_int();
  r->headers_ = collectHeaders(parser.get());
  r->pending_ = beast::buffers_to_string(buf.data());
  return r;
}

SseReader::~SseReader() = default;

bool SseReader::readMore(SteadyClock::time_point deadline) {
  if (closed_) return false;
  char buf[8192];
  boost::system::error_code ec;
  size_t n = 0;
  auto& socket = stream_->socket();
  socket.async_read_some(asio::buffer(buf), [&](auto e, size_t got) {
    ec = e;
    n = got;
  });
  bool inTime = runUntil(ioc_, socket, deadline);
  pending_.append(buf, n);
  if (!inTime) return n > 0;
  if (ec) closed_ = true;
  return n > 0;
}

std::string SseReader::errorBody() {
  size_t want = std::strtoul(headers_["content-length"].c_str(), nullptr, 10);
  auto deadline = SteadyClock::now() + std::chrono::seconds(5);
  while (pending_.size() < want && SteadyClock::now() < deadline && !closed_) readMore(deadline);
  return pending_;
}

std::optional<SseEvent> SseReader::parseOne() {
  for (;;) {
    size_t end = pending_.find("\n\n");
    if (end == std::string::npos) return std::nullopt;
    std::string block = pending_.substr(0, end);
    pending_.erase(0, end + 2);
    SseEvent ev;
    bool any = false;
    size_t pos = 0;
    while (pos <= block.size()) {
      size_t nl = block.find('\n', pos);
      if (nl == std::string::npos) nl = block.size();
      std::string line = block.substr(pos, nl - pos);
      pos = nl + 1;
      if (line.empty()) continue;
      if (line[0] == ':') {
        comments_++;
        continue;
      }
      size_t colon = line.find(':');
      std::string field = line.substr(0, colon);
      std::string value = colon == std::string::npos ? "" : line.substr(colon + 1);
      if (!value.empty() && value[0] == ' ') value.erase(0, 1);
      any = true;
      if (field == "id") ev.id = value;
      if (field == "event") ev.type = value;
      if (field == "data") ev.data += ev.data.empty() ? value : "\n" + value;
    }
    if (any) return ev;
  }
}

std::optional<SseEvent> SseReader::next(std::chrono::milliseconds timeout) {
  auto deadline = SteadyClock::now() + timeout;
  for (;;) {
    if (auto ev = parseOne()) return ev;
    if (closed_ || SteadyClock::now() >= deadline) return std::nullopt;
    readMore(deadline);
  }
}

std::vector<SseEvent> SseReader::readUntil(const std::string& type,
                                           std::chrono::milliseconds timeout) {
  std::vector<SseEvent> out;
  auto deadline = SteadyClock::now() + timeout;
  while (auto ev = next(std::chrono::duration_cast<std::chrono::milliseconds>(
             std::max(deadline - SteadyClock::now(), SteadyClock::duration::zero())))) {
    out.push_back(*ev);
    if (ev->type == type) break;
  }
  return out;
}

}  // namespace kiln::testing
