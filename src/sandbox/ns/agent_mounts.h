// What the namespace backend adds to the sandbox of an agent CLI: the dir of kiln's host sockets
// for it (SandboxSpec::gatewayDir) at /run/kiln-gateway, with `--forward` flags for the runtime,
// which then relays 127.0.0.1:3129 inside to its llm.sock (the model gateway) and 3130 to its
// acp.sock (an ACP agent's stdio); and the operator's agent CLI dir
// (SandboxSpec::agentCliDir) read-only at /opt/kiln-agent-clis.
#pragma once
#include <string>

#include "common/result.h"
#include "sandbox/ns/contain.h"

namespace kiln::sandbox {

inline constexpr const char* kGatewayInsideDir = "/run/kiln-gateway";
inline constexpr const char* kAgentCliInsideDir = "/opt/kiln-agent-clis";

// Both on a plan built for plan.newRoot; each is skipped when its host dir is empty.
Status addGatewayMount(ContainPlan& plan, const std::string& hostDir);
Status addAgentCliMount(ContainPlan& plan, const std::string& hostDir);

}  // namespace kiln::sandbox
