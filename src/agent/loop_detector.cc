#include "agent/loop_detector.h"

#include <algorithm>
#include <nlohmann/json.hpp>

namespace kiln::agent {
namespace {

// Key order and whitespace must not make two identical calls look different.
std::string canonicalArguments(const std::string& text) {
  auto j = nlohmann::json::parse(text, nullptr, false);
  if (j.is_discarded()) return text;
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::string shortAction(const std::string& tool, const std::string& args) {
  std::string a = args.size() > 120 ? args.substr(0, 117) + "..." : args;
  return tool + " " + a;
}

}  // namespace

void LoopDetector::reset() {
  history_.clear();
  turnsWithoutTool_ = 0;
  unchanged_ = 0;
  verdict_.reset();
}

std::optional<LoopVerdict> LoopDetector::observe(const StepRecord& step) {
  if (verdict_) return verdict_;
  if (!step.hadToolCall || step.toolName.empty()) {
    verdict_ = checkNoTool(step);
    return verdict_;
  }
  turnsWithoutTool_ = 0;
  Entry e;
  e.action = step.toolName + '\x1f' + canonicalArguments(step.argumentsJson);
  e.observation = step.output;
  e.failed = step.isError || step.exitCode != 0;
  history_.push_back(std::move(e));
  size_t keep = static_cast<size_t>(
      std::max({options_.repeatedFailures, options_.repeatedActions, options_.pingPongSteps, 1}));
  while (history_.size() > keep) history_.pop_front();

  if (auto v = checkUnchangedWorkspace(step))
    verdict_ = v;
  else if (auto v = checkRepeatedFailure())
    verdict_ = v;
  else if (auto v = checkRepeatedAction())
    verdict_ = v;
  else if (auto v = checkPingPong())
    verdict_ = v;
  if (verdict_)
    verdict_->reason += " (last: " + shortAction(step.toolName, step.argumentsJson) + ")";
  return verdict_;
}

std::optional<LoopVerdict> LoopDetector::checkNoTool(const StepRecord& step) {
  if (++turnsWithoutTool_ < options_.turnsWithoutTool) return std::nullopt;
  return LoopVerdict{"no_tool_call",
                     std::to_string(turnsWithoutTool_) + " turns in a row without a tool call"};
}

std::optional<LoopVerdict> LoopDetector::checkUnchangedWorkspace(const StepRecord& step) {
  const std::string& hash = step.workspaceHashAfter;
  std::string before = lastHash_;
  if (!hash.empty()) lastHash_ = hash;
  bool comparable = !hash.empty() && !before.empty();
  // bash is always marked mutating (any command may write), so a read-only command would
  // look like a failed change; the repeated-failure rule covers bash instead.
  bool attempted = step.mutating && step.toolName != "bash";
  if (!attempted) {
    unchanged_ = 0;
    return std::nullopt;
  }
  // A refused change (edit_file without a match) left the workspace as it was.
  bool unchanged = step.isError || (comparable && hash == before);
  unchanged_ = unchanged ? unchanged_ + 1 : 0;
  if (unchanged_ < options_.unchangedMutations) return std::nullopt;
  return LoopVerdict{
      "unchanged_workspace",
      std::to_string(unchanged_) + " consecutive attempts to change the workspace changed nothing"};
}

std::optional<LoopVerdict> LoopDetector::checkRepeatedFailure() const {
  int n = options_.repeatedFailures;
  if (n <= 0 || history_.size() < static_cast<size_t>(n)) return std::nullopt;
  auto first = history_.end() - n;
  for (auto it = first; it != history_.end(); ++it) {
    if (!it->failed || it->action != first->action) return std::nullopt;
  }
  return LoopVerdict{"repeated_failure",
                     "the same failing call " + std::to_string(n) + " times in a row"};
}

std::optional<LoopVerdict> LoopDetector::checkRepeatedAction() const {
  int n = options_.repeatedActions;
  if (n <= 0 || history_.size() < static_cast<size_t>(n)) return std::nullopt;
  auto first = history_.end() - n;
  for (auto it = first; it != history_.end(); ++it) {
    if (it->action != first->action || it->observation != first->observation) return std::nullopt;
  }
  return LoopVerdict{"repeated_action",
                     "the same call with the same result " + std::to_string(n) + " times in a row"};
}

std::optional<LoopVerdict> LoopDetector::checkPingPong() const {
  int n = options_.pingPongSteps;
  if (n < 4 || history_.size() < static_cast<size_t>(n)) return std::nullopt;
  auto first = history_.end() - n;
  if (first[0].action == first[1].action) return std::nullopt;  // that is repetition, not A-B
  for (int i = 2; i < n; ++i) {
    if (first[i].action != first[i - 2].action || first[i].observation != first[i - 2].observation)
      return std::nullopt;
  }
  return LoopVerdict{"ping_pong",
                     "alternating between the same two calls with the same results "
                     "for " +
                         std::to_string(n) + " steps"};
}

}  // namespace kiln::agent
