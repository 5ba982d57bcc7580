#include "agent/turn_loop.h"

#include <spdlog/spdlog.h>

#include "agent/cli_agent.h"
#include "agent/context.h"
#include "agent/job_events.h"
#include "agent/loop_detector.h"
#include "agent/mcp_client.h"
#include "agent/step_timings.h"
#include "agent/tools.h"
#include "common/assert.h"

namespace kiln::agent {
namespace {

using json = nlohmann::json;
using store::JobStatus;

// A recorded tool call as the loop detector sees it (live and on replay alike).
StepRecord loopRecord(const store::Step& s) {
  StepRecord r;
  r.toolName = s.toolCalled;
  r.argumentsJson = s.toolArguments.dump();
  r.output = s.toolOutput;
  r.isError = s.isError;
  r.exitCode = s.exitCode;
  r.mutating = s.mutating;
  r.workspaceHashAfter = s.workspaceHash;
  return r;
}

JobFailure mcpFailure(const std::string& why) {
  return JobFailure{"mcp_failed", "the job's MCP servers did not start: " + why};
}

// What every MCP server of the job runs with: the job's sandbox.env and secrets (as its
// commands get them), and the operator's agent CLI dir on the PATH when it is mounted.
McpServers::Options mcpOptions(const api::request::JobSpec& spec,
                               const std::map<std::string, std::string>& secretEnv) {
  McpServers::Options o;
  const api::request::SandboxRequest sandbox = spec.sandboxOrDefault();
  o.workdir = sandbox.workdir;
  if (!agentCliDir(processEnv()).empty()) o.env["PATH"] = agentCliPath();
  for (const auto& [name, value] : sandbox.env) o.env[name] = value;
  for (const auto& [name, value] : secretEnv) o.env[name] = value;
  return o;
}

bool interrupted(const store::Step& s) { return s.toolOutput.rfind("[interrupted", 0) == 0; }

StepRecord talkRecord(const store::Step& s) {
  StepRecord r;
  r.hadToolCall = false;
  r.output = s.plannerThought;
  return r;
}

json inflightRecord(const store::Step& s) {
  return {{"stepNumber", s.stepNumber},
          {"plannerThought", s.plannerThought},
          {"toolCalled", s.toolCalled},
          {"toolArguments", s.toolArguments},
          {"tokensIn", s.tokensIn},
          {"tokensOut", s.tokensOut},
          {"usd", s.usd},
          {"callId", s.callId},
          {"callIndex", s.callIndex},
          {"rawArguments", s.rawArguments},
          {"refusal", s.refusal}};
}

// How the job's bash tool runs commands: `sandbox.shell` and `sandbox.env`,
// `limits.commandTimeoutSeconds`, and in session mode the newest recorded shell state, so a
// resumed job's new shell starts where the old one was.
ShellOptions shellOptionsFor(const api::request::JobSpec& spec,
                             const api::request::JobLimits& limits,
                             const std::vector<store::Step>& steps,
                             const std::map<std::string, std::string>& secretEnv) {
  ShellOptions o;
  const api::request::SandboxRequest sandbox = spec.sandboxOrDefault();
  if (auto mode = parseShellMode(sandbox.shell)) o.mode = *mode;
  o.env = sandbox.env;
  o.workdir = sandbox.workdir;
  o.timeoutMs = static_cast<int>(limits.commandTimeout() * 1000);
  for (auto it = steps.rbegin(); it != steps.rend() && o.restore.is_null(); ++it)
    if (it->shellState.is_object()) o.restore = it->shellState;
  // A recorded state holds the secrets' variables redacted: the job's own values win.
  if (o.restore.is_object() && o.restore.contains("env") && o.restore["env"].is_object()) {
    for (const auto& [name, value] : secretEnv) o.restore["env"].erase(name);
  }
  return o;
}

// "bash", or "sh" when the sandbox's image has none (the runtime's /health says which).
std::string shellName(const Result<json>& health) {
  if (!health.isOk()) return "bash";
  std::string path = health->value("shell", "/bin/bash");
  return path.substr(path.rfind('/') + 1) == "bash" ? "bash" : "sh";
}

// One run of the loop over model turns. Lives for the duration of runTurns.
class TurnLoop {
 public:
  TurnLoop(JobSession& s, TerminalStream& terminal)
      : s_(s),
        terminal_(terminal),
        tools_(
            *s.rt,
            [this](std::string_view stream, std::string_view data) {
              terminal_.push(stream, data);
            },
            shellOptionsFor(s.spec(), s.limits(), s.steps, s.secretEnv())) {
    info_.jobId = s.job().id;
    info_.taskDesc = s.job().taskDesc;
    info_.repoUrl = s.job().repoUrl;
    info_.model = s.job().model;
    info_.workdir = s.spec().sandboxOrDefault().workdir;
  }

  Task<PhaseOutcome> run();
  // Ends the MCP servers run() started (after run(), whatever its outcome).
  Task<void> stopMcpServers() {
    if (mcp_) co_await mcp_->stop();
  }

 private:
  // Executes one tool call of a turn and records it as a step. kContinue to go on with the
  // next call; anything else ends the loop.
  Task<PhaseOutcome> executeCall(const ModelTurn& turn, size_t i);
  Task<PhaseOutcome> compress();
  // Stops at a step boundary and releases the lease so any node can resume the job at once.
  Task<PhaseOutcome> releaseForHandover();

  // Called right before each model request: records kiln's overhead since the last reply.
  void noteRequest() {
    if (replied_) stepTimings().record(std::chrono::steady_clock::now() - *replied_ - toolTime_);
  }
  void noteReply() {
    replied_ = std::chrono::steady_clock::now();
    toolTime_ = {};
  }

  // Starts the job's MCP servers and offers their tools (none: kContinue at once).
  Task<PhaseOutcome> startMcpServers();

  JobSession& s_;
  TerminalStream& terminal_;
  ToolExecutor tools_;
  std::unique_ptr<McpServers> mcp_;
  TaskInfo info_;
  LoopDetector loops_;
  int64_t promptTokens_ = 0;  // the size of the last request, as the provider counted it
  // For StepTimings: when the last model reply arrived, and how long its tools ran since.
  std::optional<std::chrono::steady_clock::time_point> replied_;
  std::chrono::steady_clock::duration toolTime_{};
};

Task<PhaseOutcome> TurnLoop::run() {
  KILN_ASSERT(s_.rt && s_.sandbox && s_.provider, "the turn loop runs after provisioning");
  if (s_.lastTree.empty()) {  // the starting tree, so the first attempted change can be judged
    store::Step baseline;
    co_await s_.captureWorkspace(baseline);
  }
  if (auto v = replayLoopHistory(loops_, s_.steps)) co_return PhaseOutcome::fail(loopFailure(*v));
  auto health = co_await s_.rt->info();
  info_.shell = shellName(health);
  if (PhaseOutcome o = co_await startMcpServers(); !o.goesOn()) co_return o;
  loops_.setInitialWorkspaceHash(s_.lastTree);
  while (!s_.stopped()) {
    if (s_.handle().draining()) co_return co_await releaseForHandover();
    if (auto f = s_.checkCaps()) co_return PhaseOutcome::fail(*f);
    if (auto f = co_await s_.checkTenantSpend()) co_return PhaseOutcome::fail(*f);
    if (s_.contextThreshold() > 0 && promptTokens_ >= s_.contextThreshold()) {
      PhaseOutcome o = co_await compress();
      if (!o.goesOn()) co_return o;
      continue;
    }
    noteRequest();
    auto turn = co_await s_.provider->next(info_, s_.ctx);
    noteReply();
    if (!turn.isOk()) co_return PhaseOutcome::fail(llmFailure(turn.status()));
    promptTokens_ = turn->tokensIn;
    if (turn->calls.empty()) {
      store::Step step = talkStep(*turn, s_.nextStep++);
      PhaseOutcome o = co_await s_.record(step, eventList(stepEvent(step, false)));
      if (!o.goesOn()) co_return o;
      if (auto v = loops_.observe(talkRecord(step))) co_return PhaseOutcome::fail(loopFailure(*v));
      continue;
    }
    for (size_t i = 0; i < turn->calls.size(); ++i) {
      PhaseOutcome o = co_await executeCall(*turn, i);
      if (!o.goesOn() || o.summary) co_return o;
    }
  }
  co_return PhaseOutcome::stop(s_.leaseLost() ? "lease lost" : "cancelled");
}

Task<PhaseOutcome> TurnLoop::executeCall(const ModelTurn& turn, size_t i) {
  const ToolCall& call = turn.calls[i];
  store::Step step = callStep(turn, i, s_.nextStep++);
  // Written before the call starts: if this node dies mid-call, the resumed job records the
  // call as interrupted instead of running it a second time.
  store::JobUpdate mark;
  mark.inflightCall = inflightRecord(step);
  PhaseOutcome o = co_await s_.update(mark);
  if (!o.goesOn()) co_return o;
  auto toolStart = std::chrono::steady_clock::now();
  tools_.setTimeLeftMs(std::max<int64_t>(s_.wallLeftMs(), 1));
  Observation obs;
  if (mcp_ && mcp_->offers(call.name)) {
    // Like a command: at most limits.commandTimeoutSeconds, and never past the wall budget.
    const int64_t timeoutMs = std::min<int64_t>(s_.limits().commandTimeout() * 1000,
                                                std::max<int64_t>(s_.wallLeftMs(), 1));
    obs = co_await mcp_->call(call, timeoutMs);
  } else {
    obs = co_await tools_.execute(call);
  }
  toolTime_ += std::chrono::steady_clock::now() - toolStart;
  co_await terminal_.drain();
  if (s_.stopped()) co_return PhaseOutcome::stop("cancelled during a tool call");
  step.toolOutput = obs.output;
  step.isError = obs.isError;
  step.exitCode = obs.exitCode;
  step.mutating = obs.mutating;
  step.shellState = obs.shellState;
  std::vector<store::NewEvent> events;
  if ((obs.mutating || obs.mayChangeWorkspace) && co_await s_.captureWorkspace(step))
    events.push_back(diffEvent(step));
  step.workspaceHash = s_.lastTree;
  events.insert(events.begin(), stepEvent(step, obs.isError));
  o = co_await s_.record(step, events);
  if (!o.goesOn()) co_return o;
  // A limit that killed the command (or the whole sandbox) ends the job with its reason.
  if (auto breach = s_.sandbox->limitBreach()) co_return PhaseOutcome::fail(limitFailure(*breach));
  if (obs.outOfTime) co_return PhaseOutcome::fail(wallBudgetFailure(s_.maxWallSeconds(), true));
  if (obs.finish) co_return PhaseOutcome::finished(obs.output);
  if (obs.askUser) {
    store::JobUpdate u;
    u.status = JobStatus::kPaused;
    u.releaseLease = true;
    u.ifStatusIn.push_back(JobStatus::kRunning);
    u.events = pauseEvents(obs.output);
    o = co_await s_.update(u);
    if (!o.goesOn()) co_return o;
    co_return PhaseOutcome::end("paused for a question");
  }
  if (auto v = loops_.observe(loopRecord(step))) co_return PhaseOutcome::fail(loopFailure(*v));
  co_return PhaseOutcome::next();
}

Task<PhaseOutcome> TurnLoop::compress() {
  promptTokens_ = 0;
  int keptFrom = firstKeptStep(s_.steps, s_.contextThreshold());
  if (keptFrom == 0) co_return PhaseOutcome::next();  // too little history to compress
  const std::vector<Message> request = summaryRequest(s_.ctx);
  noteRequest();
  auto turn = co_await s_.provider->next(info_, request);
  noteReply();
  if (!turn.isOk()) co_return PhaseOutcome::fail(llmFailure(turn.status()));
  std::string summary = turn->thought;
  // A model that answers with a tool call anyway: its arguments are the best summary it gave.
  if (summary.empty() && !turn->calls.empty()) summary = turn->calls.front().arguments.dump();
  store::Step step = compressionStep(s_.nextStep++, summary, keptFrom);
  step.tokensIn = turn->tokensIn, step.tokensOut = turn->tokensOut, step.usd = turn->usd;
  PhaseOutcome o =
      co_await s_.record(step, eventList(stepEvent(step, false), compressedEvent(step)));
  if (!o.goesOn()) co_return o;
  s_.ctx = rebuildContext(s_.job(), s_.steps);
  spdlog::info("job {}: context compressed (steps before {} summarised)", s_.job().id, keptFrom);
  co_return PhaseOutcome::next();
}

Task<PhaseOutcome> TurnLoop::startMcpServers() {
  const std::vector<api::request::McpServerSpec>& servers = s_.spec().mcpServers;
  if (servers.empty()) co_return PhaseOutcome::next();
  if (!s_.gateway || !s_.gateway->hasChannel()) {
    co_return PhaseOutcome::fail(mcpFailure("the sandbox has no stdio channel for them"));
  }
  McpServers::Options o = mcpOptions(s_.spec(), s_.secretEnv());
  o.timeLeftMs = std::max<int64_t>(s_.wallLeftMs(), 1);
  auto rt = std::make_shared<runtime::RuntimeClient>(
      co_await asio::this_coro::executor, s_.sandbox->runtimeSocket(), s_.sandbox->runtimeToken());
  auto started = co_await McpServers::start(servers, rt, s_.gateway->acpChannel(), o);
  if (!started.isOk()) co_return PhaseOutcome::fail(mcpFailure(started.status().message()));
  mcp_ = std::move(started).value();
  info_.extraTools = mcp_->schemas();
  spdlog::info("job {}: {} MCP server(s), {} tool(s)", s_.job().id, servers.size(),
               info_.extraTools.size());
  co_return PhaseOutcome::next();
}

Task<PhaseOutcome> TurnLoop::releaseForHandover() {
  store::JobUpdate u;
  u.releaseLease = true;
  PhaseOutcome o = co_await s_.update(u);
  if (!o.goesOn()) co_return o;
  spdlog::info("job {}: released at step {} for another node", s_.job().id, s_.nextStep - 1);
  co_return PhaseOutcome::end("handed over");
}

}  // namespace

std::optional<LoopVerdict> replayLoopHistory(LoopDetector& loops,
                                             const std::vector<store::Step>& steps) {
  size_t from = 0;
  for (size_t i = 0; i < steps.size(); ++i)
    if (steps[i].phase == kReplyPhase) from = i + 1;
  // The tree before the first replayed step, so its attempted change can be judged.
  for (size_t k = from; k-- > 0;) {
    if (steps[k].workspaceHash.empty()) continue;
    loops.setInitialWorkspaceHash(steps[k].workspaceHash);
    break;
  }
  std::optional<LoopVerdict> verdict;
  for (size_t i = from; i < steps.size(); ++i) {
    const store::Step& s = steps[i];
    if (s.phase == kCompressPhase || s.phase == "delivering" || s.phase == kVerifyPhase ||
        s.phase == kInstructionsPhase || interrupted(s))
      continue;
    verdict = loops.observe(s.toolCalled.empty() ? talkRecord(s) : loopRecord(s));
  }
  return verdict;
}

Task<PhaseOutcome> runTurns(JobSession& s) {
  if (s.job().startedAt == 0) s.job().startedAt = s.deps().clock->nowMs();
  TerminalStream terminal(co_await asio::this_coro::executor, *s.deps().store, *s.deps().bus,
                          *s.deps().pool, s.job().id, s.lease());
  if (isCliAgent(s.job().agent)) co_return co_await runCliTurns(s, terminal);
  TurnLoop loop(s, terminal);
  PhaseOutcome o = co_await loop.run();
  co_await loop.stopMcpServers();
  co_return o;
}

}  // namespace kiln::agent
