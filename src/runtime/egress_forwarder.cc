#include "runtime/egress_forwarder.h"

#include <cstdio>
#include <thread>

#include "common/asio.h"
#include "sandbox/egress/relay.h"

namespace kiln::runtime {
namespace {

using tcp = asio::ip::tcp;
using UnixSocket = asio::local::stream_protocol::socket;

Task<void> forward(std::shared_ptr<tcp::socket> client, std::string proxySocket) {
  UnixSocket upstream(client->get_executor());
  boost::system::error_code ec;
  const asio::local::stream_protocol::endpoint endpoint(proxySocket);
  co_await upstream.async_connect(endpoint, asio::redirect_error(asio::use_awaitable, ec));
  if (ec) {
    std::fprintf(stderr, "kiln runtime: forward to %s: %s\n", proxySocket.c_str(),
                 ec.message().c_str());
    co_return;  // the client sees its connection closed
  }
  sandbox::egress::RelayOptions opts;
  sandbox::egress::startRelay(std::move(*client), std::move(upstream), opts);
}

Task<void> acceptLoop(tcp::acceptor& acceptor, std::string proxySocket) {
  asio::steady_timer backoff(acceptor.get_executor());
  for (;;) {
    boost::system::error_code ec;
    tcp::socket client =
        co_await acceptor.async_accept(asio::redirect_error(asio::use_awaitable, ec));
    if (ec) {
      backoff.expires_after(std::chrono::milliseconds(50));  // out of fds: do not spin
      co_await backoff.async_wait(asio::redirect_error(asio::use_awaitable, ec));
      continue;
    }
    // Named values only: g++ 12 may destroy a temporary coroutine argument twice.
    auto conn = std::make_shared<tcp::socket>(std::move(client));
    asio::co_spawn(acceptor.get_executor(), forward(conn, proxySocket), asio::detached);
  }
}

}  // namespace

Status startEgressForwarder(const std::string& proxySocket, uint16_t port) {
  // Lives as long as the runtime process (PID 1 of the sandbox): never destroyed.
  auto* ioc = new asio::io_context(1);
  auto* acceptor = new tcp::acceptor(*ioc);
  const tcp::endpoint endpoint(asio::ip::address_v4::loopback(), port);
  boost::system::error_code ec;
  acceptor->open(endpoint.protocol(), ec);
  if (!ec) acceptor->set_option(tcp::acceptor::reuse_address(true), ec);
  if (!ec) acceptor->bind(endpoint, ec);
  if (!ec) acceptor->listen(128, ec);
  if (ec) {
    return internalError("egress forwarder: listen on 127.0.0.1:" + std::to_string(port) + ": " +
                         ec.message());
  }
  asio::co_spawn(*ioc, acceptLoop(*acceptor, proxySocket), asio::detached);
  std::thread([ioc] {
    for (;;) {
      try {
        ioc->run();
        return;
      } catch (const std::exception& e) {
        std::fprintf(stderr, "kiln runtime: egress forwarder: %s\n", e.what());
      }
    }
  }).detach();
  return Status::ok();
}

std::vector<std::string> egressProxyEnv(uint16_t port) {
  const std::string url = "http://127.0.0.1:" + std::to_string(port);
  std::vector<std::string> env;
  for (const char* name : {"HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"}) {
    env.push_back(std::string(name) + "=" + url);
  }
  env.push_back("NO_PROXY=localhost,127.0.0.1");
  env.push_back("no_proxy=localhost,127.0.0.1");
  return env;
}

}  // namespace kiln::runtime
