#include "sandbox/ns/agent_mounts.h"

#include <sys/mount.h>

#include "runtime/egress_forwarder.h"
#include "sandbox/ns/mnt.h"

namespace kiln::sandbox {

Status addGatewayMount(ContainPlan& plan, const std::string& hostDir) {
  if (hostDir.empty()) return Status::ok();
  const std::string target = plan.newRoot + kGatewayInsideDir;
  ASSIGN_OR_RETURN(int tree, plan.addBindSource(hostDir));
  plan.mounts.mounts.push_back(
      bindStep("bind /run/kiln-gateway", hostDir, target, tree, /*mkdirTarget=*/true));
  plan.mounts.mounts.push_back({"remount /run/kiln-gateway", "", target, "", "",
                                MS_BIND | MS_REMOUNT | MS_NOSUID | MS_NODEV | MS_NOEXEC});
  for (const auto& [port, name] : {std::pair{runtime::kModelGatewayPort, "/llm.sock"},
                                   std::pair{runtime::kAcpChannelPort, "/acp.sock"}}) {
    plan.args.push_back("--forward");
    plan.args.push_back(std::to_string(port) + ":" + kGatewayInsideDir + name);
  }
  return Status::ok();
}

Status addAgentCliMount(ContainPlan& plan, const std::string& hostDir) {
  if (hostDir.empty()) return Status::ok();
  const std::string target = plan.newRoot + kAgentCliInsideDir;
  ASSIGN_OR_RETURN(int tree, plan.addBindSource(hostDir));
  plan.mounts.mounts.push_back(
      bindStep("bind /opt/kiln-agent-clis", hostDir, target, tree, /*mkdirTarget=*/true));
  plan.mounts.mounts.push_back(
      {"remount /opt/kiln-agent-clis", "", target, "", "",
       MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV | lockedFlagsOf(hostDir)});
  return Status::ok();
}

}  // namespace kiln::sandbox
