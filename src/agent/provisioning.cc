#include "agent/provisioning.h"

#include <spdlog/spdlog.h>

#include <filesystem>

#include "agent/cli_agent.h"
#include "agent/context.h"
#include "agent/instructions.h"
#include "agent/job_events.h"
#include "common/ids.h"
#include "workspace/cache.h"

namespace kiln::agent {
namespace {

using json = nlohmann::json;
using store::JobStatus;

void removeStaleGitLocks(const std::string& gitDir) {
  std::error_code ec;
  for (auto it = std::filesystem::recursive_directory_iterator(gitDir, ec);
       !ec && it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
    if (it->is_directory() && it->path().filename() == "objects") {
      it.disable_recursion_pending();
    } else if (it->path().extension() == ".lock") {
      std::error_code rmEc;
      std::filesystem::remove(it->path(), rmEc);
      spdlog::warn("removed stale git lock {}", it->path().string());
    }
  }
}

// The job's sandbox. Egress goes through the allowlist proxy when the job lists hosts, runs an
// agent CLI (its model API host), or pushes over HTTP(S) (the remote's host); else none.
sandbox::SandboxSpec sandboxSpecFor(const store::Job& job, const api::request::JobSpec& jobSpec,
                                    const std::string& workspaceDir) {
  const api::request::SandboxRequest sb = jobSpec.sandboxOrDefault();
  sandbox::SandboxSpec spec;
  spec.id = randomToken(6);
  spec.workspaceDir = workspaceDir;
  spec.cpus = sb.cpus;
  spec.memoryMb = static_cast<int>(sb.memoryMb);
  spec.diskMb = static_cast<int>(sb.diskMb);
  spec.network = sb.network;
  spec.image = sb.image;
  spec.workdir = sb.workdir;
  spec.rootInside = sb.user == "root";
  spec.allowHosts = sb.allowHosts;
  for (auto& h : cliAllowHosts(job.agent, jobSpec.toJson(), processEnv()))
    spec.allowHosts.push_back(std::move(h));
  const std::string& remote = job.repoUrl;
  bool httpRemote = remote.rfind("https://", 0) == 0 || remote.rfind("http://", 0) == 0;
  if (jobSpec.push && httpRemote) {
    // host[:port] of the remote: the proxy matches an explicit port too.
    if (std::string authority = urlAuthority(remote); !authority.empty())
      spec.allowHosts.push_back(authority);
  }
  if (!spec.allowHosts.empty()) spec.network = "allowlist";
  return spec;
}

json patchArgs(const std::string& patch) { return {{"patch", patch}}; }

json inflightString(const json& r, const char* key) {
  return r.contains(key) && r[key].is_string() ? r[key] : json("");
}

// The step that stands for a call that was running when its node died.
store::Step interruptedStep(const json& r) {
  store::Step s;
  auto number = [&](const char* key) -> int64_t {
    return r.contains(key) && r[key].is_number_integer() ? r[key].get<int64_t>() : 0;
  };
  s.stepNumber = static_cast<int>(number("stepNumber"));
  s.plannerThought = inflightString(r, "plannerThought").get<std::string>();
  s.toolCalled = inflightString(r, "toolCalled").get<std::string>();
  if (r.contains("toolArguments") && r["toolArguments"].is_object())
    s.toolArguments = r["toolArguments"];
  s.tokensIn = number("tokensIn");
  s.tokensOut = number("tokensOut");
  s.usd = r.contains("usd") && r["usd"].is_number() ? r["usd"].get<double>() : 0.0;
  s.callId = inflightString(r, "callId").get<std::string>();
  s.callIndex = static_cast<int>(number("callIndex"));
  s.rawArguments = inflightString(r, "rawArguments").get<std::string>();
  s.refusal = r.contains("refusal") && r["refusal"].is_boolean() && r["refusal"].get<bool>();
  s.toolOutput =
      "[interrupted: the kiln node running this call stopped before it finished. It was not "
      "re-run automatically because it may have had effects; check the workspace and repeat it "
      "if needed.]";
  return s;
}

// A human's answer (reply, approval refusal, continue) as a step, so it stays in the context
// of a job resumed elsewhere.
store::Step replyStep(int stepNumber, const std::string& text) {
  store::Step s;
  s.stepNumber = stepNumber;
  s.phase = kReplyPhase;
  s.toolOutput = text;
  return s;
}

std::string approvalState(const json& approval) { return jsonString(approval, "state"); }

std::string refusalText(const json& approval, const std::string& reason) {
  std::string action = jsonString(approval, "action");
  if (action.empty()) action = "action";
  return "The human did not approve the " + action + ". Their answer: " + reason +
         "\nAddress it and call finish again when done.";
}

// True when the newest stored step is the agent's finish or a delivery step after it: the run
// that recorded it ended before the job completed, so this one delivers without a model turn.
bool stoppedInDelivery(const std::vector<store::Step>& steps) {
  if (steps.empty()) return false;
  const store::Step& last = steps.back();
  return last.toolCalled == "finish" || last.phase == "delivering" || last.phase == kVerifyPhase;
}

Task<PhaseOutcome> makeProviderFor(JobSession& s) {
  ProviderSettings ps;
  ps.agent = s.job().agent;
  ps.model = s.job().model;
  ps.spec = s.spec().toJson();
  auto prov = makeProvider(ps, co_await asio::this_coro::executor);
  if (!prov.isOk()) co_return PhaseOutcome::fail({"invalid_argument", prov.status().message()});
  s.provider = std::move(prov).value();
  co_return PhaseOutcome::next();
}

// The workspace is reused when it survived (a resume or follow-up on the same node: an
// overlay's layers are remounted); otherwise it is created fresh at the base commit. Sets
// `rebuild` when the stored patch must be applied once the sandbox runs.
Task<PhaseOutcome> prepareWorkspace(JobSession& s, bool& rebuild) {
  const RunnerDeps& d = s.deps();
  store::Job& job = s.job();
  const workspace::Workspaces workspaces(d.workspacesDir, d.reposDir, d.agentUid);
  const std::string dir = workspaces.dir(job.id);
  bool reuse = false;
  if (!job.baseCommit.empty()) {
    reuse = co_await d.slowPool->run([&] { return workspaces.reattach(job.id); });
  }
  // A job that already ran elsewhere (or lost its workspace) is rebuilt: a workspace at the base
  // commit, then the newest stored workspace patch applied inside the sandbox.
  rebuild = !reuse && !job.baseCommit.empty();
  // A git command killed with its sandbox (node crash) leaves *.lock files behind; nothing else
  // can be using this workspace now that we hold the lease.
  if (reuse) {
    co_await d.slowPool->run([&] { removeStaleGitLocks(dir + "/.git"); });
    co_return PhaseOutcome::next();
  }
  const std::string ref = job.baseCommit.empty() ? job.ref : job.baseCommit;
  auto ws = co_await d.slowPool->run([&]() -> Result<workspace::PreparedWorkspace> {
    return workspaces.create(job.id, job.repoUrl, ref);
  });
  if (!ws.isOk()) co_return PhaseOutcome::fail({"repo_unreachable", ws.status().message()});
  if (!job.baseCommit.empty()) co_return PhaseOutcome::next();
  job.baseCommit = ws->baseCommit;
  store::JobUpdate u;
  u.baseCommit = job.baseCommit;
  co_return co_await s.update(u);
}

// Where the model gateways of this node's CLI runs keep their sockets.
std::string gatewaysDir(const RunnerDeps& d) {
  if (!d.gatewaysDir.empty()) return d.gatewaysDir;
  return std::filesystem::path(d.workspacesDir).parent_path().string() + "/gateways";
}

// A CLI agent's model gateway (cli_gateway.h), which its sandbox mounts, and its CLI dir; for a
// built-in agent with MCP servers, the gateway dir for their stdio channel, and the CLI dir
// (where the operator installs servers from npm).
Task<PhaseOutcome> startGateway(JobSession& s, sandbox::SandboxSpec& spec) {
  const store::Job& job = s.job();
  const bool mcp = !s.spec().mcpServers.empty();
  if (!isCliAgent(job.agent) && !mcp) co_return PhaseOutcome::next();
  spec.agentCliDir = agentCliDir(processEnv());
  if (!usesModelGateway(job.agent) && !mcp) co_return PhaseOutcome::next();
  const RunnerDeps& d = s.deps();
  gateway::GatewayBudget budget;
  budget.maxUsd = s.limits().maxUsd;
  budget.maxTokens = s.limits().maxTokens;
  budget.spentUsd = job.tokenSpendUsd;
  budget.spentTokens = job.tokensIn + job.tokensOut;
  // The tenant's usdPerDay, for an agent whose model calls go through the gateway (a built-in
  // agent's are checked by its loop): spent already, the run does not start; else its calls
  // stop at what is left (other jobs' spend during the run is not seen: the claim gate checks
  // again).
  if (usesModelGateway(job.agent)) {
    if (std::optional<JobSession::TenantSpend> t = co_await s.tenantSpend()) {
      if (std::optional<store::QuotaBreach> breach = t->breach())
        co_return PhaseOutcome::fail(tenantSpendFailure(*breach));
      budget.tenantUsdLeft = t->usdLeft();
    }
  }
  // The gateway stops passing calls once the budget is spent or the upstream is down: the CLI
  // would only retry, so its sandbox goes at once (off the I/O threads: destroy blocks).
  std::shared_ptr<JobHandle> handle = s.sharedHandle();
  BlockingPool* slow = d.slowPool;
  auto onStop = [handle, slow](const gateway::GatewayStop&) {
    asio::post(slow->executor(), [handle] {
      if (auto sb = handle->sandbox()) (void)sb->destroy();
    });
  };
  const asio::any_io_executor io = co_await asio::this_coro::executor;
  const gateway::Upstreams upstreams = gateway::upstreamsFromEnv(processEnv());
  const std::string parent = gatewaysDir(d);
  const bool channel = job.agent == "acp" || mcp;
  auto gw = co_await d.slowPool->run(
      [&] { return CliGateway::start(io, parent, job, budget, upstreams, onStop, channel); });
  if (!gw.isOk()) co_return PhaseOutcome::fail({"sandbox_error", gw.status().message()});
  s.gateway = std::move(gw).value();
  spec.gatewayDir = s.gateway->dir();
  co_return PhaseOutcome::next();
}

// Takes the job's sandbox and connects its runtime client.
Task<PhaseOutcome> acquireSandbox(JobSession& s) {
  const RunnerDeps& d = s.deps();
  const workspace::Workspaces workspaces(d.workspacesDir, d.reposDir, d.agentUid);
  sandbox::SandboxSpec spec = sandboxSpecFor(s.job(), s.spec(), workspaces.dir(s.job().id));
  for (const secrets::Secret& secret : s.proxySecrets()) {
    spec.proxySecrets.push_back(
        {secret.hosts, secrets::placeholder(s.job().id, secret.name), secret.value});
  }
  PhaseOutcome started = co_await startGateway(s, spec);
  if (!started.goesOn()) co_return started;
  const std::string backend = s.spec().sandboxOrDefault().backend;
  // From a warm pool when one fits and has a sandbox idle, else created now.
  auto created = co_await d.slowPool->run(
      [&] { return d.sandboxes ? d.sandboxes->acquire(backend, spec) : d.backend->create(spec); });
  if (!created.isOk()) co_return PhaseOutcome::fail({"sandbox_error", created.status().message()});
  s.sandbox = std::shared_ptr<sandbox::Sandbox>(std::move(created).value());
  s.handle().setSandbox(s.sandbox);
  if (s.stopped()) co_return PhaseOutcome::stop("stopped while the sandbox was created");
  s.rt = std::make_unique<runtime::RuntimeClient>(
      co_await asio::this_coro::executor, s.sandbox->runtimeSocket(), s.sandbox->runtimeToken());
  co_return PhaseOutcome::next();
}

// Applies the newest stored workspace patch inside the sandbox.
Task<PhaseOutcome> rebuildWorkspace(JobSession& s) {
  const RunnerDeps& d = s.deps();
  const std::string& id = s.job().id;
  auto patch = co_await d.pool->run([&] { return d.store->latestPatch(id); });
  if (!patch.isOk())
    co_return PhaseOutcome::retry("store: read the stored patch: " + patch.status().message());
  if (patch->empty()) co_return PhaseOutcome::next();
  const std::string path = "/git/apply";
  const json body = patchArgs(*patch);
  auto applied = co_await s.rt->call(path, body);
  if (!applied.isOk()) {
    co_return PhaseOutcome::fail(
        {"workspace_rebuild_failed", "apply the stored patch: " + applied.status().message()});
  }
  spdlog::info("job {}: workspace rebuilt from base {} and the stored patch", id,
               s.job().baseCommit);
  co_return PhaseOutcome::next();
}

// Loads the stored steps into the session and records a call that was in flight when the
// previous run died as interrupted (never re-run: it may have had effects).
Task<PhaseOutcome> loadHistory(JobSession& s) {
  const RunnerDeps& d = s.deps();
  const std::string& id = s.job().id;
  auto steps = co_await d.pool->run([&] { return d.store->listSteps(id); });
  if (!steps.isOk())
    co_return PhaseOutcome::retry("store: read the steps: " + steps.status().message());
  s.steps = std::move(steps).value();
  s.ctx = rebuildContext(s.job(), s.steps);
  s.nextStep = s.steps.empty() ? 1 : s.steps.back().stepNumber + 1;
  for (const auto& st : s.steps)
    if (!st.workspaceHash.empty()) s.lastTree = st.workspaceHash;
  if (!s.job().inflightCall.is_object()) co_return PhaseOutcome::next();
  store::Step step = interruptedStep(s.job().inflightCall);
  if (step.stepNumber < s.nextStep) step.stepNumber = s.nextStep;
  co_await s.captureWorkspace(step);
  PhaseOutcome o = co_await s.record(step, eventList(stepEvent(step, true)));
  if (o.goesOn()) s.nextStep = step.stepNumber + 1;
  co_return o;
}

// Marks the job RUNNING and decides where it resumes: delivery (a passed gate, or a run that
// ended between the finish and completion), a human's answer as the next message, or the loop.
Task<PhaseOutcome> markRunning(JobSession& s) {
  store::Job& job = s.job();
  store::JobUpdate u;
  u.status = JobStatus::kRunning;
  u.markStarted = true;
  u.events = statusEvents(JobStatus::kRunning);
  const std::string gateState = approvalState(job.approval);
  const std::string gateAction = jsonString(job.approval, "action");
  // An ACP agent's tool gates (bash, edit, ...) are answered in its run, never here.
  if (gateState == "approved" && (gateAction == "commit" || gateAction == "push")) {
    // Passed the gate: deliver what the agent finished. The approval is cleared when the job
    // completes, so a crash before that still resumes into delivery.
    s.deliverNow = s.lastFinishSummary();
    u.clearPendingReply = true;
  } else if (job.pendingReply) {
    // A human answered (reply, a refused approval, or continue): the answer is the agent's
    // next message. Stored as a step first, so it survives a crash after this point.
    std::string text =
        gateState == "refused" ? refusalText(job.approval, *job.pendingReply) : *job.pendingReply;
    store::Step step = replyStep(s.nextStep++, text);
    PhaseOutcome o = co_await s.record(step, eventList(stepEvent(step, false)));
    if (!o.goesOn()) co_return o;
    u.clearPendingReply = true;
    if (!job.approval.is_null()) u.approval = json(nullptr);
  } else if (stoppedInDelivery(s.steps)) {
    s.deliverNow = s.lastFinishSummary();
  }
  co_return co_await s.update(u);
}

}  // namespace

Task<PhaseOutcome> provision(JobSession& s) {
  // Stored JSON the runner cannot read is not the job's fault but the store's: an unexpected
  // failure, retried and then FAILED with the cause.
  if (Status st = s.loadSpec(); !st.isOk()) co_return PhaseOutcome::retry(st.message());
  // Secrets that do not open here (a node without the fleet's key) fail the job at once.
  if (Status st = s.loadSecrets(); !st.isOk()) {
    co_return PhaseOutcome::fail({"secrets_unavailable", st.message()});
  }
  PhaseOutcome o = co_await makeProviderFor(s);
  if (!o.goesOn()) co_return o;
  if (s.job().status == JobStatus::kQueued) {
    store::JobUpdate u;
    u.status = JobStatus::kProvisioning;
    u.events = statusEvents(JobStatus::kProvisioning);
    o = co_await s.update(u);
    if (!o.goesOn()) co_return o;
  }
  bool rebuild = false;
  o = co_await prepareWorkspace(s, rebuild);
  if (!o.goesOn()) co_return o;
  o = co_await acquireSandbox(s);
  if (!o.goesOn()) co_return o;
  if (rebuild) {
    o = co_await rebuildWorkspace(s);
    if (!o.goesOn()) co_return o;
  }
  o = co_await loadHistory(s);
  if (!o.goesOn()) co_return o;
  o = co_await recordInstructions(s);
  if (!o.goesOn()) co_return o;
  co_return co_await markRunning(s);
}

}  // namespace kiln::agent
