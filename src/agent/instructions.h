// Repo instructions: the AGENTS.md files of the job's repository, read once from its workspace
// at the start of the job's first run and recorded as a step (phase "instructions"), which
// rebuildContext (src/agent/context.h) puts into the system prompt of every later turn. Recorded
// rather than read again at each run: a job resumed elsewhere, or continued after the agent
// edited an AGENTS.md, sees exactly the instructions it started with.
//
// Each file applies to the files under its directory; the model is told that where two
// disagree, the one nearest to the file at hand wins, and the task wins over both. Claude
// Code's preset (--bare: it reads no instruction file) gets the same text through
// --append-system-prompt-file (cli_turns.cc); the other agent CLIs (codex reads AGENTS.md, ACP
// agents) read their own.
#pragma once
#include <string>
#include <vector>

#include "agent/context.h"
#include "agent/job_outcome.h"
#include "agent/job_session.h"
#include "common/asio.h"
#include "store/store.h"

namespace kiln::agent {

// The most of the repo's AGENTS.md files read (the shallowest first), of one file, and of all.
inline constexpr size_t kMaxInstructionFiles = 32;
inline constexpr size_t kMaxInstructionFileBytes = 16 << 10;
inline constexpr size_t kMaxInstructionBytes = 48 << 10;

struct InstructionFile {
  std::string path;  // relative to the repo root: "AGENTS.md", "src/api/AGENTS.md"
  std::string content;
};

// The repo paths of AGENTS.md files in `lsFilesZ` (NUL-separated `git ls-files -z` output, maybe
// cut short), the shallowest first, then by path; at most kMaxInstructionFiles. Pure.
std::vector<std::string> instructionPaths(const std::string& lsFilesZ);
// The step that records `files` (empty: none), numbered `stepNumber`. Pure.
store::Step instructionsStep(int stepNumber, const std::vector<InstructionFile>& files);

// On the job's first run (no stored step yet) of a built-in agent or claude: reads the repo's
// AGENTS.md files through the runtime and records them as a step. kContinue when there are none, or
// when they could not be listed (logged: the job goes on without them).
Task<PhaseOutcome> recordInstructions(JobSession& s);

}  // namespace kiln::agent
