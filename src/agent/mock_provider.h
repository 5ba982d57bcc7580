// MockProvider: a deterministic agent that needs no model or key, for demos and tests. It looks
// around the repo (ls, git log), writes AGENT_TASK.md with the task and a plan, runs the repo's
// tests when it finds an obvious command, and finishes. Every action is a real tool call.
#pragma once
#include "agent/provider.h"

namespace kiln::agent {

class MockProvider : public Provider {
 public:
  // Provider
  Task<Result<ModelTurn>> next(const TaskInfo& task, const std::vector<Message>& context) override;
  std::string name() const override { return "mock"; }

  // The turn for a given context, without the coroutine (for tests).
  static ModelTurn plan(const TaskInfo& task, const std::vector<Message>& context);
  // The test command for a repo whose root listing (ls -la) is `listing`, or "".
  static std::string testCommandFor(const std::string& listing);
};

}  // namespace kiln::agent
