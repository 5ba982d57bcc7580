#include "agent/cli_agent.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstdlib>
#include <set>

#include "agent/terminal_stream.h"
#include "common/url.h"

namespace kiln::agent {
namespace {

using json = nlohmann::json;

// The runtime streams at most this much of the CLI's output live (its default head is sized for
// one tool call, far less than a whole agent run); past it only the tail arrives, at the end.
constexpr size_t kCliStreamBytes = 64 << 20;
constexpr size_t kTailBytes = 4096;
constexpr size_t kRawStepBytes = 256 << 10;

struct Preset {
  const char* name;
  std::vector<std::string> argv;
  const char* modelFlag;
  std::vector<std::string> env;  // names passed through from the server's environment
  std::vector<std::string> defaultHosts;
  const char* baseUrlVar;  // when set on the server, its host replaces defaultHosts
};

// Each preset asks for its CLI's structured output mode, so tool uses become steps, and
// skips the CLI's own permission prompts: nobody is there to answer them, and the kiln sandbox
// is the boundary.
const std::vector<Preset>& presets() {
  static const std::vector<Preset> kPresets = {
      {"claude",
       {"claude", "-p", "--bare", "--output-format", "stream-json", "--verbose",
        "--dangerously-skip-permissions"},
       "--model",
       {"ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN", "ANTHROPIC_BASE_URL"},
       {"api.anthropic.com"},
       "ANTHROPIC_BASE_URL"},
      {"codex",
       {"codex", "exec", "--json", "--dangerously-bypass-approvals-and-sandbox"},
       "--model",
       {"OPENAI_API_KEY", "CODEX_API_KEY", "OPENAI_BASE_URL"},
       {"api.openai.com"},
       "OPENAI_BASE_URL"},
      {"cursor",
       {"agent", "-p", "--force", "--trust", "--output-format", "stream-json"},
       "--model",
       {"CURSOR_API_KEY"},
       {"api2.cursor.sh", "api.cursor.com"},
       nullptr},
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

// Asks `recordStep` to store each parsed step, one at a time and in order, without holding up
// the output stream: steps are queued and a single writer coroutine drains the queue.
class StepWriter {
 public:
  StepWriter(asio::any_io_executor ex, CliHooks& hooks) : ex_(ex), hooks_(hooks), idle_(ex) {}

  void push(CliStep s) {
    queue_.push_back(std::move(s));
    if (!writing_) {
      writing_ = true;
      asio::co_spawn(ex_, write(), asio::detached);
    }
  }

  // Returns once every queued step was handed to recordStep; the first failure, if any.
  Task<Status> drain() {
    while (writing_) {
      idle_.expires_at(asio::steady_timer::time_point::max());
      boost::system::error_code ec;
      co_await idle_.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    }
    co_return status_;
  }

 private:
  Task<void> write() {
    while (!queue_.empty()) {
      CliStep s = std::move(queue_.front());
      queue_.erase(queue_.begin());
      // After a failure (the lease is gone, the store is down) the rest are dropped: the job
      // ends on that failure anyway.
      if (!status_.isOk()) continue;
      Status st = co_await hooks_.recordStep(s);
      if (!st.isOk()) status_ = st;
    }
    writing_ = false;
    idle_.cancel();
  }

  asio::any_io_executor ex_;
  CliHooks& hooks_;
  std::vector<CliStep> queue_;
  bool writing_ = false;
  Status status_;
  asio::steady_timer idle_;
};

runtime::ExecRequest execRequest(const CliPlan& plan, int timeoutMs) {
  runtime::ExecRequest req;
  req.cmd = plan.shellCommand;
  req.cwd = "/workspace";
  req.env = plan.env;
  req.timeoutMs = timeoutMs;
  req.stdinData = plan.stdinData;
  req.maxHeadBytes = kCliStreamBytes;
  return req;
}

std::string tailOf(const std::string& s) {
  return s.size() <= kTailBytes ? s : s.substr(s.size() - kTailBytes);
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

json failureFor(const runtime::ExecResult& r, int timeoutMs, const std::string& tail) {
  if (r.timedOut) {
    return {{"code", "budget_exceeded"},
            {"limit", "maxWallSeconds"},
            {"message", "the agent CLI ran longer than " + std::to_string(timeoutMs / 1000) +
                            " s and was killed"}};
  }
  return {{"code", "agent_failed"},
          {"exitCode", r.exitCode},
          {"message", "the agent CLI exited with status " + std::to_string(r.exitCode) +
                          (tail.empty() ? "" : ": " + tail)}};
}

void forward(AgentOutputParser& parser, TerminalStream& terminal, StepWriter& writer) {
  std::string text = parser.takeTerminal();
  if (!text.empty()) terminal.push("stdout", text);
  for (auto& s : parser.takeSteps()) writer.push(std::move(s));
}

}  // namespace

EnvLookup processEnv() {
  return [](const std::string& name) -> std::optional<std::string> {
    const char* v = std::getenv(name.c_str());
    if (v == nullptr) return std::nullopt;
    return std::string(v);
  };
}

bool isCliAgent(const std::string& agent) { return agent == "cli" || findPreset(agent) != nullptr; }

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

Result<CliPlan> resolveCliAgent(const std::string& agent, const std::string& model,
                                const json& spec, const std::string& prompt, const EnvLookup& env) {
  const Preset* preset = findPreset(agent);
  if (agent != "cli" && preset == nullptr) {
    return invalidArgument("'" + agent + "' is not a CLI agent (cli, claude, codex, cursor)");
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
  if (plan.promptVia == PromptVia::kArgv) {
    shell += " " + shellQuote(prompt);
  } else {
    plan.stdinData = prompt;
  }
  plan.shellCommand = shell;

  std::vector<std::string> names;
  if (preset != nullptr) names = preset->env;
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
  return plan;
}

std::vector<std::string> cliAllowHosts(const std::string& agent, const json& spec,
                                       const EnvLookup& env) {
  if (!isCliAgent(agent)) return {};
  std::vector<std::string> hosts;
  if (const Preset* p = findPreset(agent)) {
    std::string base = p->baseUrlVar ? env(p->baseUrlVar).value_or("") : "";
    std::string host = urlHost(base);
    if (!host.empty()) {
      hosts.push_back(host);
    } else {
      hosts = p->defaultHosts;
    }
  }
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
  out.summary =
      parser.finalText().empty() ? "The agent CLI exited with status 0." : parser.finalText();
  if (r->exitCode != 0 || r->timedOut) out.failure = failureFor(*r, timeoutMs, out.outputTail);
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
