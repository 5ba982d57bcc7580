#include "support/runtime_process.h"

#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <stdexcept>
#include <thread>

#include "runtime/server.h"

namespace kiln::testing {
namespace {

bool accepts(const std::string& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof addr.sun_path) return false;
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  bool ok = connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  close(fd);
  return ok;
}

}  // namespace

RuntimeProcess::RuntimeProcess(const std::vector<std::string>& extraArgs,
                               const std::string& token) {
  workspace_ = dir_.file("ws");
  socket_ = dir_.file("rt.sock");
  std::filesystem::create_directories(workspace_);
  std::vector<std::string> args = {"runtime", "--socket", socket_, "--workspace", workspace_};
  args.insert(args.end(), extraArgs.begin(), extraArgs.end());
  pid_ = fork();
  if (pid_ < 0) throw std::runtime_error("fork failed");
  if (pid_ == 0) {
    if (!token.empty()) setenv(runtime::kTokenEnv, token.c_str(), 1);
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    _exit(runtime::runtimeMain(static_cast<int>(args.size()), argv.data()));
  }
  // The socket file appears at bind(), before listen(): wait until a connection is accepted.
  for (int i = 0; i < 500 && !accepts(socket_); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  if (!accepts(socket_)) throw std::runtime_error("runtime does not listen on its socket");
}

RuntimeProcess::~RuntimeProcess() {
  if (pid_ > 0) {
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
  }
}

}  // namespace kiln::testing
