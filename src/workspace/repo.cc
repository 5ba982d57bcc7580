#include "workspace/repo.h"

#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <regex>

#include "common/subprocess.h"
#include "common/url.h"
#include "workspace/host_git.h"

namespace kiln::workspace {
namespace {

// `path` with symlinks resolved as far as it exists.
std::string resolvedPath(const std::string& path) {
  std::error_code ec;
  auto p = std::filesystem::weakly_canonical(path, ec);
  std::string s = ec ? std::filesystem::path(path).lexically_normal().string() : p.string();
  if (s.size() > 1 && s.back() == '/') s.pop_back();
  return s;
}

// True when `path` is `dir` or inside it; both resolved.
bool isUnder(const std::string& path, const std::string& dir) {
  if (dir == "/") return true;
  return path == dir || (path.size() > dir.size() && path.compare(0, dir.size(), dir) == 0 &&
                         path[dir.size()] == '/');
}

}  // namespace

Result<std::string> confineLocalRepo(const std::string& url,
                                     const std::vector<std::string>& allowedDirs,
                                     const std::string& dataDir) {
  const bool isFileUrl = url.rfind("file://", 0) == 0;
  if (!isFileUrl && (url.empty() || url[0] != '/')) return url;
  std::string path = resolvedPath(isFileUrl ? url.substr(7) : url);
  if (!dataDir.empty() && isUnder(path, resolvedPath(dataDir))) {
    return Status(Code::kPermissionDenied,
                  "local repository " + path + " is inside kiln's data dir");
  }
  for (const auto& dir : allowedDirs) {
    if (!dir.empty() && isUnder(path, resolvedPath(dir))) {
      return isFileUrl ? "file://" + path : path;
    }
  }
  return Status(Code::kPermissionDenied,
                "local repository " + path +
                    " is not under a directory the server allows (kiln serve --allow-local-repos)");
}

Result<std::string> normalizeRepoUrl(const std::string& url) {
  if (url.empty()) return invalidArgument("repoUrl is empty");
  if (url.size() > 2048) return invalidArgument("repoUrl is longer than 2048 characters");
  for (unsigned char c : url) {
    if (c < 0x20 || c == 0x7f || c == ' ')
      return invalidArgument("repoUrl contains whitespace or control characters");
  }
  if (url[0] == '-') return invalidArgument("repoUrl must not start with '-'");
  static const std::regex kScp(R"(^[A-Za-z0-9._-]+@[A-Za-z0-9.-]+:[^:].*$)");
  if (Result<Url> u = parseUrl(url); u && (u->scheme == "https" || u->scheme == "http" ||
                                           u->scheme == "ssh" || u->scheme == "git")) {
    return url;
  }
  if (std::regex_match(url, kScp)) return url;
  std::string path;
  if (url.rfind("file://", 0) == 0) {
    path = url.substr(7);
    if (path.empty() || path[0] != '/') {
      return invalidArgument("file:// URLs need an absolute path: file:///abs/path");
    }
  } else if (url.find("://") != std::string::npos || url.find("::") != std::string::npos) {
    return invalidArgument("unsupported repoUrl scheme in '" + url +
                           "': use https://, ssh://, git@host:path, file:///path or a path");
  } else {
    path = url;
  }
  std::error_code ec;
  std::filesystem::path abs = std::filesystem::absolute(path, ec);
  if (ec) return invalidArgument("repoUrl path '" + path + "': " + ec.message());
  abs = abs.lexically_normal();
  std::string s = abs.string();
  if (s.size() > 1 && s.back() == '/') s.pop_back();
  if (url.rfind("file://", 0) == 0) return "file://" + s;
  struct stat st;
  if (stat(s.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    return invalidArgument("repoUrl '" + url + "' is neither a URL nor an existing directory");
  }
  return s;
}

Status checkReachable(const std::string& url, const std::string& ref, int timeoutMs) {
  std::vector<std::string> argv = {"git", "ls-remote", "--quiet", "--", url};
  bool checkRef = !ref.empty() && !isCommitSha(ref);
  if (checkRef) argv.push_back(ref);
  auto out = runProcess(argv, hostGitOptions(timeoutMs));
  if (!out.isOk()) return out.status();
  if (out->timedOut) {
    return Status(Code::kUnprocessable, "repository " + url + " did not answer within " +
                                            std::to_string(timeoutMs / 1000) + " s");
  }
  if (out->exitCode != 0) {
    return Status(Code::kUnprocessable,
                  "repository " + url + " is not reachable: " + gitErrorLine(out->err));
  }
  if (checkRef && out->out.empty()) {
    return Status(Code::kUnprocessable, "ref '" + ref + "' not found in " + url);
  }
  return Status::ok();
}

Result<PreparedWorkspace> cloneWorkspace(const std::string& url, const std::string& ref,
                                         const std::string& dir) {
  // --no-hardlinks: a local clone would otherwise share object files with the source repo,
  // and the agent could then alter the user's repository through them.
  std::vector<std::string> argv = {"git", "clone", "-q", "--no-hardlinks"};
  if (!ref.empty() && !isCommitSha(ref)) {
    argv.push_back("--branch");
    argv.push_back(ref);
  }
  argv.insert(argv.end(), {"--", url, dir});
  auto out = runProcess(argv, hostGitOptions(15 * 60'000));
  if (!out.isOk()) return out.status();
  if (out->exitCode != 0 || out->timedOut) {
    return Status(Code::kUnprocessable, "git clone " + url + ": " +
                                            (out->timedOut ? "timed out" : gitErrorLine(out->err)));
  }
  auto run = [&](std::vector<std::string> a) { return runProcess(a, hostGitOptions(60'000)); };
  if (!ref.empty() && isCommitSha(ref)) {
    auto co = run({"git", "-C", dir, "checkout", "-q", "--detach", ref});
    if (!co.isOk()) return co.status();
    if (co->exitCode != 0) {
      return Status(Code::kUnprocessable, "checkout " + ref + ": " + gitErrorLine(co->err));
    }
  }
  auto head = run({"git", "-C", dir, "rev-parse", "HEAD"});
  if (!head.isOk()) return head.status();
  if (head->exitCode != 0) {
    return Status(Code::kUnprocessable, "repository has no commits: " + gitErrorLine(head->err));
  }
  PreparedWorkspace ws{dir, head->out.substr(0, head->out.find('\n'))};
  return ws;
}

Result<PreparedWorkspace> initEmptyWorkspace(const std::string& dir) {
  auto run = [&](std::vector<std::string> a) { return runProcess(a, hostGitOptions(60'000)); };
  for (auto argv : {std::vector<std::string>{"git", "init", "-q", "-b", "main", dir},
                    std::vector<std::string>{"git", "-C", dir, "-c", "user.name=kiln", "-c",
                                             "user.email=kiln@localhost", "commit", "-q",
                                             "--allow-empty", "-m", "kiln: empty workspace"}}) {
    auto out = run(argv);
    if (!out.isOk()) return out.status();
    if (out->exitCode != 0) return internalError("git init workspace: " + gitErrorLine(out->err));
  }
  auto head = run({"git", "-C", dir, "rev-parse", "HEAD"});
  if (!head.isOk()) return head.status();
  return PreparedWorkspace{dir, head->out.substr(0, head->out.find('\n'))};
}

}  // namespace kiln::workspace
