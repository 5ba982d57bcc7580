#include "agent/context.h"

namespace kiln::agent {

std::vector<Message> initialContext(const store::Job& job) {
  std::vector<Message> ctx;
  ctx.push_back({"system",
                 "You are kiln, an autonomous software engineer working in a sandbox. The "
                 "repository is checked out in /workspace. Use the tools to inspect, change and "
                 "test the code. Call finish with a summary when the task is done, or ask_user "
                 "when you need a decision from a human.",
                 {}, "", ""});
  ctx.push_back({"user", job.taskDesc, {}, "", ""});
  return ctx;
}

void appendStep(std::vector<Message>& ctx, const store::Step& step) {
  if (step.toolCalled.empty()) {  // a turn without a tool call
    ctx.push_back({"assistant", step.plannerThought, {}, "", ""});
    if (!step.toolOutput.empty()) ctx.push_back({"user", step.toolOutput, {}, "", ""});
    return;
  }
  std::string callId = "step-" + std::to_string(step.stepNumber);
  ctx.push_back({"assistant", step.plannerThought,
                 {ToolCall{callId, step.toolCalled, step.toolArguments}}, "", ""});
  ctx.push_back({"tool", step.toolOutput, {}, callId, step.toolCalled});
}

std::vector<Message> rebuildContext(const store::Job& job,
                                    const std::vector<store::Step>& steps) {
  std::vector<Message> ctx = initialContext(job);
  for (const auto& s : steps) appendStep(ctx, s);
  return ctx;
}

}  // namespace kiln::agent
