// Store: the durable record of jobs, steps and events, and the API tokens. One interface for
// every engine (SQLite in sqlite/; each engine implements the contracts written on the methods
// below, and nothing here is specific to one). All methods are blocking: call them from the
// store's BlockingPool, never from an I/O thread. Implementations are safe for concurrent use
// from many threads and from several processes (nodes) sharing the same database. No method
// throws: every failure is a Status (Unavailable for a busy or unreachable database, which a
// caller may retry; Conflict for a failed condition such as a stale lease).
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"

namespace kiln::store {

using nlohmann::json;

enum class JobStatus { kQueued, kProvisioning, kRunning, kPaused, kCompleted, kFailed, kStopped };
const char* jobStatusName(JobStatus s);
std::optional<JobStatus> parseJobStatus(std::string_view s);
bool isTerminal(JobStatus s);

// The fencing token of a running job: the node that claimed it and the epoch of that claim.
// Every claim of a job increments its epoch, so a node whose job was claimed by another (its
// lease lapsed while it was frozen or cut off) holds a stale epoch, and the store refuses every
// write it attempts with that lease. A job's runner passes its Lease with every write.
struct Lease {
  std::string nodeId;
  int64_t epoch = 0;
  bool operator==(const Lease&) const = default;
};

// One claim of a job, from the owner-change log that claimJob appends to: (job, epoch) is
// unique, and a job's epochs are 1, 2, 3, ... in claim order.
struct LeaseClaim {
  std::string jobId;
  int64_t epoch = 0;
  std::string nodeId;
  int64_t claimedAt = 0;  // ms since epoch (the claimer's clock)
};

struct Job {
  std::string id;
  std::string tenantId = "default";
  std::string repoUrl;
  std::string ref;  // empty = remote HEAD
  std::string taskDesc;
  std::string agent = "mock";
  std::string model;
  JobStatus status = JobStatus::kQueued;
  json limits = json::object();  // {maxSteps, maxUsd, maxTokens, maxWallSeconds}
  json spec = json::object();    // {sandbox:{...}, approvals, push, command, ...}
  int64_t createdAt = 0;         // ms since epoch
  int64_t updatedAt = 0;
  int64_t startedAt = 0;  // first RUNNING, 0 = never
  double tokenSpendUsd = 0;
  int64_t tokensIn = 0;
  int64_t tokensOut = 0;
  int stepCount = 0;
  json error;  // null, or {code, message, ...}
  std::string ownerNode;
  int64_t leaseExpiresAt = 0;
  int64_t leaseEpoch = 0;  // incremented by every claim; 0 = never claimed
  // Runs of this job that ended in an unexpected failure (store error, an exception, stored
  // state the runner could not read). The runner fails the job once it reaches the node's
  // maximum instead of retrying it again.
  int attempts = 0;
  std::string baseCommit;
  std::optional<std::string> pendingReply;  // a human's answer waiting for a PAUSED job
  // The tool call being executed right now ({stepNumber, toolCalled, toolArguments, …}), null
  // when none. Set before a call starts and cleared by the recordStep that stores its result,
  // so a call in flight when the node died is known on resume and never silently re-run.
  json inflightCall;
  // A human gate the job is paused at or has passed: {action: "commit"|"push", state:
  // "pending"|"approved"|"refused"}; null when none.
  json approval;
  // The newest run of the job's verify command: {passed, exitCode, outputTail}; null when none.
  json verify;
  // The job's secrets, sealed ([{name, mode, hosts, sealed}], secrets/secrets.h); null when
  // none. Set by createJob only; never a value in the clear.
  json secrets;
};

struct Step {
  std::string id;  // filled by recordStep if empty
  std::string jobId;
  int stepNumber = 0;
  std::string phase = "acting";  // "planning" | "acting"
  std::string plannerThought;
  std::string toolCalled;
  json toolArguments = json::object();
  std::string toolOutput;
  std::string workspaceHash;
  std::optional<std::string> workspacePatch;  // set when the workspace changed
  // How the tool call went, as the runner saw it (the loop detector is rebuilt from these on a
  // resume): the call failed, the command's exit code (bash only), and whether the call tried
  // to change the workspace.
  bool isError = false;
  int exitCode = 0;
  bool mutating = false;
  int64_t tokensIn = 0;
  int64_t tokensOut = 0;
  double usd = 0;
  int64_t executedAt = 0;
  // The model's call as it made it, so the history sent back is the model's own: the
  // provider's call id ("" in steps stored before ids were kept: "step-N" stands in), the
  // call's place among its turn's parallel calls (0: the first, which carries the turn's
  // thought and tokens), and the arguments' original JSON text ("" when not kept).
  std::string callId;
  int callIndex = 0;
  std::string rawArguments;
  bool refusal = false;  // the model refused: plannerThought is the refusal
  // A bash call in the job's session shell: the shell's state after it ({cwd, env}), so a
  // resumed job's new shell starts from the newest one; null otherwise.
  json shellState;
};

struct Event {
  std::string jobId;
  int64_t seq = 0;  // per job, 1, 2, 3, ... with no gaps
  std::string type;  // status | step | terminal | diff | question | error | done
  json payload;
  int64_t createdAt = 0;
};

// An event to append; the store assigns seq inside the same transaction as the change it goes
// with.
struct NewEvent {
  std::string type;
  json payload;
};

// A conditional change to one job. Applied atomically with `events` only if every condition
// holds.
struct JobUpdate {
  std::optional<JobStatus> status;
  std::optional<json> error;
  std::optional<std::string> baseCommit;
  std::optional<std::string> pendingReply;  // sets it
  bool clearPendingReply = false;
  std::optional<json> inflightCall;  // sets it (json() clears it)
  std::optional<json> approval;      // sets it (json() clears it)
  bool markStarted = false;   // sets startedAt if it is 0
  bool releaseLease = false;  // clears owner_node and lease_expires_at (the epoch stays)
  bool addAttempt = false;    // attempts = attempts + 1
  // Sets the job's verify result (json() clears it).
  std::optional<json> verify;
  std::vector<JobStatus> ifStatusIn;  // empty = any status
  // Only while this lease holds: the job's owner_node and lease_epoch equal it. Every write of a
  // job's runner sets it; the API's own writes (stop, reply, continue) do not.
  std::optional<Lease> ifLease;
  std::vector<NewEvent> events;
};

// A job this node runs under a lease, for renewLeases.
struct HeldLease {
  std::string jobId;
  int64_t epoch = 0;
};

// Jobs of one status across all tenants, with their summed counters (for /metrics).
struct JobTotals {
  JobStatus status = JobStatus::kQueued;
  int64_t jobs = 0;
  int64_t tokensIn = 0;
  int64_t tokensOut = 0;
  double usd = 0;
};

struct UpdateResult {
  bool applied = false;
  std::vector<Event> events;  // with their assigned seq
};

struct JobPage {
  std::vector<Job> jobs;
  std::string nextCursor;  // empty = no more
};

struct StoreOptions {
  // "sqlite:/path/to/kiln.db" or a bare path (SQLite).
  std::string url;
  // How long one call may wait for a database another process or connection holds before it
  // fails with Unavailable. Keep it well below the lease TTL: a renewal stuck behind a busy
  // database must fail (and be retried next tick) rather than outlive the lease it renews.
  int busyTimeoutMs = 2'000;
};

// A tenant-wide secret (`kiln secret set`): its value sealed with the node's key
// (secrets/secret_box.h). A job takes its tenant's secrets as they are when it is created.
struct TenantSecret {
  std::string tenantId;
  std::string name;
  std::string mode = "env";        // "env" | "proxy"
  std::vector<std::string> hosts;  // proxy mode: where the value may go
  std::string sealed;
  int64_t createdAt = 0;  // ms since epoch
  int64_t updatedAt = 0;
};

// One kiln node of the fleet as it last reported itself (its heartbeat).
struct NodeRecord {
  std::string id;
  std::string address;  // its API URL
  std::string version;
  int64_t startedAt = 0;    // ms since epoch
  int64_t heartbeatAt = 0;  // ms since epoch, the node's clock
  int runningJobs = 0;
  int maxJobs = 0;
  bool claiming = true;   // it takes new jobs: a free slot, enough disk and memory, not draining
  bool draining = false;  // it stopped claiming for good (a drain was asked, or it shuts down)
  json figures = json::object();  // {diskFreeBytes, memAvailableBytes, blockedBy, ...}
};

// What a bearer token may do in its tenant (docs/api.md, "Tenants, tokens and roles"): a viewer
// reads, a member also creates and steers jobs, an admin also manages its tenant's tokens.
enum class Role { kViewer, kMember, kAdmin };
const char* roleName(Role r);
std::optional<Role> parseRole(std::string_view s);

// The tenant that runs the node: its admin tokens are the operator's (nodes, quotas, other
// tenants' tokens). `kiln serve` registers its admin.token in it.
inline constexpr const char* kOperatorTenant = "default";

// An API token as listed: never its secret, nor the keyed hash of it the store keeps.
struct ApiToken {
  std::string id;  // public, "tok_" + 16 hex
  std::string tenantId;
  std::string name;
  Role role = Role::kMember;
  int64_t createdAt = 0;  // ms since epoch
  int64_t revokedAt = 0;  // 0 = live
};

// What a live token grants.
struct TokenGrant {
  std::string tokenId;
  std::string tenantId;
  Role role = Role::kViewer;
};

// A tenant's quotas; an unset one is unlimited.
struct TenantQuota {
  std::optional<int64_t> maxRunning;   // jobs that may run at once
  std::optional<int64_t> jobsPerHour;  // jobs created in any 60 minutes
  std::optional<double> usdPerDay;     // model spend of its steps per UTC day
};

// What a tenant uses now, as its quotas count it.
struct TenantUsage {
  int64_t running = 0;       // jobs a node holds a live lease on (it runs them)
  int64_t active = 0;        // unfinished jobs that run or wait to: running + claimable
  int64_t jobsLastHour = 0;  // jobs created in the last 60 minutes
  int64_t oldestInHour = 0;  // created_at of the oldest of those (0: none)
  double usdToday = 0;       // spend of steps recorded since 00:00 UTC
};

// A quota a request would exceed.
struct QuotaBreach {
  std::string quota;  // "maxRunning" | "jobsPerHour" | "usdPerDay"
  double limit = 0;
  double used = 0;
  int64_t retryAfterSeconds = 1;  // when trying again may succeed (a hint for maxRunning)
  std::string message;
};

// The first quota of `quota` that one more job (newJob: a new job, counted by jobsPerHour too;
// else a job made to run again) would exceed with `usage`, at nowMs; nullopt when none.
std::optional<QuotaBreach> quotaBreach(const std::string& tenantId, const TenantQuota& quota,
                                       const TenantUsage& usage, bool newJob, int64_t nowMs);
// The UTC day of a time in ms since epoch (days since 1970-01-01).
inline int64_t utcDay(int64_t ms) { return ms / 86'400'000; }

// A change another node may need to act on at once, sent to every node sharing the store
// (PostgreSQL: LISTEN/NOTIFY, delivered when the change commits). Only a hint: the store stays
// the source of truth, and nodes still poll.
struct StoreSignal {
  enum class Kind {
    kWork,     // a job became claimable (id = the job)
    kEvents,   // a job has events up to seq (id = the job)
    kStopped,  // a job was stopped (id = the job): the node running it kills it
    kDrain,    // a drain was requested (id = the node)
    kResync,   // signals may have been lost (the listener reconnected): re-check everything
  };
  Kind kind;
  std::string id;
  int64_t seq = 0;
};
using SignalHandler = std::function<void(const StoreSignal&)>;

class Store {
 public:
  virtual ~Store() = default;
  // Opens the engine the URL names and applies pending schema migrations. The engine comes
  // wrapped by guardStore (store/store_decorator.h): an exception inside it becomes a status.
  static Result<std::unique_ptr<Store>> open(const StoreOptions& opts);

  // Inserts a new job (status, counters and lease as given, normally QUEUED and empty) with
  // `events` (seq 1, 2, ...) in one transaction. Conflict if the id exists.
  virtual Status createJob(const Job& job, const std::vector<NewEvent>& events) = 0;
  // NotFound if the job does not exist or belongs to another tenant (empty tenant = any).
  virtual Result<Job> getJob(const std::string& jobId, const std::string& tenantId = "") = 0;
  // Newest first (created_at, then job_id, descending); `cursor` is the page's nextCursor.
  // InvalidArgument for a malformed cursor.
  virtual Result<JobPage> listJobs(const std::string& tenantId, std::optional<JobStatus> status,
                                   int limit, const std::string& cursor) = 0;
  // Applies `update` and appends its events atomically, only if every condition holds
  // (ifStatusIn, ifLease); otherwise changes nothing and returns applied = false. NotFound if
  // the job does not exist. Every applied update sets updated_at.
  virtual Result<UpdateResult> updateJob(const std::string& jobId, const JobUpdate& update) = 0;

  // Claims the oldest (created_at) job that is QUEUED, PROVISIONING or RUNNING, or PAUSED with a
  // pending reply, and has no owner or an owner whose lease expired (lease_expires_at < nowMs).
  // In one transaction: owner_node = nodeId, lease_expires_at = nowMs + leaseMs,
  // lease_epoch = lease_epoch + 1, and a LeaseClaim row appended to the owner-change log. The
  // returned Job carries the new epoch (its Lease is {nodeId, leaseEpoch}). Two nodes claiming
  // at once never get the same job. A job whose tenant runs as many jobs as its maxRunning
  // quota (jobs other nodes hold a live lease on included), or spent its usdPerDay today, is
  // not claimable: claims of one tenant's jobs are serialised, so nodes claiming at once never
  // start more than the quota together. Empty optional if nothing is claimable.
  virtual Result<std::optional<Job>> claimJob(const std::string& nodeId, int64_t nowMs,
                                              int64_t leaseMs) = 0;
  // One call per renewal tick for all of a node's jobs: in one transaction, sets
  // lease_expires_at = nowMs + leaseMs on every listed job whose owner_node is `nodeId` and
  // lease_epoch the listed epoch. Returns the ids of the listed jobs it did not renew (the lease
  // is gone: released, or claimed by another node); their runners must stop writing at once.
  virtual Result<std::vector<std::string>> renewLeases(const std::string& nodeId,
                                                       const std::vector<HeldLease>& held,
                                                       int64_t nowMs, int64_t leaseMs) = 0;
  // The owner-change log of a job, oldest claim first.
  virtual Result<std::vector<LeaseClaim>> leaseHistory(const std::string& jobId) = 0;

  // Writes a step, adds its tokens/usd to the job's counters (and its usd to its tenant's spend
  // of the step's UTC day), sets step_count to at least its
  // number, clears the in-flight call and appends `events`, in one transaction, only while
  // `lease` holds (owner_node and lease_epoch match). Conflict if the lease does not hold or
  // the step number exists (nothing is written then).
  virtual Result<std::vector<Event>> recordStep(const Step& step, const Lease& lease,
                                                const std::vector<NewEvent>& events) = 0;
  // Every step of a job, by step number.
  virtual Result<std::vector<Step>> listSteps(const std::string& jobId) = 0;
  // The newest stored workspace patch of a job ("" if none).
  virtual Result<std::string> latestPatch(const std::string& jobId) = 0;

  // Appends events (terminal output) to a job outside any other change, in one transaction,
  // only while `lease` holds; Conflict (nothing written) when it does not.
  virtual Result<std::vector<Event>> appendEvents(const std::string& jobId, const Lease& lease,
                                                  const std::vector<NewEvent>& events) = 0;
  // Events with seq > afterSeq, at most `limit`, in order.
  virtual Result<std::vector<Event>> listEvents(const std::string& jobId, int64_t afterSeq,
                                                int limit) = 0;

  // Jobs per status across all tenants with summed tokens and spend: one aggregate query
  // (COUNT/SUM ... GROUP BY status), never a scan in the caller. Statuses without jobs are
  // left out.
  virtual Result<std::vector<JobTotals>> jobTotals() = 0;

  // Inserts a new job like createJob, only if one more job keeps its tenant within its quotas
  // (quotaBreach with newJob) at nowMs: the check and the insert are atomic, so submissions of
  // one tenant on many nodes at once never pass a quota together. Returns the breach instead
  // (nothing written) when one is exceeded.
  virtual Result<std::optional<QuotaBreach>> createJobWithinQuota(
      const Job& job, const std::vector<NewEvent>& events, int64_t nowMs) = 0;

  // Tenants and API tokens. Only a keyed hash of a token is stored (tenancy/tokens.h).
  virtual Status ensureTenant(const std::string& tenantId, const std::string& name) = 0;
  // NotFound for an unknown tenant.
  virtual Status getTenant(const std::string& tenantId) = 0;
  // Registers a token's hash with token.id, tenantId, name, role and createdAt. A hash already
  // stored is left as it is (revoked or not): registering the same token again is a no-op.
  virtual Status addToken(const std::string& tokenHash, const ApiToken& token) = 0;
  // What a live token grants; Unauthenticated for an unknown or revoked one.
  virtual Result<TokenGrant> tokenGrant(const std::string& tokenHash) = 0;
  // Tokens of one tenant ("" = every tenant), oldest first.
  virtual Result<std::vector<ApiToken>> listTokens(const std::string& tenantId) = 0;
  // Sets revokedAt = nowMs unless already revoked; returns the token. NotFound for an unknown
  // id or one of another tenant (tenantId "" = any).
  virtual Result<ApiToken> revokeToken(const std::string& tokenId, const std::string& tenantId,
                                       int64_t nowMs) = 0;
  // A setting shared by every node of the store: stores `value` under `name` unless one is
  // stored already, and returns the stored one.
  virtual Result<std::string> ensureSetting(const std::string& name, const std::string& value) = 0;

  // Quotas. setQuota replaces the tenant's quotas (NotFound for an unknown tenant); getQuota
  // returns them (all unset when never set); tenantUsage counts what the tenant uses at nowMs.
  virtual Status setQuota(const std::string& tenantId, const TenantQuota& quota) = 0;
  virtual Result<TenantQuota> getQuota(const std::string& tenantId) = 0;
  virtual Result<TenantUsage> tenantUsage(const std::string& tenantId, int64_t nowMs) = 0;

  // Tenant secrets. putSecret inserts or replaces (tenant, name), keeping createdAt of the
  // row it replaces; listSecrets returns a tenant's secrets by name; deleteSecret: NotFound
  // when the tenant has no secret of that name.
  virtual Status putSecret(const TenantSecret& secret) = 0;
  virtual Result<std::vector<TenantSecret>> listSecrets(const std::string& tenantId) = 0;
  virtual Status deleteSecret(const std::string& tenantId, const std::string& name) = 0;

  // Fleet nodes. heartbeatNode inserts or replaces the node's row (all but the drain request)
  // and returns whether a drain was requested for it; it also drops rows whose heartbeat is
  // older than a day. listNodes: every row, by id. requestDrain marks a node to drain (it
  // acts at its next heartbeat, or at once on the kDrain signal); NotFound for an unknown id.
  virtual Result<bool> heartbeatNode(const NodeRecord& node) = 0;
  virtual Result<std::vector<NodeRecord>> listNodes() = 0;
  virtual Status requestDrain(const std::string& nodeId) = 0;

  // Delivers the signals of every node sharing the store (this one included) to `handler`, on
  // a thread of the store's, until the store is destroyed or watch(nullptr) (which returns once
  // no handler runs any more). Engines without cross-process signals (SQLite) deliver none:
  // in-process wake-ups go through the event bus.
  virtual void watch(SignalHandler handler) {}
};

}  // namespace kiln::store
