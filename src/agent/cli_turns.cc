// The turn loop of a CLI agent: one long run of the agent CLI inside the sandbox, whose output
// is parsed into steps (src/agent/cli_output.h) and recorded as they arrive; for an ACP agent,
// one prompt turn over the Agent Client Protocol (src/agent/acp_agent.h). Model calls go
// through the run's gateway (s.gateway), whose usage is charged to the steps; the CLI's session
// is kept with the job and resumed by its next run (src/agent/cli_session.h).
#include <spdlog/spdlog.h>

#include <chrono>
#include <optional>

#include "agent/acp_agent.h"
#include "agent/cli_agent.h"
#include "agent/cli_session.h"
#include "agent/context.h"
#include "agent/job_events.h"
#include "agent/tool_text.h"
#include "agent/turn_loop.h"

namespace kiln::agent {
namespace {

using json = nlohmann::json;

Task<PhaseOutcome> recordExtra(JobSession& s, store::Step& step);

// How often a running CLI's session is kept with the job besides its end: at each step until
// it was kept once (a CLI may write its session files only after its first steps), then at the
// first step past this much time since, so that a takeover after a crash resumes the session
// from no further back.
constexpr auto kKeepSessionEvery = std::chrono::seconds(20);

// Records the CLI's steps; remembers the first write that failed and a budget it used up; keeps
// the CLI's session with the job while it runs.
class CliStepRecorder {
 public:
  explicit CliStepRecorder(JobSession& s) : s_(s) {}

  Task<Status> record(CliStep& c) {
    store::Step& step = c.step;
    step.stepNumber = s_.nextStep++;
    step.isError = c.isError;
    // The gateway's count of the calls since the previous step, not what the CLI says it spent.
    if (s_.gateway) s_.gateway->charge(step);
    std::vector<store::NewEvent> events;
    if (co_await s_.captureWorkspace(step)) events.push_back(diffEvent(step));
    step.workspaceHash = s_.lastTree;
    events.insert(events.begin(), stepEvent(step, c.isError));
    PhaseOutcome o = co_await s_.record(step, events);
    if (!o.goesOn()) {
      if (writeFailed_.goesOn()) writeFailed_ = o;
      co_return Status(Code::kInternal, "record step: " + o.failure.message + o.why);
    }
    if (!breach_ && (breach_ = s_.checkCaps())) {
      // The CLI cannot be asked to stop at a step boundary: end its run by killing the sandbox.
      auto sb = s_.sandbox;
      auto kill = [&sb] { return sb->destroy(); };
      co_await s_.deps().slowPool->run(kill);
      co_return Status::ok();
    }
    if (!c.sessionId.empty()) sessionId_ = c.sessionId;
    co_await keepSession();
    co_return Status::ok();
  }
  // An ACP agent names its session apart from its steps.
  void setSessionId(const std::string& id) { sessionId_ = id; }

  // kContinue unless a write failed (then why: kStop or kRetry).
  const PhaseOutcome& writeOutcome() const { return writeFailed_; }
  const std::optional<JobFailure>& breach() const { return breach_; }

 private:
  // The session's files as they are now, as a step (cli_session.h), when it is time.
  Task<void> keepSession() {
    const auto now = std::chrono::steady_clock::now();
    if (sessionId_.empty() || (lastKept_ && now - *lastKept_ < kKeepSessionEvery)) co_return;
    std::optional<store::Step> kept =
        co_await captureCliSession(*s_.rt, s_.job().agent, sessionId_);
    if (!kept) co_return;
    lastKept_ = now;
    PhaseOutcome o = co_await recordExtra(s_, *kept);
    if (!o.goesOn() && writeFailed_.goesOn()) writeFailed_ = o;
  }

  JobSession& s_;
  PhaseOutcome writeFailed_;
  std::optional<JobFailure> breach_;
  std::string sessionId_;
  std::optional<std::chrono::steady_clock::time_point> lastKept_;
};

JobFailure gatewayFailure(const gateway::GatewayStop& stop) {
  json extra = json::object();
  // As the built-in loop names them: `limit` of a budget, `quota` of a tenant's quota.
  if (!stop.limit.empty()) extra[stop.code == "quota_exceeded" ? "quota" : "limit"] = stop.limit;
  return JobFailure{stop.code, stop.message, extra};
}

// An ACP agent's tool call waiting for a human.
json toolApproval(const std::string& gate, const std::string& detail) {
  return {{"action", gate}, {"state", "pending"}, {"detail", detail}};
}

std::string toolQuestion(const std::string& gate, const std::string& detail) {
  if (gate == "bash") return "Approve running `" + detail + "`?";
  return "Approve the agent's " + gate + ": " + detail + "?";
}

// Records a step kiln adds after the CLI's own (its uncharged calls, its session).
Task<PhaseOutcome> recordExtra(JobSession& s, store::Step& step) {
  step.stepNumber = s.nextStep++;
  step.workspaceHash = s.lastTree;
  co_return co_await s.record(step, eventList(stepEvent(step, false)));
}

// After the run: the calls no step was charged with, the session, then how the run ended.
Task<PhaseOutcome> finishCli(JobSession& s, const CliStepRecorder& recorder,
                             const Result<CliOutcome>& out, const std::string& sessionId) {
  if (!recorder.writeOutcome().goesOn()) co_return recorder.writeOutcome();
  if (s.stopped()) co_return PhaseOutcome::stop(s.leaseLost() ? "lease lost" : "cancelled");
  if (std::optional<store::Step> rest = s.gateway ? s.gateway->unchargedStep() : std::nullopt) {
    PhaseOutcome o = co_await recordExtra(s, *rest);
    if (!o.goesOn()) co_return o;
  }
  // Kept whatever the outcome, while the sandbox is there: the next run resumes it.
  if (std::optional<store::Step> kept =
          co_await captureCliSession(*s.rt, s.job().agent, sessionId)) {
    PhaseOutcome o = co_await recordExtra(s, *kept);
    if (!o.goesOn()) co_return o;
  }
  if (auto stop = s.gateway ? s.gateway->stopped() : std::nullopt) {
    co_return PhaseOutcome::fail(gatewayFailure(*stop));
  }
  if (recorder.breach()) co_return PhaseOutcome::fail(*recorder.breach());
  if (!out.isOk()) {
    co_return PhaseOutcome::fail({"agent_failed", "run the agent CLI: " + out.status().message()});
  }
  if (!out->failure.is_null()) co_return PhaseOutcome::fail(cliFailure(out->failure));
  co_return PhaseOutcome::finished(out->summary);
}

// An ACP agent's permission request for a tool of `gate`: allowed unless the job's `approvals`
// lists the gate; then the job pauses (keeping its lease and sandbox: the agent waits mid-turn)
// until a human approves (true) or replies (false) through the store.
Task<bool> permitTool(JobSession& s, const std::string& gate, const std::string& detail) {
  if (!s.spec().gates().covers(gate)) co_return true;
  store::JobUpdate pause;
  pause.status = store::JobStatus::kPaused;
  pause.ifStatusIn.push_back(store::JobStatus::kRunning);
  pause.approval = toolApproval(gate, detail);
  pause.events = approvalEvents(gate, toolQuestion(gate, detail), detail);
  if (!(co_await s.update(pause)).goesOn()) co_return false;
  spdlog::info("job {}: paused for approval of {}: {}", s.job().id, gate, detail);
  const RunnerDeps& d = s.deps();
  auto sub = d.bus->subscribe(s.job().id, co_await asio::this_coro::executor);
  const std::string id = s.job().id;
  for (;;) {
    if (s.stopped()) co_return false;
    // Woken by the answer's event; the slow tick covers an answer given on another node.
    co_await sub->wait(std::chrono::seconds(2));
    auto now = co_await d.pool->run([&] { return d.store->getJob(id); });
    if (!now.isOk()) continue;
    if (store::isTerminal(now->status)) co_return false;  // stopped meanwhile
    const std::string state =
        now->approval.is_object() ? now->approval.value("state", "") : std::string();
    if (state != "approved" && state != "refused") continue;
    store::JobUpdate resume;
    resume.status = store::JobStatus::kRunning;
    resume.ifStatusIn.push_back(store::JobStatus::kPaused);
    resume.approval = json(nullptr);
    resume.clearPendingReply = true;
    resume.events = statusEvents(store::JobStatus::kRunning);
    if (!(co_await s.update(resume)).goesOn()) co_return false;
    s.job().approval = json(nullptr);
    co_return state == "approved";
  }
}

}  // namespace

namespace {

// Writes `text` to `path` inside the sandbox (as its user; /tmp is the sandbox's own).
Task<Status> writeSandboxFile(runtime::RuntimeClient& rt, const std::string& path,
                              const std::string& text) {
  runtime::ExecRequest req;
  req.cmd = "cat > " + shellQuote(path);
  req.stdinData = text;
  req.timeoutMs = 30'000;
  runtime::ChunkFn none;
  auto r = co_await rt.exec(req, none);
  if (!r.isOk()) co_return r.status();
  if (r->exitCode != 0) {
    co_return Status(Code::kInternal, "write " + path + " in the sandbox: exit status " +
                                          std::to_string(r->exitCode) + ": " + tailOf(r->output));
  }
  co_return Status::ok();
}

// Claude Code's preset runs in --bare mode: it reads no instruction file and no MCP
// configuration of its own. The job's recorded AGENTS.md text and its MCP servers reach it as
// files in the sandbox's /tmp, named by these arguments.
Task<Result<std::vector<std::string>>> claudeContextArgs(JobSession& s) {
  std::vector<std::string> args;
  for (const store::Step& step : s.steps) {
    if (step.phase != kInstructionsPhase) continue;
    const std::string path = "/tmp/.kiln-instructions.md";
    Status st = co_await writeSandboxFile(*s.rt, path, step.toolOutput);
    if (!st.isOk()) co_return st;
    args.push_back("--append-system-prompt-file");
    args.push_back(path);
    break;
  }
  if (!s.spec().mcpServers.empty()) {
    const std::string path = "/tmp/.kiln-mcp.json";
    const std::string config = claudeMcpConfig(s.spec().mcpServers).dump();
    Status st = co_await writeSandboxFile(*s.rt, path, config);
    if (!st.isOk()) co_return st;
    args.push_back("--mcp-config");
    args.push_back(path);
    args.push_back("--strict-mcp-config");
  }
  co_return args;
}

}  // namespace

Task<PhaseOutcome> runCliTurns(JobSession& s, TerminalStream& terminal) {
  const store::Job& job = s.job();
  const json spec = s.spec().toJson();
  // A run after the first resumes the agent's session from the previous one.
  std::string resumeId;
  if (std::optional<CliSession> prior = lastCliSession(s.steps, job.agent)) {
    Status restored = co_await restoreCliSession(*s.rt, *prior);
    if (restored.isOk()) {
      resumeId = prior->id;
    } else {
      spdlog::warn("job {}: the agent's session was not restored: {}", job.id, restored.toString());
    }
  }
  const std::string prompt = cliPrompt(s.steps, job.taskDesc);
  const bool acp = job.agent == "acp";
  std::vector<std::string> presetArgs;
  if (job.agent == "claude" && takesKilnInstructions(job.agent, s.spec())) {
    auto written = co_await claudeContextArgs(s);
    if (!written.isOk())
      co_return PhaseOutcome::fail({"sandbox_error", written.status().message()});
    presetArgs = std::move(written).value();
  } else if (job.agent == "codex" && takesKilnMcp(job.agent, s.spec())) {
    presetArgs = codexMcpArgs(s.spec().mcpServers);
  }
  auto plan = resolveCliAgent(job.agent, job.model, spec, prompt, processEnv(), acp ? "" : resumeId,
                              presetArgs);
  if (!plan.isOk()) co_return PhaseOutcome::fail({"invalid_argument", plan.status().message()});
  for (const auto& [name, value] : s.secretEnv()) plan->env[name] = value;
  if (s.gateway) addGatewayEnv(*plan, s.gateway->placeholderKey());
  // sandbox.env reaches the CLI and its commands as it does the bash tool's; the CLI's own
  // variables (the gateway's base URLs and placeholder key) keep their values.
  for (const auto& [name, value] : s.spec().sandboxOrDefault().env) plan->env.emplace(name, value);
  CliStepRecorder recorder(s);
  auto recordStep = [&recorder](CliStep& c) -> Task<Status> { return recorder.record(c); };
  // What is left of the job's wall-clock budget, for the CLI's single long command.
  const int timeoutMs = static_cast<int>(std::clamp<int64_t>(s.wallLeftMs(), 1000, INT32_MAX));
  if (!acp) {
    CliHooks hooks;
    hooks.recordStep = recordStep;
    auto out = co_await runCliAgent(*plan, timeoutMs, *s.rt, terminal, hooks);
    const std::string sessionId = out.isOk() ? out->sessionId : "";
    co_return co_await finishCli(s, recorder, out, sessionId);
  }
  AcpRun run;
  run.argv = plan->argv.empty() ? std::vector<std::string>{"/bin/sh", "-c", plan->shellCommand}
                                : plan->argv;
  run.env = plan->env;
  run.prompt = prompt;
  run.resumeSessionId = resumeId;
  run.workdir = s.spec().sandboxOrDefault().workdir;
  const std::string initMs = processEnv()("KILN_ACP_INIT_TIMEOUT_MS").value_or("");
  if (std::atoll(initMs.c_str()) > 0) {
    run.initializeTimeout = std::chrono::milliseconds(std::atoll(initMs.c_str()));
  }
  std::string sessionId;
  AcpHooks hooks;
  hooks.recordStep = recordStep;
  hooks.permit = [&s](const std::string& gate, const std::string& detail) -> Task<bool> {
    co_return co_await permitTool(s, gate, detail);
  };
  hooks.onSession = [&sessionId, &recorder](const std::string& id) {
    sessionId = id;
    recorder.setSessionId(id);
  };
  auto out = co_await runAcpAgent(run, timeoutMs, *s.rt, s.gateway->acpChannel(), terminal, hooks);
  co_return co_await finishCli(s, recorder, out, sessionId);
}

}  // namespace kiln::agent
