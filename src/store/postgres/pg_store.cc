#include "store/postgres/pg_store.h"

#include <algorithm>
#include <set>

#include "common/clock.h"
#include "common/ids.h"
#include "store/postgres/pg_conn.h"
#include "store/postgres/pg_listener.h"
#include "store/postgres/pg_migrations.h"
#include "store/postgres/pg_queries.h"

namespace kiln::store {
namespace {

using postgres::Connection;
using postgres::ConnectionPool;
using postgres::inTransaction;
using postgres::Params;
using postgres::Rows;
namespace sql = postgres::sql;

json parseJsonColumn(const std::optional<std::string>& s, json fallback) {
  if (!s || s->empty()) return fallback;
  json j = json::parse(*s, nullptr, false);
  return j.is_discarded() ? fallback : j;
}

// One row of KILN_PG_JOB_COLUMNS.
Job readJob(const Rows& r, int row) {
  Job j;
  j.id = r.text(row, 0);
  j.tenantId = r.text(row, 1);
  j.repoUrl = r.text(row, 2);
  j.ref = r.text(row, 3);
  j.taskDesc = r.text(row, 4);
  j.agent = r.text(row, 5);
  j.model = r.text(row, 6);
  j.status = parseJobStatus(r.text(row, 7)).value_or(JobStatus::kFailed);
  j.limits = parseJsonColumn(r.optText(row, 8), json::object());
  j.spec = parseJsonColumn(r.optText(row, 9), json::object());
  j.createdAt = r.i64(row, 10);
  j.updatedAt = r.i64(row, 11);
  j.startedAt = r.i64(row, 12);
  j.tokenSpendUsd = r.f64(row, 13);
  j.tokensIn = r.i64(row, 14);
  j.tokensOut = r.i64(row, 15);
  j.stepCount = static_cast<int>(r.i64(row, 16));
  j.error = parseJsonColumn(r.optText(row, 17), json());
  j.ownerNode = r.text(row, 18);
  j.leaseExpiresAt = r.i64(row, 19);
  j.baseCommit = r.text(row, 20);
  j.pendingReply = r.optText(row, 21);
  j.inflightCall = parseJsonColumn(r.optText(row, 22), json());
  j.approval = parseJsonColumn(r.optText(row, 23), json());
  j.leaseEpoch = r.i64(row, 24);
  j.attempts = static_cast<int>(r.i64(row, 25));
  j.verify = parseJsonColumn(r.optText(row, 26), json());
  j.secrets = parseJsonColumn(r.optText(row, 27), json());
  return j;
}

bool claimable(JobStatus s) {
  return s == JobStatus::kQueued || s == JobStatus::kProvisioning || s == JobStatus::kRunning;
}

class PostgresStore : public Store {
 public:
  PostgresStore(const std::string& url, const PostgresOptions& opts)
      : pool_(url, opts.poolSize, opts.busyTimeoutMs), url_(url) {}
  ~PostgresStore() override { listener_.reset(); }

  Status init() {
    // A wrong or unreachable URL fails the start at once, with libpq's reason, instead of
    // waiting for the database the way a running node does.
    RETURN_IF_ERROR(postgres::Connection::open(url_).status());
    return postgres::migrate(pool_);
  }

  // Store
  Status createJob(const Job& job, const std::vector<NewEvent>& events) override;
  Result<Job> getJob(const std::string& jobId, const std::string& tenantId) override;
  Result<JobPage> listJobs(const std::string& tenantId, std::optional<JobStatus> status, int limit,
                           const std::string& cursor) override;
  Result<UpdateResult> updateJob(const std::string& jobId, const JobUpdate& update) override;
  Result<std::optional<Job>> claimJob(const std::string& nodeId, int64_t nowMs,
                                      int64_t leaseMs) override;
  Result<std::vector<std::string>> renewLeases(const std::string& nodeId,
                                               const std::vector<HeldLease>& held, int64_t nowMs,
                                               int64_t leaseMs) override;
  Result<std::vector<LeaseClaim>> leaseHistory(const std::string& jobId) override;
  Result<std::vector<Event>> recordStep(const Step& step, const Lease& lease,
                                        const std::vector<NewEvent>& events) override;
  Result<std::vector<Step>> listSteps(const std::string& jobId) override;
  Result<std::string> latestPatch(const std::string& jobId) override;
  Result<std::vector<Event>> appendEvents(const std::string& jobId, const Lease& lease,
                                          const std::vector<NewEvent>& events) override;
  Result<std::vector<Event>> listEvents(const std::string& jobId, int64_t afterSeq,
                                        int limit) override;
  Result<std::vector<JobTotals>> jobTotals() override;
  Result<std::optional<QuotaBreach>> createJobWithinQuota(const Job& job,
                                                          const std::vector<NewEvent>& events,
                                                          int64_t nowMs) override;
  Status ensureTenant(const std::string& tenantId, const std::string& name) override;
  Status getTenant(const std::string& tenantId) override;
  Status addToken(const std::string& tokenHash, const ApiToken& token) override;
  Result<TokenGrant> tokenGrant(const std::string& tokenHash) override;
  Result<std::vector<ApiToken>> listTokens(const std::string& tenantId) override;
  Result<ApiToken> revokeToken(const std::string& tokenId, const std::string& tenantId,
                               int64_t nowMs) override;
  Result<std::string> ensureSetting(const std::string& name, const std::string& value) override;
  Status setQuota(const std::string& tenantId, const TenantQuota& quota) override;
  Result<TenantQuota> getQuota(const std::string& tenantId) override;
  Result<TenantUsage> tenantUsage(const std::string& tenantId, int64_t nowMs) override;
  Status putSecret(const TenantSecret& secret) override;
  Result<std::vector<TenantSecret>> listSecrets(const std::string& tenantId) override;
  Status deleteSecret(const std::string& tenantId, const std::string& name) override;
  Result<bool> heartbeatNode(const NodeRecord& node) override;
  Result<std::vector<NodeRecord>> listNodes() override;
  Status requestDrain(const std::string& nodeId) override;
  void watch(SignalHandler handler) override;

 private:
  int64_t now() const { return RealClock::instance().nowMs(); }
  // Runs one statement outside a transaction, on a pooled connection; a statement that failed
  // because the connection broke runs again on a fresh one.
  Result<Rows> runOnce(const postgres::Query& q, const Params& p);
  // Locks the job's row and checks that `lease` holds (Conflict if not).
  Status checkLease(Connection& c, const std::string& jobId, const Lease& lease);
  // Inserts a job and its events in the caller's transaction.
  Status insertJob(Connection& c, const Job& job, const std::vector<NewEvent>& events);
  // Appends events in the caller's transaction (the job row is locked by the seq reservation).
  Result<std::vector<Event>> insertEvents(Connection& c, const std::string& jobId,
                                          const std::vector<NewEvent>& events);

  ConnectionPool pool_;
  const std::string url_;
  std::unique_ptr<postgres::Listener> listener_;
};

Result<Rows> PostgresStore::runOnce(const postgres::Query& q, const Params& p) {
  for (int attempt = 0;; ++attempt) {
    ASSIGN_OR_RETURN(auto c, pool_.acquire());
    auto r = c->run(q, p);
    if (r.isOk() || !c->retryable() || attempt >= 3) return r;
  }
}

Result<std::vector<Event>> PostgresStore::insertEvents(Connection& c, const std::string& jobId,
                                                       const std::vector<NewEvent>& events) {
  std::vector<Event> out;
  if (events.empty()) return out;
  const auto n = static_cast<int64_t>(events.size());
  ASSIGN_OR_RETURN(Rows seq, c.run(sql::kReserveSeqs, Params().text(jobId).i64(n)));
  if (seq.empty()) return notFound("job " + jobId + " not found");
  const int64_t first = seq.i64(0, 0) - n;
  json batch = json::array();
  const int64_t t = now();
  for (int64_t i = 0; i < n; ++i) {
    const NewEvent& e = events[static_cast<size_t>(i)];
    batch.push_back({{"t", e.type}, {"p", postgres::dumpJson(e.payload)}});
    out.push_back(Event{jobId, first + i + 1, e.type, e.payload, t});
  }
  ASSIGN_OR_RETURN(Rows ins,
                   c.run(sql::kInsertEvents, Params().text(jobId).i64(first).i64(t).json(batch)));
  return out;
}

Status PostgresStore::insertJob(Connection& c, const Job& job,
                                const std::vector<NewEvent>& events) {
  const int64_t t = job.createdAt ? job.createdAt : now();
  Params p;
  p.text(job.id).text(job.tenantId).text(job.repoUrl).text(job.ref).text(job.taskDesc);
  p.text(job.agent).text(job.model).text(jobStatusName(job.status)).json(job.limits);
  p.json(job.spec).i64(t).optText(job.pendingReply).json(job.secrets);
  RETURN_IF_ERROR(c.run(sql::kInsertJob, p).status());
  RETURN_IF_ERROR(insertEvents(c, job.id, events).status());
  if (claimable(job.status)) {
    RETURN_IF_ERROR(c.run(sql::kNotify, Params().text("kiln_work").text(job.id)).status());
  }
  return Status::ok();
}

Status PostgresStore::createJob(const Job& job, const std::vector<NewEvent>& events) {
  return inTransaction(pool_, [&](Connection& c) -> Status { return insertJob(c, job, events); });
}

TenantQuota readQuota(const Rows& r) {
  TenantQuota q;
  if (r.empty()) return q;
  if (!r.isNull(0, 0)) q.maxRunning = r.i64(0, 0);
  if (!r.isNull(0, 1)) q.jobsPerHour = r.i64(0, 1);
  if (!r.isNull(0, 2)) q.usdPerDay = r.f64(0, 2);
  return q;
}

Params usageParams(const std::string& tenantId, int64_t nowMs) {
  return Params().text(tenantId).i64(nowMs).i64(nowMs - 3'600'000).i64(utcDay(nowMs));
}

TenantUsage readUsage(const Rows& r) {
  return TenantUsage{r.i64(0, 0), r.i64(0, 1), r.i64(0, 2), r.i64(0, 3), r.f64(0, 4)};
}

Result<std::optional<QuotaBreach>> PostgresStore::createJobWithinQuota(
    const Job& job, const std::vector<NewEvent>& events, int64_t nowMs) {
  return inTransaction(pool_, [&](Connection& c) -> Result<std::optional<QuotaBreach>> {
    // The quota row's lock serialises the tenant's submissions and claims: the usage read
    // after it sees every one committed before.
    ASSIGN_OR_RETURN(Rows q, c.run(sql::kLockQuota, Params().text(job.tenantId)));
    if (!q.empty()) {
      ASSIGN_OR_RETURN(Rows u, c.run(sql::kTenantUsage, usageParams(job.tenantId, nowMs)));
      if (u.empty()) return internalError("tenant usage: no row");
      if (auto breach = quotaBreach(job.tenantId, readQuota(q), readUsage(u), true, nowMs)) {
        return breach;
      }
    }
    RETURN_IF_ERROR(insertJob(c, job, events));
    return std::optional<QuotaBreach>();
  });
}

Result<Job> PostgresStore::getJob(const std::string& jobId, const std::string& tenantId) {
  ASSIGN_OR_RETURN(Rows r, runOnce(sql::kGetJob, Params().text(jobId)));
  if (r.empty()) return notFound("job " + jobId + " not found");
  Job job = readJob(r, 0);
  if (!tenantId.empty() && job.tenantId != tenantId) return notFound("job " + jobId + " not found");
  return job;
}

Result<JobPage> PostgresStore::listJobs(const std::string& tenantId,
                                        std::optional<JobStatus> status, int limit,
                                        const std::string& cursor) {
  int64_t curTime = 0;
  std::string curId;
  if (!cursor.empty()) {
    auto colon = cursor.find(':');
    if (colon == std::string::npos || colon + 1 == cursor.size())
      return invalidArgument("bad cursor");
    char* end = nullptr;
    curTime = std::strtoll(cursor.substr(0, colon).c_str(), &end, 10);
    if (!end || *end) return invalidArgument("bad cursor");
    curId = cursor.substr(colon + 1);
  }
  Params p;
  p.text(tenantId).text(status ? jobStatusName(*status) : "").text(curId).i64(curTime);
  p.i64(limit + 1);
  ASSIGN_OR_RETURN(Rows r, runOnce(sql::kListJobs, p));
  JobPage page;
  for (int i = 0; i < r.size(); ++i) page.jobs.push_back(readJob(r, i));
  if (static_cast<int>(page.jobs.size()) > limit) {
    page.jobs.pop_back();
    const Job& last = page.jobs.back();
    page.nextCursor = std::to_string(last.createdAt) + ":" + last.id;
  }
  return page;
}

Result<UpdateResult> PostgresStore::updateJob(const std::string& jobId, const JobUpdate& u) {
  return inTransaction(pool_, [&](Connection& c) -> Result<UpdateResult> {
    ASSIGN_OR_RETURN(Rows r, c.run(sql::kLockJob, Params().text(jobId)));
    if (r.empty()) return notFound("job " + jobId + " not found");
    const Job job = readJob(r, 0);
    UpdateResult out;
    if (!u.ifStatusIn.empty() &&
        std::find(u.ifStatusIn.begin(), u.ifStatusIn.end(), job.status) == u.ifStatusIn.end()) {
      return out;
    }
    if (u.ifLease && (job.ownerNode != u.ifLease->nodeId || job.leaseEpoch != u.ifLease->epoch)) {
      return out;
    }
    const JobStatus status = u.status.value_or(job.status);
    std::optional<std::string> reply = job.pendingReply;
    if (u.clearPendingReply) reply.reset();
    if (u.pendingReply) reply = u.pendingReply;
    const int64_t t = now();
    Params p;
    p.text(jobId).text(jobStatusName(status)).json(u.error.value_or(job.error));
    p.text(u.baseCommit.value_or(job.baseCommit)).optText(reply);
    p.i64(job.startedAt == 0 && u.markStarted ? t : job.startedAt);
    if (u.releaseLease) {
      p.null().i64(0);
    } else {
      p.text(job.ownerNode).i64(job.leaseExpiresAt);
    }
    p.i64(t)
        .json(u.inflightCall.value_or(job.inflightCall))
        .json(u.approval.value_or(job.approval))
        .i64(u.addAttempt ? 1 : 0)
        .json(u.verify.value_or(job.verify));
    RETURN_IF_ERROR(c.run(sql::kUpdateJob, p).status());
    ASSIGN_OR_RETURN(out.events, insertEvents(c, jobId, u.events));
    // Delivered at commit: idle nodes claim work that became free, the node running a stopped
    // job kills it.
    const bool unowned = u.releaseLease || job.ownerNode.empty();
    if (unowned && (claimable(status) || (status == JobStatus::kPaused && reply))) {
      RETURN_IF_ERROR(c.run(sql::kNotify, Params().text("kiln_work").text(jobId)).status());
    }
    if (u.status == JobStatus::kStopped) {
      RETURN_IF_ERROR(c.run(sql::kNotify, Params().text("kiln_stop").text(jobId)).status());
    }
    out.applied = true;
    return out;
  });
}

Result<std::optional<Job>> PostgresStore::claimJob(const std::string& nodeId, int64_t nowMs,
                                                   int64_t leaseMs) {
  auto params = [&] { return Params().text(nodeId).i64(nowMs).i64(leaseMs).i64(utcDay(nowMs)); };
  // One statement for a job of a tenant without quotas (the common case).
  ASSIGN_OR_RETURN(Rows r, runOnce(sql::kClaimJob, params().boolean(false)));
  if (r.empty()) return std::optional<Job>();
  if (!r.isNull(0, 0)) return std::optional<Job>(readJob(r, 0));
  // Its tenant has quotas: claim under the lock of its quota row.
  // After the job's columns (KILN_PG_JOB_COLUMNS): c.limited, then c.tenant_id.
  const std::string tenant = r.text(0, sql::kJobColumnCount + 1);
  return inTransaction(pool_, [&](Connection& c) -> Result<std::optional<Job>> {
    ASSIGN_OR_RETURN(Rows q, c.run(sql::kLockQuota, Params().text(tenant)));
    ASSIGN_OR_RETURN(Rows t, c.run(sql::kClaimJobOfTenant, params().boolean(true).text(tenant)));
    if (t.empty() || t.isNull(0, 0)) return std::optional<Job>();
    return std::optional<Job>(readJob(t, 0));
  });
}

Result<std::vector<std::string>> PostgresStore::renewLeases(const std::string& nodeId,
                                                            const std::vector<HeldLease>& held,
                                                            int64_t nowMs, int64_t leaseMs) {
  std::vector<std::string> lost;
  if (held.empty()) return lost;
  json list = json::array();
  for (const HeldLease& h : held) list.push_back({{"id", h.jobId}, {"epoch", h.epoch}});
  ASSIGN_OR_RETURN(
      Rows r, runOnce(sql::kRenewLeases, Params().text(nodeId).json(list).i64(nowMs).i64(leaseMs)));
  std::set<std::string> renewed;
  for (int i = 0; i < r.size(); ++i) renewed.insert(r.text(i, 0));
  for (const HeldLease& h : held)
    if (!renewed.count(h.jobId)) lost.push_back(h.jobId);
  return lost;
}

Result<std::vector<LeaseClaim>> PostgresStore::leaseHistory(const std::string& jobId) {
  ASSIGN_OR_RETURN(Rows r, runOnce(sql::kLeaseHistory, Params().text(jobId)));
  std::vector<LeaseClaim> out;
  for (int i = 0; i < r.size(); ++i) {
    out.push_back(LeaseClaim{jobId, r.i64(i, 0), r.text(i, 1), r.i64(i, 2)});
  }
  return out;
}

Status PostgresStore::checkLease(Connection& c, const std::string& jobId, const Lease& lease) {
  ASSIGN_OR_RETURN(Rows r, c.run(sql::kLockLease, Params().text(jobId)));
  if (r.empty()) return notFound("job " + jobId + " not found");
  if (r.text(0, 0) != lease.nodeId || r.i64(0, 1) != lease.epoch) {
    return conflict("the lease of " + lease.nodeId + " (epoch " + std::to_string(lease.epoch) +
                    ") on job " + jobId + " is lost");
  }
  return Status::ok();
}

Result<std::vector<Event>> PostgresStore::recordStep(const Step& step, const Lease& lease,
                                                     const std::vector<NewEvent>& events) {
  return inTransaction(pool_, [&](Connection& c) -> Result<std::vector<Event>> {
    Params count;
    count.text(step.jobId).i64(step.tokensIn).i64(step.tokensOut).f64(step.usd);
    count.i64(step.stepNumber).i64(now()).text(lease.nodeId).i64(lease.epoch);
    ASSIGN_OR_RETURN(Rows owned, c.run(sql::kCountStep, count));
    if (owned.empty()) {
      return conflict("the lease of " + lease.nodeId + " (epoch " + std::to_string(lease.epoch) +
                      ") on job " + step.jobId + " is lost");
    }
    if (step.usd > 0) {
      const int64_t day = utcDay(step.executedAt ? step.executedAt : now());
      RETURN_IF_ERROR(
          c.run(sql::kAddSpend, Params().text(step.jobId).i64(day).f64(step.usd)).status());
    }
    Params p;
    p.text(step.id.empty() ? newUuid() : step.id).text(step.jobId).i64(step.stepNumber);
    p.text(step.phase).text(step.plannerThought).text(step.toolCalled).json(step.toolArguments);
    p.bytes(step.toolOutput).text(step.workspaceHash);
    if (step.workspacePatch) {
      p.bytes(*step.workspacePatch);
    } else {
      p.null();
    }
    p.i64(step.tokensIn).i64(step.tokensOut).f64(step.usd);
    p.i64(step.executedAt ? step.executedAt : now());
    p.boolean(step.isError).i64(step.exitCode).boolean(step.mutating);
    p.text(step.callId).i64(step.callIndex).text(step.rawArguments).boolean(step.refusal);
    p.json(step.shellState);  // SQL NULL for a null state
    RETURN_IF_ERROR(
        c.run(sql::kInsertStep, p).status().withContext("step " + std::to_string(step.stepNumber)));
    return insertEvents(c, step.jobId, events);
  });
}

Result<std::vector<Step>> PostgresStore::listSteps(const std::string& jobId) {
  ASSIGN_OR_RETURN(Rows r, runOnce(sql::kListSteps, Params().text(jobId)));
  std::vector<Step> out;
  for (int i = 0; i < r.size(); ++i) {
    Step s;
    s.id = r.text(i, 0);
    s.jobId = jobId;
    s.stepNumber = static_cast<int>(r.i64(i, 1));
    s.phase = r.text(i, 2);
    s.plannerThought = r.text(i, 3);
    s.toolCalled = r.text(i, 4);
    s.toolArguments = parseJsonColumn(r.optText(i, 5), json::object());
    s.toolOutput = r.bytes(i, 6);
    s.workspaceHash = r.text(i, 7);
    if (!r.isNull(i, 8)) s.workspacePatch = r.bytes(i, 8);
    s.isError = r.boolean(i, 13);
    s.exitCode = static_cast<int>(r.i64(i, 14));
    s.mutating = r.boolean(i, 15);
    s.callId = r.text(i, 16);
    s.callIndex = static_cast<int>(r.i64(i, 17));
    s.rawArguments = r.text(i, 18);
    s.refusal = r.boolean(i, 19);
    s.shellState = parseJsonColumn(r.optText(i, 20), json());
    s.tokensIn = r.i64(i, 9);
    s.tokensOut = r.i64(i, 10);
    s.usd = r.f64(i, 11);
    s.executedAt = r.i64(i, 12);
    out.push_back(std::move(s));
  }
  return out;
}

Result<std::string> PostgresStore::latestPatch(const std::string& jobId) {
  ASSIGN_OR_RETURN(Rows r, runOnce(sql::kLatestPatch, Params().text(jobId)));
  return r.empty() ? std::string() : r.bytes(0, 0);
}

Result<std::vector<Event>> PostgresStore::appendEvents(const std::string& jobId, const Lease& lease,
                                                       const std::vector<NewEvent>& events) {
  return inTransaction(pool_, [&](Connection& c) -> Result<std::vector<Event>> {
    RETURN_IF_ERROR(checkLease(c, jobId, lease));
    return insertEvents(c, jobId, events);
  });
}

Result<std::vector<JobTotals>> PostgresStore::jobTotals() {
  ASSIGN_OR_RETURN(Rows r, runOnce(sql::kJobTotals, Params()));
  std::vector<JobTotals> out;
  for (int i = 0; i < r.size(); ++i) {
    auto status = parseJobStatus(r.text(i, 0));
    if (!status) continue;
    out.push_back(JobTotals{*status, r.i64(i, 1), r.i64(i, 2), r.i64(i, 3), r.f64(i, 4)});
  }
  return out;
}

Result<std::vector<Event>> PostgresStore::listEvents(const std::string& jobId, int64_t afterSeq,
                                                     int limit) {
  ASSIGN_OR_RETURN(Rows r,
                   runOnce(sql::kListEvents, Params().text(jobId).i64(afterSeq).i64(limit)));
  std::vector<Event> out;
  for (int i = 0; i < r.size(); ++i) {
    out.push_back(Event{jobId, r.i64(i, 0), r.text(i, 1), parseJsonColumn(r.optText(i, 2), json()),
                        r.i64(i, 3)});
  }
  return out;
}

Status PostgresStore::ensureTenant(const std::string& tenantId, const std::string& name) {
  return runOnce(sql::kEnsureTenant, Params().text(tenantId).text(name).i64(now())).status();
}

Status PostgresStore::getTenant(const std::string& tenantId) {
  ASSIGN_OR_RETURN(Rows r, runOnce(sql::kGetTenant, Params().text(tenantId)));
  if (r.empty()) return notFound("no tenant " + tenantId);
  return Status::ok();
}

Status PostgresStore::addToken(const std::string& tokenHash, const ApiToken& token) {
  Params p;
  p.text(tokenHash).text(token.tenantId).i64(token.createdAt ? token.createdAt : now());
  p.text(token.id).text(token.name).text(roleName(token.role));
  return runOnce(sql::kAddToken, p).status();
}

Result<TokenGrant> PostgresStore::tokenGrant(const std::string& tokenHash) {
  ASSIGN_OR_RETURN(Rows r, runOnce(sql::kTokenGrant, Params().text(tokenHash)));
  if (r.empty()) return Status(Code::kUnauthenticated, "unknown or revoked token");
  return TokenGrant{r.text(0, 0), r.text(0, 1), parseRole(r.text(0, 2)).value_or(Role::kViewer)};
}

ApiToken readToken(const Rows& r, int i) {
  ApiToken t;
  t.id = r.text(i, 0);
  t.tenantId = r.text(i, 1);
  t.name = r.text(i, 2);
  t.role = parseRole(r.text(i, 3)).value_or(Role::kViewer);
  t.createdAt = r.i64(i, 4);
  t.revokedAt = r.i64(i, 5);
  return t;
}

Result<std::vector<ApiToken>> PostgresStore::listTokens(const std::string& tenantId) {
  ASSIGN_OR_RETURN(Rows r, runOnce(sql::kListTokens, Params().text(tenantId)));
  std::vector<ApiToken> out;
  for (int i = 0; i < r.size(); ++i) out.push_back(readToken(r, i));
  return out;
}

Result<ApiToken> PostgresStore::revokeToken(const std::string& tokenId, const std::string& tenantId,
                                            int64_t nowMs) {
  ASSIGN_OR_RETURN(Rows r,
                   runOnce(sql::kRevokeToken, Params().i64(nowMs).text(tokenId).text(tenantId)));
  if (r.empty()) return notFound("no token " + tokenId);
  return readToken(r, 0);
}

Result<std::string> PostgresStore::ensureSetting(const std::string& name,
                                                 const std::string& value) {
  ASSIGN_OR_RETURN(Rows r, runOnce(sql::kEnsureSetting, Params().text(name).text(value)));
  if (r.empty()) return internalError("setting " + name + " vanished");
  return r.text(0, 0);
}

Status PostgresStore::setQuota(const std::string& tenantId, const TenantQuota& quota) {
  return inTransaction(pool_, [&](Connection& c) -> Status {
    ASSIGN_OR_RETURN(Rows known, c.run(sql::kGetTenant, Params().text(tenantId)));
    if (known.empty()) return notFound("no tenant " + tenantId);
    RETURN_IF_ERROR(c.run(sql::kDeleteQuota, Params().text(tenantId)).status());
    // A tenant without quotas has no row: its jobs take the claim's one-statement path.
    if (!quota.maxRunning && !quota.jobsPerHour && !quota.usdPerDay) return Status::ok();
    Params p;
    p.text(tenantId);
    quota.maxRunning ? p.i64(*quota.maxRunning) : p.null();
    quota.jobsPerHour ? p.i64(*quota.jobsPerHour) : p.null();
    quota.usdPerDay ? p.f64(*quota.usdPerDay) : p.null();
    p.i64(now());
    return c.run(sql::kInsertQuota, p).status();
  });
}

Result<TenantQuota> PostgresStore::getQuota(const std::string& tenantId) {
  ASSIGN_OR_RETURN(Rows r, runOnce(sql::kGetQuota, Params().text(tenantId)));
  return readQuota(r);
}

Result<TenantUsage> PostgresStore::tenantUsage(const std::string& tenantId, int64_t nowMs) {
  ASSIGN_OR_RETURN(Rows r, runOnce(sql::kTenantUsage, usageParams(tenantId, nowMs)));
  if (r.empty()) return internalError("tenant usage: no row");
  return readUsage(r);
}

Status PostgresStore::putSecret(const TenantSecret& s) {
  Params p;
  p.text(s.tenantId).text(s.name).text(s.mode).json(json(s.hosts)).text(s.sealed);
  p.i64(s.updatedAt ? s.updatedAt : now());
  return runOnce(sql::kPutSecret, p).status();
}

Result<std::vector<TenantSecret>> PostgresStore::listSecrets(const std::string& tenantId) {
  ASSIGN_OR_RETURN(Rows r, runOnce(sql::kListSecrets, Params().text(tenantId)));
  std::vector<TenantSecret> out;
  for (int i = 0; i < r.size(); ++i) {
    TenantSecret s{tenantId,     r.text(i, 0), r.text(i, 1), {},
                   r.text(i, 3), r.i64(i, 4),  r.i64(i, 5)};
    for (const auto& h : parseJsonColumn(r.optText(i, 2), json::array()))
      if (h.is_string()) s.hosts.push_back(h.get<std::string>());
    out.push_back(std::move(s));
  }
  return out;
}

Status PostgresStore::deleteSecret(const std::string& tenantId, const std::string& name) {
  ASSIGN_OR_RETURN(Rows r, runOnce(sql::kDeleteSecret, Params().text(tenantId).text(name)));
  if (r.empty()) return notFound("no secret " + name);
  return Status::ok();
}

Result<bool> PostgresStore::heartbeatNode(const NodeRecord& n) {
  return inTransaction(pool_, [&](Connection& c) -> Result<bool> {
    Params p;
    p.text(n.id).text(n.address).text(n.version).i64(n.startedAt).i64(n.heartbeatAt);
    p.i64(n.runningJobs).i64(n.maxJobs).boolean(n.claiming).boolean(n.draining).json(n.figures);
    ASSIGN_OR_RETURN(Rows r, c.run(sql::kHeartbeatNode, p));
    RETURN_IF_ERROR(c.run(sql::kDropOldNodes, Params().i64(n.heartbeatAt - 86'400'000)).status());
    return !r.empty() && r.boolean(0, 0);
  });
}

Result<std::vector<NodeRecord>> PostgresStore::listNodes() {
  ASSIGN_OR_RETURN(Rows r, runOnce(sql::kListNodes, Params()));
  std::vector<NodeRecord> out;
  for (int i = 0; i < r.size(); ++i) {
    NodeRecord n;
    n.id = r.text(i, 0);
    n.address = r.text(i, 1);
    n.version = r.text(i, 2);
    n.startedAt = r.i64(i, 3);
    n.heartbeatAt = r.i64(i, 4);
    n.runningJobs = static_cast<int>(r.i64(i, 5));
    n.maxJobs = static_cast<int>(r.i64(i, 6));
    n.claiming = r.boolean(i, 7);
    n.draining = r.boolean(i, 8);
    n.figures = parseJsonColumn(r.optText(i, 9), json::object());
    out.push_back(std::move(n));
  }
  return out;
}

Status PostgresStore::requestDrain(const std::string& nodeId) {
  ASSIGN_OR_RETURN(Rows r, runOnce(sql::kRequestDrain, Params().text(nodeId)));
  if (r.empty()) return notFound("no node " + nodeId);
  return Status::ok();
}

void PostgresStore::watch(SignalHandler handler) {
  listener_.reset();
  if (handler) listener_ = std::make_unique<postgres::Listener>(url_, std::move(handler));
}

}  // namespace

Result<std::unique_ptr<Store>> openPostgresStore(const std::string& url,
                                                 const PostgresOptions& opts) {
  auto store = std::make_unique<PostgresStore>(url, opts);
  RETURN_IF_ERROR(store->init());
  return std::unique_ptr<Store>(std::move(store));
}

}  // namespace kiln::store
