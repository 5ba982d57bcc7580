#include "agent/verify.h"

#include <spdlog/spdlog.h>

#include "agent/cli_agent.h"
#include "agent/context.h"
#include "agent/job_events.h"
#include "agent/tool_text.h"

namespace kiln::agent {
namespace {

using json = nlohmann::json;

constexpr const char* kCliCannotRetry = "and an agent CLI cannot be given the failure back";

// The last `kTailBytes` of the output, cut at a line start when one is near.
std::string outputTail(const std::string& out) {
  if (out.size() <= kTailBytes) return out;
  size_t from = out.size() - kTailBytes;
  size_t nl = out.find('\n', from);
  if (nl != std::string::npos && nl + 1 < out.size() && nl - from < 256) from = nl + 1;
  return out.substr(from);
}

// For a job resumed past the agent's finish: the verify step recorded after it, if any (run
// once, never again). Agent CLIs record no finish step: the newest human message bounds it.
const store::Step* recordedSinceFinish(const std::vector<store::Step>& steps) {
  for (auto it = steps.rbegin(); it != steps.rend(); ++it) {
    if (it->phase == kVerifyPhase) return &*it;
    if (it->toolCalled == "finish" || it->phase == kReplyPhase) return nullptr;
  }
  return nullptr;
}

// Failed verify runs since the job's newest human message (a `continue` starts a new count).
int failedRuns(const std::vector<store::Step>& steps) {
  int n = 0;
  for (auto it = steps.rbegin(); it != steps.rend() && it->phase != kReplyPhase; ++it)
    n += it->phase == kVerifyPhase && it->isError;
  return n;
}

runtime::ExecRequest verifyRequest(const JobSession& s) {
  runtime::ExecRequest req;
  req.cmd = s.spec().verify->command;
  req.env = s.spec().sandboxOrDefault().env;
  int64_t limitMs = s.limits().commandTimeout() * 1000;
  int64_t left = std::max<int64_t>(s.wallLeftMs(), 1000);
  req.timeoutMs = static_cast<int>(std::min(limitMs, left));
  return req;
}

store::Step verifyStep(int number, const runtime::ExecRequest& req, const runtime::ExecResult& r) {
  store::Step s;
  s.stepNumber = number;
  s.phase = kVerifyPhase;
  s.toolArguments = {{"command", req.cmd}};
  s.exitCode = r.timedOut && r.exitCode == 0 ? -1 : r.exitCode;
  s.isError = r.exitCode != 0 || r.timedOut;
  s.toolOutput = outputTail(r.output);
  if (r.timedOut)
    s.toolOutput += "\n[timed out after " + std::to_string(req.timeoutMs / 1000) + " s]";
  return s;
}

json verifyResult(const store::Step& step) {
  return {{"passed", !step.isError}, {"exitCode", step.exitCode}, {"outputTail", step.toolOutput}};
}

// `why`: "after 3 runs", or why it was not given back to the agent.
JobFailure verifyFailure(const store::Step& step, const std::string& why) {
  return {"verify_failed",
          "the job's verify command `" + step.toolArguments.value("command", std::string()) +
              "` failed (exit code " + std::to_string(step.exitCode) + ") " + why +
              "; nothing was delivered",
          {{"verify", verifyResult(step)}}};
}

std::string afterRuns(int runs) { return "after " + std::to_string(runs) + " runs"; }

JobFailure unrunnable(const Status& st) {
  return {"sandbox_error", "verify: the command could not run: " + st.message()};
}

}  // namespace

Task<PhaseOutcome> verifyWork(JobSession& s, const std::string& summary, bool resumed) {
  if (!s.spec().verify) co_return PhaseOutcome::finished(summary);
  const api::request::VerifySpec& v = *s.spec().verify;
  const store::Step* done = resumed ? recordedSinceFinish(s.steps) : nullptr;
  if (!done) {
    const runtime::ExecRequest req = verifyRequest(s);
    runtime::ChunkFn noStreaming;
    auto r = co_await s.rt->exec(req, noStreaming);
    if (s.stopped()) co_return PhaseOutcome::stop("cancelled during verify");
    if (!r.isOk()) {
      co_return PhaseOutcome::fail(unrunnable(r.status()));
    }
    const store::Step step = verifyStep(s.nextStep++, req, *r);
    const std::vector<store::NewEvent> events = verifyEvents(step, verifyResult(step));
    PhaseOutcome o = co_await s.record(step, events);
    if (!o.goesOn()) co_return o;
    done = &s.steps.back();
  }
  store::JobUpdate u;
  u.verify = verifyResult(*done);
  PhaseOutcome o = co_await s.update(u);
  if (!o.goesOn()) co_return o;
  if (!done->isError || !v.required) co_return PhaseOutcome::finished(summary);
  // An agent CLI runs its task once: it cannot be given the failure, so it fails at once.
  const int runs = failedRuns(s.steps);
  if (isCliAgent(s.job().agent)) {
    co_return PhaseOutcome::fail(verifyFailure(*done, kCliCannotRetry));
  }
  if (runs > v.maxRetries) co_return PhaseOutcome::fail(verifyFailure(*done, afterRuns(runs)));
  spdlog::info("job {}: verify failed (run {} of {}), back to the agent", s.job().id, runs,
               v.maxRetries + 1);
  co_return PhaseOutcome::next();
}

}  // namespace kiln::agent
