#include "agent/mock_provider.h"

#include <gtest/gtest.h>

namespace kiln::agent {
namespace {

// Plays the mock against canned observations and returns the tool names it called.
std::vector<std::string> play(const std::string& task, const std::string& listing,
                              const std::string& answer = "") {
  TaskInfo info;
  info.jobId = "j1";
  info.taskDesc = task;
  std::vector<Message> ctx = {{"user", task, {}, "", ""}};
  std::vector<std::string> tools;
  for (int i = 0; i < 12; ++i) {
    ModelTurn t = MockProvider::plan(info, ctx);
    EXPECT_EQ(t.calls.size(), 1u);
    const ToolCall& c = t.calls[0];
    tools.push_back(c.name);
    if (c.name == "finish") break;
    ctx.push_back({"assistant", t.thought, {c}, "", ""});
    std::string out = c.arguments.value("command", "") == "ls -la" ? listing : "ok\n[exit code 0]";
    ctx.push_back({"tool", out, {}, c.id, c.name});
    if (c.name == "ask_user") ctx.push_back({"user", answer, {}, "", ""});
  }
  return tools;
}

TEST(MockProviderTest, InspectsWritesTestsAndFinishes) {
  auto tools = play("Add a flag", "-rw-r--r-- 1 a a 10 Jan 1 00:00 Makefile\n");
  std::vector<std::string> want = {"bash", "bash", "write_file", "bash", "finish"};
  EXPECT_EQ(tools, want);
}

TEST(MockProviderTest, SkipsTestsWithoutAnObviousCommand) {
  auto tools = play("Add a flag", "-rw-r--r-- 1 a a 10 Jan 1 00:00 notes.txt\n");
  std::vector<std::string> want = {"bash", "bash", "write_file", "finish"};
  EXPECT_EQ(tools, want);
}

TEST(MockProviderTest, AsksTheTasksQuestionAndRecordsTheAnswer) {
  auto tools = play("Add a license. Which license should I use?", "x package.json\n", "MIT");
  std::vector<std::string> want = {"bash",       "bash", "write_file", "ask_user",
                                   "write_file", "bash", "finish"};
  EXPECT_EQ(tools, want);
}

TEST(MockProviderTest, FindsTestCommands) {
  EXPECT_EQ(MockProvider::testCommandFor("-rw 1 a a 1 x Makefile\n"), "make test");
  EXPECT_EQ(MockProvider::testCommandFor("-rw 1 a a 1 x Cargo.toml\n"), "cargo test");
  EXPECT_EQ(MockProvider::testCommandFor("-rw 1 a a 1 x MyMakefile\n"), "");
}

}  // namespace
}  // namespace kiln::agent
