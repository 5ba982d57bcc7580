#include "agent/cli_gateway.h"

#include <sys/stat.h>

#include <filesystem>

#include "common/ids.h"

namespace kiln::agent {

Result<std::unique_ptr<CliGateway>> CliGateway::start(
    asio::any_io_executor io, const std::string& parentDir, const store::Job& job,
    const gateway::GatewayBudget& budget, const gateway::Upstreams& upstreams,
    std::function<void(const gateway::GatewayStop&)> onStop, bool channel) {
  if (mkdir(parentDir.c_str(), 0700) != 0 && errno != EEXIST) {
    return errnoStatus("model gateway: mkdir " + parentDir, errno);
  }
  const std::string dir = parentDir + "/" + randomToken(6);
  if (mkdir(dir.c_str(), 0700) != 0) return errnoStatus("model gateway: mkdir " + dir, errno);
  std::unique_ptr<CliGateway> g(new CliGateway(dir, "kiln-" + randomToken(24)));
  gateway::GatewayOptions o;
  o.socketPath = dir + "/llm.sock";
  o.label = job.id;
  o.placeholderKey = g->key_;
  o.upstreams = upstreams;
  o.budget = budget;
  o.onStop = std::move(onStop);
  auto started = gateway::startModelGateway(io, std::move(o));
  if (!started.isOk()) return started.status();  // ~CliGateway removes the dir
  g->gateway_ = std::move(started).value();
  if (channel) {
    const std::string path = dir + "/acp.sock";
    g->acp_ = std::make_unique<asio::local::stream_protocol::acceptor>(io);
    boost::system::error_code ec;
    g->acp_->open(asio::local::stream_protocol(), ec);
    if (!ec) g->acp_->bind(asio::local::stream_protocol::endpoint(path), ec);
    if (!ec) g->acp_->listen(1, ec);
    if (ec) return internalError("stdio channel: listen on " + path + ": " + ec.message());
    ::chmod(path.c_str(), 0600);
  }
  return g;
}

CliGateway::~CliGateway() {
  gateway_.reset();
  if (acp_) {
    // The acceptor belongs to the job's strand; by now nothing waits on it (runAcpAgent closed
    // it), so closing it here cannot race a handler.
    boost::system::error_code ec;
    acp_->close(ec);
    acp_.reset();
  }
  std::error_code ec;
  std::filesystem::remove_all(dir_, ec);
}

void CliGateway::charge(store::Step& s) {
  const gateway::GatewayUsage u = gateway_->takeUsage();
  s.tokensIn = u.tokensIn;
  s.tokensOut = u.tokensOut;
  s.usd = u.usd;
}

std::optional<store::Step> CliGateway::unchargedStep() {
  const gateway::GatewayUsage u = gateway_->takeUsage();
  if (u.calls == 0) return std::nullopt;
  store::Step s;
  s.phase = "planning";
  s.plannerThought = "Model calls through the gateway after the agent's last reported step (" +
                     std::to_string(u.calls) + ").";
  s.tokensIn = u.tokensIn;
  s.tokensOut = u.tokensOut;
  s.usd = u.usd;
  return s;
}

}  // namespace kiln::agent
