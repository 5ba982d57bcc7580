// The turn loop of a CLI agent: one long run of the agent CLI inside the sandbox, whose output
// is parsed into steps (src/agent/cli_output.h) and recorded as they arrive.
#include <spdlog/spdlog.h>

#include "agent/cli_agent.h"
#include "agent/job_events.h"
#include "agent/turn_loop.h"

namespace kiln::agent {
namespace {

using json = nlohmann::json;

// Records the CLI's steps; remembers the first write that failed and a budget it used up.
class CliStepRecorder {
 public:
  explicit CliStepRecorder(JobSession& s) : s_(s) {}

  Task<Status> record(CliStep& c) {
    store::Step& step = c.step;
    step.stepNumber = s_.nextStep++;
    step.isError = c.isError;
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
    }
    co_return Status::ok();
  }

  // kContinue unless a write failed (then why: kStop or kRetry).
  const PhaseOutcome& writeOutcome() const { return writeFailed_; }
  const std::optional<JobFailure>& breach() const { return breach_; }

 private:
  JobSession& s_;
  PhaseOutcome writeFailed_;
  std::optional<JobFailure> breach_;
};

}  // namespace

Task<PhaseOutcome> runCliTurns(JobSession& s, TerminalStream& terminal) {
  const store::Job& job = s.job();
  const json spec = s.spec().toJson();
  auto plan = resolveCliAgent(job.agent, job.model, spec, job.taskDesc, processEnv());
  if (!plan.isOk()) co_return PhaseOutcome::fail({"invalid_argument", plan.status().message()});
  CliStepRecorder recorder(s);
  CliHooks hooks;
  hooks.recordStep = [&recorder](CliStep& c) -> Task<Status> { return recorder.record(c); };
  // What is left of the job's wall-clock budget, for the CLI's single long command.
  const int timeoutMs = static_cast<int>(std::clamp<int64_t>(s.wallLeftMs(), 1000, INT32_MAX));
  auto out = co_await runCliAgent(*plan, timeoutMs, *s.rt, terminal, hooks);
  if (!recorder.writeOutcome().goesOn()) co_return recorder.writeOutcome();
  if (s.stopped()) co_return PhaseOutcome::stop(s.leaseLost() ? "lease lost" : "cancelled");
  if (recorder.breach()) co_return PhaseOutcome::fail(*recorder.breach());
  if (!out.isOk()) {
    co_return PhaseOutcome::fail({"agent_failed", "run the agent CLI: " + out.status().message()});
  }
  if (!out->failure.is_null()) co_return PhaseOutcome::fail(cliFailure(out->failure));
  co_return PhaseOutcome::finished(out->summary);
}

}  // namespace kiln::agent
