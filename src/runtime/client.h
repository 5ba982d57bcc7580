// RuntimeClient: the host side of the runtime contract (docs/runtime.md): HTTP/1.1 over the
// sandbox's unix socket, fully async (no thread is held while a command runs). One client per
// sandbox; each call opens its own connection, so calls may overlap. Not thread-safe: use it from
// the job's executor.
#pragma once
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "common/asio.h"
#include "common/result.h"

namespace kiln::runtime {

struct ExecRequest {
  std::string cmd;     // run with bash -c (the runtime's shell: sh when the image has no bash)
  bool login = false;  // bash -lc: a login shell (reads /etc/profile, ~/.profile)
  // Run in the sandbox's persistent shell (docs/runtime.md, "Shell sessions"); `restore` is
  // the state ({cwd, env}) a new shell starts from when there is none.
  bool session = false;
  nlohmann::json restore;
  std::string cwd;  // absolute, or relative to the workspace; "" = the workspace (the workdir)
  std::map<std::string, std::string> env;
  int timeoutMs = 120'000;
  std::string stdinData;
  // Output streamed live before only the tail is kept; 0 = the runtime's default (256 KiB).
  size_t maxHeadBytes = 0;
};

struct ExecResult {
  int exitCode = -1;
  bool timedOut = false;
  int64_t durationMs = 0;
  // stdout and stderr interleaved in arrival order, capped: head and tail kept, the middle
  // replaced by a marker line.
  std::string output;
  bool truncated = false;
  // Session calls: {state: {cwd, env} | null, started, ended}; null otherwise.
  nlohmann::json session;
};

// Called for each chunk of output as it arrives; stream is "stdout" or "stderr".
using ChunkFn = std::function<void(std::string_view stream, std::string_view data)>;

// One call of the contract, blocking the calling thread (a pool thread, or a tool) on its own
// I/O context: for the backends' own calls (attaching a workspace).
Result<nlohmann::json> callRuntime(const std::string& socketPath, const std::string& path,
                                   const nlohmann::json& body, const std::string& token);

// GET /health, blocking the calling thread like callRuntime: ok once the runtime serves.
Status runtimeHealth(const std::string& socketPath, const std::string& token);

class RuntimeClient {
 public:
  // `token`: the sandbox's runtime token (Sandbox::runtimeToken()), sent with every request.
  RuntimeClient(asio::any_io_executor ex, std::string socketPath, std::string token = "");

  Task<Result<ExecResult>> exec(const ExecRequest& req, ChunkFn onChunk);
  // POSTs a JSON body to a contract path ("/files/read", "/git/diff", ...) and returns the JSON
  // answer; an error answer ({"error":{code,message}}) becomes a Status. The arguments must
  // outlive the call (co_await it at once); references, not copies: g++ 12 can destroy a
  // coroutine's by-value parameters built from temporaries twice.
  Task<Result<nlohmann::json>> call(const std::string& path, const nlohmann::json& body);
  Task<Status> health();
  // GET /health's answer: {"ok": true, "shell": "/bin/bash"} (the shell commands run with).
  Task<Result<nlohmann::json>> info();
  // GET /events?after=N: the runtime's event log after seq N (docs/runtime.md).
  Task<Result<nlohmann::json>> events(int64_t after);

 private:
  Task<Result<std::string>> get(const std::string& target);
  asio::any_io_executor ex_;
  std::string socketPath_;
  std::string token_;
};

}  // namespace kiln::runtime
