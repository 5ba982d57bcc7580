#include "sandbox/egress/ns_egress.h"

#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/files.h"
#include "common/unique_fd.h"

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

namespace {

// The trust store TLS clients inside use: the host's bundle (so that every other host still
// verifies end to end) and the proxy's CA.
Status writeCaBundle(const std::string& path, const std::string& caPem) {
  std::string bundle;
  for (const char* system :
       {"/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt"}) {
    if (auto text = readFile(system); text.isOk()) {
      bundle = *text;
      break;
    }
  }
  if (!bundle.empty() && bundle.back() != '\n') bundle += '\n';
  bundle += caPem;
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644));
  if (!fd.valid()) return errnoStatus("sandbox: create " + path, errno);
  if (::write(fd.get(), bundle.data(), bundle.size()) != static_cast<ssize_t>(bundle.size())) {
    return errnoStatus("sandbox: write " + path, errno);
  }
  ::fchmod(fd.get(), 0644);
  return Status::ok();
}

}  // namespace

Result<NsEgress> prepareNsEgress(const SandboxSpec& spec, const std::string& netDir,
                                 EgressProxy& proxy) {
  ASSIGN_OR_RETURN(Allowlist allow, Allowlist::parse(spec.allowHosts));
  std::vector<SecretRule> secrets;
  for (const ProxySecret& s : spec.proxySecrets) {
    ASSIGN_OR_RETURN(Allowlist hosts, Allowlist::parse(s.hosts));
    secrets.push_back({std::move(hosts), s.placeholder, s.value});
  }
  NsEgress egress;
  egress.hostDir = netDir;
  // Only the runtime (root inside) connects to the socket (0600); commands use its TCP port.
  // With secrets the agent must read ca.pem too: the dir opens to lookups (0711), not listing.
  if (mkdir(egress.hostDir.c_str(), secrets.empty() ? 0700 : 0711) != 0) {
    return errnoStatus("sandbox: mkdir " + egress.hostDir, errno);
  }
  if (!secrets.empty()) {
    ::chmod(egress.hostDir.c_str(), 0711);  // past the umask
    RETURN_IF_ERROR(writeCaBundle(egress.hostDir + "/ca.pem", proxy.interceptCaPem()));
  }
  ASSIGN_OR_RETURN(egress.listener, proxy.listen(egress.hostDir + "/px.sock", spec.id,
                                                 std::move(allow), std::move(secrets)));
  return egress;
}

}  // namespace kiln::sandbox::egress
