// Verify: the job's own definition of done (`verify: {command, required, maxRetries}`), checked
// after the agent's finish and before delivery. The command runs in the sandbox as a step of
// phase "verify"; its result goes on the job (`verify: {passed, exitCode, outputTail}`) and in a
// `verify` event. With `required`, a failure goes back to the agent (the step is a user message
// in its context) until it has failed `maxRetries` + 1 times, then the job FAILS with
// `verify_failed` and nothing is delivered. Resumable: a verify step recorded after the newest
// finish is its result, never run a second time.
#pragma once
#include "agent/job_outcome.h"
#include "agent/job_session.h"
#include "common/asio.h"

namespace kiln::agent {

// After the agent's finish (`resumed`: a run that starts past it, when provisioning set
// deliverNow): kContinue with `summary` set: deliver (verify passed, was not required, or the job
// has none). kContinue without a summary: the agent gets the failure and works on. kFail
// verify_failed (an agent CLI, which runs its task once, at its first failure), kStop, kRetry.
Task<PhaseOutcome> verifyWork(JobSession& s, const std::string& summary, bool resumed);

}  // namespace kiln::agent
