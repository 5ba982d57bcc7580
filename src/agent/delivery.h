// Delivery: the phase after the agent finished. Commits the work on branch kiln/<job>, pushes it
// when the job asks to, pausing first at each human gate the job lists in `approvals`, then
// completes the job. Runs only after the job's verify passed (src/agent/verify.h).
#pragma once
#include <string>

#include "agent/job_outcome.h"
#include "agent/job_session.h"
#include "common/asio.h"

namespace kiln::agent {

// kEnd once the job is COMPLETED or paused at a gate; kFail on a delivery error.
Task<PhaseOutcome> deliver(JobSession& s, const std::string& summary);

}  // namespace kiln::agent
