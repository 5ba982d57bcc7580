#include "runtime/router.h"

#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>

#include "common/no_throw.h"
#include "runtime/output_cap.h"

namespace kiln::runtime {
namespace {

using nlohmann::json;

constexpr size_t kDefaultHeadBytes = 256 << 10;
constexpr size_t kDefaultTailBytes = 64 << 10;
constexpr int kDefaultTimeoutMs = 120'000;

std::string dumpLine(const json& j) {
  // Command output is arbitrary bytes: replace invalid UTF-8 instead of throwing.
  return j.dump(-1, ' ', false, json::error_handler_t::replace) + "\n";
}

bool writeChunk(Router::Socket& sock, const std::string& data) {
  char size[32];
  int n = std::snprintf(size, sizeof size, "%zx\r\n", data.size());
  std::array<asio::const_buffer, 3> bufs = {asio::buffer(size, n), asio::buffer(data),
                                            asio::buffer("\r\n", 2)};
  boost::system::error_code ec;
  asio::write(sock, bufs, ec);
  return !ec;
}

void writeJson(Router::Socket& sock, int status, const json& body, bool keepAlive) {
  http::response<http::string_body> res{static_cast<http::status>(status), 11};
  res.set(http::field::content_type, "application/json");
  res.keep_alive(keepAlive);
  res.body() = body.dump(-1, ' ', false, json::error_handler_t::replace);
  res.prepare_payload();
  boost::system::error_code ec;
  http::write(sock, res, ec);
}

json errorBody(const Status& s, int* status) {
  // Path escapes are a client error with a dedicated code (docs/runtime.md).
  if (s.code() == Code::kPermissionDenied) {
    *status = 400;
    return {{"error", {{"code", "path_outside_workspace"}, {"message", s.message()}}}};
  }
  *status = httpStatusFor(s.code());
  return {{"error", {{"code", codeName(s.code())}, {"message", s.message()}}}};
}

}  // namespace

std::string pickShell(const std::vector<std::string>& bashPaths) {
  for (const std::string& p : bashPaths)
    if (access(p.c_str(), X_OK) == 0) return p;
  return "/bin/sh";
}

// mkdir -p (the root of a gVisor sandbox is its own memory overlay: PID 1 makes the workdir).
Status makeDirs(const std::string& path) {
  for (size_t at = 1; at <= path.size(); ++at) {
    if (at < path.size() && path[at] != '/') continue;
    const std::string dir = path.substr(0, at);
    if (mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST) return errnoStatus("mkdir " + dir, errno);
  }
  return Status::ok();
}

void writeError(Router::Socket& sock, const Status& s, bool keepAlive) {
  int status = 500;
  json body = errorBody(s, &status);
  writeJson(sock, status, body, keepAlive);
}

Result<std::unique_ptr<Router>> Router::create(RuntimeConfig config) {
  std::shared_ptr<const WorkspaceFs> fs;
  if (!config.awaitWorkspace) {
    ASSIGN_OR_RETURN(fs, WorkspaceFs::open(config.workspace));
  }
  auto router = std::unique_ptr<Router>(new Router(std::move(config), std::move(fs)));
  if (router->config_.awaitWorkspace) {
    struct stat st;
    if (stat(router->awaitedDir().c_str(), &st) == 0) {
      router->idleDev_ = st.st_dev;
      router->idleIno_ = st.st_ino;
    }
  }
  return router;
}

Router::Router(RuntimeConfig config, std::shared_ptr<const WorkspaceFs> fs)
    : config_(std::move(config)),
      shell_(pickShell(config_.bashPaths)),
      fs_(std::move(fs)),
      table_(config_.jail, &events_),
      session_(table_, shell_),
      git_(table_, CommandEnv{config_.workspace, commandEnv(json::object())}) {}

std::vector<std::string> Router::commandEnv(const json& extra) const {
  std::map<std::string, std::string> env = {
      {"PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"},
      {"HOME", config_.home},
      {"LANG", "C.UTF-8"},
      {"TERM", "dumb"},
  };
  if (extra.is_object()) {
    for (const auto& [k, v] : extra.items()) {
      if (v.is_string() && !k.empty() && k.find('=') == std::string::npos) env[k] = v;
    }
  }
  std::vector<std::string> out;
  for (const auto& [k, v] : env) out.push_back(k + "=" + v);
  return out;
}

json Router::eventsSince(const std::string& target) const {
  // ?after=N: only events with a larger seq (N from a previous answer's last event).
  int64_t after = 0;
  if (size_t at = target.find("after="); at != std::string::npos) {
    after = std::strtoll(target.c_str() + at + 6, nullptr, 10);
  }
  json out = json::array();
  for (auto& e : events_.since(after, 1000)) out.push_back(std::move(e));
  return out;
}

bool Router::handle(Socket& sock, const Request& req) noexcept {
  // Nothing may leave a connection thread: an exception there calls std::terminate, which ends
  // PID 1 and the whole sandbox. A handler that throws is answered with 500 and its connection
  // closed (what it wrote before it threw is unknown); PID 1 serves on.
  bool keepAlive = false;
  std::string why;
  if (callNoThrow("runtime: handler", &why, [&] { keepAlive = route(sock, req); })) {
    return keepAlive;
  }
  (void)callNoThrow("runtime: 500 answer", [&] {
    writeError(sock, internalError("runtime: " + std::string(req.target()) + " failed: " + why),
               false);
  });
  return false;
}

bool Router::route(Socket& sock, const Request& req) {
  bool keepAlive = req.keep_alive();
  std::string target(req.target());
  if (req.method() == http::verb::get && target == "/health") {
    writeJson(sock, 200, {{"ok", true}, {"shell", shell_}}, keepAlive);
    return keepAlive;
  }
  if (req.method() == http::verb::get &&
      (target == "/events" || target.rfind("/events?", 0) == 0)) {
    writeJson(sock, 200, eventsSince(target), keepAlive);
    return keepAlive;
  }
  if (req.method() != http::verb::post) {
    writeError(sock, Status(Code::kNotFound, "no such route: " + target), keepAlive);
    return keepAlive;
  }
  json body = req.body().empty() ? json::object() : json::parse(req.body(), nullptr, false);
  if (body.is_discarded() || !body.is_object()) {
    writeError(sock, invalidArgument("body must be a JSON object"), keepAlive);
    return keepAlive;
  }
  if (target != "/workspace/attach") {
    Result<std::shared_ptr<const WorkspaceFs>> fs = workspace();
    if (!fs || !*fs) {
      writeError(sock, fs ? conflict("no workspace attached yet") : fs.status(), keepAlive);
      return keepAlive;
    }
  }
  if (target == "/exec") {
    streamExec(sock, body);
    return false;
  }
  Result<json> answer = dispatch(target, body);
  if (!answer) {
    writeError(sock, answer.status(), keepAlive);
  } else {
    writeJson(sock, 200, *answer, keepAlive);
  }
  return keepAlive;
}

Result<json> Router::dispatch(const std::string& target, const json& body) {
  if (target == "/workspace/attach") return attachWorkspace(body);
  std::shared_ptr<const WorkspaceFs> fs = fs_.load();
  if (target == "/files/read") return fs->read(body);
  if (target == "/files/write") return fs->write(body);
  if (target == "/files/list") return fs->list(body);
  if (target == "/files/search") return fs->search(body);
  if (target == "/git/head") return git_.head(body);
  if (target == "/git/diff") return git_.diff(body);
  if (target == "/git/commit") return git_.commit(body);
  if (target == "/git/clone") return git_.clone(body);
  if (target == "/git/apply") return git_.apply(body);
  if (target == "/git/push") return git_.push(body);
  return notFound("no such route: " + target);
}

Result<std::shared_ptr<const WorkspaceFs>> Router::workspace() {
  if (std::shared_ptr<const WorkspaceFs> fs = fs_.load()) return fs;
  std::lock_guard lock(attachMu_);
  if (std::shared_ptr<const WorkspaceFs> fs = fs_.load()) return fs;
  // Attached from outside since the last look: another directory where the idle one was.
  struct stat st;
  if (stat(awaitedDir().c_str(), &st) != 0 || (st.st_dev == idleDev_ && st.st_ino == idleIno_)) {
    return std::shared_ptr<const WorkspaceFs>();
  }
  RETURN_IF_ERROR(openWorkspace(config_.workspaceSource));
  return fs_.load();
}

Status Router::openWorkspace(const std::string& from) {
  if (!from.empty()) {
    // The backend could not mount the workspace where it belongs from outside (gVisor's
    // gofer keeps an fd of each mount's root): it is at `from`, inside, and moves here.
    RETURN_IF_ERROR(makeDirs(config_.workspace));  // a workdir such as /testbed
    if (mount(from.c_str(), config_.workspace.c_str(), nullptr, MS_BIND, nullptr) != 0) {
      return errnoStatus("attach: bind " + from + " at " + config_.workspace, errno);
    }
  }
  // Opened only now: an fd taken before would keep pointing under the attached mount.
  ASSIGN_OR_RETURN(std::unique_ptr<WorkspaceFs> fs, WorkspaceFs::open(config_.workspace));
  fs_.store(std::shared_ptr<const WorkspaceFs>(std::move(fs)));
  return Status::ok();
}

Result<json> Router::attachWorkspace(const json& body) {
  std::lock_guard lock(attachMu_);
  if (fs_.load()) return conflict("a workspace is attached already");
  auto source = body.find("source");
  std::string from = config_.workspaceSource;
  if (source != body.end()) {
    if (!source->is_string() || source->get_ref<const std::string&>().empty() ||
        source->get_ref<const std::string&>()[0] != '/') {
      return invalidArgument("source must be an absolute path");
    }
    from = source->get_ref<const std::string&>();
  }
  RETURN_IF_ERROR(openWorkspace(from));
  return json{{"attached", true}};
}

void Router::streamExec(Socket& sock, const json& body) {
  auto cmd = body.find("cmd");
  if (cmd == body.end() || !cmd->is_string()) {
    writeError(sock, invalidArgument("cmd must be a string"), false);
    return;
  }
  SpawnRequest req;
  // bash -c (bash -lc when asked for a login shell), or sh when the image has no bash.
  req.argv = {shell_, body.value("login", false) ? "-lc" : "-c", cmd->get<std::string>()};
  req.env = commandEnv(body.value("env", json::object()));
  std::string cwd = body.value("cwd", config_.workspace);
  req.cwd = cwd.empty() ? config_.workspace : cwd[0] == '/' ? cwd : config_.workspace + "/" + cwd;
  req.timeoutMs = body.value("timeoutMs", kDefaultTimeoutMs);
  req.stdinData = body.value("stdin", std::string());
  req.peerFd = sock.native_handle();
  json sessionInfo;  // the session's answer, for the exit line
  auto runIt = [&](const OutputFn& onOutput) -> Result<SpawnOutcome> {
    if (!body.value("session", false)) return table_.run(req, onOutput);
    ShellSession::Call call;
    call.cmd = req.argv[2];
    call.env = req.env;
    call.cwd = req.cwd;
    call.restore = body.value("restore", json());
    call.timeoutMs = req.timeoutMs;
    call.peerFd = req.peerFd;
    ASSIGN_OR_RETURN(ShellSession::Outcome o, session_.run(call, onOutput));
    sessionInfo = {{"state", o.state}, {"started", o.started}, {"ended", o.ended}};
    return o.spawn;
  };
  OutputCap cap(body.value("maxHeadBytes", kDefaultHeadBytes),
                body.value("maxTailBytes", kDefaultTailBytes));

  static const char kHead[] =
      "HTTP/1.1 200 OK\r\nContent-Type: application/x-ndjson\r\n"
      "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n";
  boost::system::error_code ec;
  asio::write(sock, asio::buffer(kHead, sizeof(kHead) - 1), ec);
  if (ec) return;
  auto send = [&](std::string_view stream, std::string_view data) {
    return writeChunk(sock, dumpLine({{"stream", stream}, {"data", data}}));
  };
  auto onOutput = [&](std::string_view stream, std::string_view data) {
    size_t n = cap.admit(stream, data);
    return n == 0 || send(stream, data.substr(0, n));
  };
  // The 200 head is out: a failure from here on is an error line of the stream, never a second
  // HTTP answer on the same connection.
  std::string why;
  bool ran = callNoThrow("runtime: /exec", &why, [&] {
    Result<SpawnOutcome> outcome = runIt(onOutput);
    if (!outcome) {
      int status;
      writeChunk(sock, dumpLine(errorBody(outcome.status(), &status)));
      return;
    }
    for (const OutputPiece& piece : cap.finish()) send(piece.stream, piece.data);
    json exit = {{"exitCode", outcome->exitCode},
                 {"timedOut", outcome->timedOut},
                 {"durationMs", outcome->durationMs},
                 {"truncated", cap.truncated()}};
    if (!sessionInfo.is_null()) exit["session"] = std::move(sessionInfo);
    writeChunk(sock, dumpLine({{"exit", std::move(exit)}}));
  });
  if (!ran) {
    int status;
    writeChunk(sock, dumpLine(errorBody(internalError("runtime: /exec failed: " + why), &status)));
  }
  asio::write(sock, asio::buffer("0\r\n\r\n", 5), ec);
}

}  // namespace kiln::runtime
