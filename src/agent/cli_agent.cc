#include "agent/cli_agent.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstdlib>
#include <set>

#include "agent/step_writer.h"
#include "agent/terminal_stream.h"
#include "agent/tool_text.h"
#include "common/url.h"
#include "gateway/model_gateway.h"
#include "runtime/egress_forwarder.h"
#include "sandbox/ns/agent_mounts.h"

namespace kiln::agent {
namespace {

using json = nlohmann::json;

// The runtime streams at most this much of the CLI's output live (its default head is sized for
// one tool call, far less than a whole agent run); past it only the tail arrives, at the end.
constexpr size_t kCliStreamBytes = 64 << 20;
constexpr size_t kRawStepBytes = 256 << 10;
constexpr const char* kDefaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

struct Preset {
  const char* name;
  std::vector<std::string> argv;
  const char* modelFlag;
  // Names passed through from the server's environment (a CLI whose API is not a model API the
  // gateway speaks).
  std::vector<std::string> env;
  std::vector<std::string> defaultHosts;
  // The CLI's model calls go through kiln's model gateway (gateway/model_gateway.h).
  bool gateway;
  // Set for every run: what keeps the CLI offline but for its model API (no telemetry, update
  // checks or error reports, which would only fail in a sandbox without network).
  std::vector<std::pair<std::string, std::string>> fixedEnv;
};

// The gateway as Codex's model provider: a custom provider is the only way to give it a base
// URL that covers its streaming calls too (the built-in one would open a WebSocket to
// api.openai.com), and its key comes from OPENAI_API_KEY (the gateway's placeholder).
std::string codexProvider() {
  return "model_providers.kiln={name=\"kiln\",base_url=\"http://127.0.0.1:" +
         std::to_string(runtime::kModelGatewayPort) +
         "/openai/v1\",env_key=\"OPENAI_API_KEY\",wire_api=\"responses\","
         "supports_websockets=false}";
}

// Each preset asks for its CLI's structured output mode, so tool uses become steps, and
// skips the CLI's own permission prompts: nobody is there to answer them, and the kiln sandbox
// is the boundary (commands run as its unprivileged user, which Claude Code requires for
// --dangerously-skip-permissions).
const std::vector<Preset>& presets() {
  static const std::vector<Preset> kPresets = {
      {"claude",
       {"claude", "-p", "--bare", "--output-format", "stream-json", "--verbose",
        "--dangerously-skip-permissions"},
       "--model",
       {"ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN", "ANTHROPIC_BASE_URL"},
       {},
       true,
       {{"CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1"},
        {"DISABLE_AUTOUPDATER", "1"},
        {"DISABLE_TELEMETRY", "1"},
        {"DISABLE_ERROR_REPORTING", "1"}}},
      {"codex",
       {"codex", "exec", "--json", "--dangerously-bypass-approvals-and-sandbox",
        "--skip-git-repo-check", "-c", "model_provider=kiln", "-c", codexProvider()},
       "--model",
       {"OPENAI_API_KEY", "CODEX_API_KEY", "OPENAI_BASE_URL"},
       {},
       true,
       {}},
      {"cursor",
       {"agent", "-p", "--force", "--trust", "--output-format", "stream-json"},
       "--model",
       {"CURSOR_API_KEY"},
       {"api2.cursor.sh", "api.cursor.com"},
       false,
       {}},
  };
  return kPresets;
}

const Preset* findPreset(const std::string& agent) {
  for (const auto& p : presets())
    if (agent == p.name) return &p;
  return nullptr;
}

// Names a job may ask to pass through: every preset's key names, plus what the operator lists
// in KILN_CLI_ENV (comma-separated). Nothing else of the server's environment ever reaches a
// sandbox: the job spec comes from API users, the server's environment holds its secrets.
std::set<std::string> passableNames(const EnvLookup& env) {
  std::set<std::string> names;
  for (const auto& p : presets()) names.insert(p.env.begin(), p.env.end());
  std::string extra = env("KILN_CLI_ENV").value_or("");
  size_t start = 0;
  while (start <= extra.size()) {
    size_t comma = extra.find(',', start);
    if (comma == std::string::npos) comma = extra.size();
    std::string name = extra.substr(start, comma - start);
    std::erase_if(name, [](char c) { return c == ' '; });
    if (!name.empty()) names.insert(name);
    start = comma + 1;
  }
  return names;
}

bool isStringArray(const json& v) {
  return v.is_array() &&
         std::all_of(v.begin(), v.end(), [](const json& e) { return e.is_string(); });
}

bool isHostName(const std::string& h) {
  if (h.empty() || h.size() > 253) return false;
  return std::all_of(h.begin(), h.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-' || c == '*' ||
           c == ':';
  });
}

Status checkCliOptions(const json& cli) {
  if (cli.is_null()) return Status::ok();
  if (!cli.is_object()) return invalidArgument("cli must be an object");
  for (const auto& [key, value] : cli.items()) {
    if (key == "env" || key == "allowHosts") {
      if (!isStringArray(value))
        return invalidArgument("cli." + key + " must be an array of strings");
    } else if (key == "promptVia") {
      if (value != "argv" && value != "stdin") {
        return invalidArgument("cli.promptVia must be \"argv\" or \"stdin\"");
      }
    } else {
      return invalidArgument("cli: unknown field '" + key + "'");
    }
  }
  if (cli.contains("allowHosts")) {
    for (const auto& h : cli["allowHosts"]) {
      if (!isHostName(h.get<std::string>())) {
        return invalidArgument("cli.allowHosts: '" + h.get<std::string>() + "' is not a host name");
      }
    }
  }
  return Status::ok();
}

runtime::ExecRequest execRequest(const CliPlan& plan, int timeoutMs) {
  runtime::ExecRequest req;
  req.cmd = plan.shellCommand;
  req.env = plan.env;  // cwd: the sandbox's workdir
  req.timeoutMs = timeoutMs;
  req.stdinData = plan.stdinData;
  req.maxHeadBytes = kCliStreamBytes;
  return req;
}

// The step that stands for the whole run when the CLI printed nothing we could parse.
CliStep rawRunStep(const CliPlan& plan, const runtime::ExecResult& r) {
  CliStep s;
  s.step.phase = "acting";
  s.step.toolCalled = plan.argv.empty() ? "cli" : plan.argv[0];
  s.step.toolArguments = {{"command", plan.shellCommand}};
  s.step.toolOutput = r.output.size() <= kRawStepBytes
                          ? r.output
                          : "[... " + std::to_string(r.output.size() - kRawStepBytes) +
                                " earlier bytes ...]\n" +
                                r.output.substr(r.output.size() - kRawStepBytes);
  s.isError = r.exitCode != 0 || r.timedOut;
  return s;
}

json failureFor(const CliPlan& plan, const runtime::ExecResult& r, int timeoutMs,
                const std::string& tail) {
  if (r.timedOut) {
    return {{"code", "budget_exceeded"},
            {"limit", "maxWallSeconds"},
            {"message", "the agent CLI ran longer than " + std::to_string(timeoutMs / 1000) +
                            " s and was killed"}};
  }
  if (r.exitCode == 127) {  // the shell's "command not found"
    const std::string name = plan.argv.empty() ? "command" : "'" + plan.argv[0] + "'";
    return {{"code", "agent_failed"},
            {"exitCode", r.exitCode},
            {"message", "the agent CLI " + name +
                            " is not installed in the sandbox (install it system-wide, or in "
                            "the server's KILN_AGENT_CLI_DIR)" +
                            (tail.empty() ? "" : ": " + tail)}};
  }
  return {{"code", "agent_failed"},
          {"exitCode", r.exitCode},
          {"message", "the agent CLI exited with status " + std::to_string(r.exitCode) +
                          (tail.empty() ? "" : ": " + tail)}};
}

void forward(AgentOutputParser& parser, TerminalStream& terminal, StepWriter& writer) {
  std::string text = parser.takeTerminal();
  if (!text.empty()) terminal.push("stdout", text);
  for (auto& s : parser.takeSteps()) {
    s.sessionId = parser.sessionId();
    writer.push(std::move(s));
  }
}

}  // namespace

EnvLookup processEnv() {
  return [](const std::string& name) -> std::optional<std::string> {
    const char* v = std::getenv(name.c_str());
    if (v == nullptr) return std::nullopt;
    return std::string(v);
  };
}

bool isCliAgent(const std::string& agent) {
  return agent == "cli" || agent == "acp" || findPreset(agent) != nullptr;
}

std::string shellQuote(std::string_view word) {
  std::string out = "'";
  for (char c : word) {
    if (c == '\'') {
      out += "'\\''";
    } else {
      out += c;
    }
  }
  return out + "'";
}

std::string sessionDir(const std::string& agent) {
  if (agent == "claude" || agent == "acp") return ".claude/projects";
  if (agent == "codex") return ".codex/sessions";
  return "";
}

Result<CliPlan> resolveCliAgent(const std::string& agent, const std::string& model,
                                const json& spec, const std::string& prompt, const EnvLookup& env,
                                const std::string& resumeSession,
                                const std::vector<std::string>& presetArgs) {
  const Preset* preset = findPreset(agent);
  if (agent != "cli" && agent != "acp" && preset == nullptr) {
    return invalidArgument("'" + agent + "' is not a CLI agent (cli, acp, claude, codex, cursor)");
  }
  const json cli = spec.is_object() ? spec.value("cli", json()) : json();
  RETURN_IF_ERROR(checkCliOptions(cli));
  CliPlan plan;
  const json command = spec.is_object() ? spec.value("command", json()) : json();
  std::string shell;
  if (command.is_string()) {
    if (command.get<std::string>().empty()) return invalidArgument("command is empty");
    shell = command.get<std::string>();  // shell text, run as written
  } else if (isStringArray(command) && !command.empty()) {
    plan.argv = command.get<std::vector<std::string>>();
  } else if (!command.is_null()) {
    return invalidArgument("command must be a string or a non-empty array of strings");
  } else if (preset != nullptr) {
    plan.argv = preset->argv;
    if (!model.empty()) {
      plan.argv.push_back(preset->modelFlag);
      plan.argv.push_back(model);
    }
    if (!resumeSession.empty() && agent == "claude") {
      plan.argv.push_back("--resume");
      plan.argv.push_back(resumeSession);
    } else if (!resumeSession.empty() && agent == "codex") {
      plan.argv.push_back("resume");
      plan.argv.push_back(resumeSession);
    }
    plan.argv.insert(plan.argv.end(), presetArgs.begin(), presetArgs.end());
  } else if (agent == "acp") {
    return invalidArgument(
        "agent \"acp\" needs a command: the argv of the ACP agent to run, e.g. "
        "[\"claude-code-acp\"]");
  } else {
    return invalidArgument(
        "agent \"cli\" needs a command: the argv of the agent CLI to run, e.g. "
        "[\"claude\",\"-p\",\"--bare\"]");
  }
  if (shell.empty()) {
    for (const auto& w : plan.argv) shell += (shell.empty() ? "exec " : " ") + shellQuote(w);
  }
  plan.promptVia = cli.is_object() && cli.value("promptVia", "argv") == "stdin" ? PromptVia::kStdin
                                                                                : PromptVia::kArgv;
  if (agent == "acp") {
    // The prompt goes in the ACP session, not on the command line (acp_agent.h).
  } else if (plan.promptVia == PromptVia::kArgv) {
    shell += " " + shellQuote(prompt);
  } else {
    plan.stdinData = prompt;
  }
  plan.shellCommand = shell;

  std::vector<std::string> names;
  if (preset != nullptr && !preset->gateway) names = preset->env;
  if (cli.is_object() && cli.contains("env")) {
    const std::set<std::string> passable = passableNames(env);
    for (const auto& n : cli["env"]) {
      const std::string name = n.get<std::string>();
      if (!passable.count(name)) {
        return invalidArgument("cli.env: '" + name +
                               "' may not be passed to a sandbox (allowed: the agent API key "
                               "names, and the names the operator lists in KILN_CLI_ENV)");
      }
      names.push_back(name);
    }
  }
  for (const auto& name : names) {
    if (auto v = env(name)) plan.env[name] = *v;
  }
  plan.usesGateway = usesModelGateway(agent);
  if (preset != nullptr) {
    for (const auto& [name, value] : preset->fixedEnv) plan.env[name] = value;
  } else {
    // A `cli` or `acp` command is often Claude Code itself (or its ACP adapter).
    for (const auto& [name, value] : findPreset("claude")->fixedEnv) plan.env[name] = value;
  }
  if (!agentCliDir(env).empty()) plan.env["PATH"] = agentCliPath();
  return plan;
}

std::string agentCliPath() {
  return std::string(sandbox::kAgentCliInsideDir) +
         "/node_modules/.bin:" + sandbox::kAgentCliInsideDir + "/bin:" + kDefaultPath;
}

namespace {

// A TOML basic string: JSON's string syntax is one (its escapes, \uXXXX included, are TOML's).
std::string tomlString(const std::string& s) {
  return json(s).dump(-1, ' ', false, json::error_handler_t::replace);
}

}  // namespace

bool takesKilnInstructions(const std::string& agent, const api::request::JobSpec& spec) {
  if (!isCliAgent(agent)) return true;
  return agent == "claude" && !spec.command;
}

bool takesKilnMcp(const std::string& agent, const api::request::JobSpec& spec) {
  if (!isCliAgent(agent)) return true;
  return (agent == "claude" || agent == "codex") && !spec.command;
}

std::vector<std::string> codexMcpArgs(const std::vector<api::request::McpServerSpec>& servers) {
  std::vector<std::string> args;
  for (const api::request::McpServerSpec& m : servers) {
    const std::string key = "mcp_servers." + m.name + ".";  // names are [a-z0-9_-]: bare keys
    args.push_back("-c");
    args.push_back(key + "command=" + tomlString(m.command.front()));
    std::string list;
    for (size_t i = 1; i < m.command.size(); ++i)
      list += (list.empty() ? "" : ",") + tomlString(m.command[i]);
    args.push_back("-c");
    args.push_back(key + "args=[" + list + "]");
    if (!m.env.empty()) {
      std::string table;  // variable names are [A-Za-z0-9_]: bare keys
      for (const auto& [name, value] : m.env)
        table += (table.empty() ? "" : ",") + name + "=" + tomlString(value);
      args.push_back("-c");
      args.push_back(key + "env={" + table + "}");
    }
  }
  return args;
}

json claudeMcpConfig(const std::vector<api::request::McpServerSpec>& servers) {
  json all = json::object();
  for (const api::request::McpServerSpec& m : servers) {
    json server = {{"type", "stdio"},
                   {"command", m.command.front()},
                   {"args", std::vector<std::string>(m.command.begin() + 1, m.command.end())}};
    if (!m.env.empty()) server["env"] = m.env;
    all[m.name] = std::move(server);
  }
  return {{"mcpServers", std::move(all)}};
}

bool usesModelGateway(const std::string& agent) {
  const Preset* p = findPreset(agent);
  return p != nullptr ? p->gateway : agent == "cli" || agent == "acp";
}

void addGatewayEnv(CliPlan& plan, const std::string& placeholderKey) {
  // Over whatever the job passed through: a real key never reaches the sandbox.
  for (auto& [name, value] : gateway::sandboxEnv(placeholderKey)) plan.env[name] = value;
  plan.env.erase("ANTHROPIC_AUTH_TOKEN");
}

std::string agentCliDir(const EnvLookup& env) { return env("KILN_AGENT_CLI_DIR").value_or(""); }

std::vector<std::string> cliAllowHosts(const std::string& agent, const json& spec,
                                       const EnvLookup& env) {
  if (!isCliAgent(agent)) return {};
  std::vector<std::string> hosts;
  if (const Preset* p = findPreset(agent)) hosts = p->defaultHosts;
  const json cli = spec.is_object() ? spec.value("cli", json()) : json();
  if (cli.is_object() && isStringArray(cli.value("allowHosts", json()))) {
    for (const auto& h : cli["allowHosts"]) {
      const std::string host = h.get<std::string>();
      if (isHostName(host) && std::find(hosts.begin(), hosts.end(), host) == hosts.end()) {
        hosts.push_back(host);
      }
    }
  }
  return hosts;
}

Task<Result<CliOutcome>> runCliAgent(const CliPlan& plan, int timeoutMs, runtime::RuntimeClient& rt,
                                     TerminalStream& terminal, CliHooks& hooks) {
  StepWriter writer(co_await asio::this_coro::executor, hooks);
  AgentOutputParser parser;
  runtime::ChunkFn onChunk = [&](std::string_view stream, std::string_view data) {
    if (stream != "stdout") {
      terminal.push(stream, data);
      return;
    }
    parser.feed(data);
    forward(parser, terminal, writer);
  };
  const runtime::ExecRequest req = execRequest(plan, timeoutMs);
  auto r = co_await rt.exec(req, onChunk);
  parser.finish();
  forward(parser, terminal, writer);
  if (r.isOk() && !parser.structured()) writer.push(rawRunStep(plan, *r));
  Status written = co_await writer.drain();
  co_await terminal.drain();
  if (!r.isOk()) co_return r.status();
  if (!written.isOk()) co_return written;
  CliOutcome out;
  out.exitCode = r->exitCode;
  out.timedOut = r->timedOut;
  out.outputTail = tailOf(r->output);
  out.sessionId = parser.sessionId();
  out.summary =
      parser.finalText().empty() ? "The agent CLI exited with status 0." : parser.finalText();
  if (r->exitCode != 0 || r->timedOut) {
    out.failure = failureFor(plan, *r, timeoutMs, out.outputTail);
  }
  co_return out;
}

std::string urlAuthority(const std::string& url) {
  Result<Url> u = parseUrl(url);
  return u ? u->authority() : "";
}

std::string urlHost(const std::string& url) {
  Result<Url> u = parseUrl(url);
  return u ? u->host : "";
}

}  // namespace kiln::agent
