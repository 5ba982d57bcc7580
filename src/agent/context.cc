#include "agent/context.h"

namespace kiln::agent {
namespace {

Message message(std::string role, std::string content) {
  Message m;
  m.role = std::move(role);
  m.content = std::move(content);
  return m;
}

std::string summaryMessage(const std::string& summary) {
  return "[Earlier steps were compressed to save context; their full records are kept in the "
         "job's history. Summary of the work so far:]\n" +
         summary;
}

}  // namespace

std::vector<Message> initialContext(const store::Job& job) {
  std::vector<Message> ctx;
  ctx.push_back(message("system",
                        "You are kiln, an autonomous software engineer working in a sandbox. The "
                        "repository is checked out in /workspace. Use the tools to inspect, "
                        "change and test the code. Call finish with a summary when the task is "
                        "done, or ask_user when you need a decision from a human."));
  ctx.push_back(message("user", job.taskDesc));
  return ctx;
}

void appendStep(std::vector<Message>& ctx, const store::Step& step) {
  if (step.phase == kReplyPhase) {
    ctx.push_back(message("user", step.toolOutput));
    return;
  }
  if (step.phase == kCompressPhase) return;  // only rebuildContext acts on these
  if (step.toolCalled.empty()) {  // a turn without a tool call
    ctx.push_back(message("assistant", step.plannerThought));
    if (!step.toolOutput.empty()) ctx.push_back(message("user", step.toolOutput));
    return;
  }
  std::string callId = "step-" + std::to_string(step.stepNumber);
  Message call = message("assistant", step.plannerThought);
  call.toolCalls.push_back(ToolCall{callId, step.toolCalled, step.toolArguments});
  ctx.push_back(std::move(call));
  Message result = message("tool", step.toolOutput);
  result.toolCallId = callId;
  result.toolName = step.toolCalled;
  ctx.push_back(std::move(result));
}

std::vector<Message> rebuildContext(const store::Job& job,
                                    const std::vector<store::Step>& steps) {
  std::vector<Message> ctx = initialContext(job);
  const store::Step* compressed = nullptr;
  for (const auto& s : steps)
    if (s.phase == kCompressPhase) compressed = &s;
  int keptFrom = 0;
  if (compressed) {
    ctx.push_back(message("user", summaryMessage(compressed->plannerThought)));
    keptFrom = compressed->toolArguments.value("keptFromStep", compressed->stepNumber);
  }
  for (const auto& s : steps) {
    if (s.stepNumber >= keptFrom) appendStep(ctx, s);
  }
  return ctx;
}

std::vector<Message> summaryRequest(const std::vector<Message>& ctx) {
  std::vector<Message> req = ctx;
  req.push_back(message(
      "user",
      "The context is getting long. Write a concise summary of the work so far for yourself: "
      "what the task is, what you found, what you changed (files and why), what you ran and its "
      "results, what failed, and what remains to do. Answer with the summary as plain text; do "
      "not call a tool."));
  return req;
}

int firstKeptStep(const std::vector<store::Step>& steps, int64_t thresholdTokens) {
  // Only steps after the newest compression are still verbatim in the context.
  size_t begin = 0;
  for (size_t i = 0; i < steps.size(); ++i) {
    if (steps[i].phase == kCompressPhase)
      begin = i + 1;
  }
  size_t live = steps.size() - begin;
  if (live < 2) return 0;
  const int64_t budgetChars = thresholdTokens;  // ~4 chars a token: a quarter of the threshold
  int64_t used = 0;
  size_t kept = 0;
  for (size_t i = steps.size(); i > begin && kept < live / 2; --i) {
    const auto& s = steps[i - 1];
    used += static_cast<int64_t>(s.toolOutput.size() + s.plannerThought.size() +
                                 s.toolArguments.dump().size());
    if (kept > 0 && used > budgetChars) break;
    ++kept;
  }
  return steps[steps.size() - kept].stepNumber;
}

store::Step compressionStep(int stepNumber, const std::string& summary, int keptFromStep) {
  store::Step s;
  s.stepNumber = stepNumber;
  s.phase = kCompressPhase;
  s.plannerThought = summary;
  s.toolArguments = {{"keptFromStep", keptFromStep}};
  s.toolOutput = "context compressed: steps before " + std::to_string(keptFromStep) +
                 " replaced by this summary";
  return s;
}

}  // namespace kiln::agent
