#include "agent/loop_detector.h"

#include <gtest/gtest.h>

namespace kiln::agent {
namespace {

StepRecord bash(const std::string& cmd, const std::string& out, int exitCode,
                const std::string& hash = "h0") {
  StepRecord s;
  s.toolName = "bash";
  s.argumentsJson = R"({"command": ")" + cmd + R"("})";
  s.output = out;
  s.exitCode = exitCode;
  s.isError = exitCode != 0;
  s.mutating = true;
  s.workspaceHashAfter = hash;
  return s;
}

StepRecord edit(const std::string& path, const std::string& hash, bool isError = false) {
  StepRecord s;
  s.toolName = "edit_file";
  s.argumentsJson = R"({"path": ")" + path + R"(", "old_str": "a", "new_str": "b"})";
  s.output = isError ? "old_str not found" : "edited";
  s.isError = isError;
  s.mutating = true;
  s.workspaceHashAfter = isError ? "" : hash;
  return s;
}

StepRecord read(const std::string& path, const std::string& out = "contents") {
  StepRecord s;
  s.toolName = "read_file";
  s.argumentsJson = R"({"path": ")" + path + R"("})";
  s.output = out;
  return s;
}

StepRecord talk() {
  StepRecord s;
  s.hadToolCall = false;
  s.output = "I think the answer is 42.";
  return s;
}

// Feeds steps; returns the 1-based index of the step that triggered a verdict, or 0.
int firstHalt(LoopDetector& d, const std::vector<StepRecord>& steps, LoopVerdict* out = nullptr) {
  for (size_t i = 0; i < steps.size(); ++i) {
    if (auto v = d.observe(steps[i])) {
      if (out) *out = *v;
      return static_cast<int>(i + 1);
    }
  }
  return 0;
}

TEST(LoopDetectorTest, SameBrokenBuildStopsAtThree) {
  LoopDetector d;
  std::vector<StepRecord> steps(500, bash("make", "error: foo.c:3: boom\n[exit code 2]", 2));
  LoopVerdict v;
  EXPECT_EQ(firstHalt(d, steps, &v), 3);
  EXPECT_EQ(v.rule, "repeated_failure");
  EXPECT_NE(v.reason.find("make"), std::string::npos);
}

TEST(LoopDetectorTest, RepeatedFailureWithChangingOutputStillStops) {
  LoopDetector d;
  EXPECT_EQ(firstHalt(d, {bash("make", "t=1 fail", 2), bash("make", "t=2 fail", 2),
                          bash("make", "t=3 fail", 2)}),
            3);
}

TEST(LoopDetectorTest, FailureThenEditThenFailureIsProgress) {
  LoopDetector d;
  d.setInitialWorkspaceHash("h0");
  EXPECT_EQ(
      firstHalt(d, {bash("make", "fail", 2, "h0"), edit("a.c", "h1"), bash("make", "fail", 2, "h1"),
                    edit("a.c", "h2"), bash("make", "fail", 2, "h2"), edit("b.c", "h3"),
                    bash("make", "ok", 0, "h3")}),
      0);
}

TEST(LoopDetectorTest, ArgumentKeyOrderDoesNotHideRepetition) {
  LoopDetector d;
  StepRecord a = bash("make", "fail", 2);
  StepRecord b = a;
  b.argumentsJson = R"({ "command" :"make" })";
  EXPECT_EQ(firstHalt(d, {a, b, a}), 3);
}

TEST(LoopDetectorTest, DifferentFailingCommandsAreExploration) {
  LoopDetector d;
  EXPECT_EQ(firstHalt(d, {bash("make", "fail", 2), bash("make -j1", "fail", 2),
                          bash("make V=1", "fail", 2), bash("cmake .", "fail", 1)}),
            0);
}

TEST(LoopDetectorTest, ThreeEditsThatChangeNothingStop) {
  LoopDetector d;
  d.setInitialWorkspaceHash("h0");
  LoopVerdict v;
  EXPECT_EQ(firstHalt(d, {edit("a.c", "h0"), edit("b.c", "h0"), edit("c.c", "h0")}, &v), 3);
  EXPECT_EQ(v.rule, "unchanged_workspace");
}

TEST(LoopDetectorTest, RefusedEditsCountAsUnchanged) {
  LoopDetector d;
  d.setInitialWorkspaceHash("h0");
  EXPECT_EQ(firstHalt(d, {edit("a.c", "", true), edit("b.c", "", true), edit("c.c", "", true)}), 3);
}

TEST(LoopDetectorTest, EditsThatChangeTheWorkspaceAreFine) {
  LoopDetector d;
  d.setInitialWorkspaceHash("h0");
  EXPECT_EQ(
      firstHalt(d, {edit("a.c", "h1"), edit("b.c", "h2"), edit("c.c", "h3"), edit("d.c", "h4")}),
      0);
}

TEST(LoopDetectorTest, AChangeResetsTheUnchangedCount) {
  LoopDetector d;
  d.setInitialWorkspaceHash("h0");
  EXPECT_EQ(firstHalt(d, {edit("a.c", "h0"), edit("b.c", "h0"), edit("c.c", "h1"),
                          edit("d.c", "h1"), edit("e.c", "h1")}),
            0);
}

TEST(LoopDetectorTest, ReadOnlyBashIsNotAFailedChange) {
  LoopDetector d;
  d.setInitialWorkspaceHash("h0");
  EXPECT_EQ(firstHalt(d, {bash("ls", "a b", 0), bash("git log", "c1", 0), bash("cat a", "x", 0),
                          bash("cat b", "y", 0)}),
            0);
}

TEST(LoopDetectorTest, SameActionAndObservationFourTimesStops) {
  LoopDetector d;
  std::vector<StepRecord> steps(10, read("a.c"));
  LoopVerdict v;
  EXPECT_EQ(firstHalt(d, steps, &v), 4);
  EXPECT_EQ(v.rule, "repeated_action");
}

TEST(LoopDetectorTest, LegitimatePollingWithChangingOutputDoesNotFire) {
  LoopDetector d;
  d.setInitialWorkspaceHash("h0");
  std::vector<StepRecord> steps;
  for (int i = 0; i < 20; ++i) {
    steps.push_back(bash("sleep 5; curl -s localhost:8080/status",
                         "progress " + std::to_string(i * 5) + "%\n[exit code 0]", 0));
  }
  EXPECT_EQ(firstHalt(d, steps), 0);
}

TEST(LoopDetectorTest, PingPongOverSixStepsStops) {
  LoopDetector d;
  StepRecord a = read("a.c", "A");
  StepRecord b = read("b.c", "B");
  LoopVerdict v;
  EXPECT_EQ(firstHalt(d, {a, b, a, b, a, b, a}, &v), 6);
  EXPECT_EQ(v.rule, "ping_pong");
}

TEST(LoopDetectorTest, AlternationWithChangingObservationsIsNotPingPong) {
  LoopDetector d;
  std::vector<StepRecord> steps;
  for (int i = 0; i < 10; ++i) {
    steps.push_back(bash("make test", "ok " + std::to_string(i), 0));
    steps.push_back(read("log.txt", "line " + std::to_string(i)));
  }
  EXPECT_EQ(firstHalt(d, steps), 0);
}

TEST(LoopDetectorTest, ThreeTurnsWithoutAToolStop) {
  LoopDetector d;
  LoopVerdict v;
  EXPECT_EQ(firstHalt(d, {talk(), talk(), talk()}, &v), 3);
  EXPECT_EQ(v.rule, "no_tool_call");
}

TEST(LoopDetectorTest, AToolCallResetsTheTalkCount) {
  LoopDetector d;
  EXPECT_EQ(firstHalt(d, {talk(), talk(), read("a"), talk(), talk(), read("b")}), 0);
}

TEST(LoopDetectorTest, VerdictStaysUntilReset) {
  LoopDetector d;
  ASSERT_EQ(firstHalt(d, {talk(), talk(), talk()}), 3);
  EXPECT_TRUE(d.observe(read("a")).has_value());
  d.reset();
  EXPECT_FALSE(d.observe(read("a")).has_value());
  EXPECT_FALSE(d.observe(talk()).has_value());
}

TEST(LoopDetectorTest, OptionsAreHonoured) {
  LoopDetectorOptions o;
  o.repeatedFailures = 5;
  o.repeatedActions = 10;
  LoopDetector d(o);
  std::vector<StepRecord> steps(10, bash("make", "fail", 2));
  EXPECT_EQ(firstHalt(d, steps), 5);
}

TEST(LoopDetectorTest, NormalSessionNeverFires) {
  LoopDetector d;
  d.setInitialWorkspaceHash("h0");
  EXPECT_EQ(
      firstHalt(d, {bash("ls -la", "Makefile a.c", 0), read("a.c"), edit("a.c", "h1"),
                    bash("make test", "1 failed", 2, "h1"), read("a.c", "v2"), edit("a.c", "h2"),
                    bash("make test", "all passed", 0, "h2"), talk(), read("README")}),
      0);
}

}  // namespace
}  // namespace kiln::agent
