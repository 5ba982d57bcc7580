// AcpConnection: kiln's end of an Agent Client Protocol connection, and of an MCP server's (the
// same transport: src/agent/mcp_client.h): JSON-RPC 2.0, one JSON object per line, over the
// stream that carries the peer's stdio (a unix socket the sandbox's runtime relays to, see
// sandbox_process.h). kiln is the client: it sends requests and waits for their answers, while
// the peer's notifications (session/update) and requests (session/request_permission, ping)
// go to the handlers given at construction. Used from one strand; create with make_shared and
// start(); close() before dropping the handlers' captures.
#pragma once
#include <chrono>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "common/asio.h"
#include "common/result.h"

namespace kiln::agent {

class AcpConnection : public std::enable_shared_from_this<AcpConnection> {
 public:
  using Socket = asio::local::stream_protocol::socket;
  // An agent's request: its result, or a Status that becomes a JSON-RPC error.
  using RequestHandler = std::function<Task<Result<nlohmann::json>>(const std::string& method,
                                                                    const nlohmann::json& params)>;
  using NotificationHandler =
      std::function<void(const std::string& method, const nlohmann::json& params)>;

  AcpConnection(Socket socket, RequestHandler onRequest, NotificationHandler onNotification);

  void start();
  // Sends a request; its result, or kDeadlineExceeded after `timeout`, kUnavailable when the
  // connection ends first, kUnprocessable for a JSON-RPC error answer (its message).
  Task<Result<nlohmann::json>> call(const std::string& method, const nlohmann::json& params,
                                    std::chrono::milliseconds timeout);
  // Sends a notification (a message without an id: nothing answers it).
  void notify(const std::string& method, const nlohmann::json& params);
  // Stops reading and writing; calls waiting get kUnavailable. Handlers are not called after.
  void close();
  bool closed() const { return closed_; }
  // Requests of the agent still being handled; wait until 0 before dropping what the handlers
  // use.
  int handling() const { return handling_; }

 private:
  struct Pending {
    explicit Pending(asio::any_io_executor ex) : wake(ex) {}
    asio::steady_timer wake;
    std::optional<nlohmann::json> answer;  // the whole response object
  };

  static Task<void> readLoop(std::shared_ptr<AcpConnection> self);
  static Task<void> answer(std::shared_ptr<AcpConnection> self, nlohmann::json id,
                           std::string method, nlohmann::json params);
  void dispatch(const nlohmann::json& msg);
  void send(const nlohmann::json& msg);
  static Task<void> writeLoop(std::shared_ptr<AcpConnection> self);

  Socket socket_;
  RequestHandler onRequest_;
  NotificationHandler onNotification_;
  int64_t nextId_ = 1;
  std::map<int64_t, std::shared_ptr<Pending>> pending_;
  std::deque<std::string> outbox_;
  bool writing_ = false;
  bool closed_ = false;
  int handling_ = 0;
};

}  // namespace kiln::agent
