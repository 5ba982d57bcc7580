// CLI agents: a job whose agent is an external coding-agent CLI (Claude Code, Codex, Cursor, or
// any argv) runs that CLI once inside the sandbox with the task as its prompt, instead of the
// step-by-step model loop. This header resolves the job's agent setting into what to run
// (argv, the environment passed through, how the prompt is given, the hosts its sandbox must
// reach), parses the CLI's output into steps, and runs it. Everything here is used from the
// job's strand; nothing is thread-safe.
#pragma once
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "agent/cli_output.h"
#include "api/request/job_spec.h"
#include "common/asio.h"
#include "common/result.h"
#include "runtime/client.h"

namespace kiln::agent {

class TerminalStream;

// Reads the kiln server's environment (getenv in production, a map in tests).
using EnvLookup = std::function<std::optional<std::string>(const std::string& name)>;
EnvLookup processEnv();

// True for the agents that run an external CLI: cli, acp, claude, codex, cursor.
bool isCliAgent(const std::string& agent);

enum class PromptVia { kArgv, kStdin };

// What to run for a CLI agent.
struct CliPlan {
  std::string shellCommand;  // for /bin/sh -c: the quoted argv (or the job's shell text) + prompt
  std::vector<std::string> argv;           // the argv before the prompt (empty for shell text)
  std::map<std::string, std::string> env;  // only allow-listed names, values from the server
  PromptVia promptVia = PromptVia::kArgv;
  std::string stdinData;  // the prompt when promptVia is kStdin
  // Its model calls go through kiln's model gateway: addGatewayEnv() before running it.
  bool usesGateway = false;
};

// True for the agents whose model calls go through the model gateway: claude, codex, cli, acp.
bool usesModelGateway(const std::string& agent);

// Points the plan's model API variables at the gateway inside the sandbox, with the job's
// placeholder key in place of any real key (gateway::sandboxEnv).
void addGatewayEnv(CliPlan& plan, const std::string& placeholderKey);

// The operator's dir of agent CLIs (KILN_AGENT_CLI_DIR; e.g. an `npm install --prefix DIR`):
// mounted read-only in CLI agents' sandboxes, its node_modules/.bin and bin first on PATH.
// "" when unset.
std::string agentCliDir(const EnvLookup& env);
// The PATH of a command in a sandbox that mounts the operator's agent CLI dir: its npm
// binaries and bin/ before the system's.
std::string agentCliPath();

// Resolves a job's agent ("cli" with spec.command, or a preset name) into a plan. The job's
// options (docs/api.md): `command` (argv array, or a shell string) overrides the preset's argv;
// `cli.promptVia` ("argv" | "stdin"); `cli.env` (names to pass through: any preset key name,
// or a name the operator lists in KILN_CLI_ENV); `cli.allowHosts`. InvalidArgument when the
// agent is unknown, `cli` has no command, or the options are malformed.
// `resumeSession`: a session of an earlier run of the job to resume (claude: --resume ID;
// codex: `exec … resume ID`), "" for a new one. `presetArgs` follow a preset's own (not a
// job's `command`): what kiln adds for this run (claude: the repo's instructions, MCP servers).
Result<CliPlan> resolveCliAgent(const std::string& agent, const std::string& model,
                                const nlohmann::json& spec, const std::string& prompt,
                                const EnvLookup& env, const std::string& resumeSession = "",
                                const std::vector<std::string>& presetArgs = {});

// Whether kiln gives `agent` the repo's AGENTS.md files: the built-in agents, and Claude Code's
// preset (--bare: it reads none) through --append-system-prompt-file. Codex reads them itself;
// the other agent CLIs, and a job's own command, read their own files.
bool takesKilnInstructions(const std::string& agent, const api::request::JobSpec& spec);
// Whether kiln gives `agent` the job's MCP servers: the built-in agents run them themselves, and
// the presets of Claude Code (--mcp-config) and Codex (-c mcp_servers.*) are told of them. The
// other agent CLIs, and a job's own command, read their own configuration.
bool takesKilnMcp(const std::string& agent, const api::request::JobSpec& spec);
// Codex's -c overrides for the job's MCP servers: mcp_servers.<name>.command, .args, .env, as
// TOML values. Pure.
std::vector<std::string> codexMcpArgs(const std::vector<api::request::McpServerSpec>& servers);
// Claude Code's --mcp-config for the job's MCP servers: {"mcpServers": {name: {type: "stdio",
// command, args, env}}}. Pure.
nlohmann::json claudeMcpConfig(const std::vector<api::request::McpServerSpec>& servers);

// Where the agent keeps its sessions, under the sandbox user's home: kept with the job between
// runs, so a follow-up resumes the same session. ".claude/projects" for claude and acp (Claude
// Code's ACP adapter), ".codex/sessions" for codex, "" for the others.
std::string sessionDir(const std::string& agent);

// The hosts the job's sandbox must reach through the egress proxy for this CLI: the API hosts
// of a preset that does not use the model gateway (cursor) plus the job's `cli.allowHosts`.
// Empty for agents that are not CLIs.
std::vector<std::string> cliAllowHosts(const std::string& agent, const nlohmann::json& spec,
                                       const EnvLookup& env);

// "https://user@host:8443/path" → "host:8443" (userinfo dropped); "" when url is not a URL
// (parseUrl).
std::string urlAuthority(const std::string& url);
// "https://user@host:8443/path" → "host"; "" when url is not a URL (parseUrl).
std::string urlHost(const std::string& url);

// Quotes one word for /bin/sh.
std::string shellQuote(std::string_view word);

// What the job runner lends a CLI run.
struct CliHooks {
  // Records one step durably (assigns its number, captures the workspace, writes it with its
  // events). Called in order, one at a time.
  std::function<Task<Status>(CliStep&)> recordStep;
};

struct CliOutcome {
  int exitCode = -1;
  bool timedOut = false;
  std::string summary;     // the CLI's final answer, or a default line
  std::string outputTail;  // the last few KB of its output
  std::string sessionId;   // the CLI's session, as its output named it; "" if none
  // The job error for a run that did not succeed: {code, message, exitCode} (object), or null.
  nlohmann::json failure;
};

// Runs the CLI once in the sandbox through `rt` (/exec, cwd /workspace), streaming its output to
// `terminal` and its parsed steps to hooks.recordStep as they arrive. `timeoutMs` bounds the
// run. A transport error (e.g. the sandbox was killed by a stop) is returned as a Status.
Task<Result<CliOutcome>> runCliAgent(const CliPlan& plan, int timeoutMs, runtime::RuntimeClient& rt,
                                     TerminalStream& terminal, CliHooks& hooks);

}  // namespace kiln::agent
