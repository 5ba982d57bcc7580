// CliGateway: the model gateway (gateway/model_gateway.h) of one CLI agent run, as the job
// runner uses it: a fresh socket dir for the sandbox, the run's placeholder key, the job's
// budget, and the calls' usage moved onto the steps as they are recorded (so the cost the CLI
// reports itself is never counted twice). Owned by the job's run, used from its strand; the
// gateway itself runs on its own strand.
#pragma once
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "common/asio.h"
#include "common/result.h"
#include "gateway/model_gateway.h"
#include "store/store.h"

namespace kiln::agent {

class CliGateway {
 public:
  // Makes <parentDir>/<random> (0700) with the gateway's socket in it, and with `channel` (an
  // ACP agent, MCP servers) the channel's socket too (listening on `io`, the job's strand).
  // `budget` holds the job's maxUsd and maxTokens and what it spent before this run. `onStop` runs
  // on the gateway's strand when it stops passing calls (budget spent, upstream down): it must not
  // block.
  static Result<std::unique_ptr<CliGateway>> start(
      asio::any_io_executor io, const std::string& parentDir, const store::Job& job,
      const gateway::GatewayBudget& budget, const gateway::Upstreams& upstreams,
      std::function<void(const gateway::GatewayStop&)> onStop, bool channel);
  // Stops the gateway and removes its dir.
  ~CliGateway();

  // The dir to mount in the sandbox (SandboxSpec::gatewayDir).
  const std::string& dir() const { return dir_; }
  const std::string& placeholderKey() const { return key_; }
  // Replaces the step's tokens and cost by those of the calls since the previous step.
  void charge(store::Step& s);
  // A step for calls no recorded step was charged with (those after the CLI's last output
  // line), or nullopt when there are none.
  std::optional<store::Step> unchargedStep();
  std::optional<gateway::GatewayStop> stopped() const { return gateway_->stopped(); }
  // Where an ACP agent's or an MCP server's stdio arrives (acp.sock; sandbox_process.h). Only
  // when started with `channel`.
  asio::local::stream_protocol::acceptor& acpChannel() { return *acp_; }
  bool hasChannel() const { return acp_ != nullptr; }

 private:
  CliGateway(std::string dir, std::string key) : dir_(std::move(dir)), key_(std::move(key)) {}

  std::string dir_;
  std::string key_;
  std::unique_ptr<gateway::ModelGateway> gateway_;
  std::unique_ptr<asio::local::stream_protocol::acceptor> acp_;
};

}  // namespace kiln::agent
