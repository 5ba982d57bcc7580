// HttpSession: one client connection. Runs as a coroutine on its own strand: reads requests
// (keep-alive, size and depth limits, a deadline per request), dispatches them through the Router,
// writes replies, and may hand the connection to an SSE stream. SessionRegistry lets the server
// close every open connection on stop(); it is thread-safe, a session is used only from its strand.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>

#include "api/router.h"

namespace kiln::api {

class HttpSession;

class SessionRegistry {
 public:
  uint64_t add(std::weak_ptr<HttpSession> s);
  void remove(uint64_t id);
  size_t size();
  // Closes every registered session (posts to each strand).
  void closeAll();

 private:
  std::mutex mu_;
  uint64_t next_ = 0;                                        // GUARDED_BY(mu_)
  std::map<uint64_t, std::weak_ptr<HttpSession>> sessions_;  // GUARDED_BY(mu_)
};

class HttpSession : public std::enable_shared_from_this<HttpSession> {
 public:
  HttpSession(asio::ip::tcp::socket socket, std::shared_ptr<ServerEnv> env,
              std::shared_ptr<const Router> router, std::shared_ptr<SessionRegistry> registry,
              bool overCapacity = false);
  // Serves the connection until the client leaves, an error, or close().
  Task<void> run();
  // Thread-safe: closes the socket on the session's strand.
  void close();
  asio::any_io_executor executor() { return stream_.get_executor(); }

 private:
  using Request = http::request<http::string_body>;
  // Reads one request; false when the connection should end (after any error reply is sent).
  Task<bool> readRequest(Request& req);
  Task<Reply> dispatch(const Request& req);
  Task<Reply> route(const Request& req);
  Task<bool> writeReply(const Request& req, const Reply& reply);
  // The answer to a request that could not be read: too large, or malformed.
  ApiError readError(const boost::system::error_code& ec) const;
  Task<void> writeErrorAndLinger(unsigned version, const ApiError& e);
  // Runs the SSE stream of `reply`, or answers 429 when its token has too many open.
  Task<bool> stream(const Request& req, const SseRequest& sse);

  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
  std::shared_ptr<ServerEnv> env_;
  std::shared_ptr<const Router> router_;
  std::shared_ptr<SessionRegistry> registry_;
  bool overCapacity_;
};

}  // namespace kiln::api
