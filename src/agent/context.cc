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

// What the model is told about a run of the job's verify command after its finish.
std::string verifyMessage(const store::Step& step) {
  std::string command = step.toolArguments.value("command", std::string());
  if (!step.isError) return "[kiln ran the job's check `" + command + "`: it passed.]";
  return "[kiln ran the job's check `" + command +
         "` after your finish: it failed with exit code " + std::to_string(step.exitCode) +
         ". The task is not done until it passes. Its output (the end):]\n" + step.toolOutput +
         "\n[Fix the cause, then call finish again.]";
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

namespace {

// The assistant message of the turn the context ends with, when a further call of that turn
// can join it: every call it made so far has its result after it.
Message* openTurn(std::vector<Message>& ctx) {
  size_t results = 0;
  for (auto it = ctx.rbegin(); it != ctx.rend(); ++it) {
    if (it->role == "tool") {
      ++results;
      continue;
    }
    bool open =
        it->role == "assistant" && !it->toolCalls.empty() && it->toolCalls.size() == results;
    return open ? &*it : nullptr;
  }
  return nullptr;
}

}  // namespace

void appendStep(std::vector<Message>& ctx, const store::Step& step) {
  if (step.phase == kInstructionsPhase) {
    if (!ctx.empty() && ctx.front().role == "system")
      ctx.front().content += "\n\n" + step.toolOutput;
    return;
  }
  if (step.phase == kReplyPhase) {
    ctx.push_back(message("user", step.toolOutput));
    return;
  }
  if (step.phase == kCompressPhase) return;  // only rebuildContext acts on these
  if (step.phase == kVerifyPhase) {
    ctx.push_back(message("user", verifyMessage(step)));
    return;
  }
  if (step.toolCalled.empty()) {  // a turn without a tool call
    Message m = message("assistant", step.plannerThought);
    m.refusal = step.refusal;
    ctx.push_back(std::move(m));
    if (!step.toolOutput.empty()) ctx.push_back(message("user", step.toolOutput));
    return;
  }
  ToolCall call;
  call.id = step.callId.empty() ? "step-" + std::to_string(step.stepNumber) : step.callId;
  call.name = step.toolCalled;
  call.arguments = step.toolArguments;
  call.rawArguments = step.rawArguments;
  // A turn's parallel calls are one assistant message, their results the messages after it in
  // the order the model made the calls.
  Message* turn = step.callIndex > 0 ? openTurn(ctx) : nullptr;
  if (!turn) {
    Message m = message("assistant", step.plannerThought);
    m.refusal = step.refusal;
    ctx.push_back(std::move(m));
    turn = &ctx.back();
  }
  turn->toolCalls.push_back(call);
  Message result = message("tool", step.toolOutput);
  result.toolCallId = call.id;
  result.toolName = call.name;
  ctx.push_back(std::move(result));
}

store::Step talkStep(const ModelTurn& turn, int stepNumber) {
  store::Step s;
  s.stepNumber = stepNumber;
  s.phase = "planning";
  s.plannerThought = turn.thought;
  s.refusal = turn.refusal;
  s.toolOutput = "Use a tool to act, or call finish with a summary when the task is done.";
  s.tokensIn = turn.tokensIn;
  s.tokensOut = turn.tokensOut;
  s.usd = turn.usd;
  return s;
}

store::Step callStep(const ModelTurn& turn, size_t index, int stepNumber) {
  const ToolCall& call = turn.calls.at(index);
  store::Step s;
  s.stepNumber = stepNumber;
  s.toolCalled = call.name;
  s.toolArguments = call.arguments;
  s.callId = call.id;
  s.callIndex = static_cast<int>(index);
  s.rawArguments = call.rawArguments;
  if (index == 0) {
    s.plannerThought = turn.thought;
    s.refusal = turn.refusal;
    s.tokensIn = turn.tokensIn;
    s.tokensOut = turn.tokensOut;
    s.usd = turn.usd;
  }
  return s;
}

std::vector<Message> rebuildContext(const store::Job& job, const std::vector<store::Step>& steps) {
  std::vector<Message> ctx = initialContext(job);
  const store::Step* compressed = nullptr;
  for (const auto& s : steps)
    if (s.phase == kCompressPhase) compressed = &s;
  int keptFrom = 0;
  if (compressed) {
    ctx.push_back(message("user", summaryMessage(compressed->plannerThought)));
    keptFrom = compressed->toolArguments.value("keptFromStep", compressed->stepNumber);
  }
  // The repo's instructions stay in the system prompt through every compression.
  for (const auto& s : steps) {
    if (s.stepNumber >= keptFrom || s.phase == kInstructionsPhase) appendStep(ctx, s);
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
    if (steps[i].phase == kCompressPhase) begin = i + 1;
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
  // Never between the parallel calls of one turn: the kept part starts at its first call.
  size_t first = steps.size() - kept;
  while (first > begin && steps[first].callIndex > 0) --first;
  if (first == begin) return 0;
  return steps[first].stepNumber;
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
