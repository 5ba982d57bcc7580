#include "agent/acp_connection.h"

#include <spdlog/spdlog.h>

#include <array>

namespace kiln::agent {
namespace {

using json = nlohmann::json;

// One message longer than this ends the connection (a runaway agent), not kiln's memory.
constexpr size_t kMaxLine = 64 << 20;

json errorResponse(const json& id, int code, const std::string& message) {
  json err = json::object();
  err["code"] = code;
  err["message"] = message;
  json out = json::object();
  out["jsonrpc"] = "2.0";
  out["id"] = id;
  out["error"] = std::move(err);
  return out;
}

json resultResponse(const json& id, json result) {
  json out = json::object();
  out["jsonrpc"] = "2.0";
  out["id"] = id;
  out["result"] = std::move(result);
  return out;
}

}  // namespace

AcpConnection::AcpConnection(Socket socket, RequestHandler onRequest,
                             NotificationHandler onNotification)
    : socket_(std::move(socket)),
      onRequest_(std::move(onRequest)),
      onNotification_(std::move(onNotification)) {}

// Coroutine arguments are named values: g++ 12 may destroy a temporary one twice.
void AcpConnection::start() {
  std::shared_ptr<AcpConnection> self = shared_from_this();
  asio::co_spawn(socket_.get_executor(), readLoop(self), asio::detached);
}

void AcpConnection::close() {
  if (closed_) return;
  closed_ = true;
  boost::system::error_code ec;
  socket_.close(ec);
  for (auto& [id, p] : pending_) p->wake.cancel();
}

Task<void> AcpConnection::readLoop(std::shared_ptr<AcpConnection> self) {
  std::string buffer;
  std::array<char, 64 * 1024> chunk;
  while (!self->closed_) {
    boost::system::error_code ec;
    size_t n = co_await self->socket_.async_read_some(
        asio::buffer(chunk), asio::redirect_error(asio::use_awaitable, ec));
    if (ec) break;
    buffer.append(chunk.data(), n);
    size_t start = 0;
    for (size_t nl; !self->closed_ && (nl = buffer.find('\n', start)) != std::string::npos;
         start = nl + 1) {
      json msg = json::parse(std::string_view(buffer).substr(start, nl - start), nullptr, false);
      if (msg.is_object()) {
        self->dispatch(msg);
      } else if (nl > start) {
        spdlog::debug("acp: a line that is not a JSON object: {}",
                      buffer.substr(start, std::min<size_t>(nl - start, 200)));
      }
    }
    buffer.erase(0, start);
    if (buffer.size() > kMaxLine) break;
  }
  self->close();
}

void AcpConnection::dispatch(const json& msg) {
  auto method = msg.find("method");
  auto id = msg.find("id");
  if (method != msg.end() && method->is_string()) {
    const json params = msg.value("params", json::object());
    if (id == msg.end() || id->is_null()) {
      if (onNotification_) onNotification_(method->get<std::string>(), params);
      return;
    }
    ++handling_;
    std::shared_ptr<AcpConnection> self = shared_from_this();
    json requestId = *id;
    std::string name = method->get<std::string>();
    asio::co_spawn(socket_.get_executor(), answer(self, requestId, name, params), asio::detached);
    return;
  }
  if (id == msg.end() || !id->is_number_integer()) return;  // not an answer of ours
  auto it = pending_.find(id->get<int64_t>());
  if (it == pending_.end()) return;
  it->second->answer = msg;
  it->second->wake.cancel();
}

Task<void> AcpConnection::answer(std::shared_ptr<AcpConnection> self, json id, std::string method,
                                 json params) {
  Result<json> r = Status(Code::kNotFound, "kiln does not offer " + method);
  if (self->onRequest_ && !self->closed_) r = co_await self->onRequest_(method, params);
  --self->handling_;
  if (self->closed_) co_return;
  if (r.isOk()) {
    self->send(resultResponse(id, std::move(r).value()));
  } else {
    const int code = r.status().code() == Code::kNotFound ? -32601 : -32603;
    self->send(errorResponse(id, code, r.status().message()));
  }
}

void AcpConnection::notify(const std::string& method, const json& params) {
  json msg = json::object();
  msg["jsonrpc"] = "2.0";
  msg["method"] = method;
  if (!params.is_null()) msg["params"] = params;
  send(msg);
}

void AcpConnection::send(const json& msg) {
  if (closed_) return;
  outbox_.push_back(msg.dump(-1, ' ', false, json::error_handler_t::replace) + "\n");
  if (!writing_) {
    writing_ = true;
    std::shared_ptr<AcpConnection> self = shared_from_this();
    asio::co_spawn(socket_.get_executor(), writeLoop(self), asio::detached);
  }
}

Task<void> AcpConnection::writeLoop(std::shared_ptr<AcpConnection> self) {
  while (!self->outbox_.empty() && !self->closed_) {
    std::string line = std::move(self->outbox_.front());
    self->outbox_.pop_front();
    boost::system::error_code ec;
    co_await asio::async_write(self->socket_, asio::buffer(line),
                               asio::redirect_error(asio::use_awaitable, ec));
    if (ec) self->close();
  }
  self->writing_ = false;
}

Task<Result<json>> AcpConnection::call(const std::string& method, const json& params,
                                       std::chrono::milliseconds timeout) {
  if (closed_) co_return Status(Code::kUnavailable, "the connection is closed");
  const int64_t id = nextId_++;
  auto pending = std::make_shared<Pending>(socket_.get_executor());
  pending_[id] = pending;
  json msg = json::object();
  msg["jsonrpc"] = "2.0";
  msg["id"] = id;
  msg["method"] = method;
  msg["params"] = params;
  send(msg);
  pending->wake.expires_after(timeout);
  boost::system::error_code ec;
  co_await pending->wake.async_wait(asio::redirect_error(asio::use_awaitable, ec));
  pending_.erase(id);
  if (!pending->answer) {
    if (closed_) co_return Status(Code::kUnavailable, "the other end closed the connection");
    co_return Status(Code::kDeadlineExceeded, "no answer to " + method + " within " +
                                                  std::to_string(timeout.count() / 1000) + " s");
  }
  const json& answer = *pending->answer;
  if (answer.contains("error")) {
    const json& err = answer["error"];
    std::string message = err.is_object() ? err.value("message", err.dump()) : err.dump();
    co_return Status(Code::kUnprocessable, method + ": " + message);
  }
  co_return answer.value("result", json());
}

}  // namespace kiln::agent
