// The turn loop: the phase where the agent works. Each turn asks the model for its next move
// (or runs the job's agent CLI once, for CLI agents), executes the tool calls through the
// sandbox's runtime, records each as a step before the next model call, and checks the budgets
// and the loop detector. Tool calls of one turn run one after another (executeCall in
// turn_loop.cc is the unit a parallel executor would fan out).
#pragma once
#include <optional>
#include <vector>

#include "agent/job_outcome.h"
#include "agent/job_session.h"
#include "agent/loop_detector.h"
#include "agent/terminal_stream.h"
#include "common/asio.h"

namespace kiln::agent {

// kContinue with the summary when the agent finished; kEnd when it paused (ask_user) or was
// handed over; kFail / kStop / kRetry otherwise.
Task<PhaseOutcome> runTurns(JobSession& s);

// Feeds a job's stored steps to `loops` as if they had just run, so a pause, resume or handover
// does not reset its history: from the newest human reply on (an answer changes the situation,
// as a fresh run after a reply always did), skipping kiln's own steps (delivery, compression)
// and calls recorded as interrupted (not the agent's doing). Returns the verdict when the
// stored history already is a loop.
std::optional<LoopVerdict> replayLoopHistory(LoopDetector& loops,
                                             const std::vector<store::Step>& steps);

// The CLI-agent variant (cli_turns.cc): runs the job's agent CLI once in the sandbox, recording
// the steps parsed from its output as they arrive.
Task<PhaseOutcome> runCliTurns(JobSession& s, TerminalStream& terminal);

}  // namespace kiln::agent
