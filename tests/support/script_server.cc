#include "support/script_server.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <stdexcept>

namespace kiln::testing {

ScriptServer::ScriptServer(const std::string& script, const std::vector<std::string>& args) {
  int out[2];
  if (pipe(out) != 0) throw std::runtime_error("pipe failed");
  std::vector<std::string> argv = {"python3",
                                   std::string(KILN_SOURCE_DIR) + "/tests/support/" + script};
  argv.insert(argv.end(), args.begin(), args.end());
  argv.push_back("--port");
  argv.push_back("0");
  pid_ = fork();
  if (pid_ == 0) {
    dup2(out[1], 1);
    close(out[0]);
    close(out[1]);
    std::vector<char*> cargv;
    for (auto& a : argv) cargv.push_back(a.data());
    cargv.push_back(nullptr);
    execvp("python3", cargv.data());
    _exit(127);
  }
  close(out[1]);
  std::string line;
  char c;
  while (read(out[0], &c, 1) == 1 && c != '\n') line += c;
  close(out[0]);
  port_ = static_cast<uint16_t>(std::atoi(line.c_str()));
  if (port_ == 0) {
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
    throw std::runtime_error(script + " did not start: '" + line + "'");
  }
}

ScriptServer::~ScriptServer() {
  if (pid_ <= 0) return;
  kill(pid_, SIGKILL);
  waitpid(pid_, nullptr, 0);
}

namespace {
std::string gitLogPath(const std::string& root) {
  std::string path = root + "/../git_http_requests.jsonl";
  std::ofstream(path, std::ios::trunc).flush();
  return path;
}
}  // namespace

GitHttpServer::GitHttpServer(const std::string& root, const std::string& bind)
    : logPath_(gitLogPath(root)),
      server_("git_http_server.py", {"--root", root, "--log", logPath_, "--bind", bind}) {}

std::vector<nlohmann::json> readJsonLines(const std::string& path) {
  std::vector<nlohmann::json> out;
  std::ifstream in(path);
  for (std::string line; std::getline(in, line);) {
    auto j = nlohmann::json::parse(line, nullptr, false);
    if (!j.is_discarded()) out.push_back(std::move(j));
  }
  return out;
}

std::vector<std::string> GitHttpServer::authorizations() const {
  std::vector<std::string> out;
  for (const auto& j : readJsonLines(logPath_)) {
    if (j.is_object()) out.push_back(j.value("authorization", ""));
  }
  return out;
}

}  // namespace kiln::testing
