#include "store/sqlite/sqlite_store.h"

#include <algorithm>
#include <mutex>

#include "common/clock.h"
#include "common/ids.h"
#include "store/sqlite/migrations.h"
#include "store/sqlite/sqlite_db.h"

namespace kiln::store {
namespace {

using sqlite::Database;
using sqlite::Statement;
using sqlite::Transaction;

constexpr std::string_view kJobColumns =
    "job_id, tenant_id, repository_url, ref, task_description, agent, model, status, limits, "
    "spec, created_at, updated_at, started_at, token_spend_usd, tokens_in, tokens_out, "
    "step_count, error, owner_node, lease_expires_at, base_commit, pending_reply, inflight_call, "
    "approval, lease_epoch, attempts, verify, secrets";

json parseJsonColumn(const std::string& s, json fallback) {
  if (s.empty()) return fallback;
  json j = json::parse(s, nullptr, false);
  return j.is_discarded() ? fallback : j;
}

std::string dumpJson(const json& j) {
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

Job readJob(const Statement& st) {
  Job j;
  j.id = st.text(0);
  j.tenantId = st.text(1);
  j.repoUrl = st.text(2);
  j.ref = st.text(3);
  j.taskDesc = st.text(4);
  j.agent = st.text(5);
  j.model = st.text(6);
  j.status = parseJobStatus(st.text(7)).value_or(JobStatus::kFailed);
  j.limits = parseJsonColumn(st.text(8), json::object());
  j.spec = parseJsonColumn(st.text(9), json::object());
  j.createdAt = st.i64(10);
  j.updatedAt = st.i64(11);
  j.startedAt = st.i64(12);
  j.tokenSpendUsd = st.f64(13);
  j.tokensIn = st.i64(14);
  j.tokensOut = st.i64(15);
  j.stepCount = static_cast<int>(st.i64(16));
  j.error = parseJsonColumn(st.text(17), json());
  j.ownerNode = st.text(18);
  j.leaseExpiresAt = st.i64(19);
  j.baseCommit = st.text(20);
  j.pendingReply = st.optText(21);
  j.inflightCall = parseJsonColumn(st.text(22), json());
  j.approval = parseJsonColumn(st.text(23), json());
  j.leaseEpoch = st.i64(24);
  j.attempts = static_cast<int>(st.i64(25));
  j.verify = parseJsonColumn(st.text(26), json());
  j.secrets = parseJsonColumn(st.text(27), json());
  return j;
}

class SqliteStore : public Store {
 public:
  explicit SqliteStore(std::unique_ptr<Database> db) : db_(std::move(db)) {}

  Status migrate();

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

 private:
  int64_t now() const { return RealClock::instance().nowMs(); }
  // Both need mu_ held and, for writes, an open transaction.
  Result<Job> getJobLocked(const std::string& jobId);
  Result<std::vector<Event>> insertEventsLocked(const std::string& jobId,
                                                const std::vector<NewEvent>& events);
  // Conflict unless `lease` holds on the job.
  Status checkLeaseLocked(const std::string& jobId, const Lease& lease);
  // Need mu_ held; insertJobLocked an open transaction.
  Status insertJobLocked(const Job& job, const std::vector<NewEvent>& events);
  Result<TenantQuota> getQuotaLocked(const std::string& tenantId);
  Result<TenantUsage> tenantUsageLocked(const std::string& tenantId, int64_t nowMs);

  std::mutex mu_;
  std::unique_ptr<Database> db_;  // GUARDED_BY(mu_)
};

Status SqliteStore::migrate() {
  std::lock_guard lock(mu_);
  RETURN_IF_ERROR(
      db_->exec("CREATE TABLE IF NOT EXISTS schema_migrations(version INTEGER PRIMARY KEY, "
                "applied_at INTEGER NOT NULL)"));
  for (const auto& m : sqlite::migrations()) {
    Transaction tx(*db_);
    RETURN_IF_ERROR(tx.begin());
    ASSIGN_OR_RETURN(auto q, db_->prepare("SELECT 1 FROM schema_migrations WHERE version=?"));
    q.bind(1, m.version);
    ASSIGN_OR_RETURN(bool applied, q.step());
    if (applied) continue;
    RETURN_IF_ERROR(
        db_->exec(std::string(m.sql)).withContext("migration " + std::to_string(m.version)));
    ASSIGN_OR_RETURN(auto ins, db_->prepare("INSERT INTO schema_migrations VALUES(?, ?)"));
    RETURN_IF_ERROR(ins.bind(1, m.version).bind(2, now()).run());
    RETURN_IF_ERROR(tx.commit());
  }
  return Status::ok();
}

Status SqliteStore::createJob(const Job& job, const std::vector<NewEvent>& events) {
  std::lock_guard lock(mu_);
  Transaction tx(*db_);
  RETURN_IF_ERROR(tx.begin());
  RETURN_IF_ERROR(insertJobLocked(job, events));
  return tx.commit();
}

Result<std::optional<QuotaBreach>> SqliteStore::createJobWithinQuota(
    const Job& job, const std::vector<NewEvent>& events, int64_t nowMs) {
  std::lock_guard lock(mu_);
  // BEGIN IMMEDIATE: the check and the insert hold the database's write lock, so no other
  // process's submission or claim comes between them.
  Transaction tx(*db_);
  RETURN_IF_ERROR(tx.begin());
  ASSIGN_OR_RETURN(TenantQuota quota, getQuotaLocked(job.tenantId));
  if (quota.maxRunning || quota.jobsPerHour || quota.usdPerDay) {
    ASSIGN_OR_RETURN(TenantUsage usage, tenantUsageLocked(job.tenantId, nowMs));
    if (auto breach = quotaBreach(job.tenantId, quota, usage, true, nowMs)) return breach;
  }
  RETURN_IF_ERROR(insertJobLocked(job, events));
  RETURN_IF_ERROR(tx.commit());
  return std::optional<QuotaBreach>();
}

Status SqliteStore::insertJobLocked(const Job& job, const std::vector<NewEvent>& events) {
  ASSIGN_OR_RETURN(
      auto st,
      db_->prepare(
          "INSERT INTO agent_jobs(job_id, tenant_id, repository_url, ref, task_description, agent, "
          "model, status, limits, spec, created_at, updated_at, pending_reply, secrets) "
          "VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?)"));
  int64_t t = job.createdAt ? job.createdAt : now();
  st.bind(1, job.id).bind(2, job.tenantId).bind(3, job.repoUrl).bind(4, job.ref);
  st.bind(5, job.taskDesc).bind(6, job.agent).bind(7, job.model);
  st.bind(8, jobStatusName(job.status)).bind(9, dumpJson(job.limits)).bind(10, dumpJson(job.spec));
  st.bind(11, t).bind(12, t).bind(13, job.pendingReply);
  st.bind(14, job.secrets.is_null() ? std::optional<std::string>() : dumpJson(job.secrets));
  RETURN_IF_ERROR(st.run());
  return insertEventsLocked(job.id, events).status();
}

Result<Job> SqliteStore::getJobLocked(const std::string& jobId) {
  ASSIGN_OR_RETURN(auto st, db_->prepare("SELECT " + std::string(kJobColumns) +
                                         " FROM agent_jobs WHERE job_id=?"));
  st.bind(1, jobId);
  ASSIGN_OR_RETURN(bool row, st.step());
  if (!row) return notFound("job " + jobId + " not found");
  return readJob(st);
}

Result<Job> SqliteStore::getJob(const std::string& jobId, const std::string& tenantId) {
  std::lock_guard lock(mu_);
  auto job = getJobLocked(jobId);
  if (job.isOk() && !tenantId.empty() && job->tenantId != tenantId) {
    return notFound("job " + jobId + " not found");
  }
  return job;
}

Result<JobPage> SqliteStore::listJobs(const std::string& tenantId, std::optional<JobStatus> status,
                                      int limit, const std::string& cursor) {
  // Newest first. The cursor is "<created_at>:<job_id>" of the last job returned.
  int64_t curTime = INT64_MAX;
  std::string curId;
  if (!cursor.empty()) {
    auto colon = cursor.find(':');
    if (colon == std::string::npos) return invalidArgument("bad cursor");
    char* end = nullptr;
    curTime = std::strtoll(cursor.substr(0, colon).c_str(), &end, 10);
    if (!end || *end) return invalidArgument("bad cursor");
    curId = cursor.substr(colon + 1);
  }
  std::lock_guard lock(mu_);
  std::string sql = "SELECT " + std::string(kJobColumns) +
                    " FROM agent_jobs WHERE (?1 = '' OR tenant_id = ?1) AND (?2 = '' OR "
                    "status = ?2) AND (created_at < ?3 OR (created_at = ?3 AND job_id < ?4)) "
                    "ORDER BY created_at DESC, job_id DESC LIMIT ?5";
  ASSIGN_OR_RETURN(auto st, db_->prepare(sql));
  st.bind(1, tenantId).bind(2, status ? jobStatusName(*status) : "");
  st.bind(3, curTime).bind(4, cursor.empty() ? std::string("\xff") : curId).bind(5, limit + 1);
  JobPage page;
  for (;;) {
    ASSIGN_OR_RETURN(bool row, st.step());
    if (!row) break;
    page.jobs.push_back(readJob(st));
  }
  if (static_cast<int>(page.jobs.size()) > limit) {
    page.jobs.pop_back();
    const Job& last = page.jobs.back();
    page.nextCursor = std::to_string(last.createdAt) + ":" + last.id;
  }
  return page;
}

Result<UpdateResult> SqliteStore::updateJob(const std::string& jobId, const JobUpdate& u) {
  std::lock_guard lock(mu_);
  Transaction tx(*db_);
  RETURN_IF_ERROR(tx.begin());
  ASSIGN_OR_RETURN(Job job, getJobLocked(jobId));
  UpdateResult out;
  if (!u.ifStatusIn.empty() &&
      std::find(u.ifStatusIn.begin(), u.ifStatusIn.end(), job.status) == u.ifStatusIn.end()) {
    return out;
  }
  if (u.ifLease && (job.ownerNode != u.ifLease->nodeId || job.leaseEpoch != u.ifLease->epoch)) {
    return out;
  }
  ASSIGN_OR_RETURN(
      auto st,
      db_->prepare(
          "UPDATE agent_jobs SET status=?, error=?, base_commit=?, pending_reply=?, started_at=?, "
          "owner_node=?, lease_expires_at=?, updated_at=?, inflight_call=?, approval=?, "
          "attempts=attempts+?, verify=? WHERE job_id=?"));
  JobStatus status = u.status.value_or(job.status);
  json error = u.error.value_or(job.error);
  std::optional<std::string> reply = job.pendingReply;
  if (u.clearPendingReply) reply.reset();
  if (u.pendingReply) reply = u.pendingReply;
  int64_t t = now();
  int64_t started = job.startedAt == 0 && u.markStarted ? t : job.startedAt;
  st.bind(1, jobStatusName(status));
  if (error.is_null())
    st.bindNull(2);
  else
    st.bind(2, dumpJson(error));
  st.bind(3, u.baseCommit.value_or(job.baseCommit)).bind(4, reply).bind(5, started);
  if (u.releaseLease)
    st.bindNull(6).bind(7, int64_t{0});
  else
    st.bind(6, job.ownerNode).bind(7, job.leaseExpiresAt);
  json inflight = u.inflightCall.value_or(job.inflightCall);
  st.bind(8, t);
  if (inflight.is_null())
    st.bindNull(9);
  else
    st.bind(9, dumpJson(inflight));
  json approval = u.approval.value_or(job.approval);
  if (approval.is_null())
    st.bindNull(10);
  else
    st.bind(10, dumpJson(approval));
  st.bind(11, int64_t{u.addAttempt ? 1 : 0});
  json verify = u.verify.value_or(job.verify);
  if (verify.is_null())
    st.bindNull(12);
  else
    st.bind(12, dumpJson(verify));
  st.bind(13, jobId);
  RETURN_IF_ERROR(st.run());
  ASSIGN_OR_RETURN(out.events, insertEventsLocked(jobId, u.events));
  RETURN_IF_ERROR(tx.commit());
  out.applied = true;
  return out;
}

Result<std::optional<Job>> SqliteStore::claimJob(const std::string& nodeId, int64_t nowMs,
                                                 int64_t leaseMs) {
  std::lock_guard lock(mu_);
  Transaction tx(*db_);
  RETURN_IF_ERROR(tx.begin());
  // Claimable: queued work, a running job whose owner's lease lapsed (its node died or was
  // shut down), or a paused job that got its reply. PAUSED jobs without a reply hold no lease.
  // A tenant's jobs are not claimable while it runs as many as its maxRunning quota or spent
  // its usdPerDay today; BEGIN IMMEDIATE makes the count and the claim one step for every
  // process sharing the file.
  ASSIGN_OR_RETURN(
      auto q,
      db_->prepare(
          "SELECT j.job_id FROM agent_jobs j LEFT JOIN tenant_quotas q ON q.tenant_id = "
          "j.tenant_id WHERE (j.status IN ('QUEUED','PROVISIONING','RUNNING') OR "
          "(j.status = 'PAUSED' AND j.pending_reply IS NOT NULL)) AND "
          "(j.owner_node IS NULL OR j.owner_node = '' OR j.lease_expires_at < ?1) AND "
          "(q.max_running IS NULL OR (SELECT COUNT(*) FROM agent_jobs r WHERE r.tenant_id = "
          "j.tenant_id AND r.owner_node <> '' AND r.lease_expires_at >= ?1 AND r.status NOT IN "
          "('COMPLETED','FAILED','STOPPED')) < q.max_running) AND "
          "(q.usd_per_day IS NULL OR COALESCE((SELECT s.usd FROM tenant_spend s WHERE "
          "s.tenant_id = j.tenant_id AND s.day = ?2), 0) < q.usd_per_day) "
          "ORDER BY j.created_at LIMIT 1"));
  q.bind(1, nowMs).bind(2, utcDay(nowMs));
  ASSIGN_OR_RETURN(bool row, q.step());
  if (!row) return std::optional<Job>();
  std::string id = q.text(0);
  ASSIGN_OR_RETURN(
      auto up, db_->prepare("UPDATE agent_jobs SET owner_node=?, lease_expires_at=?, updated_at=?, "
                            "lease_epoch=lease_epoch+1 WHERE job_id=?"));
  RETURN_IF_ERROR(up.bind(1, nodeId).bind(2, nowMs + leaseMs).bind(3, nowMs).bind(4, id).run());
  ASSIGN_OR_RETURN(Job job, getJobLocked(id));
  ASSIGN_OR_RETURN(
      auto log,
      db_->prepare("INSERT INTO job_leases(job_id, epoch, node_id, claimed_at) VALUES(?,?,?,?)"));
  RETURN_IF_ERROR(log.bind(1, id).bind(2, job.leaseEpoch).bind(3, nodeId).bind(4, nowMs).run());
  RETURN_IF_ERROR(tx.commit());
  return std::optional<Job>(std::move(job));
}

Result<std::vector<std::string>> SqliteStore::renewLeases(const std::string& nodeId,
                                                          const std::vector<HeldLease>& held,
                                                          int64_t nowMs, int64_t leaseMs) {
  std::vector<std::string> lost;
  if (held.empty()) return lost;
  std::lock_guard lock(mu_);
  Transaction tx(*db_);
  RETURN_IF_ERROR(tx.begin());
  ASSIGN_OR_RETURN(
      auto st,
      db_->prepare("UPDATE agent_jobs SET lease_expires_at=? WHERE job_id=? AND owner_node=? AND "
                   "lease_epoch=?"));
  for (const HeldLease& h : held) {
    st.reset();
    RETURN_IF_ERROR(
        st.bind(1, nowMs + leaseMs).bind(2, h.jobId).bind(3, nodeId).bind(4, h.epoch).run());
    if (db_->changes() != 1) lost.push_back(h.jobId);
  }
  RETURN_IF_ERROR(tx.commit());
  return lost;
}

Result<std::vector<LeaseClaim>> SqliteStore::leaseHistory(const std::string& jobId) {
  std::lock_guard lock(mu_);
  ASSIGN_OR_RETURN(
      auto st,
      db_->prepare(
          "SELECT epoch, node_id, claimed_at FROM job_leases WHERE job_id=? ORDER BY epoch"));
  st.bind(1, jobId);
  std::vector<LeaseClaim> out;
  for (;;) {
    ASSIGN_OR_RETURN(bool row, st.step());
    if (!row) break;
    out.push_back(LeaseClaim{jobId, st.i64(0), st.text(1), st.i64(2)});
  }
  return out;
}

Status SqliteStore::checkLeaseLocked(const std::string& jobId, const Lease& lease) {
  ASSIGN_OR_RETURN(auto st,
                   db_->prepare("SELECT owner_node, lease_epoch FROM agent_jobs WHERE job_id=?"));
  st.bind(1, jobId);
  ASSIGN_OR_RETURN(bool row, st.step());
  if (!row) return notFound("job " + jobId + " not found");
  if (st.text(0) != lease.nodeId || st.i64(1) != lease.epoch) {
    return conflict("the lease of " + lease.nodeId + " (epoch " + std::to_string(lease.epoch) +
                    ") on job " + jobId + " is lost");
  }
  return Status::ok();
}

Result<std::vector<Event>> SqliteStore::recordStep(const Step& step, const Lease& lease,
                                                   const std::vector<NewEvent>& events) {
  std::lock_guard lock(mu_);
  Transaction tx(*db_);
  RETURN_IF_ERROR(tx.begin());
  RETURN_IF_ERROR(checkLeaseLocked(step.jobId, lease));
  ASSIGN_OR_RETURN(
      auto st,
      db_->prepare(
          "INSERT INTO execution_steps(step_id, job_id, step_number, phase, planner_thought, "
          "tool_called, tool_arguments, tool_output, workspace_hash, workspace_patch, tokens_in, "
          "tokens_out, usd, executed_at, is_error, exit_code, mutating, call_id, call_index, "
          "raw_arguments, refusal, shell_state) "
          "VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)"));
  st.bind(1, step.id.empty() ? newUuid() : step.id).bind(2, step.jobId).bind(3, step.stepNumber);
  st.bind(4, step.phase).bind(5, step.plannerThought).bind(6, step.toolCalled);
  st.bind(7, dumpJson(step.toolArguments)).bind(8, step.toolOutput).bind(9, step.workspaceHash);
  if (step.workspacePatch)
    st.bindBlob(10, *step.workspacePatch);
  else
    st.bindNull(10);
  st.bind(11, step.tokensIn).bind(12, step.tokensOut).bind(13, step.usd);
  st.bind(14, step.executedAt ? step.executedAt : now());
  st.bind(15, int64_t{step.isError ? 1 : 0}).bind(16, int64_t{step.exitCode});
  st.bind(17, int64_t{step.mutating ? 1 : 0});
  st.bind(18, step.callId).bind(19, step.callIndex).bind(20, step.rawArguments);
  st.bind(21, int64_t{step.refusal ? 1 : 0});
  if (step.shellState.is_null()) {
    st.bindNull(22);
  } else {
    st.bind(22, dumpJson(step.shellState));
  }
  RETURN_IF_ERROR(st.run().withContext("step " + std::to_string(step.stepNumber)));
  ASSIGN_OR_RETURN(
      auto up,
      db_->prepare(
          "UPDATE agent_jobs SET tokens_in=tokens_in+?, tokens_out=tokens_out+?, "
          "token_spend_usd=token_spend_usd+?, step_count=MAX(step_count, ?), updated_at=?, "
          "inflight_call=NULL WHERE job_id=?"));
  up.bind(1, step.tokensIn).bind(2, step.tokensOut).bind(3, step.usd).bind(4, step.stepNumber);
  RETURN_IF_ERROR(up.bind(5, now()).bind(6, step.jobId).run());
  if (step.usd > 0) {
    ASSIGN_OR_RETURN(
        auto spend,
        db_->prepare("INSERT INTO tenant_spend(tenant_id, day, usd) SELECT tenant_id, ?, ? FROM "
                     "agent_jobs WHERE job_id=? ON CONFLICT(tenant_id, day) DO UPDATE SET "
                     "usd = usd + excluded.usd"));
    spend.bind(1, utcDay(step.executedAt ? step.executedAt : now())).bind(2, step.usd);
    RETURN_IF_ERROR(spend.bind(3, step.jobId).run());
  }
  ASSIGN_OR_RETURN(auto out, insertEventsLocked(step.jobId, events));
  RETURN_IF_ERROR(tx.commit());
  return out;
}

Result<std::vector<Step>> SqliteStore::listSteps(const std::string& jobId) {
  std::lock_guard lock(mu_);
  ASSIGN_OR_RETURN(
      auto st,
      db_->prepare(
          "SELECT step_id, step_number, phase, planner_thought, tool_called, tool_arguments, "
          "tool_output, workspace_hash, workspace_patch, tokens_in, tokens_out, usd, executed_at, "
          "is_error, exit_code, mutating, call_id, call_index, raw_arguments, refusal, shell_state "
          "FROM execution_steps WHERE job_id=? ORDER BY step_number"));
  st.bind(1, jobId);
  std::vector<Step> out;
  for (;;) {
    ASSIGN_OR_RETURN(bool row, st.step());
    if (!row) break;
    Step s;
    s.id = st.text(0);
    s.jobId = jobId;
    s.stepNumber = static_cast<int>(st.i64(1));
    s.phase = st.text(2);
    s.plannerThought = st.text(3);
    s.toolCalled = st.text(4);
    s.toolArguments = parseJsonColumn(st.text(5), json::object());
    s.toolOutput = st.text(6);
    s.workspaceHash = st.text(7);
    s.workspacePatch = st.optText(8);
    s.tokensIn = st.i64(9);
    s.tokensOut = st.i64(10);
    s.usd = st.f64(11);
    s.executedAt = st.i64(12);
    s.isError = st.i64(13) != 0;
    s.exitCode = static_cast<int>(st.i64(14));
    s.mutating = st.i64(15) != 0;
    s.callId = st.text(16);
    s.callIndex = static_cast<int>(st.i64(17));
    s.rawArguments = st.text(18);
    s.refusal = st.i64(19) != 0;
    s.shellState = st.isNull(20) ? json() : parseJsonColumn(st.text(20), json());
    out.push_back(std::move(s));
  }
  return out;
}

Result<std::string> SqliteStore::latestPatch(const std::string& jobId) {
  std::lock_guard lock(mu_);
  ASSIGN_OR_RETURN(
      auto st,
      db_->prepare(
          "SELECT workspace_patch FROM execution_steps WHERE job_id=? AND workspace_patch IS NOT "
          "NULL ORDER BY step_number DESC LIMIT 1"));
  st.bind(1, jobId);
  ASSIGN_OR_RETURN(bool row, st.step());
  return row ? st.text(0) : std::string();
}

Result<std::vector<Event>> SqliteStore::insertEventsLocked(const std::string& jobId,
                                                           const std::vector<NewEvent>& events) {
  std::vector<Event> out;
  if (events.empty()) return out;
  ASSIGN_OR_RETURN(auto q,
                   db_->prepare("SELECT COALESCE(MAX(seq), 0) FROM job_events WHERE job_id=?"));
  q.bind(1, jobId);
  ASSIGN_OR_RETURN(bool row, q.step());
  int64_t seq = row ? q.i64(0) : 0;
  ASSIGN_OR_RETURN(
      auto ins,
      db_->prepare(
          "INSERT INTO job_events(job_id, seq, type, payload, created_at) VALUES(?,?,?,?,?)"));
  int64_t t = now();
  for (const auto& e : events) {
    Event ev{jobId, ++seq, e.type, e.payload, t};
    ins.reset();
    RETURN_IF_ERROR(ins.bind(1, jobId)
                        .bind(2, ev.seq)
                        .bind(3, e.type)
                        .bind(4, dumpJson(e.payload))
                        .bind(5, t)
                        .run());
    out.push_back(std::move(ev));
  }
  return out;
}

Result<std::vector<Event>> SqliteStore::appendEvents(const std::string& jobId, const Lease& lease,
                                                     const std::vector<NewEvent>& events) {
  std::lock_guard lock(mu_);
  Transaction tx(*db_);
  RETURN_IF_ERROR(tx.begin());
  RETURN_IF_ERROR(checkLeaseLocked(jobId, lease));
  ASSIGN_OR_RETURN(auto out, insertEventsLocked(jobId, events));
  RETURN_IF_ERROR(tx.commit());
  return out;
}

Result<std::vector<Event>> SqliteStore::listEvents(const std::string& jobId, int64_t afterSeq,
                                                   int limit) {
  std::lock_guard lock(mu_);
  ASSIGN_OR_RETURN(
      auto st,
      db_->prepare("SELECT seq, type, payload, created_at FROM job_events WHERE job_id=? AND seq>? "
                   "ORDER BY seq LIMIT ?"));
  st.bind(1, jobId).bind(2, afterSeq).bind(3, limit);
  std::vector<Event> out;
  for (;;) {
    ASSIGN_OR_RETURN(bool row, st.step());
    if (!row) break;
    out.push_back(
        Event{jobId, st.i64(0), st.text(1), parseJsonColumn(st.text(2), json()), st.i64(3)});
  }
  return out;
}

Result<std::vector<JobTotals>> SqliteStore::jobTotals() {
  std::lock_guard lock(mu_);
  ASSIGN_OR_RETURN(
      auto st,
      db_->prepare("SELECT status, COUNT(*), SUM(tokens_in), SUM(tokens_out), SUM(token_spend_usd) "
                   "FROM agent_jobs GROUP BY status"));
  std::vector<JobTotals> out;
  for (;;) {
    ASSIGN_OR_RETURN(bool row, st.step());
    if (!row) break;
    auto status = parseJobStatus(st.text(0));
    if (!status) continue;
    out.push_back(JobTotals{*status, st.i64(1), st.i64(2), st.i64(3), st.f64(4)});
  }
  return out;
}

Status SqliteStore::ensureTenant(const std::string& tenantId, const std::string& name) {
  std::lock_guard lock(mu_);
  ASSIGN_OR_RETURN(auto st,
                   db_->prepare("INSERT INTO tenants(tenant_id, name, created_at) VALUES(?,?,?) "
                                "ON CONFLICT(tenant_id) DO NOTHING"));
  return st.bind(1, tenantId).bind(2, name).bind(3, now()).run();
}

Status SqliteStore::getTenant(const std::string& tenantId) {
  std::lock_guard lock(mu_);
  ASSIGN_OR_RETURN(auto st, db_->prepare("SELECT 1 FROM tenants WHERE tenant_id=?"));
  st.bind(1, tenantId);
  ASSIGN_OR_RETURN(bool row, st.step());
  if (!row) return notFound("no tenant " + tenantId);
  return Status::ok();
}

// The id of a token row; rows an older node wrote have none: one from their hash.
constexpr std::string_view kTokenId = "COALESCE(token_id, 'tok_' || substr(token_hash, 1, 16))";

ApiToken readToken(const Statement& st) {
  ApiToken t;
  t.id = st.text(0);
  t.tenantId = st.text(1);
  t.name = st.text(2);
  t.role = parseRole(st.text(3)).value_or(Role::kViewer);
  t.createdAt = st.i64(4);
  t.revokedAt = st.i64(5);
  return t;
}

const std::string kTokenColumns = std::string(kTokenId) +
                                  ", tenant_id, name, role, created_at, COALESCE(revoked_at, 0) "
                                  "FROM api_tokens";

Status SqliteStore::addToken(const std::string& tokenHash, const ApiToken& token) {
  std::lock_guard lock(mu_);
  ASSIGN_OR_RETURN(auto st, db_->prepare("INSERT INTO api_tokens(token_hash, tenant_id, "
                                         "created_at, token_id, name, role) VALUES(?,?,?,?,?,?) "
                                         "ON CONFLICT(token_hash) DO NOTHING"));
  st.bind(1, tokenHash).bind(2, token.tenantId).bind(3, token.createdAt ? token.createdAt : now());
  return st.bind(4, token.id).bind(5, token.name).bind(6, roleName(token.role)).run();
}

Result<TokenGrant> SqliteStore::tokenGrant(const std::string& tokenHash) {
  std::lock_guard lock(mu_);
  ASSIGN_OR_RETURN(auto st, db_->prepare("SELECT " + std::string(kTokenId) +
                                         ", tenant_id, role FROM api_tokens WHERE token_hash=? "
                                         "AND revoked_at IS NULL"));
  st.bind(1, tokenHash);
  ASSIGN_OR_RETURN(bool row, st.step());
  if (!row) return Status(Code::kUnauthenticated, "unknown or revoked token");
  return TokenGrant{st.text(0), st.text(1), parseRole(st.text(2)).value_or(Role::kViewer)};
}

Result<std::vector<ApiToken>> SqliteStore::listTokens(const std::string& tenantId) {
  std::lock_guard lock(mu_);
  ASSIGN_OR_RETURN(auto st, db_->prepare("SELECT " + kTokenColumns +
                                         " WHERE (?1 = '' OR tenant_id = ?1) "
                                         "ORDER BY created_at, 1"));
  st.bind(1, tenantId);
  std::vector<ApiToken> out;
  for (;;) {
    ASSIGN_OR_RETURN(bool row, st.step());
    if (!row) break;
    out.push_back(readToken(st));
  }
  return out;
}

Result<ApiToken> SqliteStore::revokeToken(const std::string& tokenId, const std::string& tenantId,
                                          int64_t nowMs) {
  std::lock_guard lock(mu_);
  Transaction tx(*db_);
  RETURN_IF_ERROR(tx.begin());
  ASSIGN_OR_RETURN(auto up,
                   db_->prepare("UPDATE api_tokens SET revoked_at = "
                                "COALESCE(revoked_at, ?1) WHERE " +
                                std::string(kTokenId) + " = ?2 AND (?3 = '' OR tenant_id = ?3)"));
  RETURN_IF_ERROR(up.bind(1, nowMs).bind(2, tokenId).bind(3, tenantId).run());
  if (db_->changes() == 0) return notFound("no token " + tokenId);
  ASSIGN_OR_RETURN(auto st, db_->prepare("SELECT " + kTokenColumns + " WHERE " +
                                         std::string(kTokenId) + " = ?"));
  st.bind(1, tokenId);
  ASSIGN_OR_RETURN(bool row, st.step());
  if (!row) return notFound("no token " + tokenId);
  ApiToken t = readToken(st);
  RETURN_IF_ERROR(tx.commit());
  return t;
}

Result<std::string> SqliteStore::ensureSetting(const std::string& name, const std::string& value) {
  std::lock_guard lock(mu_);
  Transaction tx(*db_);
  RETURN_IF_ERROR(tx.begin());
  ASSIGN_OR_RETURN(auto ins, db_->prepare("INSERT INTO kiln_settings(name, value) VALUES(?,?) "
                                          "ON CONFLICT(name) DO NOTHING"));
  RETURN_IF_ERROR(ins.bind(1, name).bind(2, value).run());
  ASSIGN_OR_RETURN(auto st, db_->prepare("SELECT value FROM kiln_settings WHERE name=?"));
  st.bind(1, name);
  ASSIGN_OR_RETURN(bool row, st.step());
  if (!row) return internalError("setting " + name + " vanished");
  std::string stored = st.text(0);
  RETURN_IF_ERROR(tx.commit());
  return stored;
}

Status SqliteStore::setQuota(const std::string& tenantId, const TenantQuota& quota) {
  std::lock_guard lock(mu_);
  Transaction tx(*db_);
  RETURN_IF_ERROR(tx.begin());
  ASSIGN_OR_RETURN(auto known, db_->prepare("SELECT 1 FROM tenants WHERE tenant_id=?"));
  known.bind(1, tenantId);
  ASSIGN_OR_RETURN(bool row, known.step());
  if (!row) return notFound("no tenant " + tenantId);
  ASSIGN_OR_RETURN(auto del, db_->prepare("DELETE FROM tenant_quotas WHERE tenant_id=?"));
  RETURN_IF_ERROR(del.bind(1, tenantId).run());
  // A tenant without quotas has no row: the claim's cheap path.
  if (quota.maxRunning || quota.jobsPerHour || quota.usdPerDay) {
    ASSIGN_OR_RETURN(auto st, db_->prepare("INSERT INTO tenant_quotas(tenant_id, max_running, "
                                           "jobs_per_hour, usd_per_day, updated_at) "
                                           "VALUES(?,?,?,?,?)"));
    st.bind(1, tenantId);
    quota.maxRunning ? st.bind(2, *quota.maxRunning) : st.bindNull(2);
    quota.jobsPerHour ? st.bind(3, *quota.jobsPerHour) : st.bindNull(3);
    quota.usdPerDay ? st.bind(4, *quota.usdPerDay) : st.bindNull(4);
    RETURN_IF_ERROR(st.bind(5, now()).run());
  }
  return tx.commit();
}

Result<TenantQuota> SqliteStore::getQuotaLocked(const std::string& tenantId) {
  ASSIGN_OR_RETURN(auto st, db_->prepare("SELECT max_running, jobs_per_hour, usd_per_day FROM "
                                         "tenant_quotas WHERE tenant_id=?"));
  st.bind(1, tenantId);
  ASSIGN_OR_RETURN(bool row, st.step());
  TenantQuota q;
  if (!row) return q;
  if (!st.isNull(0)) q.maxRunning = st.i64(0);
  if (!st.isNull(1)) q.jobsPerHour = st.i64(1);
  if (!st.isNull(2)) q.usdPerDay = st.f64(2);
  return q;
}

Result<TenantQuota> SqliteStore::getQuota(const std::string& tenantId) {
  std::lock_guard lock(mu_);
  return getQuotaLocked(tenantId);
}

Result<TenantUsage> SqliteStore::tenantUsageLocked(const std::string& tenantId, int64_t nowMs) {
  ASSIGN_OR_RETURN(
      auto st,
      db_->prepare(
          "SELECT (SELECT COUNT(*) FROM agent_jobs r WHERE r.tenant_id = ?1 AND "
          "r.owner_node <> '' AND r.lease_expires_at >= ?2 AND r.status NOT IN "
          "('COMPLETED','FAILED','STOPPED')), "
          "(SELECT COUNT(*) FROM agent_jobs a WHERE a.tenant_id = ?1 AND (a.status IN "
          "('QUEUED','PROVISIONING','RUNNING') OR (a.status = 'PAUSED' AND (a.pending_reply IS "
          "NOT NULL OR (a.owner_node <> '' AND a.lease_expires_at >= ?2))))), "
          "(SELECT COUNT(*) FROM agent_jobs h WHERE h.tenant_id = ?1 AND h.created_at > ?3), "
          "(SELECT COALESCE(MIN(h.created_at), 0) FROM agent_jobs h WHERE h.tenant_id = ?1 AND "
          "h.created_at > ?3), "
          "COALESCE((SELECT usd FROM tenant_spend WHERE tenant_id = ?1 AND day = ?4), 0)"));
  st.bind(1, tenantId).bind(2, nowMs).bind(3, nowMs - 3'600'000).bind(4, utcDay(nowMs));
  ASSIGN_OR_RETURN(bool row, st.step());
  if (!row) return internalError("tenant usage: no row");
  return TenantUsage{st.i64(0), st.i64(1), st.i64(2), st.i64(3), st.f64(4)};
}

Result<TenantUsage> SqliteStore::tenantUsage(const std::string& tenantId, int64_t nowMs) {
  std::lock_guard lock(mu_);
  return tenantUsageLocked(tenantId, nowMs);
}

Status SqliteStore::putSecret(const TenantSecret& s) {
  std::lock_guard lock(mu_);
  ASSIGN_OR_RETURN(auto st,
                   db_->prepare("INSERT INTO tenant_secrets(tenant_id, name, mode, hosts, sealed, "
                                "created_at, updated_at) VALUES(?1,?2,?3,?4,?5,?6,?6) "
                                "ON CONFLICT(tenant_id, name) DO UPDATE SET mode=?3, hosts=?4, "
                                "sealed=?5, updated_at=?6"));
  const int64_t t = s.updatedAt ? s.updatedAt : now();
  st.bind(1, s.tenantId).bind(2, s.name).bind(3, s.mode).bind(4, dumpJson(json(s.hosts)));
  return st.bind(5, s.sealed).bind(6, t).run();
}

Result<std::vector<TenantSecret>> SqliteStore::listSecrets(const std::string& tenantId) {
  std::lock_guard lock(mu_);
  ASSIGN_OR_RETURN(auto st, db_->prepare("SELECT name, mode, hosts, sealed, created_at, "
                                         "updated_at FROM tenant_secrets WHERE tenant_id=? "
                                         "ORDER BY name"));
  st.bind(1, tenantId);
  std::vector<TenantSecret> out;
  for (;;) {
    ASSIGN_OR_RETURN(bool row, st.step());
    if (!row) break;
    TenantSecret s{tenantId, st.text(0), st.text(1), {}, st.text(3), st.i64(4), st.i64(5)};
    json hosts = parseJsonColumn(st.text(2), json::array());
    for (const auto& h : hosts)
      if (h.is_string()) s.hosts.push_back(h.get<std::string>());
    out.push_back(std::move(s));
  }
  return out;
}

Status SqliteStore::deleteSecret(const std::string& tenantId, const std::string& name) {
  std::lock_guard lock(mu_);
  ASSIGN_OR_RETURN(auto st,
                   db_->prepare("DELETE FROM tenant_secrets WHERE tenant_id=? AND name=?"));
  RETURN_IF_ERROR(st.bind(1, tenantId).bind(2, name).run());
  if (db_->changes() == 0) return notFound("no secret " + name);
  return Status::ok();
}

Result<bool> SqliteStore::heartbeatNode(const NodeRecord& n) {
  std::lock_guard lock(mu_);
  Transaction tx(*db_);
  RETURN_IF_ERROR(tx.begin());
  ASSIGN_OR_RETURN(
      auto up,
      db_->prepare(
          "INSERT INTO kiln_nodes(node_id, address, version, started_at, heartbeat_at, "
          "running_jobs, "
          "max_jobs, claiming, draining, figures) VALUES(?,?,?,?,?,?,?,?,?,?) "
          "ON CONFLICT(node_id) DO UPDATE SET address=excluded.address, version=excluded.version, "
          "started_at=excluded.started_at, heartbeat_at=excluded.heartbeat_at, "
          "running_jobs=excluded.running_jobs, max_jobs=excluded.max_jobs, "
          "claiming=excluded.claiming, draining=excluded.draining, figures=excluded.figures, "
          // A drain asked of an earlier process with the same node id does not carry over.
          "drain_requested=CASE WHEN kiln_nodes.started_at=excluded.started_at "
          "THEN kiln_nodes.drain_requested ELSE 0 END"));
  up.bind(1, n.id).bind(2, n.address).bind(3, n.version).bind(4, n.startedAt);
  up.bind(5, n.heartbeatAt).bind(6, n.runningJobs).bind(7, n.maxJobs);
  up.bind(8, int64_t{n.claiming}).bind(9, int64_t{n.draining}).bind(10, dumpJson(n.figures));
  RETURN_IF_ERROR(up.run());
  ASSIGN_OR_RETURN(auto old, db_->prepare("DELETE FROM kiln_nodes WHERE heartbeat_at < ?"));
  RETURN_IF_ERROR(old.bind(1, n.heartbeatAt - 86'400'000).run());
  ASSIGN_OR_RETURN(auto q, db_->prepare("SELECT drain_requested FROM kiln_nodes WHERE node_id=?"));
  q.bind(1, n.id);
  ASSIGN_OR_RETURN(bool row, q.step());
  bool drain = row && q.i64(0) != 0;
  RETURN_IF_ERROR(tx.commit());
  return drain;
}

Result<std::vector<NodeRecord>> SqliteStore::listNodes() {
  std::lock_guard lock(mu_);
  ASSIGN_OR_RETURN(
      auto st,
      db_->prepare(
          "SELECT node_id, address, version, started_at, heartbeat_at, running_jobs, max_jobs, "
          "claiming, draining, figures FROM kiln_nodes ORDER BY node_id"));
  std::vector<NodeRecord> out;
  for (;;) {
    ASSIGN_OR_RETURN(bool row, st.step());
    if (!row) break;
    NodeRecord n;
    n.id = st.text(0);
    n.address = st.text(1);
    n.version = st.text(2);
    n.startedAt = st.i64(3);
    n.heartbeatAt = st.i64(4);
    n.runningJobs = static_cast<int>(st.i64(5));
    n.maxJobs = static_cast<int>(st.i64(6));
    n.claiming = st.i64(7) != 0;
    n.draining = st.i64(8) != 0;
    n.figures = parseJsonColumn(st.text(9), json::object());
    out.push_back(std::move(n));
  }
  return out;
}

Status SqliteStore::requestDrain(const std::string& nodeId) {
  std::lock_guard lock(mu_);
  ASSIGN_OR_RETURN(auto st,
                   db_->prepare("UPDATE kiln_nodes SET drain_requested=1 WHERE node_id=?"));
  RETURN_IF_ERROR(st.bind(1, nodeId).run());
  if (db_->changes() == 0) return notFound("no node " + nodeId);
  return Status::ok();
}

}  // namespace

Result<std::unique_ptr<Store>> openSqliteStore(const std::string& path, int busyTimeoutMs) {
  ASSIGN_OR_RETURN(auto db, Database::open(path, busyTimeoutMs));
  auto store = std::make_unique<SqliteStore>(std::move(db));
  RETURN_IF_ERROR(store->migrate());
  return std::unique_ptr<Store>(std::move(store));
}

}  // namespace kiln::store
