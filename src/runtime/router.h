// Router: maps one parsed HTTP request of the runtime contract to its handler and writes the
// answer on the connection. /exec streams its answer (chunked NDJSON) and closes the
// connection; every other route answers one JSON body. Thread-safe: one call per connection
// thread.
#pragma once
#include <sys/types.h>

#include <atomic>
#include <memory>
#include <mutex>
#include <string>

#include "common/asio.h"
#include "runtime/git_ops.h"
#include "runtime/process_table.h"
#include "runtime/shell_session.h"
#include "runtime/workspace_fs.h"

namespace kiln::runtime {

struct RuntimeConfig {
  std::string workspace = "/workspace";
  // A sandbox started ahead of its job (a warm pool): the backend attaches the workspace later,
  // from outside, with no call: on `workspace` itself (namespace backend), or on
  // `workspaceSource` (gVisor), which the runtime then binds on `workspace`. The runtime notices
  // at the first request that needs it (the directory there is no longer the idle one); until
  // then every POST but /workspace/attach answers 409.
  bool awaitWorkspace = false;
  std::string workspaceSource;  // empty: the workspace is mounted on `workspace` itself
  std::string home;  // HOME of commands
  CommandJail jail;
  // Where bash may be; commands run with the first that is executable, else /bin/sh.
  std::vector<std::string> bashPaths = {"/bin/bash", "/usr/bin/bash"};
};

// The shell commands run with: the first executable of `bashPaths`, else /bin/sh.
std::string pickShell(const std::vector<std::string>& bashPaths);

class Router {
 public:
  using Socket = asio::local::stream_protocol::socket;
  using Request = http::request<http::string_body>;

  static Result<std::unique_ptr<Router>> create(RuntimeConfig config);

  // Returns false when the connection must be closed after this request. Never throws: a
  // handler that does is answered with 500 {"error":{"code":"internal",...}}.
  bool handle(Socket& sock, const Request& req) noexcept;

 private:
  Router(RuntimeConfig config, std::shared_ptr<const WorkspaceFs> fs);
  bool route(Socket& sock, const Request& req);
  Result<nlohmann::json> dispatch(const std::string& target, const nlohmann::json& body);
  Result<nlohmann::json> attachWorkspace(const nlohmann::json& body);
  // Where the backend attaches the workspace from outside (awaitWorkspace): workspaceSource,
  // else the workspace dir itself.
  const std::string& awaitedDir() const {
    return config_.workspaceSource.empty() ? config_.workspace : config_.workspaceSource;
  }
  // The attached workspace, opening it when the backend has attached one since the last call
  // (awaitWorkspace); null while none is.
  Result<std::shared_ptr<const WorkspaceFs>> workspace();
  // Under attachMu_: binds `from` (when not empty) on the workspace dir and opens it.
  Status openWorkspace(const std::string& from);
  void streamExec(Socket& sock, const nlohmann::json& body);
  std::vector<std::string> commandEnv(const nlohmann::json& extra) const;
  nlohmann::json eventsSince(const std::string& target) const;

  RuntimeConfig config_;
  std::string shell_;  // pickShell(config_.bashPaths), once
  std::mutex attachMu_;                                 // one attach at a time
  // awaitWorkspace: the idle directory's identity at start (st_dev, st_ino of workspaceSource,
  // else of workspace; zeros if absent). Another identity there means attached.
  dev_t idleDev_ = 0;
  ino_t idleIno_ = 0;
  std::atomic<std::shared_ptr<const WorkspaceFs>> fs_;  // null until a workspace is attached
  EventLog events_;                                     // before table_: the table reports into it
  ProcessTable table_;
  ShellSession session_;  // the "session" shell mode's persistent shell
  GitOps git_;
};

// Writes {"error":{"code","message"}} with the HTTP status for s.
void writeError(Router::Socket& sock, const Status& s, bool keepAlive);

}  // namespace kiln::runtime
