// Provisioning: the first phase of a job run. Creates the job's provider, prepares its
// workspace (reattached, created at the base commit, or rebuilt from the stored patch), takes a
// sandbox (on the job's backend, from a warm pool when one fits: sandbox/supervisor.h), loads
// the stored steps into the context, records the repo's AGENTS.md files at the job's first run
// (src/agent/instructions.h) and what a resume needs (an interrupted call, a human's answer).
#pragma once
#include "agent/job_outcome.h"
#include "agent/job_session.h"
#include "common/asio.h"

namespace kiln::agent {

// kContinue with s.sandbox, s.rt, s.provider, s.steps and s.ctx set (and s.deliverNow when the
// job resumes into delivery); otherwise why the run cannot go on.
Task<PhaseOutcome> provision(JobSession& s);

}  // namespace kiln::agent
