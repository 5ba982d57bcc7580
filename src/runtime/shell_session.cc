#include "runtime/shell_session.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <map>
#include <set>

namespace kiln::runtime {
namespace {

using nlohmann::json;

// After a timeout: SIGINT, then SIGKILL this much later, then give up on the shell.
constexpr int kInterruptGraceMs = 2000;
constexpr int kShellKillGraceMs = 1000;

// Defined in every new shell: reports a call's end on fd 3. NUL-separated fields: the nonce,
// the exit code, the cwd, then each exported variable as K=V, then an empty field. Builtins
// only, so a PATH the command broke cannot break the report.
constexpr const char* kInit =
    "__kiln_end() { builtin local __kiln_n; { builtin printf '%s\\0%s\\0%s\\0' \"$2\" \"$1\" "
    "\"$PWD\"; for __kiln_n in $(builtin compgen -e); do builtin printf '%s=%s\\0' "
    "\"$__kiln_n\" \"${!__kiln_n}\"; done; builtin printf '\\0'; } >&3; }\n";

// Set by the shell itself, not by the commands: never part of the recorded state.
const std::set<std::string, std::less<>> kShellOwned = {"PWD", "OLDPWD", "SHLVL", "_"};

std::string randomHex(size_t bytes) {
  std::string raw(bytes, '\0');
  size_t got = 0;
  while (got < bytes) {
    ssize_t n = getrandom(raw.data() + got, bytes - got, 0);
    if (n > 0) got += static_cast<size_t>(n);
  }
  static const char kHex[] = "0123456789abcdef";
  std::string out;
  for (unsigned char c : raw) {
    out += kHex[c >> 4];
    out += kHex[c & 15];
  }
  return out;
}

std::map<std::string, std::string> envMap(const std::vector<std::string>& env) {
  std::map<std::string, std::string> m;
  for (const std::string& kv : env) {
    size_t eq = kv.find('=');
    if (eq != std::string::npos) m[kv.substr(0, eq)] = kv.substr(eq + 1);
  }
  return m;
}

bool writeAll(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t n = write(fd, data.data(), data.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    data.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

std::string singleQuoted(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

// Every process below `root` (not `root` itself), with its process group, from /proc.
std::map<pid_t, pid_t> descendants(pid_t root) {
  std::map<pid_t, std::pair<pid_t, pid_t>> all;  // pid -> (ppid, pgid)
  DIR* d = opendir("/proc");
  if (!d) return {};
  while (dirent* e = readdir(d)) {
    char* end = nullptr;
    long pid = std::strtol(e->d_name, &end, 10);
    if (*end != '\0' || pid <= 0) continue;
    char path[64];
    std::snprintf(path, sizeof path, "/proc/%ld/stat", pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) continue;
    char buf[512];
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0) continue;
    buf[n] = '\0';
    // "pid (comm) state ppid pgrp ...": comm may hold spaces and parentheses.
    const char* rp = std::strrchr(buf, ')');
    if (!rp) continue;
    char state;
    int ppid, pgid;
    if (std::sscanf(rp + 1, " %c %d %d", &state, &ppid, &pgid) != 3) continue;
    if (state == 'Z') continue;
    all[static_cast<pid_t>(pid)] = {ppid, pgid};
  }
  closedir(d);
  std::map<pid_t, pid_t> out;
  std::vector<pid_t> frontier = {root};
  while (!frontier.empty()) {
    pid_t p = frontier.back();
    frontier.pop_back();
    for (const auto& [pid, pp] : all) {
      if (pp.first == p && !out.count(pid)) {
        out[pid] = pp.second;
        frontier.push_back(pid);
      }
    }
  }
  return out;
}

}  // namespace

std::optional<ShellReport> parseShellReport(std::string_view report, std::string_view nonce,
                                            const std::vector<std::string>& base) {
  std::vector<std::string_view> fields;
  size_t start = 0;
  bool whole = false;
  while (start <= report.size()) {
    size_t nul = report.find('\0', start);
    if (nul == std::string_view::npos) break;
    std::string_view f = report.substr(start, nul - start);
    start = nul + 1;
    if (fields.size() >= 3 && f.empty()) {
      whole = true;
      break;
    }
    fields.push_back(f);
  }
  if (!whole || fields[0] != nonce) return std::nullopt;
  ShellReport r;
  r.exitCode = std::atoi(std::string(fields[1]).c_str());
  std::map<std::string, std::string> before = envMap(base);
  std::vector<std::string> after;
  for (size_t i = 3; i < fields.size(); ++i) after.emplace_back(fields[i]);
  std::map<std::string, std::string> now = envMap(after);
  json env = json::object();
  for (const auto& [k, v] : now) {
    if (kShellOwned.count(k)) continue;
    auto it = before.find(k);
    if (it == before.end() || it->second != v) env[k] = v;
  }
  for (const auto& [k, v] : before) {
    if (!kShellOwned.count(k) && !now.count(k)) env[k] = nullptr;
  }
  r.state = {{"cwd", std::string(fields[2])}, {"env", std::move(env)}};
  return r;
}

struct ShellSession::Shell {
  std::shared_ptr<ProcessTable::Child> child;
  int in = -1, out = -1, err = -1, ctl = -1;  // our ends of the shell's pipes
  std::string dir;                            // holds the command file
  bool exited = false;

  ~Shell() {
    for (int fd : {in, out, err, ctl}) {
      if (fd >= 0) close(fd);
    }
    if (!dir.empty()) {
      unlink((dir + "/cmd").c_str());
      rmdir(dir.c_str());
    }
  }

  bool checkExited() {
    uint64_t v;
    if (!exited && read(child->exitFd, &v, sizeof v) == sizeof v) exited = true;
    return exited;
  }
};

ShellSession::ShellSession(ProcessTable& table, std::string shell)
    : table_(table), shellPath_(std::move(shell)) {}

ShellSession::~ShellSession() {
  std::lock_guard lock(mu_);
  stop();
}

void ShellSession::stop() {
  if (!shell_) return;
  if (!shell_->exited) {
    kill(-shell_->child->pid, SIGKILL);
    pollfd p{shell_->child->exitFd, POLLIN, 0};
    while (poll(&p, 1, 5000) < 0 && errno == EINTR) {
    }
  }
  shell_.reset();
}

Status ShellSession::start(const Call& call) {
  std::string name = shellPath_.substr(shellPath_.rfind('/') + 1);
  if (name != "bash") {
    return invalidArgument("the session shell needs bash, and this sandbox's image has none (" +
                           shellPath_ + ")");
  }
  auto sh = std::make_unique<Shell>();
  char tmpl[] = "/tmp/.kiln-shell-XXXXXX";
  if (!mkdtemp(tmpl)) return errnoStatus("session: mkdtemp", errno);
  sh->dir = tmpl;
  // The shell runs as the agent's user: it must read the command file, never write it.
  chmod(tmpl, 0755);

  std::map<std::string, std::string> env = envMap(call.env);
  std::string cwd = call.cwd;
  if (call.restore.is_object()) {
    const json restored = call.restore.value("env", json::object());
    for (const auto& [k, v] : restored.items()) {
      if (v.is_string()) env[k] = v.get<std::string>();
      if (v.is_null()) env.erase(k);
    }
    std::string was = call.restore.value("cwd", "");
    struct stat st;
    if (!was.empty() && stat(was.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) cwd = was;
  }
  SpawnRequest req;
  req.argv = {shellPath_, "--noprofile", "--norc"};
  for (const auto& [k, v] : env) req.env.push_back(k + "=" + v);
  req.cwd = cwd;

  int in[2], out[2], err[2], ctl[2];
  if (pipe2(in, O_CLOEXEC) != 0) return errnoStatus("pipe", errno);
  sh->in = in[1];
  if (pipe2(out, O_CLOEXEC) != 0) return errnoStatus("pipe", errno);
  sh->out = out[0];
  if (pipe2(err, O_CLOEXEC) != 0) return errnoStatus("pipe", errno);
  sh->err = err[0];
  if (pipe2(ctl, O_CLOEXEC) != 0) return errnoStatus("pipe", errno);
  sh->ctl = ctl[0];
  auto child = table_.start(req, in[0], out[1], err[1], ctl[1]);
  for (int fd : {in[0], out[1], err[1], ctl[1]}) close(fd);
  if (!child) return child.status().withContext("session: start " + shellPath_);
  sh->child = std::move(child).value();
  for (int fd : {sh->out, sh->err, sh->ctl}) fcntl(fd, F_SETFL, O_NONBLOCK);
  if (!writeAll(sh->in, kInit)) return Status(Code::kInternal, "session: the shell did not start");
  shell_ = std::move(sh);
  return Status::ok();
}

namespace {

// One call's poll loop: output, the report, the shell's exit, the peer, and the timeout's
// escalation.
class CallPump {
 public:
  CallPump(int out, int err, int ctl, int exitFd, int peerFd, pid_t shell,
           std::map<pid_t, pid_t> before)
      : out_(out),
        err_(err),
        ctl_(ctl),
        exitFd_(exitFd),
        peerFd_(peerFd),
        shell_(shell),
        before_(std::move(before)) {}

  enum class End { kReported, kShellExited, kAbandoned };

  End loop(int timeoutMs, const OutputFn& onOutput,
           const std::function<bool(const std::string&)>& reportDone, SpawnOutcome& outcome) {
    const int64_t startMs = steadyMs();
    int64_t next = timeoutMs > 0 ? startMs + timeoutMs : INT64_MAX;
    for (;;) {
      int64_t now = steadyMs();
      if (now >= next) {
        if (stage_ == 0) outcome.timedOut = true;
        if (escalate()) {
          drain(onOutput);
          return End::kAbandoned;
        }
        next = now + (stage_ == 1 ? kInterruptGraceMs : kShellKillGraceMs);
      }
      int waitMs = next == INT64_MAX ? -1 : static_cast<int>(std::max<int64_t>(0, next - now));
      pollfd p[5] = {{out_, POLLIN, 0},
                     {err_, POLLIN, 0},
                     {ctl_, POLLIN, 0},
                     {exitFd_, POLLIN, 0},
                     {outcome.peerGone ? -1 : peerFd_, POLLRDHUP, 0}};
      if (poll(p, 5, waitMs) < 0 && errno != EINTR) return End::kAbandoned;
      bool keep = true;
      if (p[0].revents) keep = pass(out_, "stdout", onOutput) && keep;
      if (p[1].revents) keep = pass(err_, "stderr", onOutput) && keep;
      if (!keep || (p[4].revents & (POLLRDHUP | POLLHUP | POLLERR))) {
        // Nobody wants the result: stop the command at once, as a timeout would.
        if (!outcome.peerGone && stage_ < 2) {
          outcome.peerGone = true;
          stage_ = 1;
          next = steadyMs();
        }
      }
      if (p[2].revents) {
        char buf[65536];
        ssize_t n = read(ctl_, buf, sizeof buf);
        if (n > 0) report_.append(buf, static_cast<size_t>(n));
        if (reportDone(report_)) {
          drain(onOutput);
          return End::kReported;
        }
      }
      if (p[3].revents) {
        drain(onOutput);
        return End::kShellExited;
      }
    }
  }

 private:
  // The next step after a timeout: SIGINT to what the call started, then SIGKILL of it and of
  // its process groups, then (true) give up on the shell. When the call started nothing, the
  // shell itself is busy (a builtin loop): give up at once.
  bool escalate() {
    ++stage_;
    if (stage_ >= 3) return true;
    bool any = false;
    for (const auto& [pid, pgid] : descendants(shell_)) {
      if (before_.count(pid)) continue;  // a background job of an earlier call: not ours
      any = true;
      if (stage_ == 1) {
        kill(pid, SIGINT);
      } else {
        kill(pid, SIGKILL);
        if (pgid != shell_ && pgid > 1) kill(-pgid, SIGKILL);
      }
    }
    return !any;
  }

  bool pass(int fd, const char* stream, const OutputFn& onOutput) {
    char buf[65536];
    ssize_t n = read(fd, buf, sizeof buf);
    if (n <= 0) return true;
    return onOutput(stream, std::string_view(buf, static_cast<size_t>(n)));
  }

  // What is already in the pipes: written before the report (or the exit), so it belongs to
  // this call. Background jobs writing later show up in a later call.
  void drain(const OutputFn& onOutput) {
    for (int fd : {out_, err_}) {
      char buf[65536];
      for (ssize_t n; (n = read(fd, buf, sizeof buf)) > 0;)
        onOutput(fd == out_ ? "stdout" : "stderr", std::string_view(buf, static_cast<size_t>(n)));
    }
  }

  int out_, err_, ctl_, exitFd_, peerFd_;
  pid_t shell_;
  std::map<pid_t, pid_t> before_;
  std::string report_;
  int stage_ = 0;  // 0 running, 1 interrupted, 2 killed
};

}  // namespace

Result<ShellSession::Outcome> ShellSession::run(const Call& call, const OutputFn& onOutput) {
  std::unique_lock lock(mu_, std::try_to_lock);
  if (!lock.owns_lock()) {
    return Status(Code::kConflict, "a command is already running in the shell session");
  }
  Outcome o;
  if (shell_ && shell_->checkExited()) stop();
  const std::string nonce = randomHex(16);
  std::string line;
  std::map<pid_t, pid_t> before;  // the shell's processes before the call: not the call's
  for (int attempt = 0; attempt < 2; ++attempt) {
    if (!shell_) {
      RETURN_IF_ERROR(start(call));
      o.started = true;
    }
    std::string file = shell_->dir + "/cmd";
    int fd = open(file.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (fd < 0) return errnoStatus("session: write the command file", errno);
    bool wrote = writeAll(fd, call.cmd);
    close(fd);
    if (!wrote) return errnoStatus("session: write the command file", errno);
    line =
        "builtin source " + singleQuoted(file) + " </dev/null 3>&-; __kiln_end $? " + nonce + "\n";
    before = descendants(shell_->child->pid);
    if (writeAll(shell_->in, line)) break;
    stop();  // the shell went away since the last call: start a new one
    if (attempt == 1) return Status(Code::kInternal, "session: the shell does not read commands");
  }

  const std::vector<std::string> base = table_.effectiveEnv(call.env);
  std::optional<ShellReport> report;
  auto reportDone = [&](const std::string& bytes) {
    report = parseShellReport(bytes, nonce, base);
    return report.has_value();
  };
  const int64_t startMs = steadyMs();
  CallPump pump(shell_->out, shell_->err, shell_->ctl, shell_->child->exitFd, call.peerFd,
                shell_->child->pid, std::move(before));
  CallPump::End end = pump.loop(call.timeoutMs, onOutput, reportDone, o.spawn);
  o.spawn.durationMs = steadyMs() - startMs;
  if (end == CallPump::End::kReported) {
    o.spawn.exitCode = report->exitCode;
    o.state = std::move(report->state);
    return o;
  }
  if (end == CallPump::End::kAbandoned) stop();
  if (shell_) {
    // The shell exited (an `exit`, `set -e`, a signal): its status is the call's.
    shell_->checkExited();
    pollfd p{shell_->child->exitFd, POLLIN, 0};
    while (!shell_->exited && poll(&p, 1, 5000) < 0 && errno == EINTR) {
    }
    shell_->checkExited();
    int status = shell_->child->status.load();
    o.spawn.exitCode = WIFEXITED(status)     ? WEXITSTATUS(status)
                       : WIFSIGNALED(status) ? 128 + WTERMSIG(status)
                                             : -1;
    stop();
  } else {
    o.spawn.exitCode = 128 + SIGKILL;
  }
  o.ended = true;
  return o;
}

}  // namespace kiln::runtime
