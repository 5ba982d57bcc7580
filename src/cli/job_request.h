// The POST /api/v1/jobs request that `kiln run` sends, built from its flags. Pure functions.
#pragma once
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "common/result.h"

namespace kiln::cli {

struct RunFlags {
  std::string repo;
  std::string ref;
  std::string agent;
  std::string model;
  std::string command;               // agent CLI as shell text
  std::vector<std::string> passEnv;  // cli.env
  std::optional<int> maxSteps;
  std::optional<double> maxUsd;
  std::vector<std::string> approvals;  // gates: commit, push
  bool push = false;
  std::vector<std::string> allowHosts;  // sandbox egress allowlist
  std::vector<std::string> mcp;         // "NAME=COMMAND WORDS": mcpServers
  std::vector<std::string> task;
};

// The POST /api/v1/jobs body for `kiln run`. `cwd` makes a plain local repo path absolute,
// since the server may run elsewhere on this machine.
Result<nlohmann::json> buildJobRequest(const RunFlags& flags, const std::string& cwd);

// The words of `text` as a POSIX shell splits them (blanks; '…', "…" and \ quote), without
// expansions. InvalidArgument for an unterminated quote.
Result<std::vector<std::string>> splitWords(const std::string& text);

// A local path or file:// stays local; https://, http://, ssh://, git@host: pass through.
std::string normalizeRepoArg(const std::string& repo, const std::string& cwd);

}  // namespace kiln::cli
