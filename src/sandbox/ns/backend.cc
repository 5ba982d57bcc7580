// The namespace backend: SandboxBackend/Sandbox implemented with Linux namespaces, overlayfs,
// cgroups and seccomp. create() prepares host state, clones the contained child and waits for
// it to exec the runtime; the runtime then serves on a socket bound before the clone.
#include <fcntl.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <functional>
#include <mutex>

#include "common/ids.h"
#include "common/unique_fd.h"
#include "runtime/client.h"
#include "runtime/server.h"
#include "sandbox/egress/ns_egress.h"
#include "sandbox/image/ns_image.h"
#include "sandbox/ns/agent_mounts.h"
#include "sandbox/ns/cgroup.h"
#include "sandbox/ns/contain.h"
#include "sandbox/ns/disk.h"
#include "sandbox/ns/layout.h"
#include "sandbox/ns/reclaim.h"
#include "sandbox/sandbox.h"

namespace kiln::sandbox {
namespace {

Result<int> listenOn(const std::string& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof(addr.sun_path)) {
    return invalidArgument("sandbox: socket path too long: " + path);
  }
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return errnoStatus("sandbox: socket", errno);
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || listen(fd, 64) != 0) {
    int err = errno;
    close(fd);
    return errnoStatus("sandbox: bind " + path, err);
  }
  return fd;
}

constexpr unsigned kDefaultIdBase = 3'000'000;
constexpr unsigned kIdCount = 65536;

// The first id of a range of at least kIdCount for `user` in an /etc/subuid-style file.
std::optional<unsigned> subordinateBase(const char* file, const std::string& user) {
  std::ifstream in(file);
  for (std::string line; std::getline(in, line);) {
    const size_t a = line.find(':'), b = line.find(':', a + 1);
    if (a == std::string::npos || b == std::string::npos || line.substr(0, a) != user) continue;
    try {
      unsigned long base = std::stoul(line.substr(a + 1, b - a - 1));
      unsigned long count = std::stoul(line.substr(b + 1));
      if (count >= kIdCount && base > 0 && base + kIdCount <= 0xFFFFFFFEul) return base;
    } catch (const std::exception&) {
    }
  }
  return std::nullopt;
}

// The ids root and the agent inside have on the host (layout.h).
SandboxIds sandboxIds(const NamespaceBackendOptions& opts) {
  if (geteuid() != 0) return {geteuid(), geteuid(), getegid(), getegid()};
  if (!opts.userNamespace) return {};
  const unsigned uidBase = subordinateBase("/etc/subuid", "kiln").value_or(kDefaultIdBase);
  const unsigned gidBase = subordinateBase("/etc/subgid", "kiln").value_or(uidBase);
  return {uidBase, uidBase + kAgentUid, gidBase, gidBase + kAgentGid};
}

std::vector<std::string> runtimeArgs(const SandboxSpec& spec, bool idle) {
  std::vector<std::string> args = runtimeJailArgs(spec.workdir, spec.rootInside);
  args.insert(args.begin(), {"kiln", "runtime", "--listen-fd", "3"});
  if (idle) args.push_back("--await-workspace");
  return args;
}

// Who owns a sandbox's workspace on the host, and whether kiln may chown it there.
struct WorkspaceOwner {
  bool rootless = false;   // kiln's own files are the inside user's already; nothing to chown
  bool mapsRange = false;  // root with a user namespace: root inside is a mapped host id too
  SandboxIds ids;

  Status chown(const SandboxSpec& spec) const {
    if (rootless || (spec.rootInside && !mapsRange)) return Status::ok();
    return chownTree(spec.workspaceDir, spec.rootInside ? ids.root : ids.agent,
                     spec.rootInside ? ids.rootGid : ids.agentGid);
  }
};

Status checkWorkspace(const SandboxSpec& spec) {
  struct stat st;
  if (stat(spec.workspaceDir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    return invalidArgument("sandbox: workspace is not a directory: " + spec.workspaceDir);
  }
  return Status::ok();
}

// Two locks: limitBreach() runs on a job's strand (an I/O thread) and must never wait for a
// teardown, which blocks in waitpid and in cgroup and file removal. stateMu_ guards only the
// breach and the `destroyed_` flag and is held for a few small file reads at most; teardownMu_
// serializes destroy() and is held through all of it. Once destroyed_ is set, limitBreach()
// no longer touches child_, cgroup_ or disk_, which the teardown then owns alone.
class NsSandbox : public Sandbox {
 public:
  // idle: started by startIdle(spec), waiting for attach(); owner: for attach's chown.
  NsSandbox(const SandboxSpec& spec, bool idle, WorkspaceOwner owner, SandboxPaths paths,
            std::string token, UniqueFd lockFd, ContainedChild child, SandboxCgroup cgroup,
            DiskImage disk, std::function<void(const std::string&)> hook)
      : started_(spec),
        idle_(idle),
        owner_(owner),
        id_(spec.id),
        paths_(std::move(paths)),
        token_(std::move(token)),
        teardownHook_(std::move(hook)),
        lockFd_(std::move(lockFd)),
        child_(std::move(child)),
        cgroup_(std::move(cgroup)),
        disk_(std::move(disk)) {}
  ~NsSandbox() override { (void)destroy(); }

  // Sandbox
  const std::string& id() const override { return id_; }
  const std::string& runtimeSocket() const override { return paths_.socket; }
  const std::string& runtimeToken() const override { return token_; }
  Status destroy() override {
    std::lock_guard teardown(teardownMu_);
    {
      std::lock_guard lock(stateMu_);
      if (destroyed_) return Status::ok();
      // What a limit did so far (the disk check reads the root through PID 1: before the
      // kill), for limitBreach() calls during the teardown.
      if (!breach_) breach_ = probeBreach();
      destroyed_ = true;
    }
    // SIGKILL to PID 1 takes the whole pid namespace with it; its mounts go with the last
    // process of the mount namespace.
    child_.kill();
    egress_.reset();
    // An OOM kill in the last moment shows in the cgroup's counters only now.
    if (auto late = cgroup_.breach()) {
      std::lock_guard lock(stateMu_);
      if (!breach_) breach_ = std::move(late);
    }
    if (teardownHook_) teardownHook_(id_);
    Status st = cgroup_.remove();
    Status diskSt = disk_.release();
    Status rmSt = removeSandboxFiles(paths_);
    // Only now that nothing is left may a reclaim in another process see the state as stale.
    lockFd_.reset();
    if (st.isOk()) st = diskSt;
    return st.isOk() ? rmSt : st;
  }
  // Network "allowlist": the sandbox's proxy listener, closed by destroy().
  void keepEgress(std::unique_ptr<egress::EgressListener> l) { egress_ = std::move(l); }
  std::optional<LimitBreach> limitBreach() const override {
    std::lock_guard lock(stateMu_);
    if (destroyed_ || breach_) return breach_;
    return probeBreach();
  }

 private:
  // Reads the cgroup's and the disk's counters. Only while !destroyed_, under stateMu_.
  std::optional<LimitBreach> probeBreach() const {
    auto b = cgroup_.breach();
    return b ? b : disk_.breach(child_.pid());
  }
  Status attach(const SandboxSpec& spec) override;
  Status renice(int nice) override {
    std::lock_guard teardown(teardownMu_);
    {
      std::lock_guard lock(stateMu_);
      if (destroyed_) return conflict("sandbox: " + id_ + " is destroyed");
    }
    return cgroup_.renice(nice);
  }

  const SandboxSpec started_;
  const bool idle_;
  const WorkspaceOwner owner_;
  const std::string id_;
  const SandboxPaths paths_;
  const std::string token_;
  const std::function<void(const std::string&)> teardownHook_;  // NamespaceBackendOptions
  std::mutex teardownMu_;
  mutable std::mutex stateMu_;
  UniqueFd lockFd_;  // GUARDED_BY(teardownMu_): flock on paths_.log (reclaim.h)
  // Read by limitBreach() under stateMu_ until destroyed_; written only by destroy() after.
  ContainedChild child_;
  SandboxCgroup cgroup_;
  DiskImage disk_;
  bool destroyed_ = false;                          // GUARDED_BY(stateMu_)
  std::optional<LimitBreach> breach_;               // GUARDED_BY(stateMu_)
  std::unique_ptr<egress::EgressListener> egress_;  // GUARDED_BY(teardownMu_)
  bool attached_ = false;                           // GUARDED_BY(teardownMu_)
};

Status NsSandbox::attach(const SandboxSpec& spec) {
  std::lock_guard teardown(teardownMu_);  // no destroy() while the workspace goes in
  {
    std::lock_guard lock(stateMu_);
    if (destroyed_) return conflict("sandbox: " + id_ + " is destroyed");
  }
  if (!idle_ || attached_) return conflict("sandbox: " + id_ + " has a workspace already");
  if (spec.rootInside != started_.rootInside || spec.network != started_.network ||
      spec.allowHosts != started_.allowHosts || spec.image != started_.image ||
      spec.diskMb != started_.diskMb || spec.workdir != started_.workdir) {
    return invalidArgument(
        "sandbox: attach: the user, network, image, disk quota and workdir are fixed "
        "at start");
  }
  RETURN_IF_ERROR(checkWorkspace(spec));
  RETURN_IF_ERROR(owner_.chown(spec));
  RETURN_IF_ERROR(cgroup_.setLimits(spec));
  // A dead PID 1 fails here (its mount namespace is gone). No call to the runtime: it opens
  // the workspace at its next request, seeing another directory at the workdir
  // (`--await-workspace`, docs/runtime.md).
  RETURN_IF_ERROR(attachInside(child_.pid(), spec.workspaceDir, started_.workdir));
  attached_ = true;
  return Status::ok();
}

class NsBackend : public SandboxBackend {
 public:
  NsBackend(NamespaceBackendOptions opts, SandboxIds ids, CgroupLayout cgroups,
            std::string runtimeBinary, int runtimeFd)
      : opts_(std::move(opts)),
        runDir_(runDirFor(opts_.stateDir)),
        rootless_(geteuid() != 0),
        userNs_(rootless_ || opts_.userNamespace),
        ids_(ids),
        layersDir_(layersDirFor(opts_.stateDir, ids_)),
        cgroups_(std::move(cgroups)),
        runtimeBinary_(std::move(runtimeBinary)),
        runtimeFd_(runtimeFd),
        idleWorkspace_(layersDir_ + "/.idle") {}
  // The run dir goes with the last backend over it (an rmdir fails while sandboxes live).
  ~NsBackend() override { rmdir(runDir_.c_str()); }

  // SandboxBackend
  Result<std::unique_ptr<Sandbox>> create(const SandboxSpec& spec) override;
  Result<std::unique_ptr<Sandbox>> startIdle(const SandboxSpec& spec) override;
  std::string name() const override {
    return rootless_ ? "namespace (rootless)"
           : userNs_ ? "namespace (user namespace)"
                     : "namespace";
  }
  std::vector<std::string> limitations() const override;
  bool rootIsUnprivileged() const override { return userNs_; }

 private:
  Result<std::unique_ptr<Sandbox>> launch(const SandboxSpec& spec, bool idle);
  // Takes lockFd on success.
  Result<std::unique_ptr<Sandbox>> start(const SandboxSpec& spec, bool idle,
                                         const SandboxPaths& paths, int logFd, UniqueFd& lockFd);
  // Everything the child needs beyond the fds, computed before the clone.
  Status fillPlan(ContainPlan& plan, const SandboxSpec& spec, bool idle, const SandboxPaths& paths,
                  const std::string& diskDevice, const egress::NsEgress* egress,
                  const image::NsImage* baseImage) const;
  egress::EgressProxy& egressProxy();
  // Root with a user namespace: root and the agent inside are ids of a mapped range.
  bool mapsRange() const { return userNs_ && !rootless_; }
  WorkspaceOwner owner() const { return {rootless_, mapsRange(), ids_}; }

  const NamespaceBackendOptions opts_;
  const std::string runDir_;
  // Not root: each sandbox gets a user namespace mapping kiln's uid to the one user inside.
  const bool rootless_;
  // Rootless, or root with opts_.userNamespace: a range of host ids mapped from 0 inside.
  const bool userNs_;
  const SandboxIds ids_;             // the host ids of root and the agent inside
  const std::string layersDir_;      // the shared layers (layersDirFor)
  const CgroupLayout cgroups_;       // empty in rootless mode without delegation
  const std::string runtimeBinary_;  // kiln-runtime next to kiln, else kiln itself
  const UniqueFd runtimeFd_;         // O_PATH fd of the runtime executable, exec'd by every sandbox
  const std::string idleWorkspace_;  // empty dir at /workspace of idle sandboxes
  std::mutex egressMu_;
  std::unique_ptr<egress::EgressProxy> ownEgress_;  // GUARDED_BY(egressMu_)
};

Result<std::unique_ptr<Sandbox>> NsBackend::create(const SandboxSpec& spec) {
  RETURN_IF_ERROR(checkWorkspace(spec));
  return launch(spec, false);
}

Result<std::unique_ptr<Sandbox>> NsBackend::startIdle(const SandboxSpec& spec) {
  if (rootless_) {
    return Status(Code::kUnavailable,
                  "sandbox: idle namespace sandboxes (warm pools) need kiln to run as root: "
                  "attaching a workspace enters the sandbox's mount namespace");
  }
  SandboxSpec idle = spec;
  idle.workspaceDir = idleWorkspace_;
  ASSIGN_OR_RETURN(std::unique_ptr<Sandbox> sb, launch(idle, true));
  // Serving before it is handed out: the runtime records the idle workspace's identity before
  // it answers (runtime/router.h), and attach() tells it nothing, so it must come after that.
  if (Status st = runtime::runtimeHealth(sb->runtimeSocket(), sb->runtimeToken()); !st) {
    (void)sb->destroy();
    return st.withContext("sandbox: idle sandbox " + spec.id);
  }
  return sb;
}

Result<std::unique_ptr<Sandbox>> NsBackend::launch(const SandboxSpec& spec, bool idle) {
  if (spec.network != "none" && spec.network != "allowlist") {
    return invalidArgument("sandbox: network \"" + spec.network + "\" is not supported yet");
  }
  SandboxPaths paths = SandboxPaths::of(opts_.stateDir, runDir_, layersDir_, spec.id);
  ASSIGN_OR_RETURN(SandboxClaim claim, claimSandboxId(runDir_, paths, spec.id));
  auto sandbox = start(spec, idle, paths, claim.log.get(), claim.lock);
  if (!sandbox) (void)removeSandboxFiles(paths);
  return sandbox;
}

Result<std::unique_ptr<Sandbox>> NsBackend::start(const SandboxSpec& spec, bool idle,
                                                  const SandboxPaths& paths, int logFd,
                                                  UniqueFd& lockFd) {
  if (!idle) RETURN_IF_ERROR(owner().chown(spec));
  ASSIGN_OR_RETURN(int listenFd, listenOn(paths.socket));
  UniqueFd listenGuard(listenFd);
  std::optional<egress::NsEgress> egress;
  if (spec.network == "allowlist") {
    ASSIGN_OR_RETURN(egress, egress::prepareNsEgress(spec, paths.net, egressProxy()));
    // The runtime (root inside) connects to the proxy's socket.
    if (mapsRange()) RETURN_IF_ERROR(chownTree(paths.net, ids_.root, ids_.rootGid));
  }
  // The same for the model gateway's socket.
  if (!spec.gatewayDir.empty() && mapsRange()) {
    RETURN_IF_ERROR(chownTree(spec.gatewayDir, ids_.root, ids_.rootGid));
  }
  std::optional<image::NsImage> baseImage;
  if (!spec.image.empty()) {
    ASSIGN_OR_RETURN(baseImage, image::NsImage::prepare(opts_.stateDir, opts_.imagesDir,
                                                        runtimeBinary_, spec.image));
  }
  // In a user namespace: no ext4 mount; the quota is the size of the layers' tmpfs.
  ASSIGN_OR_RETURN(DiskImage disk, userNs_ ? Result<DiskImage>(DiskImage::onTmpfs(spec.diskMb))
                                           : DiskImage::create(paths.image, spec.diskMb));
  ASSIGN_OR_RETURN(SandboxCgroup cgroup, SandboxCgroup::create(cgroups_, spec.id, spec));
  Result<std::vector<int>> procs = cgroup.openProcs();
  if (!procs) {
    (void)cgroup.remove();
    return procs.status();
  }
  // The runtime reads its token from the environment and wipes it there (runtime/server.cc).
  const std::string token = randomToken();
  ContainPlan plan;
  plan.listenFd = listenFd;
  plan.logFd = logFd;
  plan.cgroupFds = *procs;
  Status planned = fillPlan(plan, spec, idle, paths, disk.device(), egress ? &*egress : nullptr,
                            baseImage ? &*baseImage : nullptr);
  plan.env.push_back(std::string(runtime::kTokenEnv) + "=" + token);
  Result<ContainedChild> child = planned ? cloneContained(plan) : Result<ContainedChild>(planned);
  for (int fd : *procs) close(fd);
  if (!child) {
    (void)cgroup.remove();
    return child.status();  // disk: released by its destructor
  }
  if (mapsRange()) {
    // PID 1 may not shield itself from the OOM killer in its namespace (it lacks
    // CAP_SYS_RESOURCE on the host): we do it for it, as it does itself without one.
    std::ofstream adj("/proc/" + std::to_string(child->pid()) + "/oom_score_adj");
    adj << "-1000";
  }
  auto sandbox = std::make_unique<NsSandbox>(spec, idle, owner(), paths, token, std::move(lockFd),
                                             std::move(child).value(), std::move(cgroup),
                                             std::move(disk), opts_.teardownHook);
  if (egress) sandbox->keepEgress(std::move(egress->listener));
  return std::unique_ptr<Sandbox>(std::move(sandbox));
}

std::vector<std::string> NsBackend::limitations() const {
  if (!cgroups_.parents.empty()) return {};
  return {
      "rootless mode without a delegated cgroup (see docs/runtime.md, \"Rootless mode\"): "
      "memory and cpu limits are not enforced, and the process limit is RLIMIT_NPROC"};
}

Status NsBackend::fillPlan(ContainPlan& plan, const SandboxSpec& spec, bool idle,
                           const SandboxPaths& paths, const std::string& diskDevice,
                           const egress::NsEgress* egress, const image::NsImage* baseImage) const {
  if (rootless_) {
    const std::string inside = spec.rootInside ? "0" : std::to_string(kAgentUid);
    const std::string insideGid = spec.rootInside ? "0" : std::to_string(kAgentGid);
    plan.userNs = {true, false, inside + " " + std::to_string(ids_.root) + " 1",
                   insideGid + " " + std::to_string(ids_.rootGid) + " 1"};
    if (cgroups_.parents.empty()) plan.nprocLimit = spec.pids > 0 ? spec.pids : kDefaultPids;
  } else if (mapsRange()) {
    const std::string count = " " + std::to_string(kIdCount);
    plan.userNs = {true, true, "0 " + std::to_string(ids_.root) + count,
                   "0 " + std::to_string(ids_.rootGid) + count};
  }
  ASSIGN_OR_RETURN(int workspace, plan.addBindSource(spec.workspaceDir));
  plan.mounts = buildMountPlan(paths, spec, workspace, diskDevice, userNs_);
  plan.newRoot = paths.newRoot;
  plan.binFd = runtimeFd_.get();
  plan.args = runtimeArgs(spec, idle);
  plan.env = {"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C.UTF-8",
              "HOME=/root"};
  if (egress) RETURN_IF_ERROR(egress->addTo(plan));
  RETURN_IF_ERROR(addGatewayMount(plan, spec.gatewayDir));
  RETURN_IF_ERROR(addAgentCliMount(plan, spec.agentCliDir));
  return baseImage ? baseImage->applyTo(plan, paths) : Status::ok();
}

egress::EgressProxy& NsBackend::egressProxy() {
  if (opts_.egressProxy) return *opts_.egressProxy;
  std::lock_guard lock(egressMu_);
  if (!ownEgress_) ownEgress_ = egress::newStandaloneEgressProxy();
  return *ownEgress_;
}

// Rootless mode needs unprivileged user namespaces, which hosts can switch off.
Status checkUserNamespaces() {
  auto sysctl = [](const char* path) {
    std::ifstream in(path);
    long v = -1;
    return in >> v ? v : -1;
  };
  const char* why = nullptr;
  if (sysctl("/proc/sys/user/max_user_namespaces") == 0) {
    why = "user.max_user_namespaces is 0";
  } else if (sysctl("/proc/sys/kernel/unprivileged_userns_clone") == 0) {
    why = "kernel.unprivileged_userns_clone is 0";
  } else if (sysctl("/proc/sys/kernel/apparmor_restrict_unprivileged_userns") == 1) {
    why = "kernel.apparmor_restrict_unprivileged_userns is 1";
  }
  if (!why) return Status::ok();
  return Status(Code::kPermissionDenied,
                std::string("sandbox: not root, and this host does not allow unprivileged user "
                            "namespaces (") +
                    why + "): run kiln as root, or allow them");
}

}  // namespace

unsigned agentHostUid(const NamespaceBackendOptions& opts) { return sandboxIds(opts).agent; }

Result<std::unique_ptr<SandboxBackend>> newNamespaceBackend(const NamespaceBackendOptions& opts) {
  const bool rootless = geteuid() != 0;
  if (rootless) RETURN_IF_ERROR(checkUserNamespaces());
  if (access(opts.kilnBinary.c_str(), X_OK) != 0) {
    return errnoStatus("sandbox: kiln binary " + opts.kilnBinary, errno);
  }
  const SandboxIds ids = sandboxIds(opts);
  RETURN_IF_ERROR(prepareSharedLayers(opts.stateDir, ids));
  CgroupLayout cgroups;
  if (rootless) {
    cgroups = CgroupLayout::probeDelegated();
  } else {
    ASSIGN_OR_RETURN(cgroups, CgroupLayout::probe());
  }
  // What a crashed predecessor left: its sandboxes died with it (parent-death signal), their
  // cgroups, state dirs and any lingering loop device or mount did not.
  (void)reclaimStaleSandboxes(opts.stateDir, runDirFor(opts.stateDir), cgroups);
  const std::string idle = layersDirFor(opts.stateDir, ids) + "/.idle";
  if (mkdir(idle.c_str(), 0755) != 0 && errno != EEXIST) {
    return errnoStatus("sandbox: mkdir " + idle, errno);
  }
  std::string runtime = runtimeBinaryFor(opts.kilnBinary);
  int runtimeFd = open(runtime.c_str(), O_PATH | O_CLOEXEC);
  if (runtimeFd < 0) return errnoStatus("sandbox: open " + runtime, errno);
  return std::unique_ptr<SandboxBackend>(
      new NsBackend(opts, ids, std::move(cgroups), runtime, runtimeFd));
}

}  // namespace kiln::sandbox
