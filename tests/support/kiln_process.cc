#include "support/kiln_process.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <thread>

#include "common/files.h"
#include "common/url.h"
#include "support/http_client.h"

namespace kiln::testing {

std::string agentClisDir() {
  const std::string binary = KILN_BINARY;
  return binary.substr(0, binary.rfind('/')) + "/agent-clis";
}

std::string missingMcpServer() {
  const std::string clis = agentClisDir();
  if (access((clis + "/node_modules/.bin/mcp-server-filesystem").c_str(), X_OK) == 0) return "";
  return "the MCP server mcp-server-filesystem is not installed in " + clis +
         " (make agent-clis installs it from npm)";
}

std::string fakeMcpServerPath() {
  return std::string(KILN_SOURCE_DIR) + "/tests/support/fake_mcp_server.py";
}

namespace {

// A file of the server's data dir, empty until it exists.
std::string readFile(const std::string& path) { return kiln::readFile(path).valueOr(""); }

}  // namespace

KilnProcess::KilnProcess(std::string dataDir, std::vector<std::string> extraArgs,
                         std::vector<std::pair<std::string, std::string>> env)
    : dataDir_(std::move(dataDir)), extraArgs_(std::move(extraArgs)), env_(std::move(env)) {
  std::filesystem::create_directories(dataDir_);
  logPath_ = dataDir_ + "/../kiln-serve-" + std::to_string(getpid()) + "-" +
             std::to_string(reinterpret_cast<uintptr_t>(this) & 0xffff) + ".log";
  start();
}

KilnProcess::~KilnProcess() {
  if (pid_ > 0) kill(SIGTERM);
}

std::string KilnProcess::log() const { return readFile(logPath_); }

void KilnProcess::start() {
  std::filesystem::remove(dataDir_ + "/server.json");
  // The tests keep their repositories beside the data dir, in the test's own temp dir: that
  // dir is where the server may read local repositories (never in the data dir itself).
  std::string testDir = std::filesystem::path(dataDir_).lexically_normal().parent_path();
  std::vector<std::string> args = {KILN_BINARY,           "serve",      "--listen",
                                   "127.0.0.1:0",         "--data-dir", dataDir_,
                                   "--allow-local-repos", testDir};
  args.insert(args.end(), extraArgs_.begin(), extraArgs_.end());
  pid_ = fork();
  if (pid_ == 0) {
    int fd = open(logPath_.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    dup2(fd, 1);
    dup2(fd, 2);
    for (const auto& [k, v] : env_) setenv(k.c_str(), v.c_str(), 1);
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    execv(argv[0], argv.data());
    _exit(127);
  }
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (std::chrono::steady_clock::now() < deadline) {
    int st;
    if (waitpid(pid_, &st, WNOHANG) == pid_) {
      pid_ = -1;
      throw std::runtime_error("kiln serve exited early:\n" + log());
    }
    auto j = nlohmann::json::parse(readFile(dataDir_ + "/server.json"), nullptr, false);
    Result<Url> url = parseUrl(j.is_object() ? j.value("url", "") : "");
    if (j.is_object() && j.value("pid", 0) == pid_ && url && !url->port.empty()) {
      port_ = static_cast<uint16_t>(std::stoi(url->port));
      std::string tok = readFile(dataDir_ + "/admin.token");
      token_ = tok.substr(0, tok.find('\n'));
      HttpClient c("127.0.0.1", port_);
      auto r = c.get("/healthz");
      if (r.isOk() && r->status == 200) return;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  kill(SIGKILL);
  throw std::runtime_error("kiln serve did not come up:\n" + log());
}

int KilnProcess::kill(int sig) {
  if (pid_ <= 0) return -1;
  ::kill(pid_, sig);
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  int st = 0;
  while (waitpid(pid_, &st, WNOHANG) == 0) {
    if (std::chrono::steady_clock::now() > deadline) {
      ::kill(pid_, SIGKILL);
      waitpid(pid_, &st, 0);
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  pid_ = -1;
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

void KilnProcess::restart() {
  if (pid_ > 0) kill(SIGTERM);
  start();
}

}  // namespace kiln::testing
