// The repo's AGENTS.md files as a step: which files (`git ls-files -z` output, cut short or not),
// in what order, what the model is told of their scope, the caps, and that the system prompt
// keeps them through a context compression.
#include "agent/instructions.h"

#include <gtest/gtest.h>

namespace kiln::agent {
namespace {

using nlohmann::json;
using namespace std::string_literals;

TEST(InstructionsTest, OnlyFilesNamedAgentsMdShallowestFirst) {
  const std::string z =
      "src/api/AGENTS.md\0AGENTS.md\0docs/NOT_AGENTS.md\0b/AGENTS.md\0"
      "a/AGENTS.md\0AGENTS.md.bak\0AGENTS.md\0"s;
  EXPECT_EQ(instructionPaths(z), (std::vector<std::string>{"AGENTS.md", "a/AGENTS.md",
                                                           "b/AGENTS.md", "src/api/AGENTS.md"}));
}

TEST(InstructionsTest, OutputCutShortLosesOnlyItsLastPartialPath) {
  EXPECT_EQ(instructionPaths("x/AGENTS.md\0y/AGE"s), std::vector<std::string>{"x/AGENTS.md"});
  EXPECT_TRUE(instructionPaths("").empty());
  EXPECT_TRUE(instructionPaths("AGENTS.md").empty()) << "no NUL: the path may be cut";
}

TEST(InstructionsTest, AtMostThirtyTwoFilesAreRead) {
  std::string z;
  for (int i = 0; i < 40; ++i) z += "d" + std::to_string(i) + "/e/AGENTS.md" + '\0';
  z += "AGENTS.md"s + '\0';
  auto paths = instructionPaths(z);
  ASSERT_EQ(paths.size(), kMaxInstructionFiles);
  EXPECT_EQ(paths.front(), "AGENTS.md") << "the root file is never the one left out";
}

TEST(InstructionsTest, EachFileIsShownWithItsScope) {
  store::Step s = instructionsStep(
      1, {{"AGENTS.md", "Run make check."}, {"src/api/AGENTS.md", "Every error is JSON.\n"}});
  EXPECT_EQ(s.stepNumber, 1);
  EXPECT_EQ(s.phase, kInstructionsPhase);
  EXPECT_EQ(s.toolArguments["files"], json::array({"AGENTS.md", "src/api/AGENTS.md"}));
  const std::string& t = s.toolOutput;
  EXPECT_NE(t.find("the one nearest to the file at hand wins"), std::string::npos) << t;
  EXPECT_NE(t.find("--- AGENTS.md (the whole repository) ---\nRun make check.\n"),
            std::string::npos)
      << t;
  EXPECT_NE(t.find("--- src/api/AGENTS.md (files under src/api/) ---\nEvery error is JSON.\n"),
            std::string::npos)
      << t;
  EXPECT_LT(t.find("Run make check."), t.find("Every error is JSON."));
}

TEST(InstructionsTest, AHugeFileIsCutAndWhatDoesNotFitIsNamed) {
  const std::string big(kMaxInstructionFileBytes * 3, 'x');
  std::vector<InstructionFile> files = {{"AGENTS.md", big}};
  for (int i = 0; i < 4; ++i) files.push_back({"d" + std::to_string(i) + "/AGENTS.md", big});
  store::Step s = instructionsStep(3, files);
  EXPECT_LT(s.toolOutput.size(), kMaxInstructionBytes + 4096);
  EXPECT_NE(s.toolOutput.find("more bytes"), std::string::npos);
  // Two cut files fit in the room of three whole ones, a third cut one does not.
  EXPECT_NE(s.toolOutput.find("--- d0/AGENTS.md"), std::string::npos);
  EXPECT_EQ(s.toolOutput.find("--- d1/AGENTS.md"), std::string::npos);
  EXPECT_NE(s.toolOutput.find("read these before you work in their directories: d1/AGENTS.md "
                              "d2/AGENTS.md d3/AGENTS.md]"),
            std::string::npos)
      << s.toolOutput.substr(s.toolOutput.size() - 300);
  EXPECT_EQ(s.toolArguments["files"].size(), 5u);
}

store::Step bashStep(int n, const std::string& out) {
  store::Step s;
  s.stepNumber = n;
  s.toolCalled = "bash";
  s.toolArguments = {{"command", "ls"}};
  s.toolOutput = out;
  return s;
}

TEST(InstructionsTest, TheSystemPromptKeepsThemThroughACompression) {
  store::Job job;
  job.taskDesc = "task";
  std::vector<store::Step> steps = {instructionsStep(1, {{"AGENTS.md", "Use tabs."}}),
                                    bashStep(2, "old output"), bashStep(3, "new output")};
  auto ctx = rebuildContext(job, steps);
  ASSERT_GE(ctx.size(), 2u);
  EXPECT_EQ(ctx[0].role, "system");
  EXPECT_NE(ctx[0].content.find("Use tabs."), std::string::npos);
  EXPECT_EQ(ctx[1].role, "user") << "the instructions are no message of their own";
  EXPECT_EQ(ctx[1].content, "task");

  steps.push_back(compressionStep(4, "summary of the start", 3));
  ctx = rebuildContext(job, steps);
  EXPECT_NE(ctx[0].content.find("Use tabs."), std::string::npos);
  std::string all;
  for (const auto& m : ctx) all += m.content + "\n";
  EXPECT_EQ(all.find("old output"), std::string::npos) << all;
  EXPECT_NE(all.find("new output"), std::string::npos) << all;
  EXPECT_EQ(all.find("Use tabs."), all.rfind("Use tabs.")) << "added once: " << all;

  // Live, the recorded step joins the system prompt the same way.
  std::vector<Message> live = initialContext(job);
  appendStep(live, steps.front());
  EXPECT_EQ(live.size(), 2u);
  EXPECT_EQ(live[0].content, rebuildContext(job, {steps.front()})[0].content);
}

}  // namespace
}  // namespace kiln::agent
