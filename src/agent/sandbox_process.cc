#include "agent/sandbox_process.h"

#include "agent/cli_agent.h"
#include "agent/tool_text.h"
#include "runtime/egress_forwarder.h"

namespace kiln::agent {

Task<void> runSandboxProcess(runtime::RuntimeClient& rt, const runtime::ExecRequest& req,
                             runtime::ChunkFn onChunk, std::shared_ptr<SandboxProcess> proc) {
  proc->result = co_await rt.exec(req, onChunk);
  proc->done = true;
  proc->wake.cancel();
}

Task<void> waitFor(SandboxProcess& proc, const std::function<bool()>& ready,
                   std::chrono::steady_clock::time_point deadline) {
  while (!ready() && !proc.done && std::chrono::steady_clock::now() < deadline) {
    proc.wake.expires_at(deadline);
    boost::system::error_code ec;
    co_await proc.wake.async_wait(asio::redirect_error(asio::use_awaitable, ec));
  }
}

std::string exitDetail(const SandboxProcess& proc) {
  if (!proc.done) return "";
  if (!proc.result.isOk()) return " (" + proc.result.status().message() + ")";
  const runtime::ExecResult& r = *proc.result;
  std::string tail = tailOf(r.output);
  while (!tail.empty() && (tail.back() == '\n' || tail.back() == ' ')) tail.pop_back();
  return " (exit status " + std::to_string(r.exitCode) + (tail.empty() ? "" : ": " + tail) + ")";
}

std::string describeCommand(const std::vector<std::string>& argv) {
  std::string out;
  for (const auto& w : argv) out += (out.empty() ? "" : " ") + w;
  return "`" + capped(out, 200) + "`";
}

std::string channelBridgeCommand(const std::vector<std::string>& argv, const std::string& pidFile,
                                 const std::string& label) {
  std::string words;
  for (const auto& w : argv) words += " " + shellQuote(w);
  const std::string script =
      "exec 3<>/dev/tcp/127.0.0.1/" + std::to_string(runtime::kAcpChannelPort) +
      " || exit 97; \"$@\" <&3 >&3 3>&- & echo $! > " + shellQuote(pidFile) + "; wait $!";
  return "exec /bin/bash -c " + shellQuote(script) + " " + label + words;
}

}  // namespace kiln::agent
