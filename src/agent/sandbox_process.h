// A long-running command inside the job's sandbox whose stdio kiln talks to as it runs (an ACP
// agent, an MCP server): bash's /dev/tcp connects its stdin and stdout to 127.0.0.1:3130
// inside the sandbox, which the runtime relays to the channel socket kiln listens on (the
// gateway dir's acp.sock, src/agent/cli_gateway.h). The command runs through the runtime's
// /exec, watched from the job's strand; nothing here is thread-safe.
#pragma once
#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "common/asio.h"
#include "common/result.h"
#include "runtime/client.h"

namespace kiln::agent {

struct SandboxProcess {
  explicit SandboxProcess(asio::any_io_executor ex) : wake(ex) {}
  bool done = false;
  Result<runtime::ExecResult> result = Status(Code::kUnavailable, "not run");
  asio::steady_timer wake;  // cancelled when it ends or the channel is accepted
  bool accepted = false;
};

// Runs `req` to its end, passing its output to `onChunk` (may be empty), then marks `proc` done.
Task<void> runSandboxProcess(runtime::RuntimeClient& rt, const runtime::ExecRequest& req,
                             runtime::ChunkFn onChunk, std::shared_ptr<SandboxProcess> proc);
// Waits until `ready` holds, the process ends, or the deadline passes.
Task<void> waitFor(SandboxProcess& proc, const std::function<bool()>& ready,
                   std::chrono::steady_clock::time_point deadline);
// Why the process is gone, from its command's result: " (exit status N: <stderr tail>)", or ""
// while it runs.
std::string exitDetail(const SandboxProcess& proc);
// `argv` for messages: "`a b c`", capped.
std::string describeCommand(const std::vector<std::string>& argv);

// The shell command that connects fd 0 and 1 of `argv` to the channel and keeps its pid in
// `pidFile` (inside the sandbox), so `kill $(cat pidFile)` stops it; `label` is the bash's $0.
std::string channelBridgeCommand(const std::vector<std::string>& argv, const std::string& pidFile,
                                 const std::string& label);

}  // namespace kiln::agent
