#include "workspace/host_git.h"

#include <regex>

namespace kiln::workspace {

ProcessOptions hostGitOptions(int timeoutMs) {
  ProcessOptions o;
  o.timeoutMs = timeoutMs;
  o.env = {{"GIT_TERMINAL_PROMPT", "0"},
           {"GIT_ALLOW_PROTOCOL", "file:git:http:https:ssh"},
           {"GIT_SSH_COMMAND", "ssh -o BatchMode=yes -o StrictHostKeyChecking=accept-new"},
           {"GIT_CONFIG_NOSYSTEM", "1"}};
  return o;
}

bool isCommitSha(const std::string& ref) {
  static const std::regex kSha("^[0-9a-f]{7,40}$");
  return std::regex_match(ref, kSha);
}

std::string gitErrorLine(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ')) s.pop_back();
  auto pos = s.rfind("fatal: ");
  if (pos != std::string::npos) s = s.substr(pos + 7);
  auto nl = s.find('\n');
  return nl == std::string::npos ? s : s.substr(0, nl);
}

}  // namespace kiln::workspace
