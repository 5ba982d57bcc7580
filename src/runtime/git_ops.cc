#include "runtime/git_ops.h"

#include <stdlib.h>
#include <unistd.h>

#include <cstdint>

#include "common/json_fields.h"

namespace kiln::runtime {
namespace {

using nlohmann::json;

constexpr size_t kMaxGitOutput = 256 << 20;

std::string trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ')) s.pop_back();
  return s;
}

// A validated revision/branch argument: never an option.
bool safeRef(const std::string& ref) { return !ref.empty() && ref[0] != '-'; }

std::string base64(const std::string& in) {
  static const char* kAlphabet =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    uint32_t v = (uint8_t(in[i]) << 16) | (uint8_t(in[i + 1]) << 8) | uint8_t(in[i + 2]);
    for (int k = 18; k >= 0; k -= 6) out += kAlphabet[(v >> k) & 63];
  }
  if (i + 1 == in.size()) {
    uint32_t v = uint8_t(in[i]) << 16;
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += "==";
  } else if (i + 2 == in.size()) {
    uint32_t v = (uint8_t(in[i]) << 16) | (uint8_t(in[i + 1]) << 8);
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += kAlphabet[(v >> 6) & 63];
    out += '=';
  }
  return out;
}

}  // namespace

Result<GitOps::GitOutput> GitOps::git(std::vector<std::string> args,
                                      std::vector<std::string> extraEnv, std::string stdinData,
                                      int timeoutMs) {
  SpawnRequest req;
  // The workspace is owned by the agent user while git may run as root (and vice versa).
  req.argv = {"/usr/bin/git", "-c", "safe.directory=*", "-c", "core.quotePath=false"};
  req.argv.insert(req.argv.end(), args.begin(), args.end());
  req.env = env_.env;
  req.env.insert(req.env.end(), extraEnv.begin(), extraEnv.end());
  req.cwd = env_.workspace;
  req.stdinData = std::move(stdinData);
  req.timeoutMs = timeoutMs;
  GitOutput out{-1, {}, {}};
  bool overflow = false;
  auto sink = [&](std::string_view stream, std::string_view data) {
    std::string& dst = stream == "stdout" ? out.out : out.err;
    if (dst.size() + data.size() > kMaxGitOutput) {
      overflow = true;
      return false;
    }
    dst.append(data);
    return true;
  };
  ASSIGN_OR_RETURN(SpawnOutcome outcome, table_.run(req, sink));
  if (overflow) return Status(Code::kTooLarge, "git output exceeds 256 MiB");
  if (outcome.timedOut) return Status(Code::kDeadlineExceeded, "git timed out");
  out.exitCode = outcome.exitCode;
  return out;
}

Result<std::string> GitOps::gitOk(std::vector<std::string> args, std::vector<std::string> extraEnv,
                                  std::string stdinData, Code failCode) {
  std::string what = "git " + args[0];
  ASSIGN_OR_RETURN(GitOutput out, git(std::move(args), std::move(extraEnv), std::move(stdinData)));
  if (out.exitCode != 0) return Status(failCode, what + ": " + trim(out.err));
  return std::move(out.out);
}

Result<json> GitOps::head(const json&) {
  ASSIGN_OR_RETURN(std::string sha, gitOk({"rev-parse", "--verify", "HEAD"}));
  return json{{"commit", trim(sha)}};
}

Result<json> GitOps::diff(const json& req) {
  std::string base = fieldOr(req, "base", "");
  if (base.empty()) base = "HEAD";
  if (!safeRef(base)) return invalidArgument("bad base revision");
  const std::string since = fieldOr(req, "since", "");
  const bool fresh = req.value("fresh", false);
  // Per-step diffs reuse one index per base, so `add -A` only rehashes files whose stat data
  // changed (a fresh index from read-tree has none: every file would be hashed each time). A
  // fresh diff (delivery) uses a throwaway index, so nothing the agent did to the cached one
  // can change what is committed and reviewed.
  std::string idxPath;
  if (fresh) {
    char tmpl[] = "/tmp/kiln-index-XXXXXX";
    int fd = mkstemp(tmpl);
    if (fd < 0) return errnoStatus("mkstemp", errno);
    close(fd);
    idxPath = tmpl;
  } else {
    idxPath = "/tmp/.kiln-diff-index-" + std::to_string(std::hash<std::string>{}(base));
  }
  std::vector<std::string> idx = {"GIT_INDEX_FILE=" + idxPath};
  auto cleanup = [&] {
    if (fresh) unlink(idxPath.c_str());
  };
  Result<std::string> step = std::string();
  if (fresh || access(idxPath.c_str(), F_OK) != 0) {
    unlink(idxPath.c_str());  // git wants to create the index itself
    step = gitOk({"read-tree", base}, idx);
  }
  if (step) step = gitOk({"add", "-A", "."}, idx);
  if (!step && !fresh) {  // a damaged cached index: start it again from the base
    unlink(idxPath.c_str());
    step = gitOk({"read-tree", base}, idx);
    if (step) step = gitOk({"add", "-A", "."}, idx);
  }
  Result<std::string> tree = step ? gitOk({"write-tree"}, idx) : step;
  cleanup();
  if (!tree) return tree.status();
  const std::string treeId = trim(*tree);
  if (!since.empty() && treeId == since) return json{{"tree", treeId}, {"unchanged", true}};
  ASSIGN_OR_RETURN(std::string diffText,
                   gitOk({"diff", "--binary", "--no-color", "--no-ext-diff", base, treeId}));
  return json{{"diff", diffText}, {"tree", treeId}};
}

Result<json> GitOps::commit(const json& req) {
  std::string branch = fieldOr(req, "branch", ""), message = fieldOr(req, "message", "");
  if (!safeRef(branch)) return invalidArgument("branch is required");
  if (message.empty()) message = "kiln commit";
  RETURN_IF_ERROR(gitOk({"checkout", "-q", "-B", branch}).status());
  RETURN_IF_ERROR(gitOk({"add", "-A", "."}).status());
  ASSIGN_OR_RETURN(GitOutput staged, git({"diff", "--cached", "--quiet"}));
  bool hasHead = git({"rev-parse", "--verify", "-q", "HEAD"})->exitCode == 0;
  bool committed = staged.exitCode != 0 || !hasHead;
  if (committed) {
    RETURN_IF_ERROR(gitOk({"-c", "user.name=kiln", "-c", "user.email=kiln@localhost", "commit",
                           "-q", "--no-verify", "--allow-empty", "-m", message})
                        .status());
  }
  ASSIGN_OR_RETURN(std::string sha, gitOk({"rev-parse", "HEAD"}));
  return json{{"commit", trim(sha)}, {"committed", committed}};
}

Result<json> GitOps::clone(const json& req) {
  std::string url = fieldOr(req, "url", ""), ref = fieldOr(req, "ref", "");
  if (url.empty() || url[0] == '-') return invalidArgument("url is required");
  RETURN_IF_ERROR(gitOk({"clone", "-q", "--", url, "."}).status());
  if (!ref.empty()) {
    if (!safeRef(ref)) return invalidArgument("bad ref");
    RETURN_IF_ERROR(gitOk({"checkout", "-q", ref}).status());
  }
  return head(json::object());
}

Result<json> GitOps::push(const json& req) {
  std::string remote = fieldOr(req, "remote", ""), branch = fieldOr(req, "branch", "");
  std::string token = fieldOr(req, "token", "");
  if (remote.empty() || remote[0] == '-') return invalidArgument("remote is required");
  if (!safeRef(branch)) return invalidArgument("branch is required");
  // Never prompt; the token travels as configuration in the environment, not in argv.
  std::vector<std::string> env = {"GIT_TERMINAL_PROMPT=0"};
  if (!token.empty()) {
    env.push_back("GIT_CONFIG_COUNT=1");
    env.push_back("GIT_CONFIG_KEY_0=http.extraHeader");
    env.push_back("GIT_CONFIG_VALUE_0=Authorization: Basic " + base64("x-access-token:" + token));
  }
  std::string refspec = "refs/heads/" + branch + ":refs/heads/" + branch;
  RETURN_IF_ERROR(gitOk({"push", "--porcelain", remote, refspec}, env).status());
  return json{{"pushed", true}, {"remote", remote}, {"branch", branch}};
}

Result<json> GitOps::apply(const json& req) {
  std::string patch = fieldOr(req, "patch", "");
  if (patch.empty()) return json{{"applied", false}};
  RETURN_IF_ERROR(gitOk({"apply", "--binary", "--whitespace=nowarn", "-"}, {}, patch).status());
  return json{{"applied", true}};
}

}  // namespace kiln::runtime
