// GitOps: the /git/* part of the runtime contract, run as commands (same identity and jail as
// /exec) in the workspace. Diffs use a temporary index so the user's index is never touched.
// Thread-safe.
#pragma once
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "common/result.h"
#include "runtime/process_table.h"

namespace kiln::runtime {

struct CommandEnv {
  std::string workspace;
  std::vector<std::string> env;  // base environment of every command, "K=V"
};

class GitOps {
 public:
  GitOps(ProcessTable& table, CommandEnv env) : table_(table), env_(std::move(env)) {}

  Result<nlohmann::json> head(const nlohmann::json& req);
  Result<nlohmann::json> diff(const nlohmann::json& req);
  Result<nlohmann::json> commit(const nlohmann::json& req);
  Result<nlohmann::json> clone(const nlohmann::json& req);
  Result<nlohmann::json> apply(const nlohmann::json& req);
  // Pushes refs/heads/<branch> to `remote` (a URL); `token` (optional) is sent as HTTP basic
  // auth (x-access-token), the form GitHub, GitLab and Gitea accept for tokens.
  Result<nlohmann::json> push(const nlohmann::json& req);

 private:
  struct GitOutput {
    int exitCode;
    std::string out;
    std::string err;
  };
  Result<GitOutput> git(std::vector<std::string> args, std::vector<std::string> extraEnv = {},
                        std::string stdinData = "", int timeoutMs = 120'000);
  // Like git(), but a non-zero exit is an error carrying stderr.
  Result<std::string> gitOk(std::vector<std::string> args, std::vector<std::string> extraEnv = {},
                            std::string stdinData = "", Code failCode = Code::kUnprocessable);

  ProcessTable& table_;
  CommandEnv env_;
};

}  // namespace kiln::runtime
