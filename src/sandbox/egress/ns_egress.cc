#include "sandbox/egress/ns_egress.h"

#include <sys/mount.h>
#include <sys/stat.h>

namespace kiln::sandbox::egress {

Status NsEgress::addTo(ContainPlan& plan) const {
  const std::string target = plan.newRoot + kInsideSocketDir;
  ASSIGN_OR_RETURN(int tree, plan.addBindSource(hostDir));
  plan.mounts.mounts.push_back(bindStep("bind /run/kiln", hostDir, target, tree,
                                        /*mkdirTarget=*/true));
  plan.mounts.mounts.push_back({"remount /run/kiln", "", target, "", "",
                                MS_BIND | MS_REMOUNT | MS_NOSUID | MS_NODEV | MS_NOEXEC});
  plan.args.push_back("--egress-socket");
  plan.args.push_back(kInsideSocket);
  return Status::ok();
}

Result<NsEgress> prepareNsEgress(const SandboxSpec& spec, const std::string& netDir,
                                 EgressProxy& proxy) {
  ASSIGN_OR_RETURN(Allowlist allow, Allowlist::parse(spec.allowHosts));
  NsEgress egress;
  egress.hostDir = netDir;
  // Only the runtime (root inside) connects; commands use its TCP port.
  if (mkdir(egress.hostDir.c_str(), 0700) != 0) {
    return errnoStatus("sandbox: mkdir " + egress.hostDir, errno);
  }
  ASSIGN_OR_RETURN(egress.listener,
                   proxy.listen(egress.hostDir + "/px.sock", spec.id, std::move(allow)));
  return egress;
}

}  // namespace kiln::sandbox::egress
