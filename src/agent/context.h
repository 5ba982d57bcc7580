// The agent's context C_t: the system prompt, the task, and one assistant/tool message pair per
// stored step, so a resumed job sees exactly what it saw before. Two kinds of steps are not tool
// calls: a human's answer (phase "reply": a user message) and a context compression (phase
// "compressing": a model-written summary that stands for every step before `keptFromStep`).
#pragma once
#include <string>
#include <vector>

#include "agent/provider.h"
#include "store/store.h"

namespace kiln::agent {

inline constexpr const char* kReplyPhase = "reply";
inline constexpr const char* kCompressPhase = "compressing";

std::vector<Message> initialContext(const store::Job& job);
// Appends what a stored step adds to the context (assistant turn + tool result, a human reply).
void appendStep(std::vector<Message>& ctx, const store::Step& step);
// Rebuilds the context from the stored steps, honouring the newest compression.
std::vector<Message> rebuildContext(const store::Job& job, const std::vector<store::Step>& steps);

// The request that asks the model to summarise `ctx` so it can be compressed.
std::vector<Message> summaryRequest(const std::vector<Message>& ctx);
// Which stored steps stay verbatim when compressing `steps` (the rest become the summary): the
// number of the first kept step, or 0 when there is too little to compress. Keeps the newest
// steps whose outputs fit in about a quarter of `thresholdTokens`, at most half of the steps.
int firstKeptStep(const std::vector<store::Step>& steps, int64_t thresholdTokens);
// The step that records a compression.
store::Step compressionStep(int stepNumber, const std::string& summary, int keptFromStep);

}  // namespace kiln::agent
