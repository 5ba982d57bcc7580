#include "api/server.h"

#include <spdlog/spdlog.h>

#include "api/http_session.h"
#include "api/routes/routes.h"

namespace kiln::api {
namespace {

using asio::ip::tcp;

Result<tcp::endpoint> resolveListen(asio::io_context& ioc, const std::string& listen) {
  auto colon = listen.rfind(':');
  if (colon == std::string::npos) return invalidArgument("listen: want HOST:PORT, got " + listen);
  std::string host = listen.substr(0, colon);
  std::string port = listen.substr(colon + 1);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  if (host.empty()) host = "0.0.0.0";
  boost::system::error_code ec;
  tcp::resolver resolver(ioc);
  auto results = resolver.resolve(host, port, tcp::resolver::numeric_service, ec);
  if (ec || results.empty()) {
    return invalidArgument("listen: cannot resolve " + listen + ": " + ec.message());
  }
  return results.begin()->endpoint();
}

// ApiServerImpl owns the listening sockets (the API, and /metrics on its own when asked);
// connections own themselves and share the env, router and registry, so they may outlive the
// server object without dangling.
class ApiServerImpl : public ApiServer {
 public:
  ApiServerImpl(asio::io_context& ioc, std::shared_ptr<ServerEnv> env)
      : ioc_(ioc), env_(std::move(env)), registry_(std::make_shared<SessionRegistry>()) {}
  ~ApiServerImpl() override { stop(); }

  // Binds `ep` and serves `router` there; returns the bound port.
  Result<uint16_t> listen(const tcp::endpoint& ep, const std::string& what,
                          std::shared_ptr<const Router> router) {
    auto acceptor = std::make_shared<tcp::acceptor>(asio::make_strand(ioc_));
    boost::system::error_code ec;
    acceptor->open(ep.protocol(), ec);
    if (!ec) acceptor->set_option(asio::socket_base::reuse_address(true), ec);
    if (!ec) acceptor->bind(ep, ec);
    if (!ec) acceptor->listen(asio::socket_base::max_listen_connections, ec);
    if (ec) return Status(Code::kUnavailable, "listen on " + what + ": " + ec.message());
    uint16_t port = acceptor->local_endpoint(ec).port();
    acceptors_.push_back(acceptor);
    asio::co_spawn(acceptor->get_executor(),
                   acceptLoop(acceptor, env_, std::move(router), registry_), asio::detached);
    return port;
  }

  void setPorts(uint16_t api, uint16_t metrics) {
    port_ = api;
    metricsPort_ = metrics;
  }

  // ApiServer
  uint16_t port() const override { return port_; }
  uint16_t metricsPort() const override { return metricsPort_; }
  void stop() override {
    if (env_->stopping.exchange(true)) return;
    for (const auto& acceptor : acceptors_) {
      asio::post(acceptor->get_executor(), [a = acceptor] {
        boost::system::error_code ec;
        a->close(ec);
      });
    }
    registry_->closeAll();
    // SSE streams sleep on their bus subscription; wake them so they see `stopping`.
    env_->deps.bus->publishAll();
  }

 private:
  static Task<void> acceptLoop(std::shared_ptr<tcp::acceptor> acceptor,
                               std::shared_ptr<ServerEnv> env, std::shared_ptr<const Router> router,
                               std::shared_ptr<SessionRegistry> registry) {
    auto& ioc = static_cast<asio::io_context&>(acceptor->get_executor().context());
    while (!env->stopping) {
      boost::system::error_code ec;
      tcp::socket socket = co_await acceptor->async_accept(
          asio::make_strand(ioc), asio::redirect_error(asio::use_awaitable, ec));
      if (ec == asio::error::operation_aborted || !acceptor->is_open()) break;
      if (ec) {
        // EMFILE and friends: back off instead of spinning.
        spdlog::warn("api: accept: {}", ec.message());
        asio::steady_timer t(acceptor->get_executor(), std::chrono::milliseconds(100));
        co_await t.async_wait(asio::redirect_error(asio::use_awaitable, ec));
        continue;
      }
      // Over the cap the session only answers 503 and closes.
      const bool overCapacity = registry->size() >= static_cast<size_t>(env->opts.maxConnections);
      auto session =
          std::make_shared<HttpSession>(std::move(socket), env, router, registry, overCapacity);
      // The lambda owns the session for as long as the coroutine runs.
      asio::co_spawn(
          session->executor(), [session]() -> Task<void> { co_await session->run(); },
          [](std::exception_ptr e) {
            if (e) spdlog::error("api: connection ended by an exception");
          });
    }
  }

  asio::io_context& ioc_;
  std::shared_ptr<ServerEnv> env_;
  std::shared_ptr<SessionRegistry> registry_;
  std::vector<std::shared_ptr<tcp::acceptor>> acceptors_;
  uint16_t port_ = 0;
  uint16_t metricsPort_ = 0;
};

}  // namespace

Result<std::unique_ptr<ApiServer>> ApiServer::start(asio::io_context& ioc, const ApiOptions& opts,
                                                    const ApiDeps& deps) {
  if (!deps.store || !deps.bus || !deps.jobs || !deps.pool || !deps.clock) {
    return invalidArgument("ApiServer: every dependency must be set");
  }
  if (opts.tokenKey.empty()) {
    return invalidArgument("ApiServer: no token key (tenancy::TokenKey) to check tokens with");
  }
  if (opts.maxConnections < 1 || opts.maxStreamsPerToken < 1) {
    return invalidArgument("ApiServer: the connection and stream caps must be at least 1");
  }
  auto env = std::make_shared<ServerEnv>();
  env->opts = opts;
  env->deps = deps;
  if (!env->deps.slowPool) env->deps.slowPool = deps.pool;
  ASSIGN_OR_RETURN(auto ep, resolveListen(ioc, opts.listen));
  auto server = std::make_unique<ApiServerImpl>(ioc, std::move(env));
  ASSIGN_OR_RETURN(uint16_t port, server->listen(ep, opts.listen, buildRouter()));
  uint16_t metricsPort = 0;
  if (!opts.metricsListen.empty()) {
    ASSIGN_OR_RETURN(auto mep, resolveListen(ioc, opts.metricsListen));
    ASSIGN_OR_RETURN(metricsPort, server->listen(mep, opts.metricsListen, buildMetricsRouter()));
    spdlog::info("api: metrics on {}:{}", mep.address().to_string(), metricsPort);
  }
  server->setPorts(port, metricsPort);
  spdlog::info("api: listening on {}:{}", ep.address().to_string(), port);
  return std::unique_ptr<ApiServer>(std::move(server));
}

}  // namespace kiln::api
