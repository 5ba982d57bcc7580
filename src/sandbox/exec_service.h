// The node's sandbox socket (<data dir>/sandbox.sock): `kiln sandbox exec` on the data dir of a
// running `kiln serve` gets its sandbox from the node — a warm pool's when one fits, else one
// created by the node's backends, probed and cleaned up once at the node's start — instead of
// setting up a backend of its own per call.
//
// One sandbox per connection, newline-delimited JSON:
//   client: {"backend": "", "memoryMb": 0, "pids": 0, "cpus": 0, "network": "none",
//            "allowHosts": [], "image": "", "rootInside": false, "workspace": ""}
//   node:   {"socket": "<runtime socket>", "token": "<runtime token>"} | {"error": {...}}
//   client: {"release": true}   (or it closes the connection, e.g. killed)
//   node:   {"breach": {"resource": ..., "message": ...}} | {}, then destroys the sandbox.
// An empty "workspace" is a fresh directory of the node's, removed with the sandbox. Only
// processes of the node's own user may connect (the socket is 0600 and SO_PEERCRED is checked).
#pragma once
#include <condition_variable>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>

#include "common/result.h"
#include "sandbox/sandbox.h"

namespace kiln::sandbox {

class Supervisor;

inline constexpr int kMaxExecConnections = 64;

class ExecService {
 public:
  // Listens on socketPath (a stale socket file there is replaced). sandboxes outlives the
  // service; workspacesDir holds the fresh workspaces (emptied now: left by a crashed node).
  static Result<std::unique_ptr<ExecService>> start(Supervisor& sandboxes, std::string socketPath,
                                                    std::string workspacesDir);
  // Stops accepting, ends every connection and destroys its sandbox, removes the socket.
  ~ExecService();
  ExecService(const ExecService&) = delete;
  ExecService& operator=(const ExecService&) = delete;

 private:
  ExecService(Supervisor& sandboxes, std::string socketPath, std::string workspacesDir, int fd);
  void acceptLoop();
  void serve(int fd);

  Supervisor& sandboxes_;
  const std::string socketPath_, workspacesDir_;
  const int listenFd_;
  int wakeFd_ = -1;  // eventfd: the stop signal for acceptLoop
  std::mutex mu_;
  std::set<int> conns_;    // GUARDED_BY(mu_): open connections, shut down by the destructor
  int threads_ = 0;        // GUARDED_BY(mu_): connection threads still running
  bool stopping_ = false;  // GUARDED_BY(mu_)
  std::condition_variable allDone_;
  std::thread acceptor_;
};

// The client side, for `kiln sandbox exec`: a sandbox held by a node over one connection.
class ExecServiceClient {
 public:
  // nullopt when no node listens at socketPath (the caller runs a backend of its own); an
  // error when a node answered but could not give the sandbox.
  static std::optional<Result<std::unique_ptr<ExecServiceClient>>> acquire(
      const std::string& socketPath, const std::string& backend, const SandboxSpec& spec);
  ~ExecServiceClient();
  const std::string& runtimeSocket() const { return socket_; }
  const std::string& runtimeToken() const { return token_; }
  // Hands the sandbox back (the node destroys it); a limit it hit, if any.
  Result<std::optional<LimitBreach>> release();

 private:
  explicit ExecServiceClient(int fd) : fd_(fd) {}
  int fd_;
  std::string socket_, token_, buffered_;
};

}  // namespace kiln::sandbox
