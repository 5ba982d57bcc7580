// Store: the durable record of jobs, steps and events, and the API tokens. One interface, two
// engines: SQLite (default, sqlite/) and PostgreSQL (fleet, postgres/). All methods are
// blocking: call them from the BlockingPool, never from an I/O thread. Implementations are safe
// for concurrent use from many threads and from several processes sharing the same database.
#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/result.h"

namespace kiln::store {

using nlohmann::json;

enum class JobStatus { kQueued, kProvisioning, kRunning, kPaused, kCompleted, kFailed, kStopped };
const char* jobStatusName(JobStatus s);
std::optional<JobStatus> parseJobStatus(std::string_view s);
bool isTerminal(JobStatus s);

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
  std::string baseCommit;
  std::optional<std::string> pendingReply;  // a human's answer waiting for a PAUSED job
  // The tool call being executed right now ({stepNumber, toolCalled, toolArguments, …}), null
  // when none. Set before a call starts and cleared by the recordStep that stores its result,
  // so a call in flight when the node died is known on resume and never silently re-run.
  json inflightCall;
  // A human gate the job is paused at or has passed: {action: "commit"|"push", state:
  // "pending"|"approved"|"refused"}; null when none.
  json approval;
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
  int64_t tokensIn = 0;
  int64_t tokensOut = 0;
  double usd = 0;
  int64_t executedAt = 0;
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
  bool releaseLease = false;  // clears owner_node and lease_expires_at
  std::vector<JobStatus> ifStatusIn;   // empty = any status
  std::optional<std::string> ifOwner;  // only while this node holds the lease
  std::vector<NewEvent> events;
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
  // "sqlite:/path/to/kiln.db" or a bare path (SQLite); "postgres://..." (PostgreSQL).
  std::string url;
};

class Store {
 public:
  virtual ~Store() = default;
  // Opens the engine the URL names and applies pending schema migrations.
  static Result<std::unique_ptr<Store>> open(const StoreOptions& opts);

  virtual Status createJob(const Job& job, const std::vector<NewEvent>& events) = 0;
  // NotFound if the job does not exist or belongs to another tenant (empty tenant = any).
  virtual Result<Job> getJob(const std::string& jobId, const std::string& tenantId = "") = 0;
  virtual Result<JobPage> listJobs(const std::string& tenantId, std::optional<JobStatus> status,
                                   int limit, const std::string& cursor) = 0;
  virtual Result<UpdateResult> updateJob(const std::string& jobId, const JobUpdate& update) = 0;

  // Claims one job that is QUEUED, or whose lease expired while non-terminal and not PAUSED
  // without a reply, oldest first; sets owner and lease. Empty optional if none.
  virtual Result<std::optional<Job>> claimJob(const std::string& nodeId, int64_t nowMs,
                                              int64_t leaseMs) = 0;
  // Extends the lease; false if this node no longer holds it.
  virtual Result<bool> renewLease(const std::string& jobId, const std::string& nodeId,
                                  int64_t nowMs, int64_t leaseMs) = 0;

  // Writes a step, adds its tokens/usd to the job's counters, clears the in-flight call and
  // appends events, in one transaction, only while `nodeId` holds the lease (empty nodeId = no check). Conflict if the
  // lease is gone or the step number exists.
  virtual Result<std::vector<Event>> recordStep(const Step& step, const std::string& nodeId,
                                                const std::vector<NewEvent>& events) = 0;
  virtual Result<std::vector<Step>> listSteps(const std::string& jobId) = 0;
  // The newest stored workspace patch of a job ("" if none).
  virtual Result<std::string> latestPatch(const std::string& jobId) = 0;

  // Appends events to a job outside any other change.
  virtual Result<std::vector<Event>> appendEvents(const std::string& jobId,
                                                  const std::vector<NewEvent>& events) = 0;
  // Events with seq > afterSeq, at most `limit`, in order.
  virtual Result<std::vector<Event>> listEvents(const std::string& jobId, int64_t afterSeq,
                                                int limit) = 0;

  // API tokens: only the SHA-256 of a token is stored.
  virtual Status ensureTenant(const std::string& tenantId, const std::string& name) = 0;
  virtual Status addToken(const std::string& tokenHash, const std::string& tenantId) = 0;
  // The tenant of a live token, NotFound otherwise.
  virtual Result<std::string> tenantForToken(const std::string& tokenHash) = 0;
};

}  // namespace kiln::store
