// The pure parts of CLI agents: the output parser (Claude Code / Cursor stream-json, Codex
// JSONL, raw text, malformed input) and resolving the agent setting into argv, env and hosts.
#include "agent/cli_agent.h"

#include <gtest/gtest.h>

namespace kiln::agent {
namespace {

using nlohmann::json;

EnvLookup envOf(std::map<std::string, std::string> vars) {
  return [vars](const std::string& name) -> std::optional<std::string> {
    auto it = vars.find(name);
    if (it == vars.end()) return std::nullopt;
    return it->second;
  };
}

std::string lines(const std::vector<json>& js) {
  std::string out;
  for (const auto& j : js) out += j.dump() + "\n";
  return out;
}

TEST(AgentOutputParserTest, ClaudeStreamJsonToolUseAndResultBecomeOneStep) {
  AgentOutputParser p;
  p.feed(lines({
      {{"type", "system"}, {"subtype", "init"}, {"model", "m"}},
      {{"type", "assistant"},
       {"message",
        {{"content",
          {{{"type", "text"}, {"text", "Look first."}},
           {{"type", "tool_use"},
            {"id", "t1"},
            {"name", "Bash"},
            {"input", {{"command", "ls"}}}}}}}}},
      {{"type", "user"},
       {"message",
        {{"content",
          {{{"type", "tool_result"},
            {"tool_use_id", "t1"},
            {"content", "a.txt\n"},
            {"is_error", false}}}}}}},
      {{"type", "result"},
       {"subtype", "success"},
       {"is_error", false},
       {"result", "All done"},
       {"total_cost_usd", 0.5},
       {"usage", {{"input_tokens", 7}, {"cache_read_input_tokens", 3}, {"output_tokens", 2}}}},
  }));
  p.finish();
  std::vector<CliStep> steps = p.takeSteps();
  ASSERT_EQ(steps.size(), 2u);
  EXPECT_EQ(steps[0].step.toolCalled, "Bash");
  EXPECT_EQ(steps[0].step.toolArguments, json({{"command", "ls"}}));
  EXPECT_EQ(steps[0].step.toolOutput, "a.txt\n");
  EXPECT_EQ(steps[0].step.plannerThought, "Look first.");
  EXPECT_FALSE(steps[0].isError);
  EXPECT_EQ(steps[1].step.toolCalled, "");
  EXPECT_EQ(steps[1].step.tokensIn, 10);
  EXPECT_EQ(steps[1].step.tokensOut, 2);
  EXPECT_DOUBLE_EQ(steps[1].step.usd, 0.5);
  EXPECT_EQ(p.finalText(), "All done");
  EXPECT_TRUE(p.structured());
  std::string term = p.takeTerminal();
  EXPECT_NE(term.find("→ Bash ls"), std::string::npos) << term;
  EXPECT_NE(term.find("a.txt"), std::string::npos) << term;
}

TEST(AgentOutputParserTest, MalformedLinesBecomeRawTerminalTextNeverACrash) {
  AgentOutputParser p;
  const std::string bad =
      "{\"type\":\"assistant\",\"message\":{broken\n"
      "{\"type\":\"assistant\",\"message\":\"a string, not an object\"}\n"
      "{\"type\":\"assistant\",\"message\":{\"content\":[{\"type\":\"tool_use\",\"id\":5,"
      "\"name\":[1],\"input\":7}]}}\n"
      "{\"type\":\"user\",\"message\":{\"content\":[{\"type\":\"tool_result\",\"content\":{}}]}}\n"
      "{\"type\":\"result\",\"total_cost_usd\":\"free\",\"usage\":[1,2]}\n"
      "[1,2,3]\n"
      "{\"no\":\"type\"}\n"
      "{\"type\":42}\n"
      "{\"type\":\"item.completed\",\"item\":[]}\n"
      "{\"type\":\"tool_call\",\"tool_call\":5}\n"
      "\xff\xfe not utf-8 {\n"
      "plain text\n";
  p.feed(bad);
  p.feed("{\"type\":\"unterminated");
  p.finish();
  std::string term = p.takeTerminal();
  EXPECT_NE(term.find("{\"type\":\"assistant\",\"message\":{broken\n"), std::string::npos);
  EXPECT_NE(term.find("a string, not an object"), std::string::npos);
  EXPECT_NE(term.find("[1,2,3]\n"), std::string::npos);
  EXPECT_NE(term.find("{\"no\":\"type\"}\n"), std::string::npos);
  EXPECT_NE(term.find("{\"type\":42}\n"), std::string::npos);
  EXPECT_NE(term.find("plain text\n"), std::string::npos);
  EXPECT_NE(term.find("{\"type\":\"unterminated"), std::string::npos);
  // Whatever steps came out of the odd-but-valid lines, each has a tool name or is the result.
  for (const auto& s : p.takeSteps())
    EXPECT_TRUE(s.step.phase == "acting" || s.step.phase == "planning");
}

TEST(AgentOutputParserTest, LinesSplitAcrossChunksAreJoinedAndTextPassesThroughAtOnce) {
  AgentOutputParser p;
  std::string line = json({{"type", "result"}, {"result", "ok"}}).dump() + "\n";
  for (char c : line) p.feed(std::string_view(&c, 1));
  EXPECT_EQ(p.finalText(), "ok");
  p.takeTerminal();
  // Plain text without a newline is shown at once, not held back for the rest of its line.
  p.feed("progress 50%");
  EXPECT_EQ(p.takeTerminal(), "progress 50%");
  p.feed(" {still text}\n");
  EXPECT_EQ(p.takeTerminal(), " {still text}\n");
}

TEST(AgentOutputParserTest, ToolUseWithoutResultBecomesAnErrorStepAtTheEnd) {
  AgentOutputParser p;
  p.feed(lines({{{"type", "assistant"},
                 {"message",
                  {{"content",
                    {{{"type", "tool_use"},
                      {"id", "t9"},
                      {"name", "Write"},
                      {"input", {{"file_path", "/workspace/x"}}}}}}}}}}));
  EXPECT_TRUE(p.takeSteps().empty());
  p.finish();
  auto steps = p.takeSteps();
  ASSERT_EQ(steps.size(), 1u);
  EXPECT_EQ(steps[0].step.toolCalled, "Write");
  EXPECT_TRUE(steps[0].isError);
}

TEST(AgentOutputParserTest, CodexExecJsonCommandsAndFileChangesBecomeSteps) {
  AgentOutputParser p;
  p.feed(lines({
      {{"type", "thread.started"}, {"thread_id", "th"}},
      {{"type", "turn.started"}},
      {{"type", "item.completed"},
       {"item", {{"id", "i0"}, {"type", "reasoning"}, {"text", "Plan"}}}},
      {{"type", "item.started"},
       {"item",
        {{"id", "i1"},
         {"type", "command_execution"},
         {"command", "make test"},
         {"status", "in_progress"}}}},
      {{"type", "item.completed"},
       {"item",
        {{"id", "i1"},
         {"type", "command_execution"},
         {"command", "make test"},
         {"aggregated_output", "FAIL\n"},
         {"exit_code", 2},
         {"status", "failed"}}}},
      {{"type", "item.completed"},
       {"item",
        {{"id", "i2"},
         {"type", "file_change"},
         {"changes", {{{"path", "a.py"}, {"kind", "update"}}}},
         {"status", "completed"}}}},
      {{"type", "item.completed"},
       {"item", {{"id", "i3"}, {"type", "agent_message"}, {"text", "Fixed it."}}}},
      {{"type", "turn.completed"},
       {"usage", {{"input_tokens", 100}, {"cached_input_tokens", 40}, {"output_tokens", 9}}}},
  }));
  p.finish();
  auto steps = p.takeSteps();
  ASSERT_EQ(steps.size(), 3u);
  EXPECT_EQ(steps[0].step.toolCalled, "command_execution");
  EXPECT_EQ(steps[0].step.toolArguments["command"], "make test");
  EXPECT_EQ(steps[0].step.plannerThought, "Plan");
  EXPECT_NE(steps[0].step.toolOutput.find("FAIL"), std::string::npos);
  EXPECT_TRUE(steps[0].isError);
  EXPECT_EQ(steps[1].step.toolCalled, "file_change");
  EXPECT_EQ(steps[1].step.toolArguments["changes"][0]["path"], "a.py");
  EXPECT_EQ(steps[2].step.tokensIn, 100);
  EXPECT_EQ(steps[2].step.tokensOut, 9);
  EXPECT_EQ(p.finalText(), "Fixed it.");
}

TEST(AgentOutputParserTest, CursorToolCallLinesBecomeSteps) {
  AgentOutputParser p;
  json args = {{"path", "/workspace/a"}};
  p.feed(lines({
      {{"type", "tool_call"},
       {"subtype", "started"},
       {"call_id", "c1"},
       {"tool_call", {{"readToolCall", {{"args", args}}}}}},
      {{"type", "tool_call"},
       {"subtype", "completed"},
       {"call_id", "c1"},
       {"tool_call",
        {{"readToolCall", {{"args", args}, {"result", {{"success", {{"content", "hi"}}}}}}}}}},
  }));
  auto steps = p.takeSteps();
  ASSERT_EQ(steps.size(), 1u);
  EXPECT_EQ(steps[0].step.toolCalled, "read");
  EXPECT_EQ(steps[0].step.toolArguments, args);
  EXPECT_NE(steps[0].step.toolOutput.find("hi"), std::string::npos);
  EXPECT_FALSE(steps[0].isError);
}

TEST(CliAgentResolveTest, KilnsContextGoesToClaudesPresetBeforeThePromptAndNowhereElse) {
  auto env = envOf({});
  const std::vector<std::string> extra = {"--mcp-config", "/tmp/.kiln-mcp.json"};
  auto plan = resolveCliAgent("claude", "m", json::object(), "task", env, "s1", extra);
  ASSERT_TRUE(plan.isOk()) << plan.status().toString();
  EXPECT_TRUE(
      plan->shellCommand.ends_with(" '--resume' 's1' '--mcp-config' '/tmp/.kiln-mcp.json' 'task'"))
      << plan->shellCommand;
  json own = {{"command", {"my-claude"}}};
  auto custom = resolveCliAgent("claude", "", own, "task", env, "", extra);
  ASSERT_TRUE(custom.isOk());
  EXPECT_EQ(custom->shellCommand.find("--mcp-config"), std::string::npos) << custom->shellCommand;

  const api::request::JobSpec none;
  api::request::JobSpec ownSpec;
  ownSpec.command = own["command"];
  EXPECT_TRUE(takesKilnInstructions("openai", none));
  EXPECT_TRUE(takesKilnInstructions("mock", none));
  EXPECT_TRUE(takesKilnInstructions("claude", none));
  EXPECT_FALSE(takesKilnInstructions("claude", ownSpec));
  EXPECT_FALSE(takesKilnInstructions("codex", none)) << "Codex reads AGENTS.md itself";
  EXPECT_FALSE(takesKilnInstructions("acp", none));
  EXPECT_TRUE(takesKilnMcp("anthropic", none));
  EXPECT_TRUE(takesKilnMcp("claude", none));
  EXPECT_TRUE(takesKilnMcp("codex", none));
  EXPECT_FALSE(takesKilnMcp("codex", ownSpec));
  EXPECT_FALSE(takesKilnMcp("cursor", none));
  EXPECT_FALSE(takesKilnMcp("cli", none));
  EXPECT_FALSE(takesKilnMcp("acp", none));

  api::request::McpServerSpec fs;
  fs.name = "fs";
  fs.command = {"mcp-server-filesystem", "/workspace"};
  fs.env = {{"A", "1"}};
  EXPECT_EQ(claudeMcpConfig({fs}), json::parse(R"({"mcpServers": {"fs": {"type": "stdio",
      "command": "mcp-server-filesystem", "args": ["/workspace"], "env": {"A": "1"}}}})"));
  fs.command.push_back("say \"hi\"\n");
  EXPECT_EQ(codexMcpArgs({fs}),
            (std::vector<std::string>{"-c", "mcp_servers.fs.command=\"mcp-server-filesystem\"",
                                      "-c", R"(mcp_servers.fs.args=["/workspace","say \"hi\"\n"])",
                                      "-c", R"(mcp_servers.fs.env={A="1"})"}));
}

TEST(CliAgentResolveTest, PresetsAppendThePromptAndGetOnlyTheGatewaysPlaceholderKey) {
  auto env = envOf({{"ANTHROPIC_API_KEY", "sk-a"},
                    {"ANTHROPIC_AUTH_TOKEN", "sk-t"},
                    {"OPENAI_API_KEY", "sk-o"},
                    {"CURSOR_API_KEY", "sk-c"},
                    {"HOME", "/root"}});
  auto plan = resolveCliAgent("claude", "", json::object(), "fix it's bug", env);
  ASSERT_TRUE(plan.isOk()) << plan.status().toString();
  EXPECT_EQ(plan->argv[0], "claude");
  EXPECT_EQ(plan->shellCommand.rfind("exec 'claude' '-p' '--bare'", 0), 0u) << plan->shellCommand;
  EXPECT_TRUE(plan->shellCommand.ends_with(" 'fix it'\\''s bug'")) << plan->shellCommand;
  EXPECT_TRUE(plan->usesGateway);
  EXPECT_EQ(plan->env.count("ANTHROPIC_API_KEY"), 0u);
  EXPECT_EQ(plan->env.at("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC"), "1");
  plan->env["ANTHROPIC_AUTH_TOKEN"] = "sk-t";  // as if a job had passed it through
  addGatewayEnv(*plan, "kiln-placeholder");
  EXPECT_EQ(plan->env.at("ANTHROPIC_API_KEY"), "kiln-placeholder");
  EXPECT_EQ(plan->env.at("ANTHROPIC_BASE_URL"), "http://127.0.0.1:3129/anthropic");
  EXPECT_EQ(plan->env.at("OPENAI_BASE_URL"), "http://127.0.0.1:3129/openai/v1");
  for (const auto& [name, value] : plan->env)
    EXPECT_EQ(value.find("sk-"), std::string::npos) << name;

  auto codex = resolveCliAgent("codex", "gpt-5", json::object(), "t", env);
  ASSERT_TRUE(codex.isOk());
  EXPECT_EQ(codex->argv[1], "exec");
  EXPECT_NE(codex->shellCommand.find("'model_provider=kiln'"), std::string::npos);
  EXPECT_NE(codex->shellCommand.find("base_url=\"http://127.0.0.1:3129/openai/v1\""),
            std::string::npos)
      << codex->shellCommand;
  EXPECT_NE(codex->shellCommand.find("'--model' 'gpt-5' 't'"), std::string::npos);
  EXPECT_TRUE(codex->env.empty());

  // Cursor talks to its own service, not a model API: its key passes, no gateway.
  auto cursor = resolveCliAgent("cursor", "", json::object(), "t", env);
  ASSERT_TRUE(cursor.isOk());
  EXPECT_FALSE(cursor->usesGateway);
  EXPECT_EQ(cursor->env, (std::map<std::string, std::string>{{"CURSOR_API_KEY", "sk-c"}}));
}

TEST(CliAgentResolveTest, AgentCliDirGoesFirstOnPath) {
  auto plan = resolveCliAgent("codex", "", json::object(), "t",
                              envOf({{"KILN_AGENT_CLI_DIR", "/srv/clis"}}));
  ASSERT_TRUE(plan.isOk());
  EXPECT_EQ(plan->env.at("PATH").rfind("/opt/kiln-agent-clis/node_modules/.bin:", 0), 0u);
  EXPECT_EQ(agentCliDir(envOf({{"KILN_AGENT_CLI_DIR", "/srv/clis"}})), "/srv/clis");
  EXPECT_EQ(resolveCliAgent("codex", "", json::object(), "t", envOf({}))->env.count("PATH"), 0u);
}

TEST(CliAgentResolveTest, SpecCommandPromptViaAndEnvAllowList) {
  auto env = envOf({{"ANTHROPIC_API_KEY", "sk-a"},
                    {"GH_TOKEN", "g"},
                    {"SECRET", "s"},
                    {"KILN_CLI_ENV", "GH_TOKEN, OTHER"}});
  json spec = {{"command", {"aider", "--yes"}},
               {"cli", {{"promptVia", "stdin"}, {"env", {"GH_TOKEN", "ANTHROPIC_API_KEY"}}}}};
  auto plan = resolveCliAgent("cli", "", spec, "task", env);
  ASSERT_TRUE(plan.isOk()) << plan.status().toString();
  EXPECT_EQ(plan->shellCommand, "exec 'aider' '--yes'");
  EXPECT_EQ(plan->stdinData, "task");
  EXPECT_EQ(plan->env.at("ANTHROPIC_API_KEY"), "sk-a");
  EXPECT_EQ(plan->env.at("GH_TOKEN"), "g");
  EXPECT_EQ(plan->env.count("SECRET"), 0u);
  // The gateway's placeholder replaces a model key the job asked for.
  ASSERT_TRUE(plan->usesGateway);
  addGatewayEnv(*plan, "p");
  EXPECT_EQ(plan->env.at("ANTHROPIC_API_KEY"), "p");
  EXPECT_EQ(plan->env.at("GH_TOKEN"), "g");

  json leak = {{"command", {"x"}}, {"cli", {{"env", {"SECRET"}}}}};
  EXPECT_EQ(resolveCliAgent("cli", "", leak, "t", env).status().code(), Code::kInvalidArgument);
  EXPECT_EQ(resolveCliAgent("cli", "", json::object(), "t", env).status().code(),
            Code::kInvalidArgument);
  EXPECT_EQ(resolveCliAgent("gemini", "", json::object(), "t", env).status().code(),
            Code::kInvalidArgument);
  json bad = {{"command", {"x"}}, {"cli", {{"promptVia", "file"}}}};
  EXPECT_EQ(resolveCliAgent("cli", "", bad, "t", env).status().code(), Code::kInvalidArgument);
}

TEST(CliAgentResolveTest, AllowHostsAreCursorsServiceAndTheJobsListNeverAModelApi) {
  auto none = envOf({});
  // Model APIs are reached through the gateway, not the egress proxy.
  EXPECT_TRUE(cliAllowHosts("claude", json::object(), none).empty());
  EXPECT_TRUE(cliAllowHosts("codex", json::object(),
                            envOf({{"OPENAI_BASE_URL", "https://proxy.example:8443/v1"}}))
                  .empty());
  EXPECT_EQ(cliAllowHosts("cursor", json::object(), none),
            (std::vector<std::string>{"api2.cursor.sh", "api.cursor.com"}));
  json spec = {{"cli", {{"allowHosts", {"pypi.org", "bad host/", "pypi.org"}}}}};
  EXPECT_EQ(cliAllowHosts("cli", spec, none), std::vector<std::string>{"pypi.org"});
  EXPECT_TRUE(cliAllowHosts("openai", spec, none).empty());
}

}  // namespace
}  // namespace kiln::agent
