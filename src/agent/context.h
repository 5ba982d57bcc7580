// The agent's context C_t: the system prompt, the task, and for each model turn one assistant
// message with its calls (the provider's ids, the arguments' original text) followed by their
// results, rebuilt from the stored steps (one per call), so a resumed job sees exactly what it
// saw before and the model gets its history back as it wrote it. Some steps are not tool calls:
// a human's answer (phase "reply": a user message), a context compression (phase "compressing":
// a model-written summary that stands for every step before `keptFromStep`), kiln's verify run
// and the repo's instructions (phase "instructions": part of the system prompt, never
// compressed away).
#pragma once
#include <string>
#include <vector>

#include "agent/provider.h"
#include "store/store.h"

namespace kiln::agent {

inline constexpr const char* kReplyPhase = "reply";
inline constexpr const char* kCompressPhase = "compressing";
// kiln's run of the job's verify command after a finish (src/agent/verify.h): a user message.
inline constexpr const char* kVerifyPhase = "verify";
// The repo's AGENTS.md files (src/agent/instructions.h): added to the system prompt.
inline constexpr const char* kInstructionsPhase = "instructions";

std::vector<Message> initialContext(const store::Job& job);
// Appends what a stored step adds to the context (assistant turn + tool result, a human reply).
// A call after the first of its turn joins that turn's assistant message.
void appendStep(std::vector<Message>& ctx, const store::Step& step);
// The step that records a turn without tool calls (a refusal among them), with the nudge the
// model gets back.
store::Step talkStep(const ModelTurn& turn, int stepNumber);
// The step that records call `index` of `turn`; the first carries the turn's thought, refusal
// flag and tokens.
store::Step callStep(const ModelTurn& turn, size_t index, int stepNumber);
// Rebuilds the context from the stored steps, honouring the newest compression.
std::vector<Message> rebuildContext(const store::Job& job, const std::vector<store::Step>& steps);

// The request that asks the model to summarise `ctx` so it can be compressed.
std::vector<Message> summaryRequest(const std::vector<Message>& ctx);
// Which stored steps stay verbatim when compressing `steps` (the rest become the summary): the
// number of the first kept step, or 0 when there is too little to compress. Keeps the newest
// steps whose outputs fit in about a quarter of `thresholdTokens`, at most half of the steps,
// and never splits a turn's parallel calls.
int firstKeptStep(const std::vector<store::Step>& steps, int64_t thresholdTokens);
// The step that records a compression.
store::Step compressionStep(int stepNumber, const std::string& summary, int keptFromStep);

}  // namespace kiln::agent
