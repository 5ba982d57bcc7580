#include "support/fake_llm.h"

#include <fstream>

namespace kiln::testing {

FakeLlm::FakeLlm(const nlohmann::json& script, const std::string& dir) {
  std::string scriptPath = dir + "/llm_script.json";
  logPath_ = dir + "/llm_requests.jsonl";
  std::ofstream(scriptPath) << script.dump();
  std::ofstream(logPath_, std::ios::trunc).flush();
  server_ = std::make_unique<ScriptServer>(
      "fake_llm_server.py", std::vector<std::string>{"--script", scriptPath, "--log", logPath_});
}

FakeLlm::~FakeLlm() = default;

std::vector<nlohmann::json> FakeLlm::requests() const { return readJsonLines(logPath_); }

}  // namespace kiln::testing
