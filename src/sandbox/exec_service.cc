#include "sandbox/exec_service.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "sandbox/supervisor.h"

namespace kiln::sandbox {
namespace {

using nlohmann::json;

// A request line is a small JSON object; anything longer is not one.
constexpr size_t kMaxLine = 64 << 10;

Result<sockaddr_un> unixAddress(const std::string& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof addr.sun_path) {
    return invalidArgument("sandbox socket path too long: " + path);
  }
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  return addr;
}

bool writeLine(int fd, const json& j) {
  const std::string line = j.dump() + "\n";
  for (size_t off = 0; off < line.size();) {
    ssize_t n = send(fd, line.data() + off, line.size() - off, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    off += static_cast<size_t>(n);
  }
  return true;
}

// The next line from fd (buffered keeps what came after it); nullopt at EOF, an error, or a line
// over kMaxLine.
std::optional<std::string> readLine(int fd, std::string& buffered) {
  for (;;) {
    if (size_t nl = buffered.find('\n'); nl != std::string::npos) {
      std::string line = buffered.substr(0, nl);
      buffered.erase(0, nl + 1);
      return line;
    }
    if (buffered.size() > kMaxLine) return std::nullopt;
    char buf[4096];
    ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return std::nullopt;
    buffered.append(buf, static_cast<size_t>(n));
  }
}

// o[key] when it is a string, else "".
std::string stringAt(const json& o, const char* key) {
  auto it = o.find(key);
  return it != o.end() && it->is_string() ? it->get<std::string>() : "";
}

json errorJson(const Status& st) {
  return {{"error", {{"code", codeName(st.code())}, {"message", st.message()}}}};
}

// The spec of a request line, or why it is not one.
Result<SandboxSpec> specOf(const json& req, std::string* backend) {
  if (!req.is_object()) return invalidArgument("request must be a JSON object");
  SandboxSpec spec;
  auto str = [&](const char* key, std::string& out) -> Status {
    auto it = req.find(key);
    if (it == req.end()) return Status::ok();
    if (!it->is_string()) return invalidArgument(std::string(key) + " must be a string");
    out = it->get<std::string>();
    return Status::ok();
  };
  auto num = [&](const char* key, auto& out) -> Status {
    auto it = req.find(key);
    if (it == req.end()) return Status::ok();
    if (!it->is_number() || it->get<double>() < 0 || it->get<double>() > 1e9) {
      return invalidArgument(std::string(key) + " must be a non-negative number");
    }
    out = it->get<std::remove_reference_t<decltype(out)>>();
    return Status::ok();
  };
  RETURN_IF_ERROR(str("backend", *backend));
  RETURN_IF_ERROR(str("network", spec.network));
  RETURN_IF_ERROR(str("image", spec.image));
  RETURN_IF_ERROR(str("workspace", spec.workspaceDir));
  RETURN_IF_ERROR(num("memoryMb", spec.memoryMb));
  RETURN_IF_ERROR(num("pids", spec.pids));
  RETURN_IF_ERROR(num("diskMb", spec.diskMb));
  RETURN_IF_ERROR(num("cpus", spec.cpus));
  if (auto it = req.find("rootInside"); it != req.end()) {
    if (!it->is_boolean()) return invalidArgument("rootInside must be a boolean");
    spec.rootInside = it->get<bool>();
  }
  if (auto it = req.find("allowHosts"); it != req.end()) {
    if (!it->is_array()) return invalidArgument("allowHosts must be an array of strings");
    for (const json& h : *it) {
      if (!h.is_string()) return invalidArgument("allowHosts must be an array of strings");
      spec.allowHosts.push_back(h.get<std::string>());
    }
  }
  if (!spec.workspaceDir.empty() && spec.workspaceDir[0] != '/') {
    return invalidArgument("workspace must be an absolute path");
  }
  return spec;
}

}  // namespace

Result<std::unique_ptr<ExecService>> ExecService::start(Supervisor& sandboxes,
                                                        std::string socketPath,
                                                        std::string workspacesDir) {
  ASSIGN_OR_RETURN(sockaddr_un addr, unixAddress(socketPath));
  std::error_code ec;
  std::filesystem::remove_all(workspacesDir, ec);
  std::filesystem::create_directories(workspacesDir, ec);
  if (ec) return internalError("create " + workspacesDir + ": " + ec.message());
  chmod(workspacesDir.c_str(), 0700);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return errnoStatus("sandbox socket", errno);
  unlink(socketPath.c_str());
  // 0600 from the start: no moment where another user could connect.
  const mode_t old = umask(0177);
  const int bound = bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  const int bindErr = errno;
  umask(old);
  if (bound != 0 || listen(fd, 64) != 0) {
    const int err = bound != 0 ? bindErr : errno;
    close(fd);
    return errnoStatus("sandbox socket " + socketPath, err);
  }
  std::unique_ptr<ExecService> s(
      new ExecService(sandboxes, std::move(socketPath), std::move(workspacesDir), fd));
  s->wakeFd_ = eventfd(0, EFD_CLOEXEC);
  if (s->wakeFd_ < 0) return errnoStatus("sandbox socket: eventfd", errno);
  s->acceptor_ = std::thread([p = s.get()] { p->acceptLoop(); });
  return s;
}

ExecService::ExecService(Supervisor& sandboxes, std::string socketPath, std::string workspacesDir,
                         int fd)
    : sandboxes_(sandboxes),
      socketPath_(std::move(socketPath)),
      workspacesDir_(std::move(workspacesDir)),
      listenFd_(fd) {}

ExecService::~ExecService() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
    for (int fd : conns_) shutdown(fd, SHUT_RDWR);
  }
  if (wakeFd_ >= 0) {
    const uint64_t one = 1;
    (void)!write(wakeFd_, &one, sizeof one);
  }
  if (acceptor_.joinable()) acceptor_.join();
  {
    // Each connection thread destroys its sandbox before it ends.
    std::unique_lock lock(mu_);
    allDone_.wait(lock, [this] { return threads_ == 0; });
  }
  close(listenFd_);
  if (wakeFd_ >= 0) close(wakeFd_);
  unlink(socketPath_.c_str());
}

void ExecService::acceptLoop() {
  for (;;) {
    pollfd fds[2] = {{listenFd_, POLLIN, 0}, {wakeFd_, POLLIN, 0}};
    if (poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      return;
    }
    if (fds[1].revents) return;
    int fd = accept4(listenFd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) continue;
    ucred cred{};
    socklen_t len = sizeof cred;
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0 || cred.uid != geteuid()) {
      close(fd);
      continue;
    }
    std::lock_guard lock(mu_);
    if (stopping_ || threads_ >= kMaxExecConnections) {
      (void)writeLine(
          fd, errorJson(Status(Code::kResourceExhausted, "the node serves " +
                                                             std::to_string(kMaxExecConnections) +
                                                             " sandbox connections already")));
      close(fd);
      continue;
    }
    conns_.insert(fd);
    ++threads_;
    std::thread([this, fd] {
      serve(fd);
      std::lock_guard lock(mu_);
      conns_.erase(fd);
      close(fd);
      if (--threads_ == 0) allDone_.notify_all();
    }).detach();
  }
}

void ExecService::serve(int fd) {
  std::string buffered, backend;
  std::optional<std::string> line = readLine(fd, buffered);
  if (!line) return;
  json req = json::parse(*line, nullptr, false);
  Result<SandboxSpec> spec = specOf(req, &backend);
  if (!spec) {
    (void)writeLine(fd, errorJson(spec.status()));
    return;
  }
  static std::atomic<uint64_t> counter{0};
  spec->id = "e" + std::to_string(getpid()) + "-" + std::to_string(++counter);
  std::string tempWorkspace;
  if (spec->workspaceDir.empty()) {
    tempWorkspace = workspacesDir_ + "/" + spec->id;
    if (mkdir(tempWorkspace.c_str(), 0700) != 0) {
      (void)writeLine(fd, errorJson(errnoStatus("sandbox: mkdir " + tempWorkspace, errno)));
      return;
    }
    spec->workspaceDir = tempWorkspace;
  }
  Result<std::unique_ptr<Sandbox>> sb = sandboxes_.acquire(backend, *spec);
  if (!sb) {
    (void)writeLine(fd, errorJson(sb.status()));
  } else if (writeLine(fd,
                       {{"socket", (*sb)->runtimeSocket()}, {"token", (*sb)->runtimeToken()}})) {
    // Until the client releases the sandbox or goes away (a killed CLI closes the connection).
    std::optional<std::string> next = readLine(fd, buffered);
    json answer = json::object();
    if (next) {
      if (auto breach = (*sb)->limitBreach()) {
        answer["breach"] = {{"resource", breach->resource}, {"message", breach->message}};
      }
      (void)writeLine(fd, answer);
    }
  }
  if (sb) (void)(*sb)->destroy();
  if (!tempWorkspace.empty()) {
    std::error_code ec;
    std::filesystem::remove_all(tempWorkspace, ec);
  }
}

std::optional<Result<std::unique_ptr<ExecServiceClient>>> ExecServiceClient::acquire(
    const std::string& socketPath, const std::string& backend, const SandboxSpec& spec) {
  Result<sockaddr_un> addr = unixAddress(socketPath);
  if (!addr) return std::nullopt;
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return std::nullopt;
  if (connect(fd, reinterpret_cast<const sockaddr*>(&*addr), sizeof *addr) != 0) {
    close(fd);
    return std::nullopt;
  }
  std::unique_ptr<ExecServiceClient> c(new ExecServiceClient(fd));
  json req = {{"backend", backend},
              {"memoryMb", spec.memoryMb},
              {"pids", spec.pids},
              {"cpus", spec.cpus},
              {"diskMb", spec.diskMb},
              {"network", spec.network},
              {"allowHosts", spec.allowHosts},
              {"image", spec.image},
              {"rootInside", spec.rootInside},
              {"workspace", spec.workspaceDir}};
  using R = Result<std::unique_ptr<ExecServiceClient>>;
  if (!writeLine(fd, req))
    return R(Status(Code::kUnavailable, "the node closed its sandbox socket"));
  std::optional<std::string> line = readLine(fd, c->buffered_);
  if (!line) return R(Status(Code::kUnavailable, "the node closed its sandbox socket"));
  json answer = json::parse(*line, nullptr, false);
  if (!answer.is_object()) return R(internalError("the node's answer is not JSON"));
  if (auto err = answer.find("error"); err != answer.end() && err->is_object()) {
    const std::string code = stringAt(*err, "code"), message = stringAt(*err, "message");
    for (int i = static_cast<int>(Code::kInvalidArgument); i <= static_cast<int>(Code::kInternal);
         ++i) {
      if (code == codeName(static_cast<Code>(i))) return R(Status(static_cast<Code>(i), message));
    }
    return R(internalError(message));
  }
  auto sock = answer.find("socket");
  auto token = answer.find("token");
  if (sock == answer.end() || !sock->is_string() || token == answer.end() || !token->is_string()) {
    return R(internalError("the node's answer has no runtime socket"));
  }
  c->socket_ = sock->get<std::string>();
  c->token_ = token->get<std::string>();
  return R(std::move(c));
}

ExecServiceClient::~ExecServiceClient() { close(fd_); }

Result<std::optional<LimitBreach>> ExecServiceClient::release() {
  if (!writeLine(fd_, {{"release", true}})) {
    return Status(Code::kUnavailable, "the node closed its sandbox socket");
  }
  std::optional<std::string> line = readLine(fd_, buffered_);
  if (!line) return Status(Code::kUnavailable, "the node closed its sandbox socket");
  json answer = json::parse(*line, nullptr, false);
  std::optional<LimitBreach> breach;
  if (answer.is_object()) {
    if (auto b = answer.find("breach"); b != answer.end() && b->is_object()) {
      breach = LimitBreach{stringAt(*b, "resource"), stringAt(*b, "message")};
    }
  }
  return breach;
}

}  // namespace kiln::sandbox
