// Test upstreams for the egress proxy: a real TCP server on the host on its own thread, either
// a tiny HTTP server (answers "hello <target>" and closes) or an echo server. Plus blocking
// socket helpers to talk to a proxy's unix socket.
#pragma once
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <string>
#include <thread>

#include "common/asio.h"

namespace kiln::sandbox::testing {

class TestUpstream {
 public:
  enum class Mode { kHttp, kEcho };

  // Listens on bindAddress:0 ("0.0.0.0" makes it reachable on every host address).
  TestUpstream(Mode mode, const std::string& bindAddress = "127.0.0.1")
      : mode_(mode), acceptor_(ioc_) {
    const asio::ip::tcp::endpoint ep(asio::ip::make_address(bindAddress), 0);
    acceptor_.open(ep.protocol());
    acceptor_.set_option(asio::ip::tcp::acceptor::reuse_address(true));
    acceptor_.bind(ep);
    acceptor_.listen();
    port_ = acceptor_.local_endpoint().port();
    asio::co_spawn(ioc_, acceptLoop(), asio::detached);
    thread_ = std::thread([this] { ioc_.run(); });
  }
  ~TestUpstream() {
    ioc_.stop();
    thread_.join();
  }
  uint16_t port() const { return port_; }

 private:
  Task<void> acceptLoop() {
    for (;;) {
      boost::system::error_code ec;
      auto sock = std::make_shared<asio::ip::tcp::socket>(ioc_);
      co_await acceptor_.async_accept(*sock, asio::redirect_error(asio::use_awaitable, ec));
      if (ec) co_return;
      if (mode_ == Mode::kHttp) {
        asio::co_spawn(ioc_, serveHttp(sock), asio::detached);
      } else {
        asio::co_spawn(ioc_, serveEcho(sock), asio::detached);
      }
    }
  }
  static std::string httpAnswer(const std::string& head) {
    size_t sp1 = head.find(' ');
    size_t sp2 = head.find(' ', sp1 + 1);
    std::string target = sp1 == std::string::npos ? "?" : head.substr(sp1 + 1, sp2 - sp1 - 1);
    std::string body = "hello " + target;
    return "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nContent-Length: " +
           std::to_string(body.size()) + "\r\n\r\n" + body;
  }
  static Task<void> serveHttp(std::shared_ptr<asio::ip::tcp::socket> sock) {
    boost::system::error_code ec;
    std::string head;
    co_await asio::async_read_until(*sock, asio::dynamic_buffer(head), "\r\n\r\n",
                                    asio::redirect_error(asio::use_awaitable, ec));
    if (ec) co_return;
    const std::string answer = httpAnswer(head);
    co_await asio::async_write(*sock, asio::buffer(answer),
                               asio::redirect_error(asio::use_awaitable, ec));
    // A lingering close: closing with an unread request body would reset the connection and
    // could destroy the answer in flight.
    sock->shutdown(asio::socket_base::shutdown_send, ec);
    char drain[4096];
    while (!ec) {
      co_await sock->async_read_some(asio::buffer(drain),
                                     asio::redirect_error(asio::use_awaitable, ec));
    }
    sock->close(ec);
  }
  static Task<void> serveEcho(std::shared_ptr<asio::ip::tcp::socket> sock) {
    char buf[4096];
    for (;;) {
      boost::system::error_code ec;
      size_t n = co_await sock->async_read_some(asio::buffer(buf),
                                                asio::redirect_error(asio::use_awaitable, ec));
      if (ec) co_return;
      co_await asio::async_write(*sock, asio::buffer(buf, n),
                                 asio::redirect_error(asio::use_awaitable, ec));
      if (ec) co_return;
    }
  }

  Mode mode_;
  asio::io_context ioc_;
  asio::ip::tcp::acceptor acceptor_;
  uint16_t port_ = 0;
  std::thread thread_;
};

// A blocking client of a unix socket with a receive timeout, for talking to the proxy.
class UnixClient {
 public:
  explicit UnixClient(const std::string& path) {
    fd_ = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
    timeval tv{10, 0};
    setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    connected_ = connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  }
  ~UnixClient() { close(fd_); }
  bool connected() const { return connected_; }
  bool send(const std::string& data) {
    return ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(data.size());
  }
  // Reads until the peer closes (or the timeout).
  std::string readAll() {
    std::string out;
    char buf[4096];
    ssize_t n;
    while ((n = recv(fd_, buf, sizeof buf, 0)) > 0) out.append(buf, n);
    return out;
  }
  // Reads through the end of a response header.
  std::string readHead() {
    std::string out;
    char c;
    while (out.find("\r\n\r\n") == std::string::npos && recv(fd_, &c, 1, 0) == 1) out += c;
    return out;
  }
  std::string readSome(size_t want) {
    std::string out;
    char buf[4096];
    while (out.size() < want) {
      ssize_t n = recv(fd_, buf, std::min(sizeof buf, want - out.size()), 0);
      if (n <= 0) break;
      out.append(buf, n);
    }
    return out;
  }
  void shutdownWrite() { shutdown(fd_, SHUT_WR); }

 private:
  int fd_ = -1;
  bool connected_ = false;
};

}  // namespace kiln::sandbox::testing
