// LoopDetector: watches the steps of one job and says when the agent is stuck, so a runaway
// loop (the same broken build compiled 500 times) stops within a few steps instead of burning
// the budget. Pure: no I/O, no clock. Not thread-safe; one per job, fed from the job's strand.
#pragma once
#include <deque>
#include <optional>
#include <string>

namespace kiln::agent {

// One executed step, as the detector sees it.
struct StepRecord {
  std::string toolName;       // "" for a turn without a tool call
  std::string argumentsJson;  // the call's arguments (compared after canonicalising)
  std::string output;         // the observation the model saw
  bool isError = false;
  int exitCode = 0;
  bool mutating = false;           // the tool tried to change the workspace
  std::string workspaceHashAfter;  // tree hash after the step; "" if not computed
  bool hadToolCall = true;
};

struct LoopVerdict {
  // unchanged_workspace | repeated_failure | repeated_action | ping_pong | no_tool_call
  std::string rule;
  std::string reason;  // for the job's failure message
};

struct LoopDetectorOptions {
  int unchangedMutations = 3;  // consecutive attempted changes that changed nothing
  int repeatedFailures = 3;    // the same failing call in a row
  int repeatedActions = 4;     // the same call with the same observation in a row
  int pingPongSteps = 6;       // A-B-A-B… with identical observations
  int turnsWithoutTool = 3;    // consecutive turns of talk
};

class LoopDetector {
 public:
  explicit LoopDetector(LoopDetectorOptions options = {}) : options_(options) {}

  // The workspace hash before the first step, so the first attempted change can be judged.
  void setInitialWorkspaceHash(std::string hash) { lastHash_ = std::move(hash); }

  // Records a step; returns a verdict when the job should halt. Once a verdict was returned,
  // later steps keep returning one until reset().
  std::optional<LoopVerdict> observe(const StepRecord& step);

  // Forgets the history, e.g. after a human replied (the situation changed).
  void reset();

 private:
  struct Entry {
    std::string action;  // tool name + canonical arguments
    std::string observation;
    bool failed = false;
  };

  std::optional<LoopVerdict> checkNoTool(const StepRecord& step);
  std::optional<LoopVerdict> checkUnchangedWorkspace(const StepRecord& step);
  std::optional<LoopVerdict> checkRepeatedFailure() const;
  std::optional<LoopVerdict> checkRepeatedAction() const;
  std::optional<LoopVerdict> checkPingPong() const;

  LoopDetectorOptions options_;
  std::deque<Entry> history_;  // tool-call steps only, newest last
  int turnsWithoutTool_ = 0;
  int unchanged_ = 0;
  std::string lastHash_;
  std::optional<LoopVerdict> verdict_;
};

}  // namespace kiln::agent
