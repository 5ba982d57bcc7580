// ScriptServer: a test server written in Python (tests/support/<script>) as a child process
// that prints its port as stdout's first line; killed at scope exit. Throws std::runtime_error
// if it does not start.
#pragma once
#include <sys/types.h>

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace kiln::testing {

class ScriptServer {
 public:
  // Runs `python3 tests/support/<script> args... --port 0`.
  ScriptServer(const std::string& script, const std::vector<std::string>& args);
  ~ScriptServer();
  ScriptServer(const ScriptServer&) = delete;
  ScriptServer& operator=(const ScriptServer&) = delete;

  uint16_t port() const { return port_; }

 private:
  pid_t pid_ = -1;
  uint16_t port_ = 0;
};

// The JSON values of a server's request log, one per line (lines that do not parse are
// skipped: the server may be writing the last one).
std::vector<nlohmann::json> readJsonLines(const std::string& path);

// A git smart-HTTP server (tests/support/git_http_server.py) over the bare repos under `root`,
// fetch and push enabled, bound to `bind`. Logs each request (method, path, Authorization) to
// `root`/../git_http_requests.jsonl.
class GitHttpServer {
 public:
  GitHttpServer(const std::string& root, const std::string& bind);
  uint16_t port() const { return server_.port(); }
  // The Authorization headers of the requests so far, in order.
  std::vector<std::string> authorizations() const;

 private:
  std::string logPath_;
  ScriptServer server_;
};

}  // namespace kiln::testing
