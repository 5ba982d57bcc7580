// Every SQL statement of the PostgreSQL engine, in one place. Each is prepared once per
// connection under its name. Times are UTC milliseconds (BIGINT), JSON is stored as text.
#pragma once
#include "store/postgres/pg_conn.h"

namespace kiln::store::postgres::sql {

// The columns readJob() reads, in order, of `agent_jobs j`.
#define KILN_PG_JOB_COLUMNS                                                                   \
  "j.job_id, j.tenant_id, j.repository_url, j.ref, j.task_description, j.agent, j.model, "    \
  "j.status, j.limits, j.spec, j.created_at, j.updated_at, j.started_at, j.token_spend_usd, " \
  "j.tokens_in, j.tokens_out, j.step_count, j.error, j.owner_node, j.lease_expires_at, "      \
  "j.base_commit, j.pending_reply, j.inflight_call, j.approval, j.lease_epoch, j.attempts, "  \
  "j.verify, j.secrets"

// How many columns KILN_PG_JOB_COLUMNS names: a query that returns more after them (the claim)
// reads those from this index on.
inline constexpr int kJobColumnCount = 28;
constexpr int countColumns(const char* list) {
  int n = 1;
  for (; *list; ++list) n += *list == ',';
  return n;
}
static_assert(countColumns(KILN_PG_JOB_COLUMNS) == kJobColumnCount);

// Claimable: queued work, a job whose owner's lease lapsed (its node died or was shut down),
// or a paused job that got its reply. PAUSED jobs without a reply hold no lease.
#define KILN_PG_CLAIMABLE                                       \
  "(j.status IN ('QUEUED','PROVISIONING','RUNNING') OR "        \
  "(j.status = 'PAUSED' AND j.pending_reply IS NOT NULL)) AND " \
  "(j.owner_node IS NULL OR j.owner_node = '' OR j.lease_expires_at < $2::bigint)"

inline constexpr Query kInsertJob{
    "insert_job",
    "INSERT INTO agent_jobs(job_id, tenant_id, repository_url, ref, task_description, agent, "
    "model, status, limits, spec, created_at, updated_at, pending_reply, secrets) "
    "VALUES($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$11,$12,$13)"};

inline constexpr Query kGetJob{
    "get_job", "SELECT " KILN_PG_JOB_COLUMNS " FROM agent_jobs j WHERE j.job_id = $1"};

inline constexpr Query kLockJob{
    "lock_job", "SELECT " KILN_PG_JOB_COLUMNS " FROM agent_jobs j WHERE j.job_id = $1 FOR UPDATE"};

// Newest first; the cursor is the (created_at, job_id) of the last job returned.
inline constexpr Query kListJobs{
    "list_jobs", "SELECT " KILN_PG_JOB_COLUMNS
                 " FROM agent_jobs j WHERE ($1 = '' OR j.tenant_id = $1) AND "
                 "($2 = '' OR j.status = $2) AND ($3 = '' OR j.created_at < $4::bigint OR "
                 "(j.created_at = $4::bigint AND j.job_id COLLATE \"C\" < $3)) "
                 "ORDER BY j.created_at DESC, j.job_id COLLATE \"C\" DESC LIMIT $5"};

inline constexpr Query kUpdateJob{
    "update_job",
    "UPDATE agent_jobs SET status=$2, error=$3, base_commit=$4, pending_reply=$5, "
    "started_at=$6, owner_node=$7, lease_expires_at=$8, updated_at=$9, inflight_call=$10, "
    "approval=$11, attempts=attempts+$12, verify=$13 WHERE job_id=$1"};

// Within the tenant's quotas, as the statement's snapshot sees them: it runs fewer jobs than
// its maxRunning (a live lease on an unfinished job) and spent less than its usdPerDay on
// day $4.
#define KILN_PG_WITHIN_QUOTA                                                                     \
  "(q.max_running IS NULL OR (SELECT COUNT(*) FROM agent_jobs r WHERE r.tenant_id = "            \
  "j.tenant_id AND r.owner_node <> '' AND r.lease_expires_at >= $2::bigint AND r.status NOT IN " \
  "('COMPLETED','FAILED','STOPPED')) < q.max_running) AND "                                      \
  "(q.usd_per_day IS NULL OR COALESCE((SELECT s.usd FROM tenant_spend s WHERE s.tenant_id = "    \
  "j.tenant_id AND s.day = $4::bigint), 0) < q.usd_per_day)"

// The claim of the picked job `c`: bumps its fencing epoch and appends to the owner-change log
// in the same statement. Returns the job's columns (NULL when not claimed), then whether its
// tenant has quotas, and the tenant.
#define KILN_PG_CLAIM_PICKED                                                                \
  "u AS (UPDATE agent_jobs j SET owner_node=$1, lease_expires_at=$2::bigint + $3::bigint, " \
  "updated_at=$2::bigint, lease_epoch=j.lease_epoch + 1 FROM c WHERE j.job_id = c.job_id "  \
  "AND (NOT c.limited OR $5::boolean) RETURNING " KILN_PG_JOB_COLUMNS                       \
  "), "                                                                                     \
  "l AS (INSERT INTO job_leases(job_id, epoch, node_id, claimed_at) "                       \
  "SELECT u.job_id, u.lease_epoch, $1, $2::bigint FROM u) "                                 \
  "SELECT u.*, c.limited, c.tenant_id FROM c LEFT JOIN u ON true"

// SKIP LOCKED: nodes claiming at once each take a different job instead of queueing on one row.
// The oldest claimable job within its tenant's quotas is picked; it is claimed at once when its
// tenant has no quotas. A tenant with quotas is claimed by kClaimJobOfTenant instead, after
// kLockQuota: $5 is false here.
inline constexpr Query kClaimJob{
    "claim_job",
    "WITH c AS (SELECT j.job_id, (q.tenant_id IS NOT NULL) AS limited, j.tenant_id "
    "FROM agent_jobs j LEFT JOIN tenant_quotas q ON q.tenant_id = j.tenant_id "
    "WHERE " KILN_PG_CLAIMABLE " AND " KILN_PG_WITHIN_QUOTA
    " ORDER BY j.created_at LIMIT 1 FOR UPDATE OF j SKIP LOCKED), " KILN_PG_CLAIM_PICKED};

// The claims of one tenant with quotas, serialised by the lock on its quota row (kLockQuota,
// taken first in the same transaction): this statement's snapshot, taken after the lock, sees
// every claim of the tenant's jobs committed before, so nodes claiming at once never pass
// maxRunning together. $5 is true, $6 the tenant.
inline constexpr Query kClaimJobOfTenant{
    "claim_job_of_tenant",
    "WITH c AS (SELECT j.job_id, true AS limited, j.tenant_id "
    "FROM agent_jobs j JOIN tenant_quotas q ON q.tenant_id = j.tenant_id WHERE j.tenant_id = $6 "
    "AND " KILN_PG_CLAIMABLE " AND " KILN_PG_WITHIN_QUOTA
    " ORDER BY j.created_at LIMIT 1 FOR UPDATE OF j SKIP LOCKED), " KILN_PG_CLAIM_PICKED};

// Serialises the submissions and claims of one tenant with quotas.
inline constexpr Query kLockQuota{
    "lock_quota",
    "SELECT max_running, jobs_per_hour, usd_per_day FROM tenant_quotas WHERE tenant_id=$1 "
    "FOR UPDATE"};

inline constexpr Query kGetQuota{
    "get_quota",
    "SELECT max_running, jobs_per_hour, usd_per_day FROM tenant_quotas WHERE tenant_id=$1"};

inline constexpr Query kDeleteQuota{"delete_quota", "DELETE FROM tenant_quotas WHERE tenant_id=$1"};

inline constexpr Query kInsertQuota{
    "insert_quota",
    "INSERT INTO tenant_quotas(tenant_id, max_running, jobs_per_hour, usd_per_day, updated_at) "
    "VALUES($1, $2, $3, $4, $5)"};

// What a tenant uses at $2 (ms): running, active, jobs created since $3, the oldest of them,
// spend on day $4.
inline constexpr Query kTenantUsage{
    "tenant_usage",
    "SELECT (SELECT COUNT(*) FROM agent_jobs r WHERE r.tenant_id = $1 AND r.owner_node <> '' AND "
    "r.lease_expires_at >= $2::bigint AND r.status NOT IN ('COMPLETED','FAILED','STOPPED')), "
    "(SELECT COUNT(*) FROM agent_jobs a WHERE a.tenant_id = $1 AND (a.status IN "
    "('QUEUED','PROVISIONING','RUNNING') OR (a.status = 'PAUSED' AND (a.pending_reply IS NOT "
    "NULL OR (a.owner_node <> '' AND a.lease_expires_at >= $2::bigint))))), "
    "(SELECT COUNT(*) FROM agent_jobs h WHERE h.tenant_id = $1 AND h.created_at > $3::bigint), "
    "(SELECT COALESCE(MIN(h.created_at), 0) FROM agent_jobs h WHERE h.tenant_id = $1 AND "
    "h.created_at > $3::bigint), "
    "COALESCE((SELECT usd FROM tenant_spend WHERE tenant_id = $1 AND day = $4::bigint), 0)"};

// Adds a step's spend to its tenant's day.
inline constexpr Query kAddSpend{
    "add_spend",
    "INSERT INTO tenant_spend(tenant_id, day, usd) SELECT tenant_id, $2, $3 FROM agent_jobs "
    "WHERE job_id=$1 ON CONFLICT(tenant_id, day) DO UPDATE SET usd = tenant_spend.usd + "
    "excluded.usd"};

// $2: a JSON array of {"id": job, "epoch": n}. Returns the jobs it renewed.
inline constexpr Query kRenewLeases{
    "renew_leases",
    "UPDATE agent_jobs j SET lease_expires_at=$3::bigint + $4::bigint "
    "FROM json_to_recordset($2::json) AS h(id text, epoch bigint) "
    "WHERE j.job_id = h.id AND j.owner_node = $1 AND j.lease_epoch = h.epoch RETURNING j.job_id"};

inline constexpr Query kLeaseHistory{
    "lease_history",
    "SELECT epoch, node_id, claimed_at FROM job_leases WHERE job_id=$1 ORDER BY epoch"};

// The job's lease, locking its row for the rest of the transaction.
inline constexpr Query kLockLease{
    "lock_lease", "SELECT owner_node, lease_epoch FROM agent_jobs WHERE job_id=$1 FOR UPDATE"};

// Adds a step's counters, only while the lease ($7, $8) holds; locks the job row.
inline constexpr Query kCountStep{
    "count_step",
    "UPDATE agent_jobs SET tokens_in=tokens_in+$2, tokens_out=tokens_out+$3, "
    "token_spend_usd=token_spend_usd+$4, step_count=GREATEST(step_count, $5), updated_at=$6, "
    "inflight_call=NULL WHERE job_id=$1 AND owner_node = $7 AND lease_epoch = $8 "
    "RETURNING owner_node"};

inline constexpr Query kInsertStep{
    "insert_step",
    "INSERT INTO execution_steps(step_id, job_id, step_number, phase, planner_thought, "
    "tool_called, tool_arguments, tool_output, workspace_hash, workspace_patch, tokens_in, "
    "tokens_out, usd, executed_at, is_error, exit_code, mutating, call_id, call_index, "
    "raw_arguments, refusal, shell_state) "
    "VALUES($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16,$17,$18,$19,$20,$21,$22)"};

inline constexpr Query kListSteps{
    "list_steps",
    "SELECT step_id, step_number, phase, planner_thought, tool_called, tool_arguments, "
    "tool_output, workspace_hash, workspace_patch, tokens_in, tokens_out, usd, executed_at, "
    "is_error, exit_code, mutating, call_id, call_index, raw_arguments, refusal, shell_state "
    "FROM execution_steps WHERE job_id=$1 ORDER BY step_number"};

inline constexpr Query kJobTotals{
    "job_totals",
    "SELECT status, COUNT(*), COALESCE(SUM(tokens_in), 0), COALESCE(SUM(tokens_out), 0), "
    "COALESCE(SUM(token_spend_usd), 0) FROM agent_jobs GROUP BY status"};

inline constexpr Query kLatestPatch{
    "latest_patch",
    "SELECT workspace_patch FROM execution_steps WHERE job_id=$1 AND workspace_patch IS NOT "
    "NULL ORDER BY step_number DESC LIMIT 1"};

// Reserves `$2` sequence numbers on the job row (its lock orders concurrent appends, so seqs
// commit in order and a reader never sees a gap) and tells every node, at commit, the job's
// newest seq.
inline constexpr Query kReserveSeqs{
    "reserve_seqs",
    "UPDATE agent_jobs SET last_event_seq = last_event_seq + $2 WHERE job_id=$1 "
    "RETURNING last_event_seq, pg_notify('kiln_events', job_id || ':' || last_event_seq)"};

// $4: a JSON array of {"t": type, "p": the payload's JSON text as a string}. A string, not the
// payload itself: PostgreSQL's JSON functions refuse \u0000, which terminal output may hold.
inline constexpr Query kInsertEvents{
    "insert_events",
    "INSERT INTO job_events(job_id, seq, type, payload, created_at) "
    "SELECT $1, $2::bigint + e.ord, e.v->>'t', e.v->>'p', $3::bigint "
    "FROM json_array_elements($4::json) WITH ORDINALITY AS e(v, ord)"};

inline constexpr Query kListEvents{
    "list_events",
    "SELECT seq, type, payload, created_at FROM job_events WHERE job_id=$1 AND seq>$2 "
    "ORDER BY seq LIMIT $3"};

inline constexpr Query kNotify{"notify", "SELECT pg_notify($1, $2)"};

inline constexpr Query kEnsureTenant{
    "ensure_tenant",
    "INSERT INTO tenants(tenant_id, name, created_at) VALUES($1,$2,$3) "
    "ON CONFLICT(tenant_id) DO NOTHING"};

inline constexpr Query kGetTenant{"get_tenant", "SELECT 1 FROM tenants WHERE tenant_id=$1"};

inline constexpr Query kAddToken{
    "add_token",
    "INSERT INTO api_tokens(token_hash, tenant_id, created_at, token_id, name, role) "
    "VALUES($1,$2,$3,$4,$5,$6) ON CONFLICT(token_hash) DO NOTHING"};

// The id of a token row; rows an older node wrote have none: one from their hash.
#define KILN_PG_TOKEN_ID "COALESCE(token_id, 'tok_' || substr(token_hash, 1, 16))"
#define KILN_PG_TOKEN_COLUMNS \
  KILN_PG_TOKEN_ID ", tenant_id, name, role, created_at, COALESCE(revoked_at, 0)"

inline constexpr Query kTokenGrant{
    "token_grant", "SELECT " KILN_PG_TOKEN_ID
                   ", tenant_id, role FROM api_tokens WHERE token_hash=$1 AND revoked_at IS NULL"};

inline constexpr Query kListTokens{
    "list_tokens", "SELECT " KILN_PG_TOKEN_COLUMNS
                   " FROM api_tokens WHERE ($1 = '' OR tenant_id = $1) ORDER BY created_at, 1"};

inline constexpr Query kRevokeToken{
    "revoke_token",
    "UPDATE api_tokens SET revoked_at = COALESCE(revoked_at, $1::bigint) WHERE " KILN_PG_TOKEN_ID
    " = $2 AND ($3 = '' OR tenant_id = $3) RETURNING " KILN_PG_TOKEN_COLUMNS};

inline constexpr Query kEnsureSetting{
    "ensure_setting",
    "WITH i AS (INSERT INTO kiln_settings(name, value) VALUES($1, $2) ON CONFLICT(name) DO "
    "NOTHING RETURNING value) SELECT value FROM i UNION ALL SELECT value FROM kiln_settings "
    "WHERE name = $1"};

// A drain asked of an earlier process with the same node id does not carry over.
inline constexpr Query kHeartbeatNode{
    "heartbeat_node",
    "INSERT INTO kiln_nodes AS n(node_id, address, version, started_at, heartbeat_at, "
    "running_jobs, max_jobs, claiming, draining, figures) VALUES($1,$2,$3,$4,$5,$6,$7,$8,$9,$10) "
    "ON CONFLICT(node_id) DO UPDATE SET address=excluded.address, version=excluded.version, "
    "started_at=excluded.started_at, heartbeat_at=excluded.heartbeat_at, "
    "running_jobs=excluded.running_jobs, max_jobs=excluded.max_jobs, "
    "claiming=excluded.claiming, draining=excluded.draining, figures=excluded.figures, "
    "drain_requested=(n.drain_requested AND n.started_at=excluded.started_at) "
    "RETURNING drain_requested"};

inline constexpr Query kDropOldNodes{"drop_old_nodes",
                                     "DELETE FROM kiln_nodes WHERE heartbeat_at < $1"};

inline constexpr Query kListNodes{
    "list_nodes",
    "SELECT node_id, address, version, started_at, heartbeat_at, running_jobs, max_jobs, "
    "claiming, draining, figures FROM kiln_nodes ORDER BY node_id"};

inline constexpr Query kRequestDrain{"request_drain",
                                     "UPDATE kiln_nodes SET drain_requested=true WHERE node_id=$1 "
                                     "RETURNING pg_notify('kiln_drain', node_id)"};

// Tenant secrets (store::TenantSecret).
inline constexpr Query kPutSecret{
    "put_secret",
    "INSERT INTO tenant_secrets(tenant_id, name, mode, hosts, sealed, created_at, updated_at) "
    "VALUES($1,$2,$3,$4,$5,$6,$6) ON CONFLICT(tenant_id, name) DO UPDATE SET mode=$3, "
    "hosts=$4, sealed=$5, updated_at=$6"};
inline constexpr Query kListSecrets{
    "list_secrets",
    "SELECT name, mode, hosts, sealed, created_at, updated_at FROM tenant_secrets "
    "WHERE tenant_id=$1 ORDER BY name COLLATE \"C\""};
inline constexpr Query kDeleteSecret{
    "delete_secret", "DELETE FROM tenant_secrets WHERE tenant_id=$1 AND name=$2 RETURNING name"};

}  // namespace kiln::store::postgres::sql
