// Node: one running kiln server process — the composition root that wires store, blocking pool,
// I/O threads, event bus, scheduler, sandbox backend and API. `kiln serve` runs one; `kiln run`
// without a server starts one embedded. Thread-safe.
#pragma once
#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "api/request/job_spec.h"
#include "common/result.h"
#include "sandbox/pool.h"

namespace kiln::node {

struct NodeOptions {
  std::string listen = "127.0.0.1:8080";  // HOST:PORT; port 0 picks a free one
  std::string metricsListen;              // HOST:PORT serving /metrics without a token
  // Local repository paths are accepted only under these (ApiOptions::allowLocalRepos).
  std::vector<std::string> allowLocalRepos;
  int maxStreamsPerToken = 16;  // open event streams per API token (ApiOptions)
  std::string dataDir;      // default ~/.local/share/kiln
  std::string storeUrl;     // default sqlite:<dataDir>/kiln.db
  // The key API tokens are hashed with (tenancy::TokenKey): the same on every node of a fleet;
  // empty: <dataDir>/token.key, made on first start.
  std::string tokenKey;
  int maxJobs = 64;         // jobs running at once on this node
  int ioThreads = 0;        // 0 = one per core
  int storeThreads = 4;     // the pool for store calls (short)
  int blockingThreads = 8;  // the pool for slow work: clones, sandbox create/destroy, mounts
  std::string nodeId;       // default <hostname>-<random>
  std::string kilnBinary;   // default /proc/self/exe
  int64_t leaseMs = 10'000;
  // Fleet: how often this node writes its row in the nodes table ($KILN_HEARTBEAT_MS; default
  // the lease TTL / 3, at most 2 s); a draining node's jobs hand over to other nodes after
  // drainTimeoutMs; it claims only while its data dir's disk and its memory stay above these.
  int64_t heartbeatMs = 0;
  int64_t drainTimeoutMs = 0;
  int64_t minFreeDiskMb = 512;
  int64_t minFreeMemoryMb = 256;
  std::string version;  // reported in the nodes table; default the build's
  // Runs of one job that may fail unexpectedly before it is FAILED (RunnerDeps::maxAttempts).
  int maxAttempts = 3;
  // Limits for jobs that do not set them (the schema is api::request::JobLimits); unset fields
  // keep the built-in defaults.
  api::request::JobLimits defaultLimits;
  // As root: each sandbox gets a user namespace too (NamespaceBackendOptions::userNamespace).
  bool sandboxUserNamespace = false;
  // The backend of jobs that name none: "namespace" or "gvisor" (sandbox/supervisor.h).
  std::string sandboxBackend = "namespace";
  std::string gvisorPlatform = "auto";
  std::string runsc;  // the runsc binary; empty: found on PATH
  // Warm pools to keep filled; start() fails, saying why, when one cannot be filled.
  std::vector<sandbox::WarmPoolConfig> warmPools;
};

// Resolves defaults (data dir, store URL, binary path) in place.
Status resolveDefaults(NodeOptions& opts);
// Default data dir: $KILN_DATA_DIR, else $XDG_DATA_HOME/kiln, else ~/.local/share/kiln.
std::string defaultDataDir();

class Node {
 public:
  virtual ~Node() = default;
  // Starts everything and returns once the API listens. Writes <dataDir>/admin.token (0600) on
  // first start and registers it (an admin token of the operator tenant "default"), and writes
  // <dataDir>/server.json ({"url": "http://host:port", "pid": N}). Fails when the store's
  // tokens were hashed with another token key (tenancy/tokens.h).
  static Result<std::unique_ptr<Node>> start(NodeOptions opts);

  virtual uint16_t port() const = 0;
  virtual std::string url() const = 0;  // http://host:port
  virtual std::string adminToken() const = 0;
  // Graceful: stop claiming, stop jobs at a step boundary (bounded), release leases, stop I/O.
  virtual void shutdown() = 0;
  // Blocks until shutdown() completes.
  virtual void wait() = 0;
};

}  // namespace kiln::node
