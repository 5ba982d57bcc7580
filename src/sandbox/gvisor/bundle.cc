#include "sandbox/gvisor/bundle.h"

#include <sys/stat.h>

#include <filesystem>

#include "runtime/egress_forwarder.h"
#include "runtime/server.h"
#include "sandbox/ns/agent_mounts.h"
#include "sandbox/ns/layout.h"

namespace kiln::sandbox::gvisor {
namespace {

using nlohmann::json;

const std::vector<std::string> kReadOnly = {"rbind", "ro", "nosuid", "nodev"};

// The .etcmask layer is an overlayfs lower (whiteouts and replacement files); gVisor gets the
// same view as mounts: a replacement file is bound over its host file, a whiteout becomes an
// empty file (or an empty tmpfs for a directory) over what it hides.
void addEtcMasks(const BundleInputs& in, std::vector<BundleMount>& mounts) {
  namespace fs = std::filesystem;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(in.etcMaskDir, ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    const std::string rel = fs::relative(it->path(), in.etcMaskDir, ec).string();
    const std::string host = in.etcDir + "/" + rel, inside = "/etc/" + rel;
    struct stat mask, target;
    if (lstat(it->path().c_str(), &mask) != 0 || S_ISDIR(mask.st_mode)) continue;
    // Nothing to hide or replace: no mount point to mount on either.
    if (stat(host.c_str(), &target) != 0) continue;
    if (S_ISREG(mask.st_mode)) {
      mounts.push_back({inside, "bind", it->path().string(), kReadOnly});
    } else if (S_ISDIR(target.st_mode)) {
      mounts.push_back({inside, "tmpfs", "tmpfs", {"ro", "nosuid", "nodev", "mode=0700"}});
    } else {
      mounts.push_back({inside, "bind", in.emptyFile, kReadOnly});
    }
  }
}

}  // namespace

Bundle bundleFor(const BundleInputs& in) {
  Bundle b;
  b.rootfs = in.rootfs;
  b.mounts = {
      {"/proc", "proc", "proc", {}},
      {"/dev", "tmpfs", "tmpfs", {"nosuid", "mode=0755"}},
      {"/tmp", "tmpfs", "tmpfs", {"nosuid", "nodev", "mode=1777"}},
      {"/usr", "bind", in.usrDir, kReadOnly},
      {"/etc", "bind", in.etcDir, kReadOnly},
  };
  addEtcMasks(in, b.mounts);
  b.mounts.push_back({kInsideRuntime, "bind", in.runtimeBinary, kReadOnly});
  b.mounts.push_back({kInsideSocketDir, "bind", in.socketDir, {"rbind", "nosuid", "nodev"}});
  b.mounts.push_back({kInsideSlot, "bind", in.slotDir, {"rbind", "nosuid", "nodev"}});
  b.args = runtimeJailArgs(in.workdir, in.rootInside);
  b.args.insert(b.args.begin(), {kInsideRuntime, "runtime", "--socket", kInsideSocket});
  b.args.insert(b.args.end(), {"--await-workspace", "--workspace-source", kInsideSlotWorkspace});
  if (!in.compatLibrary.empty()) {
    b.mounts.push_back({kInsideCompat, "bind", in.compatLibrary, kReadOnly});
    b.args.push_back("--preload");
    b.args.push_back(kInsideCompat);
  }
  if (!in.netDir.empty()) {
    b.mounts.push_back({kInsideNetDir, "bind", in.netDir, {"rbind", "nosuid", "nodev", "noexec"}});
    b.args.push_back("--egress-socket");
    b.args.push_back(std::string(kInsideNetDir) + "/px.sock");
  }
  // As the namespace backend's (sandbox/ns/agent_mounts.h): the runtime relays 127.0.0.1:3129
  // and :3130 inside to the gateway's sockets, which are host sockets (runsc --host-uds=all).
  if (!in.gatewayDir.empty()) {
    b.mounts.push_back(
        {kGatewayInsideDir, "bind", in.gatewayDir, {"rbind", "nosuid", "nodev", "noexec"}});
    for (const auto& [port, name] : {std::pair{runtime::kModelGatewayPort, "/llm.sock"},
                                     std::pair{runtime::kAcpChannelPort, "/acp.sock"}}) {
      b.args.push_back("--forward");
      b.args.push_back(std::to_string(port) + ":" + kGatewayInsideDir + name);
    }
  }
  if (!in.agentCliDir.empty()) {
    b.mounts.push_back({kAgentCliInsideDir, "bind", in.agentCliDir, kReadOnly});
  }
  b.env = {"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C.UTF-8",
           "HOME=/root"};
  // The runtime reads its token from the environment and wipes it there (runtime/server.cc).
  if (!in.runtimeToken.empty()) {
    b.env.push_back(std::string(runtime::kTokenEnv) + "=" + in.runtimeToken);
  }
  return b;
}

json ociConfig(const Bundle& b) {
  // Capabilities only mean something inside gVisor's own kernel: the runtime needs them to
  // mount the workspace and to become the agent for each command (which then drops them all).
  const json caps = {"CAP_CHOWN",           "CAP_DAC_OVERRIDE",
                     "CAP_DAC_READ_SEARCH", "CAP_FOWNER",
                     "CAP_FSETID",          "CAP_KILL",
                     "CAP_SETGID",          "CAP_SETUID",
                     "CAP_SETPCAP",         "CAP_NET_BIND_SERVICE",
                     "CAP_SYS_CHROOT",      "CAP_SYS_ADMIN",
                     "CAP_SYS_RESOURCE",    "CAP_SYS_PTRACE",
                     "CAP_AUDIT_WRITE",     "CAP_MKNOD"};
  json mounts = json::array();
  for (const BundleMount& m : b.mounts) {
    json j = {{"destination", m.destination}, {"type", m.type}, {"source", m.source}};
    if (!m.options.empty()) j["options"] = m.options;
    mounts.push_back(std::move(j));
  }
  return {
      {"ociVersion", "1.0.0"},
      {"process",
       {{"terminal", false},
        {"user", {{"uid", 0}, {"gid", 0}}},
        {"args", b.args},
        {"env", b.env},
        {"cwd", "/"},
        {"capabilities",
         {{"bounding", caps}, {"effective", caps}, {"inheritable", caps}, {"permitted", caps}}},
        {"rlimits", {{{"type", "RLIMIT_NOFILE"}, {"hard", 65536}, {"soft", 65536}}}},
        {"noNewPrivileges", false}}},
      {"root", {{"path", b.rootfs}, {"readonly", false}}},
      {"hostname", "kiln"},
      {"mounts", mounts},
      {"linux",
       {{"namespaces",
         {{{"type", "pid"}},
          {{"type", "network"}},
          {{"type", "ipc"}},
          {{"type", "uts"}},
          {{"type", "mount"}}}}}},
  };
}

}  // namespace kiln::sandbox::gvisor
