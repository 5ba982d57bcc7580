#include "runtime/client.h"

#include "common/http_error.h"
#include "common/json_fields.h"

namespace kiln::runtime {
namespace {

using nlohmann::json;
using Socket = asio::local::stream_protocol::socket;
using boost::system::error_code;

constexpr size_t kMaxResponseBytes = 512 << 20;

Status transportError(const std::string& what, const error_code& ec) {
  return Status(Code::kUnavailable, "runtime: " + what + ": " + ec.message());
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

// One request on a fresh connection: the body of a 200 answer, else the error it stands for.
// `req` must outlive the call (no temporaries in co_await expressions: blocking_pool.h).
Task<Result<std::string>> exchange(const asio::any_io_executor& ex, const std::string& socketPath,
                                   const http::request<http::string_body>& req) {
  const std::string target(req.target());
  Result<Socket> sock = co_await connectTo(ex, socketPath);
  if (!sock) co_return sock.status();
  error_code ec;
  co_await http::async_write(*sock, req, asio::redirect_error(asio::use_awaitable, ec));
  if (ec) co_return transportError("write " + target, ec);
  beast::flat_buffer buffer;
  http::response_parser<http::string_body> parser;
  parser.body_limit(kMaxResponseBytes);
  co_await http::async_read(*sock, buffer, parser, asio::redirect_error(asio::use_awaitable, ec));
  if (ec) co_return transportError("read " + target, ec);
  const auto& res = parser.get();
  if (res.result_int() != 200) co_return statusFromHttpError(res.result_int(), res.body());
  co_return std::move(parser.release().body());
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
      // The sandbox is not trusted: a field of another type is read as missing, never thrown on.
      const json& e = j["exit"];
      result_.exitCode = fieldOr(e, "exitCode", -1);
      result_.timedOut = fieldOr(e, "timedOut", false);
      result_.durationMs = fieldOr(e, "durationMs", int64_t{0});
      result_.truncated = fieldOr(e, "truncated", false);
      result_.session = e.is_object() && e.contains("session") ? e["session"] : json();
      sawExit_ = true;
    } else if (j.contains("error")) {
      error_ = Status(Code::kInternal, fieldOr(j["error"], "message", "exec failed"));
    } else {
      std::string stream = fieldOr(j, "stream", "stdout");
      std::string data = fieldOr(j, "data", "");
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
  const auto req = postRequest(path, body, token_);
  Result<std::string> text = co_await exchange(ex_, socketPath_, req);
  if (!text) co_return text.status();
  json answer = json::parse(*text, nullptr, false);
  if (answer.is_discarded()) co_return internalError("runtime: " + path + ": invalid JSON answer");
  co_return answer;
}

Task<Result<std::string>> RuntimeClient::get(const std::string& target) {
  http::request<http::string_body> req{http::verb::get, target, 11};
  setHead(req, token_);
  co_return co_await exchange(ex_, socketPath_, req);
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
  // Bounded for an error answer (JSON with a length); the stream is unbounded, and is read
  // chunk by chunk below. (Unbounded from the start, Beast 1.74 fails an error answer's header.)
  parser.body_limit(kMaxResponseBytes);
  co_await http::async_read_header(*sock, buffer, parser,
                                   asio::redirect_error(asio::use_awaitable, ec));
  if (ec) co_return transportError("read /exec", ec);
  if (parser.get().result_int() != 200) {
    co_await http::async_read(*sock, buffer, parser, asio::redirect_error(asio::use_awaitable, ec));
    if (ec) co_return transportError("read /exec", ec);
    co_return statusFromHttpError(parser.get().result_int(), parser.get().body());
  }
  parser.body_limit(boost::none);
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

namespace {

// One call of a client of its own, on an I/O context of its own, blocking the calling thread;
// nullopt if it never completed.
template <typename Out, typename Call>
std::optional<Out> callBlocking(const std::string& socketPath, const std::string& token,
                                Call call) {
  asio::io_context ioc;
  RuntimeClient client(ioc.get_executor(), socketPath, token);
  std::optional<Out> out;
  asio::co_spawn(
      ioc, [&]() -> Task<void> { out.emplace(co_await call(client)); }, asio::detached);
  ioc.run();
  return out;
}

}  // namespace

Result<nlohmann::json> callRuntime(const std::string& socketPath, const std::string& path,
                                   const nlohmann::json& body, const std::string& token) {
  std::optional<Result<nlohmann::json>> out = callBlocking<Result<nlohmann::json>>(
      socketPath, token, [&](RuntimeClient& c) { return c.call(path, body); });
  if (!out) return internalError("runtime: call " + path + " did not complete");
  return std::move(*out);
}

Status runtimeHealth(const std::string& socketPath, const std::string& token) {
  std::optional<Status> out =
      callBlocking<Status>(socketPath, token, [](RuntimeClient& c) { return c.health(); });
  return out ? *out : internalError("runtime: GET /health did not complete");
}

}  // namespace kiln::runtime
