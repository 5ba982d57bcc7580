// The context rebuilt from stored steps: a turn's parallel calls are one assistant message with
// the provider's ids and the model's argument text, their results follow in order; old steps
// without ids still rebuild; compression never cuts a turn in two.
#include "agent/context.h"

#include <gtest/gtest.h>

namespace kiln::agent {
namespace {

using nlohmann::json;

ModelTurn parallelTurn() {
  ModelTurn t;
  t.thought = "three at once";
  t.tokensIn = 100;
  for (const char* name : {"bash", "read_file", "list_dir"}) {
    ToolCall c;
    c.id = std::string("call_") + name;
    c.name = name;
    c.rawArguments = std::string(R"({"z": 1, "a": ")") + name + "\"}";
    c.arguments = json::parse(c.rawArguments);
    t.calls.push_back(c);
  }
  return t;
}

std::vector<store::Step> stepsOf(const ModelTurn& t, int first) {
  std::vector<store::Step> out;
  for (size_t i = 0; i < t.calls.size(); ++i) {
    out.push_back(callStep(t, i, first + static_cast<int>(i)));
    out.back().toolOutput = "out " + std::to_string(i);
  }
  return out;
}

TEST(ContextTest, ParallelCallsAreOneAssistantMessageAndResultsFollowInOrder) {
  store::Job job;
  job.taskDesc = "task";
  auto steps = stepsOf(parallelTurn(), 1);
  EXPECT_EQ(steps[0].plannerThought, "three at once");
  EXPECT_EQ(steps[0].tokensIn, 100);
  EXPECT_EQ(steps[1].plannerThought, "");
  EXPECT_EQ(steps[1].tokensIn, 0);
  EXPECT_EQ(steps[2].callIndex, 2);

  auto ctx = rebuildContext(job, steps);
  ASSERT_EQ(ctx.size(), 2u + 1u + 3u);
  const Message& a = ctx[2];
  EXPECT_EQ(a.role, "assistant");
  EXPECT_EQ(a.content, "three at once");
  ASSERT_EQ(a.toolCalls.size(), 3u);
  EXPECT_EQ(a.toolCalls[1].id, "call_read_file");
  EXPECT_EQ(a.toolCalls[1].rawArguments, R"({"z": 1, "a": "read_file"})");
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(ctx[3 + i].role, "tool");
    EXPECT_EQ(ctx[3 + i].toolCallId, a.toolCalls[i].id);
    EXPECT_EQ(ctx[3 + i].content, "out " + std::to_string(i));
  }

  // Built step by step (as the runner does while it runs the calls), the context is the same.
  std::vector<Message> live = initialContext(job);
  for (const auto& s : steps) appendStep(live, s);
  ASSERT_EQ(live.size(), ctx.size());
  EXPECT_EQ(live[2].toolCalls.size(), 3u);
}

TEST(ContextTest, StepsStoredBeforeIdsWereKeptGetStepIds) {
  store::Job job;
  store::Step s;
  s.stepNumber = 4;
  s.toolCalled = "bash";
  s.toolArguments = {{"command", "ls"}};
  s.toolOutput = "x";
  auto ctx = rebuildContext(job, {s});
  ASSERT_EQ(ctx.size(), 4u);
  EXPECT_EQ(ctx[2].toolCalls[0].id, "step-4");
  EXPECT_EQ(ctx[2].toolCalls[0].rawArguments, "");
  EXPECT_EQ(ctx[3].toolCallId, "step-4");
}

TEST(ContextTest, ALaterCallWithoutItsTurnStartsAMessageOfItsOwn) {
  // The first call of the turn is not in the context (e.g. compressed away): the later one must
  // not attach to an unrelated assistant message.
  store::Job job;
  auto steps = stepsOf(parallelTurn(), 1);
  store::Step reply;
  reply.stepNumber = 9;
  reply.phase = kReplyPhase;
  reply.toolOutput = "human says hi";
  std::vector<Message> ctx = initialContext(job);
  appendStep(ctx, steps[0]);
  appendStep(ctx, reply);
  appendStep(ctx, steps[1]);
  ASSERT_EQ(ctx.size(), 2u + 2u + 1u + 2u);
  EXPECT_EQ(ctx[2].toolCalls.size(), 1u);
  EXPECT_EQ(ctx[5].role, "assistant");
  EXPECT_EQ(ctx[5].toolCalls.size(), 1u);
}

TEST(ContextTest, RefusalIsTheTurnsTextAndMarked) {
  ModelTurn t;
  t.thought = "I can't help with that.";
  t.refusal = true;
  store::Step s = talkStep(t, 1);
  EXPECT_TRUE(s.refusal);
  store::Job job;
  auto ctx = rebuildContext(job, {s});
  ASSERT_EQ(ctx.size(), 4u);
  EXPECT_TRUE(ctx[2].refusal);
  EXPECT_EQ(ctx[2].content, "I can't help with that.");
  EXPECT_FALSE(ctx[3].refusal);
}

TEST(ContextTest, CompressionKeepsATurnsCallsTogether) {
  std::vector<store::Step> steps;
  for (int i = 1; i <= 4; ++i) {  // four single-call turns, then one turn of three calls
    store::Step s;
    s.stepNumber = i;
    s.toolCalled = "bash";
    s.toolOutput = std::string(100, 'x');
    steps.push_back(s);
  }
  for (auto& s : stepsOf(parallelTurn(), 5)) steps.push_back(s);
  // A budget for about one step would keep step 7 alone, the third call of its turn: the kept
  // part starts at the turn's first call instead.
  EXPECT_EQ(firstKeptStep(steps, 30), 5);
  // All of the newest turn is all there is to keep: nothing before it is cut.
  std::vector<store::Step> oneTurn = stepsOf(parallelTurn(), 1);
  EXPECT_EQ(firstKeptStep(oneTurn, 10), 0);
}

}  // namespace
}  // namespace kiln::agent
