// FakeLlm: tests/support/fake_llm_server.py as a child process on a free port, replaying a
// scripted trajectory in both wire formats and logging every request it gets. Killed at scope
// exit. Throws std::runtime_error if it does not start.
#pragma once
#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "support/script_server.h"

namespace kiln::testing {

class FakeLlm {
 public:
  // `script`: the trajectory (see fake_llm_server.py); files go to `dir`.
  FakeLlm(const nlohmann::json& script, const std::string& dir);
  ~FakeLlm();
  FakeLlm(const FakeLlm&) = delete;
  FakeLlm& operator=(const FakeLlm&) = delete;

  uint16_t port() const { return server_->port(); }
  // "http://127.0.0.1:<port>" (+ "/v1" for OpenAI-style base URLs).
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port()); }
  // The requests received so far: {"n", "path", "headers", "body"} each.
  std::vector<nlohmann::json> requests() const;

 private:
  std::string logPath_;
  std::unique_ptr<ScriptServer> server_;
};

}  // namespace kiln::testing
