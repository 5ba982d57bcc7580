#include "cli/job_request.h"

#include <filesystem>
#include <utility>

#include "common/url.h"

namespace kiln::cli {

namespace {

bool isRemoteUrl(const std::string& repo) {
  // file:// passes through as written: the server resolves it.
  if (repo.rfind("file://", 0) == 0 || repo.rfind("git@", 0) == 0 || parseUrl(repo)) return true;
  // scp-like "host:path" (user@ already handled above); a local path never has ':' before '/'.
  size_t colon = repo.find(':');
  return colon != std::string::npos && colon > 1 && repo.find('/') > colon;
}

}  // namespace

std::string normalizeRepoArg(const std::string& repo, const std::string& cwd) {
  if (repo.empty() || isRemoteUrl(repo)) return repo;
  std::filesystem::path p(repo);
  if (p.is_relative()) p = std::filesystem::path(cwd) / p;
  return p.lexically_normal().string();
}

Result<nlohmann::json> buildJobRequest(const RunFlags& flags, const std::string& cwd) {
  if (flags.repo.empty()) return invalidArgument("--repo is required");
  std::string task;
  for (const auto& w : flags.task) task += (task.empty() ? "" : " ") + w;
  if (task.empty()) return invalidArgument("the task description is empty");
  nlohmann::json req = {{"repoUrl", normalizeRepoArg(flags.repo, cwd)}, {"taskDesc", task}};
  if (!flags.ref.empty()) req["ref"] = flags.ref;
  if (!flags.agent.empty()) req["agent"] = flags.agent;
  if (!flags.command.empty()) {
    req["command"] = flags.command;
    if (flags.agent.empty()) req["agent"] = "cli";
  }
  if (!flags.passEnv.empty()) req["cli"]["env"] = flags.passEnv;
  if (!flags.model.empty()) req["model"] = flags.model;
  nlohmann::json limits = nlohmann::json::object();
  if (flags.maxSteps) limits["maxSteps"] = *flags.maxSteps;
  if (flags.maxUsd) limits["maxUsd"] = *flags.maxUsd;
  if (!limits.empty()) req["limits"] = limits;
  for (const auto& gate : flags.approvals) {
    if (gate != "commit" && gate != "push") {
      return invalidArgument("--approve-before: '" + gate + "' is not a gate (commit, push)");
    }
  }
  if (!flags.approvals.empty()) req["approvals"] = flags.approvals;
  if (flags.push) req["push"] = true;
  if (!flags.allowHosts.empty()) req["sandbox"]["allowHosts"] = flags.allowHosts;
  for (const std::string& server : flags.mcp) {
    const size_t eq = server.find('=');
    if (eq == std::string::npos || eq == 0) {
      return invalidArgument("--mcp: '" + server + "' is not NAME=COMMAND");
    }
    auto words = splitWords(server.substr(eq + 1));
    if (!words.isOk())
      return invalidArgument("--mcp " + server.substr(0, eq) + ": " + words.status().message());
    if (words->empty()) return invalidArgument("--mcp " + server.substr(0, eq) + ": no command");
    req["mcpServers"].push_back({{"name", server.substr(0, eq)}, {"command", *words}});
  }
  return req;
}

Result<std::vector<std::string>> splitWords(const std::string& text) {
  std::vector<std::string> words;
  std::string word;
  bool inWord = false;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (c == ' ' || c == '\t' || c == '\n') {
      if (inWord) words.push_back(std::exchange(word, std::string()));
      inWord = false;
      continue;
    }
    inWord = true;
    if (c == '\\' && i + 1 < text.size()) {
      word += text[++i];
    } else if (c == '\'') {
      const size_t end = text.find('\'', i + 1);
      if (end == std::string::npos) return invalidArgument("unterminated '");
      word += text.substr(i + 1, end - i - 1);
      i = end;
    } else if (c == '"') {  // \" and \\ stay escapes inside double quotes
      size_t k = i + 1;
      for (; k < text.size() && text[k] != '"'; ++k) {
        if (text[k] == '\\' && k + 1 < text.size() && (text[k + 1] == '"' || text[k + 1] == '\\'))
          ++k;
        word += text[k];
      }
      if (k >= text.size()) return invalidArgument("unterminated \"");
      i = k;
    } else {
      word += c;
    }
  }
  if (inWord) words.push_back(word);
  return words;
}

}  // namespace kiln::cli
