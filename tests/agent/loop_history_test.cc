// replayLoopHistory: the loop detector's state rebuilt from a job's stored steps.
#include <gtest/gtest.h>

#include "agent/context.h"
#include "agent/turn_loop.h"

namespace kiln::agent {
namespace {

store::Step failingBuild(int n) {
  store::Step s;
  s.stepNumber = n;
  s.toolCalled = "bash";
  s.toolArguments = {{"command", "python3 build.py"}};
  s.toolOutput = "python3: can't open file 'build.py'\n[exit code 2]";
  s.isError = true;
  s.exitCode = 2;
  s.mutating = true;
  s.workspaceHash = "tree0";
  return s;
}

StepRecord failingBuildRecord() {
  StepRecord r;
  r.toolName = "bash";
  r.argumentsJson = R"({"command":"python3 build.py"})";
  r.output = "python3: can't open file 'build.py'\n[exit code 2]";
  r.isError = true;
  r.exitCode = 2;
  r.mutating = true;
  r.workspaceHashAfter = "tree0";
  return r;
}

TEST(LoopHistoryTest, TwoStoredFailuresAndALiveThirdAreALoop) {
  LoopDetector loops;
  EXPECT_FALSE(replayLoopHistory(loops, {failingBuild(1), failingBuild(2)}));
  auto v = loops.observe(failingBuildRecord());
  ASSERT_TRUE(v);
  EXPECT_EQ(v->rule, "repeated_failure");
}

TEST(LoopHistoryTest, AHumanReplyStartsTheHistoryAfresh) {
  store::Step reply;
  reply.stepNumber = 3;
  reply.phase = kReplyPhase;
  reply.toolOutput = "try again";
  LoopDetector loops;
  EXPECT_FALSE(replayLoopHistory(loops, {failingBuild(1), failingBuild(2), reply}));
  EXPECT_FALSE(loops.observe(failingBuildRecord()));
}

TEST(LoopHistoryTest, InterruptedCallsAndKilnsOwnStepsAreNotTheAgentsRepetition) {
  store::Step interrupted = failingBuild(2);
  interrupted.toolOutput = "[interrupted: the kiln node running this call stopped]";
  store::Step compression;
  compression.stepNumber = 3;
  compression.phase = kCompressPhase;
  LoopDetector loops;
  EXPECT_FALSE(replayLoopHistory(loops, {failingBuild(1), interrupted, compression}));
  EXPECT_FALSE(loops.observe(failingBuildRecord()));  // two failures so far, not three
  EXPECT_TRUE(loops.observe(failingBuildRecord()));
}

TEST(LoopHistoryTest, AStoredHistoryThatIsALoopAlreadyGivesItsVerdict) {
  LoopDetector loops;
  auto v = replayLoopHistory(loops, {failingBuild(1), failingBuild(2), failingBuild(3)});
  ASSERT_TRUE(v);
  EXPECT_EQ(v->rule, "repeated_failure");
}

}  // namespace
}  // namespace kiln::agent
