#include "sandbox/egress/proxy.h"

#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <thread>

#include "sandbox/egress/session.h"

namespace kiln::sandbox::egress {
namespace {

using Acceptor = asio::local::stream_protocol::acceptor;
using UnixSocket = asio::local::stream_protocol::socket;

// Connections one sandbox may hold open through the proxy at once; more are closed at accept.
constexpr int kMaxConnectionsPerSandbox = 256;

Task<void> acceptLoop(std::shared_ptr<Acceptor> acceptor, std::shared_ptr<ListenerConfig> config,
                      asio::any_io_executor io) {
  asio::steady_timer backoff(acceptor->get_executor());
  for (;;) {
    boost::system::error_code ec;
    UnixSocket socket(asio::make_strand(io));
    co_await acceptor->async_accept(socket, asio::redirect_error(asio::use_awaitable, ec));
    if (!acceptor->is_open() || ec == asio::error::operation_aborted) co_return;
    if (ec) {
      // Out of fds and the like: back off instead of spinning.
      spdlog::warn("egress {}: accept: {}", config->label, ec.message());
      backoff.expires_after(std::chrono::milliseconds(50));
      co_await backoff.async_wait(asio::redirect_error(asio::use_awaitable, ec));
      continue;
    }
    if (config->active.load() >= kMaxConnectionsPerSandbox) {
      spdlog::debug("egress {}: refused a connection: {} already open", config->label,
                    kMaxConnectionsPerSandbox);
      socket.close(ec);
      continue;
    }
    startSession(std::move(socket), config);
  }
}

class ListenerImpl : public EgressListener {
 public:
  ListenerImpl(std::shared_ptr<void> keepAlive, std::shared_ptr<Acceptor> acceptor,
               std::string path)
      : keepAlive_(std::move(keepAlive)), acceptor_(std::move(acceptor)), path_(std::move(path)) {}
  ~ListenerImpl() override {
    // The accept loop runs on the acceptor's strand: close it there, not from this thread.
    std::shared_ptr<Acceptor> acceptor = acceptor_;
    asio::post(acceptor->get_executor(), [acceptor] {
      boost::system::error_code ec;
      acceptor->close(ec);
    });
  }

  // EgressListener
  const std::string& socketPath() const override { return path_; }

 private:
  std::shared_ptr<void> keepAlive_;  // first: released last
  std::shared_ptr<Acceptor> acceptor_;
  std::string path_;
};

class EgressProxyImpl : public EgressProxy {
 public:
  EgressProxyImpl(asio::any_io_executor io, std::shared_ptr<void> keepAlive,
                  std::shared_ptr<InterceptCa> ca)
      : io_(std::move(io)), keepAlive_(std::move(keepAlive)), ca_(std::move(ca)) {}

  // EgressProxy
  Result<std::unique_ptr<EgressListener>> listen(const std::string& socketPath,
                                                 const std::string& label, Allowlist allow,
                                                 std::vector<SecretRule> secrets) override;
  std::string interceptCaPem() const override { return ca_ ? ca_->certPem() : ""; }

 private:
  asio::any_io_executor io_;
  std::shared_ptr<void> keepAlive_;
  std::shared_ptr<InterceptCa> ca_;
};

Result<std::unique_ptr<EgressListener>> EgressProxyImpl::listen(const std::string& socketPath,
                                                                const std::string& label,
                                                                Allowlist allow,
                                                                std::vector<SecretRule> secrets) {
  if (!secrets.empty() && !ca_) {
    return Status(Code::kUnprocessable,
                  "egress: this proxy cannot intercept TLS (no CA): proxy-mode secrets need "
                  "a kiln node");
  }
  if (socketPath.size() >= sizeof(sockaddr_un::sun_path)) {
    return invalidArgument("egress: socket path too long: " + socketPath);
  }
  auto acceptor = std::make_shared<Acceptor>(asio::make_strand(io_));
  boost::system::error_code ec;
  ::unlink(socketPath.c_str());
  acceptor->open(asio::local::stream_protocol(), ec);
  if (!ec) acceptor->bind(asio::local::stream_protocol::endpoint(socketPath), ec);
  if (!ec) acceptor->listen(128, ec);
  if (ec) return internalError("egress: listen on " + socketPath + ": " + ec.message());
  ::chmod(socketPath.c_str(), 0600);
  auto config = std::make_shared<ListenerConfig>();
  config->label = label;
  config->allow = std::move(allow);
  config->intercept = {ca_, std::move(secrets)};
  asio::co_spawn(acceptor->get_executor(), acceptLoop(acceptor, config, io_), asio::detached);
  spdlog::debug("egress {}: listening on {}", label, socketPath);
  return std::unique_ptr<EgressListener>(new ListenerImpl(keepAlive_, acceptor, socketPath));
}

// Owns an io_context and its thread; shared with the listeners so that a listener outliving
// the proxy never touches a destroyed context.
struct OwnLoop {
  asio::io_context ioc{1};
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work{
      ioc.get_executor()};
  std::thread thread;
};

class StandaloneEgressProxy : public EgressProxy {
 public:
  StandaloneEgressProxy()
      : loop_(std::make_shared<OwnLoop>()), impl_(loop_->ioc.get_executor(), loop_, nullptr) {
    loop_->thread = std::thread([loop = loop_.get()] {
      for (;;) {
        try {
          loop->ioc.run();
          return;
        } catch (const std::exception& e) {
          spdlog::error("egress: {}", e.what());
        }
      }
    });
  }
  ~StandaloneEgressProxy() override {
    loop_->work.reset();
    loop_->ioc.stop();
    loop_->thread.join();
  }

  // EgressProxy
  Result<std::unique_ptr<EgressListener>> listen(const std::string& socketPath,
                                                 const std::string& label, Allowlist allow,
                                                 std::vector<SecretRule> secrets) override {
    return impl_.listen(socketPath, label, std::move(allow), std::move(secrets));
  }

 private:
  std::shared_ptr<OwnLoop> loop_;
  EgressProxyImpl impl_;
};

}  // namespace

std::unique_ptr<EgressProxy> newEgressProxy(asio::any_io_executor ex,
                                            std::shared_ptr<InterceptCa> ca) {
  return std::make_unique<EgressProxyImpl>(std::move(ex), nullptr, std::move(ca));
}

std::unique_ptr<EgressProxy> newStandaloneEgressProxy() {
  return std::make_unique<StandaloneEgressProxy>();
}

}  // namespace kiln::sandbox::egress
