// The gvisor backend: SandboxBackend/Sandbox over gVisor's runsc. A sandbox starts idle (the
// bundle written, `runsc run` started in the sandbox's cgroups, the runtime serving on a unix
// socket runsc lets it create on the host) and gets its workspace at attach(): bind-mounted on
// the host into the sandbox's slot, a shared mount whose gofer copy receives it, then moved to
// /workspace by the runtime inside. create() is both at once.
#include <fcntl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <fstream>
#include <mutex>
#include <thread>

#include "common/ids.h"
#include "common/unique_fd.h"
#include "sandbox/egress/ns_egress.h"
#include "sandbox/gvisor/bundle.h"
#include "sandbox/gvisor/runsc.h"
#include "sandbox/ns/cgroup.h"
#include "sandbox/ns/layout.h"
#include "sandbox/ns/reclaim.h"
#include "sandbox/sandbox.h"

namespace kiln::sandbox {
namespace gvisor {
namespace {

// Under load a gVisor start takes a few hundred ms; far past that something is wrong.
constexpr auto kReadyTimeout = std::chrono::seconds(60);

// kiln-gvisor-compat.so next to the kiln binary, or empty.
std::string compatLibraryFor(const std::string& kilnBinary) {
  std::string lib = kilnBinary.substr(0, kilnBinary.rfind('/') + 1) + "kiln-gvisor-compat.so";
  return access(lib.c_str(), R_OK) == 0 ? lib : "";
}

Status makeDir(const std::string& path, mode_t mode) {
  if (mkdir(path.c_str(), mode) != 0) return errnoStatus("gvisor: mkdir " + path, errno);
  return Status::ok();
}

bool canConnect(const std::string& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof addr.sun_path) return false;
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  bool ok = connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  close(fd);
  return ok;
}

std::string logTail(const std::string& log) {
  std::string text = readFile(log).valueOr("");
  if (text.size() > 600) text = "..." + text.substr(text.size() - 600);
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
  return text.empty() ? "(no output)" : text;
}

// Until the runtime accepts connections on its socket, or runsc gave up.
Status waitReady(const std::string& socket, RunscProcess& runsc, const std::string& log) {
  const auto deadline = std::chrono::steady_clock::now() + kReadyTimeout;
  for (int i = 0;; ++i) {
    if (canConnect(socket)) return Status::ok();
    if (runsc.exited()) {
      return Status(Code::kUnavailable,
                    "gvisor: runsc exited before the runtime was ready: " + logTail(log));
    }
    if (std::chrono::steady_clock::now() > deadline) {
      return Status(Code::kDeadlineExceeded,
                    "gvisor: the runtime was not ready in time: " + logTail(log));
    }
    std::this_thread::sleep_for(std::chrono::microseconds(i < 200 ? 500 : 5000));
  }
}

class GvSandbox : public Sandbox {
 public:
  GvSandbox(SandboxSpec started, SandboxPaths paths, std::string token, int lockFd,
            RunscProcess runsc, SandboxCgroup cgroup,
            std::unique_ptr<egress::EgressListener> egress)
      : started_(std::move(started)),
        paths_(std::move(paths)),
        socket_(paths_.gv + "/rt/rt.sock"),
        token_(std::move(token)),
        lockFd_(lockFd),
        runsc_(std::move(runsc)),
        cgroup_(std::move(cgroup)),
        egress_(std::move(egress)) {}
  ~GvSandbox() override { (void)destroy(); }

  // Sandbox
  const std::string& id() const override { return started_.id; }
  const std::string& runtimeSocket() const override { return socket_; }
  const std::string& runtimeToken() const override { return token_; }
  Status destroy() override {
    std::lock_guard teardown(teardownMu_);
    {
      std::lock_guard lock(stateMu_);
      if (destroyed_) return Status::ok();
      destroyed_ = true;
    }
    // runsc's sentry and gofer die with it (parent-death signal); the cgroup holds them all.
    runsc_.kill();
    cgroup_.killAll();
    egress_.reset();
    // What a limit did, read once everything is dead (an OOM kill in the last moment included).
    if (auto late = cgroup_.breach()) {
      std::lock_guard lock(stateMu_);
      if (!breach_) breach_ = std::move(late);
    }
    Status st = cgroup_.remove();
    Status rmSt = removeSandboxFiles(paths_);
    lockFd_.reset();
    return st.isOk() ? rmSt : st;
  }
  std::optional<LimitBreach> limitBreach() const override {
    std::lock_guard lock(stateMu_);
    if (destroyed_ || breach_) return breach_;
    return cgroup_.breach();
  }
  Status attach(const SandboxSpec& spec) override;
  Status renice(int nice) override {
    std::lock_guard teardown(teardownMu_);
    if (destroyedNow()) return conflict("gvisor: sandbox " + started_.id + " is destroyed");
    return cgroup_.renice(nice);
  }

 private:
  const SandboxSpec started_;  // the spec of startIdle(): what attach() cannot change
  const SandboxPaths paths_;
  const std::string socket_;
  const std::string token_;
  bool destroyedNow() const {
    std::lock_guard lock(stateMu_);
    return destroyed_;
  }
  // Two locks, as the namespace sandbox's: limitBreach() runs on a job's strand (an I/O
  // thread) and must never wait for a teardown, which blocks in waitpid and in cgroup and file
  // removal. stateMu_ guards only `destroyed_` and the breach; teardownMu_ serializes destroy(),
  // attach() and renice() and is held through each. Once destroyed_ is set, limitBreach() no
  // longer reads the cgroup, which the teardown then owns alone.
  std::mutex teardownMu_;
  mutable std::mutex stateMu_;
  UniqueFd lockFd_;     // GUARDED_BY(teardownMu_): flock on paths_.log (reclaim.h)
  RunscProcess runsc_;  // GUARDED_BY(teardownMu_)
  // Read by limitBreach() under stateMu_ until destroyed_; written only by destroy() after.
  SandboxCgroup cgroup_;
  std::unique_ptr<egress::EgressListener> egress_;  // GUARDED_BY(teardownMu_)
  bool attached_ = false;                           // GUARDED_BY(teardownMu_)
  bool destroyed_ = false;                          // GUARDED_BY(stateMu_)
  std::optional<LimitBreach> breach_;               // GUARDED_BY(stateMu_)
};

Status GvSandbox::attach(const SandboxSpec& spec) {
  std::lock_guard teardown(teardownMu_);  // no destroy() while the workspace goes in
  if (destroyedNow()) return conflict("gvisor: sandbox " + started_.id + " is destroyed");
  if (attached_) return conflict("gvisor: sandbox " + started_.id + " has a workspace already");
  if (spec.rootInside != started_.rootInside || spec.network != started_.network ||
      spec.allowHosts != started_.allowHosts || spec.image != started_.image ||
      spec.workdir != started_.workdir) {
    return invalidArgument(
        "gvisor: attach: the user, network, image and workdir are fixed at start");
  }
  // No call to the runtime follows: a pooled sandbox whose runsc died is caught here (the pool
  // then starts the job a cold one).
  if (runsc_.exited()) {
    return Status(Code::kUnavailable, "gvisor: sandbox " + started_.id + ": runsc has exited");
  }
  struct stat st;
  if (stat(spec.workspaceDir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    return invalidArgument("sandbox: workspace is not a directory: " + spec.workspaceDir);
  }
  if (!spec.rootInside) RETURN_IF_ERROR(chownTree(spec.workspaceDir, kAgentUid, kAgentGid));
  RETURN_IF_ERROR(cgroup_.setLimits(spec));
  const std::string slot = paths_.gv + "/slot/w";
  if (mount(spec.workspaceDir.c_str(), slot.c_str(), nullptr, MS_BIND | MS_REC, nullptr) != 0) {
    return errnoStatus("gvisor: bind " + spec.workspaceDir, errno);
  }
  attached_ = true;  // the mount goes with removeSandboxFiles() whatever happens next
  if (mount(nullptr, slot.c_str(), nullptr, MS_BIND | MS_REMOUNT | MS_NOSUID | MS_NODEV, nullptr) !=
      0) {
    return errnoStatus("gvisor: remount " + slot, errno);
  }
  // No call: the runtime finds the workspace at kInsideSlotWorkspace at its next request and
  // binds it on the workdir (`--workspace-source`, docs/runtime.md).
  return Status::ok();
}

class GvBackend : public SandboxBackend {
 public:
  GvBackend(GvisorBackendOptions opts, std::string runsc, std::string platform,
            CgroupLayout cgroups)
      : opts_(std::move(opts)),
        runDir_(runDirFor(opts_.stateDir)),
        runsc_(std::move(runsc)),
        platform_(std::move(platform)),
        cgroups_(std::move(cgroups)),
        runtimeBinary_(runtimeBinaryFor(opts_.kilnBinary)),
        compatLibrary_(compatLibraryFor(opts_.kilnBinary)),
        emptyFile_(opts_.stateDir + "/.gvempty") {}

  // SandboxBackend
  Result<std::unique_ptr<Sandbox>> create(const SandboxSpec& spec) override {
    ASSIGN_OR_RETURN(std::unique_ptr<Sandbox> sb, startIdle(spec));
    Status st = sb->attach(spec);
    if (!st) {
      (void)sb->destroy();
      return st;
    }
    return sb;
  }
  Result<std::unique_ptr<Sandbox>> startIdle(const SandboxSpec& spec) override;
  std::string name() const override { return "gvisor (" + platform_ + ")"; }
  // Root inside is root of gVisor's own kernel (the Sentry), never the host's.
  bool rootIsUnprivileged() const override { return true; }

 private:
  Result<std::unique_ptr<Sandbox>> start(const SandboxSpec& spec, const SandboxPaths& paths,
                                         int logFd, int lockFd);
  Status writeBundle(const SandboxSpec& spec, const SandboxPaths& paths, bool egress,
                     const std::string& token) const;
  egress::EgressProxy& egressProxy();

  const GvisorBackendOptions opts_;
  const std::string runDir_;
  const std::string runsc_;
  const std::string platform_;
  const CgroupLayout cgroups_;
  const std::string runtimeBinary_;
  const std::string compatLibrary_;  // empty when it was not built
  const std::string emptyFile_;
  std::mutex egressMu_;
  std::unique_ptr<egress::EgressProxy> ownEgress_;  // GUARDED_BY(egressMu_)
};

Result<std::unique_ptr<Sandbox>> GvBackend::startIdle(const SandboxSpec& spec) {
  if (spec.network != "none" && spec.network != "allowlist") {
    return invalidArgument("sandbox: network \"" + spec.network + "\" is not supported yet");
  }
  if (!spec.image.empty()) {
    return invalidArgument("sandbox: base images are not supported by the gvisor backend yet");
  }
  if (spec.diskMb > 0) {
    return invalidArgument(
        "sandbox: the gvisor backend has no disk quota: writes outside "
        "/workspace are memory, bounded by the memory limit");
  }
  SandboxPaths paths = SandboxPaths::of(opts_.stateDir, runDir_, opts_.stateDir, spec.id);
  ASSIGN_OR_RETURN(SandboxClaim claim, claimSandboxId(runDir_, paths, spec.id));
  auto sandbox = start(spec, paths, claim.log.get(), claim.lock.get());
  if (sandbox) {
    (void)claim.lock.release();
  } else {
    (void)removeSandboxFiles(paths);
  }
  return sandbox;
}

Status GvBackend::writeBundle(const SandboxSpec& spec, const SandboxPaths& paths, bool egress,
                              const std::string& token) const {
  BundleInputs in;
  in.rootfs = paths.skel;
  in.usrDir = "/usr";
  in.etcDir = "/etc";
  in.etcMaskDir = paths.etcMask;
  in.emptyFile = emptyFile_;
  in.runtimeBinary = runtimeBinary_;
  in.compatLibrary = compatLibrary_;
  in.socketDir = paths.gv + "/rt";
  in.slotDir = paths.gv + "/slot";
  if (egress) in.netDir = paths.net;
  in.gatewayDir = spec.gatewayDir;
  in.agentCliDir = spec.agentCliDir;
  in.runtimeToken = token;
  in.workdir = spec.workdir;
  in.rootInside = spec.rootInside;
  const std::string config = paths.gv + "/config.json";
  std::ofstream out(config, std::ios::trunc);
  out << ociConfig(bundleFor(in)).dump(1);
  out.close();
  return out ? Status::ok() : errnoStatus("gvisor: write " + config, errno);
}

Result<std::unique_ptr<Sandbox>> GvBackend::start(const SandboxSpec& spec,
                                                  const SandboxPaths& paths, int logFd,
                                                  int lockFd) {
  RETURN_IF_ERROR(makeDir(paths.gv, 0700));
  RETURN_IF_ERROR(makeDir(paths.gv + "/rt", 0700));
  const std::string slot = paths.gv + "/slot";
  RETURN_IF_ERROR(makeDir(slot, 0700));
  RETURN_IF_ERROR(makeDir(slot + "/w", 0755));
  // The slot is a shared mount: runsc's gofer gets a copy that is its slave, so the workspace
  // kiln mounts there at attach time appears inside.
  if (mount(slot.c_str(), slot.c_str(), nullptr, MS_BIND, nullptr) != 0 ||
      mount(nullptr, slot.c_str(), nullptr, MS_SHARED, nullptr) != 0) {
    return errnoStatus("gvisor: make " + slot + " a shared mount", errno);
  }
  std::unique_ptr<egress::EgressListener> egressListener;
  if (spec.network == "allowlist") {
    ASSIGN_OR_RETURN(egress::NsEgress egress,
                     egress::prepareNsEgress(spec, paths.net, egressProxy()));
    egressListener = std::move(egress.listener);
  }
  const std::string token = randomToken();
  RETURN_IF_ERROR(writeBundle(spec, paths, egressListener != nullptr, token));
  ASSIGN_OR_RETURN(SandboxCgroup cgroup, SandboxCgroup::create(cgroups_, spec.id, spec));
  Result<std::vector<int>> procs = cgroup.openProcs();
  if (!procs) {
    (void)cgroup.remove();
    return procs.status();
  }
  Result<RunscProcess> runsc =
      RunscProcess::start({runsc_, "--root=" + paths.gv + "/state", "--platform=" + platform_,
                           "--network=none", "--host-uds=all", "--ignore-cgroups",
                           "--overlay2=root:memory", "run", "--bundle", paths.gv, spec.id},
                          logFd, *procs);
  for (int fd : *procs) close(fd);
  Status ready = runsc ? waitReady(paths.gv + "/rt/rt.sock", *runsc, paths.log) : runsc.status();
  if (!ready) {
    if (runsc) runsc->kill();
    cgroup.killAll();
    (void)cgroup.remove();
    return ready;
  }
  return std::unique_ptr<Sandbox>(new GvSandbox(spec, paths, token, lockFd,
                                                std::move(runsc).value(), std::move(cgroup),
                                                std::move(egressListener)));
}

egress::EgressProxy& GvBackend::egressProxy() {
  if (opts_.egressProxy) return *opts_.egressProxy;
  std::lock_guard lock(egressMu_);
  if (!ownEgress_) ownEgress_ = egress::newStandaloneEgressProxy();
  return *ownEgress_;
}

}  // namespace
}  // namespace gvisor

Result<std::unique_ptr<SandboxBackend>> newGvisorBackend(const GvisorBackendOptions& opts) {
  if (geteuid() != 0) {
    return Status(Code::kUnavailable, "gvisor: the gvisor backend needs kiln to run as root");
  }
  if (access(opts.kilnBinary.c_str(), X_OK) != 0) {
    return errnoStatus("sandbox: kiln binary " + opts.kilnBinary, errno);
  }
  ASSIGN_OR_RETURN(std::string runsc, gvisor::findRunsc(opts.runsc));
  RETURN_IF_ERROR(prepareSharedLayers(opts.stateDir, SandboxIds{}));
  const std::string runDir = runDirFor(opts.stateDir);
  ASSIGN_OR_RETURN(
      std::string platform,
      gvisor::choosePlatform(runsc, opts.platform, runDir.substr(0, runDir.rfind('/'))));
  ASSIGN_OR_RETURN(CgroupLayout cgroups, CgroupLayout::probe());
  const std::string empty = opts.stateDir + "/.gvempty";
  if (access(empty.c_str(), F_OK) != 0) {
    int fd = open(empty.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0444);
    if (fd < 0) return errnoStatus("gvisor: create " + empty, errno);
    close(fd);
  }
  // A crashed predecessor's sandboxes died with it (parent-death signal down to the sentry);
  // their cgroups, workspace slot mounts and bundle dirs did not.
  (void)reclaimStaleSandboxes(opts.stateDir, runDir, cgroups);
  return std::unique_ptr<SandboxBackend>(
      new gvisor::GvBackend(opts, std::move(runsc), std::move(platform), std::move(cgroups)));
}

}  // namespace kiln::sandbox
