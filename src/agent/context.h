// The agent's context C_t: the system prompt, the task, and one assistant/tool message pair per
// stored step, so a resumed job sees exactly what it saw before.
#pragma once
#include <vector>

#include "agent/provider.h"
#include "store/store.h"

namespace kiln::agent {

std::vector<Message> initialContext(const store::Job& job);
// Appends the assistant turn and tool result that a stored step records.
void appendStep(std::vector<Message>& ctx, const store::Step& step);
// Rebuilds the whole context from the stored steps.
std::vector<Message> rebuildContext(const store::Job& job, const std::vector<store::Step>& steps);

}  // namespace kiln::agent
