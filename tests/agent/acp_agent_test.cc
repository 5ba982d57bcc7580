// The pure parts of ACP agents and kept sessions: session/update notifications (as
// claude-code-acp sends them) into steps and terminal text; the bridge command; which step holds
// a job's session and what a run asks.
#include "agent/acp_agent.h"

#include <gtest/gtest.h>

#include "agent/cli_session.h"
#include "agent/context.h"

namespace kiln::agent {
namespace {

using nlohmann::json;

json chunk(const std::string& text) {
  return {{"sessionUpdate", "agent_message_chunk"},
          {"content", {{"type", "text"}, {"text", text}}}};
}

TEST(AcpUpdatesTest, ToolCallsWithTheirResultsBecomeStepsAndTheLastTextTheAnswer) {
  AcpUpdates u;
  u.update(chunk("The greeting "));
  u.update(chunk("lacks a comma."));
  u.update({{"sessionUpdate", "tool_call"},
            {"toolCallId", "t1"},
            {"_meta", {{"claudeCode", {{"toolName", "Bash"}}}}},
            {"rawInput", json::object()},
            {"status", "pending"},
            {"title", "Terminal"},
            {"kind", "execute"}});
  EXPECT_EQ(u.kindOf("t1"), "execute");
  u.update({{"sessionUpdate", "tool_call"},
            {"toolCallId", "t1"},
            {"rawInput", {{"command", "make test"}}},
            {"title", "`make test`"},
            {"kind", "execute"}});
  EXPECT_TRUE(u.takeSteps().empty());
  u.update({{"sessionUpdate", "tool_call_update"},
            {"toolCallId", "t1"},
            {"status", "failed"},
            {"rawOutput", "FAIL"}});
  u.update({{"sessionUpdate", "tool_call"},
            {"toolCallId", "t2"},
            {"title", "Edit `/workspace/a.py`"},
            {"kind", "edit"},
            {"rawInput", {{"file_path", "/workspace/a.py"}}}});
  u.update({{"sessionUpdate", "tool_call_update"},
            {"toolCallId", "t2"},
            {"status", "completed"},
            {"content", {{{"type", "content"}, {"content", {{"type", "text"}, {"text", "ok"}}}}}}});
  u.update({{"sessionUpdate", "tool_call"}, {"toolCallId", "t3"}, {"title", "Read"}});
  u.update(chunk("Done."));
  u.update({{"sessionUpdate", "no_such_update"}, {"x", 1}});
  u.update(json::array());
  EXPECT_EQ(u.finish(), "Done.");
  auto steps = u.takeSteps();
  ASSERT_EQ(steps.size(), 4u);
  EXPECT_EQ(steps[0].step.toolCalled, "Bash");
  EXPECT_EQ(steps[0].step.toolArguments, json({{"command", "make test"}}));
  EXPECT_EQ(steps[0].step.plannerThought, "The greeting lacks a comma.");
  EXPECT_EQ(steps[0].step.toolOutput, "FAIL");
  EXPECT_TRUE(steps[0].isError);
  EXPECT_EQ(steps[1].step.toolCalled, "edit");
  EXPECT_EQ(steps[1].step.toolOutput, "ok");
  EXPECT_FALSE(steps[1].isError);
  EXPECT_EQ(steps[2].step.toolCalled, "Read");  // never finished: an error step
  EXPECT_TRUE(steps[2].isError);
  EXPECT_EQ(steps[3].step.phase, "planning");
  EXPECT_EQ(steps[3].step.plannerThought, "Done.");
  std::string term = u.takeTerminal();
  EXPECT_NE(term.find("→ `make test`"), std::string::npos) << term;
  EXPECT_NE(term.find("FAIL"), std::string::npos) << term;
}

TEST(AcpBridgeTest, ConnectsTheAgentsStdioToTheChannelPort) {
  std::string cmd = acpBridgeCommand({"claude-code-acp", "--it's"});
  EXPECT_EQ(cmd.rfind("exec /bin/bash -c ", 0), 0u) << cmd;
  EXPECT_NE(cmd.find("/dev/tcp/127.0.0.1/3130"), std::string::npos) << cmd;
  EXPECT_TRUE(cmd.ends_with(" kiln-acp 'claude-code-acp' '--it'\\''s'")) << cmd;
}

store::Step step(const std::string& phase, const std::string& tool, const std::string& output,
                 json args = json::object()) {
  store::Step s;
  s.phase = phase;
  s.toolCalled = tool;
  s.toolOutput = output;
  s.toolArguments = std::move(args);
  return s;
}

TEST(CliSessionTest, TheNewestSessionOfTheAgentAndTheHumansAnswerAsPrompt) {
  std::vector<store::Step> steps = {
      step("acting", "Edit", "ok"),
      step(kSessionPhase, kSessionTool, "OLD", {{"agent", "claude"}, {"sessionId", "s1"}}),
      step(kSessionPhase, kSessionTool, "CODEX", {{"agent", "codex"}, {"sessionId", "c1"}}),
      step(kSessionPhase, kSessionTool, "NEW", {{"agent", "claude"}, {"sessionId", "s2"}}),
      step("delivering", "git_commit", "{}"),
  };
  auto s = lastCliSession(steps, "claude");
  ASSERT_TRUE(s);
  EXPECT_EQ(s->id, "s2");
  EXPECT_EQ(s->archive, "NEW");
  EXPECT_EQ(lastCliSession(steps, "codex")->id, "c1");
  EXPECT_FALSE(lastCliSession(steps, "acp"));
  EXPECT_EQ(cliPrompt(steps, "the task"), "the task");
  steps.push_back(step(kReplyPhase, "", "and now the docs"));
  EXPECT_EQ(cliPrompt(steps, "the task"), "and now the docs");
  EXPECT_EQ(sessionDir("claude"), ".claude/projects");
  EXPECT_EQ(sessionDir("cursor"), "");
}

TEST(CliSessionTest, ResumingPresetsAddTheirResumeFlag) {
  EnvLookup none = [](const std::string&) -> std::optional<std::string> { return std::nullopt; };
  auto claude = resolveCliAgent("claude", "", json::object(), "go on", none, "s-1");
  ASSERT_TRUE(claude.isOk());
  EXPECT_NE(claude->shellCommand.find("'--resume' 's-1' 'go on'"), std::string::npos)
      << claude->shellCommand;
  auto codex = resolveCliAgent("codex", "", json::object(), "go on", none, "t-1");
  ASSERT_TRUE(codex.isOk());
  EXPECT_TRUE(codex->shellCommand.ends_with("'resume' 't-1' 'go on'")) << codex->shellCommand;
  // An ACP agent gets its prompt in the session, not on its command line.
  auto acp = resolveCliAgent("acp", "", json{{"command", {"claude-code-acp"}}}, "go on", none);
  ASSERT_TRUE(acp.isOk());
  EXPECT_EQ(acp->shellCommand, "exec 'claude-code-acp'");
  EXPECT_TRUE(acp->usesGateway);
}

}  // namespace
}  // namespace kiln::agent
