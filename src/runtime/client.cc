#include "runtime/client.h"

namespace kiln::runtime {
namespace {

using nlohmann::json;
using Socket = asio::local::stream_protocol::socket;
using boost::system::error_code;

constexpr size_t kMaxResponseBytes = 512 << 20;

Status transportError(const std::string& what, const error_code& ec) {
  return Status(Code::kUnavailable, "runtime: " + what + ": " + ec.message());
}

Code codeForHttp(unsigned status) {
  switch (status) {
    case 400: return Code::kInvalidArgument;
    case 401: return Code::kUnauthenticated;
    case 403: return Code::kPermissionDenied;
    case 404: return Code::kNotFound;
    case 409: return Code::kConflict;
    case 413: return Code::kTooLarge;
    case 422: return Code::kUnprocessable;
    case 429: return Code::kResourceExhausted;
    case 503: return Code::kUnavailable;
    case 504: return Code::kDeadlineExceeded;
    default: return Code::kInternal;
  }
}

// {"error":{"code","message"}} → Status whose message starts with the contract's error code.
Status errorFromBody(unsigned status, const std::string& body) {
  json j = json::parse(body, nullptr, false);
  std::string code = "http_" + std::to_string(status), message = body;
  if (!j.is_discarded() && j.contains("error") && j["error"].is_object()) {
    code = j["error"].value("code", code);
    message = j["error"].value("message", std::string());
  }
  return Status(codeForHttp(status), code + ": " + message);
}

Task<Result<Socket>> connectTo(asio::any_io_executor ex, const std::string& path) {
  Socket sock(ex);
  error_code ec;
  co_await sock.async_connect(asio::local::stream_protocol::endpoint(path),
                              asio::redirect_error(asio::use_awaitable, ec));
  if (ec) co_return transportError("connect " + path, ec);
  co_return std::move(sock);
}

template <class Body>
void setHead(http::request<Body>& req, const std::string& token) {
  req.set(http::field::host, "runtime");
  if (!token.empty()) req.set(http::field::authorization, "Bearer " + token);
  req.keep_alive(false);
}

http::request<http::string_body> postRequest(const std::string& path, const json& body,
                                             const std::string& token) {
  http::request<http::string_body> req{http::verb::post, path, 11};
  setHead(req, token);
  req.set(http::field::content_type, "application/json");
  req.body() = body.dump(-1, ' ', false, json::error_handler_t::replace);
  req.prepare_payload();
  return req;
}

// Splits the NDJSON stream of /exec into lines and folds them into the result.
class ExecStream {
 public:
  ExecStream(ChunkFn& onChunk, ExecResult& result) : onChunk_(onChunk), result_(result) {}

  void feed(std::string_view data) {
    pending_.append(data);
    size_t start = 0;
    for (size_t nl; (nl = pending_.find('\n', start)) != std::string::npos; start = nl + 1) {
      line(std::string_view(pending_).substr(start, nl - start));
    }
    pending_.erase(0, start);
  }
  bool sawExit() const { return sawExit_; }
  const Status& error() const { return error_; }

 private:
  void line(std::string_view text) {
    json j = json::parse(text, nullptr, false);
    if (j.is_discarded() || !j.is_object()) return;
    if (j.contains("exit")) {
      const json& e = j["exit"];
      result_.exitCode = e.value("exitCode", -1);
      result_.timedOut = e.value("timedOut", false);
      result_.durationMs = e.value("durationMs", int64_t{0});
      result_.truncated = e.value("truncated", false);
      result_.session = e.value("session", json());
      sawExit_ = true;
    } else if (j.contains("error")) {
      error_ = Status(Code::kInternal, j["error"].value("message", std::string("exec failed")));
    } else {
      std::string stream = j.value("stream", std::string("stdout"));
      std::string data = j.value("data", std::string());
      result_.output.append(data);
      if (onChunk_) onChunk_(stream, data);
    }
  }

  ChunkFn& onChunk_;
  ExecResult& result_;
  std::string pending_;
  bool sawExit_ = false;
  Status error_;
};

}  // namespace

RuntimeClient::RuntimeClient(asio::any_io_executor ex, std::string socketPath, std::string token)
    : ex_(std::move(ex)), socketPath_(std::move(socketPath)), token_(std::move(token)) {}

Task<Result<json>> RuntimeClient::call(const std::string& path, const json& body) {
  Result<Socket> sock = co_await connectTo(ex_, socketPath_);
  if (!sock) co_return sock.status();
  error_code ec;
  auto req = postRequest(path, body, token_);
  co_await http::async_write(*sock, req, asio::redirect_error(asio::use_awaitable, ec));
  if (ec) co_return transportError("write " + path, ec);
  beast::flat_buffer buffer;
  http::response_parser<http::string_body> parser;
  parser.body_limit(kMaxResponseBytes);
  co_await http::async_read(*sock, buffer, parser, asio::redirect_error(asio::use_awaitable, ec));
  if (ec) co_return transportError("read " + path, ec);
  const auto& res = parser.get();
  if (res.result_int() != 200) co_return errorFromBody(res.result_int(), res.body());
  json answer = json::parse(res.body(), nullptr, false);
  if (answer.is_discarded()) co_return internalError("runtime: " + path + ": invalid JSON answer");
  co_return answer;
}

Task<Result<std::string>> RuntimeClient::get(const std::string& target) {
  Result<Socket> sock = co_await connectTo(ex_, socketPath_);
  if (!sock) co_return sock.status();
  error_code ec;
  http::request<http::empty_body> req{http::verb::get, target, 11};
  setHead(req, token_);
  co_await http::async_write(*sock, req, asio::redirect_error(asio::use_awaitable, ec));
  if (ec) co_return transportError("write " + target, ec);
  beast::flat_buffer buffer;
  http::response_parser<http::string_body> parser;
  parser.body_limit(kMaxResponseBytes);
  co_await http::async_read(*sock, buffer, parser, asio::redirect_error(asio::use_awaitable, ec));
  if (ec) co_return transportError("read " + target, ec);
  const auto& res = parser.get();
  if (res.result_int() != 200) co_return errorFromBody(res.result_int(), res.body());
  co_return res.body();
}

Task<Status> RuntimeClient::health() {
  const std::string target = "/health";
  auto body = co_await get(target);
  co_return body.status();
}

Task<Result<json>> RuntimeClient::info() {
  const std::string target = "/health";
  auto body = co_await get(target);
  if (!body) co_return body.status();
  json answer = json::parse(*body, nullptr, false);
  if (!answer.is_object()) co_return internalError("runtime: /health: invalid JSON answer");
  co_return answer;
}

Task<Result<json>> RuntimeClient::events(int64_t after) {
  const std::string target = "/events?after=" + std::to_string(after);
  auto body = co_await get(target);
  if (!body) co_return body.status();
  json answer = json::parse(*body, nullptr, false);
  if (!answer.is_array()) co_return internalError("runtime: /events: invalid JSON answer");
  co_return answer;
}

Task<Result<ExecResult>> RuntimeClient::exec(const ExecRequest& r, ChunkFn onChunk) {
  json body = {{"cmd", r.cmd}, {"cwd", r.cwd}, {"timeoutMs", r.timeoutMs}, {"env", r.env}};
  if (!r.stdinData.empty()) body["stdin"] = r.stdinData;
  if (r.login) body["login"] = true;
  if (r.session) {
    body["session"] = true;
    if (!r.restore.is_null()) body["restore"] = r.restore;
  }
  if (r.maxHeadBytes > 0) body["maxHeadBytes"] = r.maxHeadBytes;
  Result<Socket> sock = co_await connectTo(ex_, socketPath_);
  if (!sock) co_return sock.status();
  error_code ec;
  auto req = postRequest("/exec", body, token_);
  co_await http::async_write(*sock, req, asio::redirect_error(asio::use_awaitable, ec));
  if (ec) co_return transportError("write /exec", ec);
  beast::flat_buffer buffer;
  http::response_parser<http::string_body> parser;
  parser.body_limit(boost::none);
  co_await http::async_read_header(*sock, buffer, parser,
                                   asio::redirect_error(asio::use_awaitable, ec));
  if (ec) co_return transportError("read /exec", ec);
  if (parser.get().result_int() != 200) {
    co_await http::async_read(*sock, buffer, parser, asio::redirect_error(asio::use_awaitable, ec));
    co_return errorFromBody(parser.get().result_int(), parser.get().body());
  }
  ExecResult result;
  ExecStream stream(onChunk, result);
  // Beast 1.74 hands boost::string_view here.
  auto onBody = [&stream](uint64_t, beast::string_view data, error_code&) -> size_t {
    stream.feed(std::string_view(data.data(), data.size()));
    return data.size();
  };
  parser.on_chunk_body(onBody);
  while (!parser.is_done()) {
    co_await http::async_read_some(*sock, buffer, parser,
                                   asio::redirect_error(asio::use_awaitable, ec));
    if (ec) co_return transportError("read /exec stream", ec);
  }
  if (!stream.error().isOk()) co_return stream.error();
  if (!stream.sawExit()) co_return internalError("runtime: /exec ended without an exit line");
  co_return result;
}

}  // namespace kiln::runtime
