#include "support/fake_llm.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <stdexcept>

namespace kiln::testing {

FakeLlm::FakeLlm(const nlohmann::json& script, const std::string& dir) {
  std::string scriptPath = dir + "/llm_script.json";
  logPath_ = dir + "/llm_requests.jsonl";
  std::ofstream(scriptPath) << script.dump();
  std::ofstream(logPath_, std::ios::trunc).flush();
  int out[2];
  if (pipe(out) != 0) throw std::runtime_error("pipe failed");
  std::string server = std::string(KILN_SOURCE_DIR) + "/tests/support/fake_llm_server.py";
  pid_ = fork();
  if (pid_ == 0) {
    dup2(out[1], 1);
    close(out[0]);
    close(out[1]);
    execlp("python3", "python3", server.c_str(), "--script", scriptPath.c_str(), "--log",
           logPath_.c_str(), "--port", "0", static_cast<char*>(nullptr));
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
    throw std::runtime_error("fake llm server did not start: '" + line + "'");
  }
}

FakeLlm::~FakeLlm() {
  if (pid_ <= 0) return;
  kill(pid_, SIGKILL);
  waitpid(pid_, nullptr, 0);
}

std::vector<nlohmann::json> FakeLlm::requests() const {
  std::vector<nlohmann::json> out;
  std::ifstream in(logPath_);
  std::string line;
  while (std::getline(in, line)) {
    auto j = nlohmann::json::parse(line, nullptr, false);
    if (!j.is_discarded()) out.push_back(std::move(j));
  }
  return out;
}

}  // namespace kiln::testing
