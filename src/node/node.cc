#include "node/node.h"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <thread>

#include "api/server.h"
#include "common/blocking_pool.h"
#include "common/ids.h"
#include "events/event_bus.h"
#include "node/node_monitor.h"
#include "sandbox/egress/proxy.h"
#include "sandbox/exec_service.h"
#include "sandbox/sandbox.h"
#include "sandbox/supervisor.h"
#include "scheduler/scheduler.h"
#include "secrets/secret_box.h"
#include "store/redacting_store.h"
#include "store/store.h"
#include "tenancy/tokens.h"
#include "workspace/cache.h"

#ifdef KILN_VERSION
#define KILN_NODE_VERSION KILN_VERSION
#else
#define KILN_NODE_VERSION "dev"
#endif

namespace kiln::node {
namespace {

// Workspaces of jobs that finished more than KILN_WORKSPACE_RETENTION_HOURS ago (default 168,
// a week: long enough for `continue`, which otherwise rebuilds from the stored patch) or that
// the store does not know, the base checkouts nothing sits on any more, and the repo mirrors
// no checkout comes from that no job used within the same period.
void collectWorkspaces(const workspace::Workspaces& workspaces, store::Store& store,
                       int64_t nowMs) {
  int64_t hours = 168;
  if (const char* env = std::getenv("KILN_WORKSPACE_RETENTION_HOURS"); env && *env) {
    hours = std::max<int64_t>(0, std::strtoll(env, nullptr, 10));
  }
  const int64_t retentionMs = hours * 3'600'000;
  auto keep = [&](const std::string& jobId) {
    auto job = store.getJob(jobId);
    if (!job.isOk()) return job.status().code() != Code::kNotFound;  // unsure: keep
    return !store::isTerminal(job->status) || nowMs - job->updatedAt < retentionMs;
  };
  auto gone = workspaces.collect(keep, nowMs - retentionMs);
  if (gone.workspaces + gone.checkouts + gone.mirrors > 0) {
    spdlog::info("removed {} old workspaces, {} unused base checkouts and {} idle repo mirrors",
                 gone.workspaces, gone.checkouts, gone.mirrors);
  }
}

namespace fs = std::filesystem;

// Reads the admin token, creating it (mode 0600) on first start, and registers its keyed hash
// (again at every start: a store, a fleet's or one migrated from unkeyed hashes, may lack it).
// A token revoked through the API stays revoked.
Result<std::string> ensureAdminToken(const std::string& dataDir, store::Store& store,
                                     const tenancy::TokenKey& key) {
  std::string path = dataDir + "/admin.token";
  std::string token;
  if (std::ifstream in(path); in) {
    std::getline(in, token);
  }
  if (token.empty()) {
    token = "kiln_" + randomToken(24);
    int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) return errnoStatus("write " + path, errno);
    std::string line = token + "\n";
    bool ok = ::write(fd, line.data(), line.size()) == static_cast<ssize_t>(line.size());
    ::fchmod(fd, 0600);
    ::close(fd);
    if (!ok) return errnoStatus("write " + path, errno);
  }
  RETURN_IF_ERROR(store.ensureTenant(store::kOperatorTenant, store::kOperatorTenant));
  store::ApiToken admin;
  admin.id = "tok_" + randomToken(8);
  admin.tenantId = store::kOperatorTenant;
  admin.name = "admin.token";
  admin.role = store::Role::kAdmin;
  RETURN_IF_ERROR(store.addToken(key.hash(token), admin));
  return token;
}

Status writeServerJson(const std::string& dataDir, const std::string& url) {
  std::string tmp = dataDir + "/server.json.tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << nlohmann::json{{"url", url}, {"pid", getpid()}}.dump() << "\n";
    if (!out) return errnoStatus("write " + tmp, errno);
  }
  std::error_code ec;
  fs::rename(tmp, dataDir + "/server.json", ec);
  if (ec) return internalError("rename server.json: " + ec.message());
  return Status::ok();
}

class NodeImpl : public Node {
 public:
  explicit NodeImpl(NodeOptions opts)
      : opts_(std::move(opts)),
        ioc_(opts_.ioThreads),
        storePool_(static_cast<size_t>(opts_.storeThreads)),
        slowPool_(static_cast<size_t>(opts_.blockingThreads)) {}
  ~NodeImpl() override { shutdown(); }

  Status init();

  // Node
  uint16_t port() const override { return api_->port(); }
  std::string url() const override { return url_; }
  std::string adminToken() const override { return token_; }
  void shutdown() override;
  void wait() override;

 private:
  void onStoreSignal(const store::StoreSignal& s);

  NodeOptions opts_;
  asio::io_context ioc_;
  BlockingPool storePool_;  // store calls only: never queued behind a clone
  BlockingPool slowPool_;   // clones, ls-remote, sandbox create/destroy, mounts
  events::EventBus bus_;
  std::unique_ptr<secrets::SecretBox> secretBox_;  // before store_: outlives it
  std::unique_ptr<store::Store> store_;
  std::unique_ptr<sandbox::egress::EgressProxy> egress_;  // before sandboxes_: outlives it
  std::unique_ptr<sandbox::Supervisor> sandboxes_;        // backends and warm pools
  std::unique_ptr<sandbox::ExecService> execService_;     // destroyed before sandboxes_
  std::unique_ptr<scheduler::Scheduler> scheduler_;
  std::unique_ptr<api::ApiServer> api_;
  std::unique_ptr<NodeMonitor> monitor_;
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work_;
  std::vector<std::thread> threads_;
  std::string token_;
  std::string url_;
  std::mutex mu_;
  std::condition_variable done_;
  bool stopped_ = false;  // GUARDED_BY(mu_)
};

Status NodeImpl::init() {
  std::error_code ec;
  fs::create_directories(opts_.dataDir, ec);
  if (ec) return internalError("create data dir " + opts_.dataDir + ": " + ec.message());
  ::chmod(opts_.dataDir.c_str(), 0700);
  // A call waits for a busy database well under a lease's lifetime, so a renewal fails (and is
  // retried next tick) instead of outliving the lease.
  const int busyMs = static_cast<int>(std::clamp<int64_t>(opts_.leaseMs / 4, 100, 2'000));
  ASSIGN_OR_RETURN(secretBox_, secrets::SecretBox::load(opts_.dataDir));
  ASSIGN_OR_RETURN(store_, store::Store::open({opts_.storeUrl, busyMs}));
  // Every job text this node stores passes the redaction of its job's secrets.
  store_ = std::make_unique<store::RedactingStore>(std::move(store_), *secretBox_);
  ASSIGN_OR_RETURN(tenancy::TokenKey key, tenancy::TokenKey::load(opts_.dataDir, opts_.tokenKey));
  RETURN_IF_ERROR(tenancy::checkStoreKey(*store_, key));
  ASSIGN_OR_RETURN(token_, ensureAdminToken(opts_.dataDir, *store_, key));
  // One egress proxy on the I/O threads serves every sandbox of the node in allowlist mode.
  // It intercepts TLS only to the hosts of jobs' proxy-mode secrets, with the node's own CA.
  ASSIGN_OR_RETURN(auto interceptCa,
                   sandbox::egress::InterceptCa::loadOrCreate(opts_.dataDir + "/egress-ca"));
  egress_ = sandbox::egress::newEgressProxy(ioc_.get_executor(), std::move(interceptCa));
  const sandbox::NamespaceBackendOptions sandboxOpts{opts_.dataDir + "/sandboxes", opts_.kilnBinary,
                                                     egress_.get(), opts_.dataDir + "/images",
                                                     opts_.sandboxUserNamespace};
  sandbox::SupervisorOptions supervisorOpts;
  supervisorOpts.defaultBackend = opts_.sandboxBackend;
  supervisorOpts.ns = sandboxOpts;
  supervisorOpts.gvisor = {opts_.dataDir + "/sandboxes", opts_.kilnBinary, egress_.get(),
                           opts_.runsc, opts_.gvisorPlatform};
  supervisorOpts.pools = opts_.warmPools;
  ASSIGN_OR_RETURN(sandboxes_, sandbox::Supervisor::start(std::move(supervisorOpts)));
  for (const std::string& l : sandboxes_->limitations()) spdlog::warn("sandbox: {}", l);
  // `kiln sandbox exec` on this data dir takes its sandbox from here (its pools, its probed
  // backends); without the socket it runs a backend of its own, so a failure only warns.
  Result<std::unique_ptr<sandbox::ExecService>> execService = sandbox::ExecService::start(
      *sandboxes_, opts_.dataDir + "/sandbox.sock", opts_.dataDir + "/exec-workspaces");
  if (execService) {
    execService_ = std::move(execService).value();
  } else {
    spdlog::warn("sandbox socket: {}", execService.status().toString());
  }

  agent::RunnerDeps deps;
  deps.store = store_.get();
  deps.secretBox = secretBox_.get();
  deps.bus = &bus_;
  deps.pool = &storePool_;
  deps.slowPool = &slowPool_;
  deps.maxAttempts = opts_.maxAttempts;
  deps.backend = sandboxes_->backend(sandboxes_->defaultBackend());
  deps.sandboxes = sandboxes_.get();
  deps.clock = &RealClock::instance();
  deps.nodeId = opts_.nodeId;
  deps.workspacesDir = opts_.dataDir + "/workspaces";
  deps.reposDir = opts_.dataDir + "/repos";
  deps.gatewaysDir = opts_.dataDir + "/gateways";
  // A node killed mid-job leaves its workspace mounts behind: drop them; resumed jobs remount.
  const workspace::Workspaces workspaces(deps.workspacesDir, deps.reposDir);
  if (int n = workspaces.releaseAll(); n > 0) {
    spdlog::info("unmounted {} workspaces left by a previous run", n);
  }
  collectWorkspaces(workspaces, *store_, RealClock::instance().nowMs());
  deps.defaultLimits = opts_.defaultLimits;
  deps.agentUid = sandbox::agentHostUid(sandboxOpts);
  scheduler_ = std::make_unique<scheduler::Scheduler>(
      ioc_, deps, scheduler::SchedulerOptions{opts_.nodeId, opts_.maxJobs, opts_.leaseMs, 1000});

  // Changes other nodes commit (PostgreSQL NOTIFY) reach this node's SSE readers and claim
  // loop at once instead of at their next poll.
  store_->watch([this](const store::StoreSignal& s) { onStoreSignal(s); });

  api::ApiOptions apiOpts;
  apiOpts.listen = opts_.listen;
  apiOpts.metricsListen = opts_.metricsListen;
  apiOpts.allowLocalRepos = opts_.allowLocalRepos;
  apiOpts.maxStreamsPerToken = opts_.maxStreamsPerToken;
  apiOpts.dataDir = opts_.dataDir;
  apiOpts.tokenKey = key.secret();
  ASSIGN_OR_RETURN(api_, api::ApiServer::start(ioc_, apiOpts,
                                               {store_.get(), &bus_, scheduler_.get(), &storePool_,
                                                &RealClock::instance(), &slowPool_,
                                                sandboxes_.get(), secretBox_.get()}));
  std::string host = opts_.listen.substr(0, opts_.listen.rfind(':'));
  if (host.empty() || host == "0.0.0.0") host = "127.0.0.1";
  url_ = "http://" + host + ":" + std::to_string(api_->port());
  RETURN_IF_ERROR(writeServerJson(opts_.dataDir, url_));

  monitor_ = std::make_unique<NodeMonitor>(
      ioc_, *store_, storePool_, *scheduler_,
      NodeMonitorOptions{opts_.nodeId, url_, opts_.version, opts_.dataDir, opts_.maxJobs,
                         opts_.heartbeatMs, opts_.minFreeDiskMb, opts_.minFreeMemoryMb,
                         opts_.drainTimeoutMs});

  work_.emplace(ioc_.get_executor());
  for (int i = 0; i < opts_.ioThreads; ++i) threads_.emplace_back([this] { ioc_.run(); });
  monitor_->start();
  scheduler_->start();
  spdlog::info("kiln node {} listening on {} (data dir {}, max {} jobs)", opts_.nodeId, url_,
               opts_.dataDir, opts_.maxJobs);
  return Status::ok();
}

void NodeImpl::onStoreSignal(const store::StoreSignal& s) {
  switch (s.kind) {
    case store::StoreSignal::Kind::kEvents:
      bus_.publish(s.id);
      break;
    case store::StoreSignal::Kind::kWork:
      scheduler_->wake();
      break;
    case store::StoreSignal::Kind::kStopped:
      scheduler_->stopped(s.id);
      break;
    case store::StoreSignal::Kind::kDrain:
      if (s.id == opts_.nodeId && monitor_) monitor_->beat();
      break;
    case store::StoreSignal::Kind::kResync:
      bus_.publishAll();
      scheduler_->wake();
      break;
  }
}

void NodeImpl::shutdown() {
  {
    std::lock_guard lock(mu_);
    if (stopped_) return;
    stopped_ = true;
  }
  if (monitor_ && scheduler_) {
    // Stop claiming and let running jobs finish for the drain timeout (the API keeps serving
    // their streams meanwhile); whatever still runs then hands over at a step boundary below.
    scheduler_->drain(opts_.drainTimeoutMs);
    monitor_->reportDraining();
    if (opts_.drainTimeoutMs > 0 && !scheduler_->waitIdle(opts_.drainTimeoutMs)) {
      spdlog::info("drain timeout: handing running jobs over to other nodes");
    }
    monitor_->stop();
  }
  if (store_) store_->watch(nullptr);  // no signal reaches the parts torn down below
  if (api_) api_->stop();
  if (scheduler_) scheduler_->shutdown();
  bus_.publishAll();
  work_.reset();
  ioc_.stop();
  for (auto& t : threads_)
    if (t.joinable()) t.join();
  // No job holds a sandbox any more: the warm pools' idle ones go now, not with the process.
  execService_.reset();
  sandboxes_.reset();
  // No job runs any more: unmount the workspaces of runs that did not get to end.
  (void)workspace::Workspaces(opts_.dataDir + "/workspaces", "").releaseAll();
  std::error_code ec;
  fs::remove(opts_.dataDir + "/server.json", ec);
  done_.notify_all();
}

void NodeImpl::wait() {
  std::unique_lock lock(mu_);
  done_.wait(lock, [this] { return stopped_; });
}

std::string hostname() {
  char buf[256] = {0};
  gethostname(buf, sizeof buf - 1);
  return buf[0] ? buf : "node";
}

}  // namespace

std::string defaultDataDir() {
  if (const char* d = getenv("KILN_DATA_DIR"); d && *d) return d;
  if (const char* x = getenv("XDG_DATA_HOME"); x && *x) return std::string(x) + "/kiln";
  const char* home = getenv("HOME");
  return std::string(home && *home ? home : "/root") + "/.local/share/kiln";
}

Status resolveDefaults(NodeOptions& o) {
  if (o.dataDir.empty()) o.dataDir = defaultDataDir();
  std::error_code ec;
  fs::create_directories(o.dataDir, ec);
  o.dataDir = fs::absolute(o.dataDir, ec).lexically_normal().string();
  if (!o.dataDir.empty() && o.dataDir.back() == '/') o.dataDir.pop_back();
  if (o.storeUrl.empty()) o.storeUrl = "sqlite:" + o.dataDir + "/kiln.db";
  if (o.kilnBinary.empty()) {
    o.kilnBinary = fs::read_symlink("/proc/self/exe", ec).string();
    if (ec) return internalError("cannot find the kiln binary: " + ec.message());
  }
  if (o.ioThreads <= 0)
    o.ioThreads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  if (o.nodeId.empty()) o.nodeId = hostname() + "-" + randomToken(3);
  if (const char* l = getenv("KILN_LEASE_MS"); l && *l) o.leaseMs = std::atoll(l);
  if (const char* h = getenv("KILN_HEARTBEAT_MS"); h && *h) o.heartbeatMs = std::atoll(h);
  if (o.heartbeatMs <= 0) o.heartbeatMs = std::min<int64_t>(o.leaseMs / 3, 2'000);
  if (o.version.empty()) o.version = KILN_NODE_VERSION;
  if (o.leaseMs < 300) return invalidArgument("lease must be at least 300 ms");
  if (o.maxJobs <= 0) return invalidArgument("--max-jobs must be positive");
  if (o.maxAttempts <= 0) return invalidArgument("--max-attempts must be positive");
  if (o.listen.rfind(':') == std::string::npos) return invalidArgument("--listen needs HOST:PORT");
  return Status::ok();
}

Result<std::unique_ptr<Node>> Node::start(NodeOptions opts) {
  RETURN_IF_ERROR(resolveDefaults(opts));
  auto node = std::make_unique<NodeImpl>(std::move(opts));
  RETURN_IF_ERROR(node->init());
  return std::unique_ptr<Node>(std::move(node));
}

}  // namespace kiln::node
