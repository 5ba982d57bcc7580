// RuntimeProcess: `kiln runtime` forked as a plain child process (no sandbox, no jail) on a unix
// socket in a temp dir, serving a workspace dir there. Killed at scope exit. Throws
// std::runtime_error if it does not bind its socket.
#pragma once
#include <sys/types.h>

#include <optional>
#include <string>
#include <vector>

#include "common/asio.h"
#include "support/temp_dir.h"

namespace kiln::testing {

class RuntimeProcess {
 public:
  // `extraArgs` go after `--socket <dir>/rt.sock --workspace <dir>/ws`; `token` is given as
  // KILN_RUNTIME_TOKEN (runtime/server.h) when not empty.
  explicit RuntimeProcess(const std::vector<std::string>& extraArgs = {},
                          const std::string& token = "");
  ~RuntimeProcess();
  RuntimeProcess(const RuntimeProcess&) = delete;
  RuntimeProcess& operator=(const RuntimeProcess&) = delete;

  const std::string& dir() const { return dir_.path(); }
  const std::string& workspace() const { return workspace_; }
  const std::string& socket() const { return socket_; }
  pid_t pid() const { return pid_; }

 private:
  TempDir dir_;
  std::string workspace_, socket_;
  pid_t pid_ = -1;
};

// Runs the coroutine `make(executor)` to completion on a fresh io_context and returns its value.
template <class T, class Make>
T runTask(Make make) {
  asio::io_context ioc;
  std::optional<T> out;
  // A named executor: g++ 12 may destroy a by-value coroutine argument built from a temporary
  // twice.
  asio::any_io_executor ex = ioc.get_executor();
  asio::co_spawn(
      ioc, [&]() -> Task<void> { out.emplace(co_await make(ex)); }, asio::detached);
  ioc.run();
  return std::move(*out);
}

}  // namespace kiln::testing
