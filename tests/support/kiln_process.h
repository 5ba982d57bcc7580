// KilnProcess: the real `kiln serve` binary as a child process on a free port with its own data
// dir, for end-to-end tests. Stops it (SIGTERM, then SIGKILL) at scope exit.
#pragma once
#include <sys/types.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace kiln::testing {

// Where `make agent-clis` installs the agent CLIs and MCP servers from npm: the build dir's
// agent-clis (KILN_AGENT_CLI_DIR for the node under test).
std::string agentClisDir();
// tests/support/fake_mcp_server.py: a stdio MCP server in Python's standard library.
std::string fakeMcpServerPath();
// Why the real filesystem MCP server (npm) cannot run here, or "" when agentClisDir() has it.
std::string missingMcpServer();

class KilnProcess {
 public:
  // Starts `kiln serve --listen 127.0.0.1:0 --data-dir dataDir --allow-local-repos
  // <dataDir's parent> extraArgs…` and waits until it
  // wrote server.json and answers /healthz. Throws std::runtime_error with the log on failure.
  explicit KilnProcess(std::string dataDir, std::vector<std::string> extraArgs = {},
                       std::vector<std::pair<std::string, std::string>> env = {});
  ~KilnProcess();

  uint16_t port() const { return port_; }
  const std::string& token() const { return token_; }
  const std::string& dataDir() const { return dataDir_; }
  pid_t pid() const { return pid_; }
  std::string log() const;

  // Sends `sig` and waits for the process to exit (SIGKILL after 20 s). Returns its exit code,
  // or -1 when a signal ended it.
  int kill(int sig);
  // Starts it again on the same data dir (a new port).
  void restart();

 private:
  void start();

  std::string dataDir_;
  std::vector<std::string> extraArgs_;
  std::vector<std::pair<std::string, std::string>> env_;
  std::string logPath_;
  pid_t pid_ = -1;
  uint16_t port_ = 0;
  std::string token_;
};

}  // namespace kiln::testing
