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
  "j.verify"

// Claimable: queued work, a job whose owner's lease lapsed (its node died or was shut down),
// or a paused job that got its reply. PAUSED jobs without a reply hold no lease.
#define KILN_PG_CLAIMABLE                                       \
  "(j.status IN ('QUEUED','PROVISIONING','RUNNING') OR "        \
  "(j.status = 'PAUSED' AND j.pending_reply IS NOT NULL)) AND " \
  "(j.owner_node IS NULL OR j.owner_node = '' OR j.lease_expires_at < $2::bigint)"

inline constexpr Query kInsertJob{
    "insert_job",
    "INSERT INTO agent_jobs(job_id, tenant_id, repository_url, ref, task_description, agent, "
    "model, status, limits, spec, created_at, updated_at, pending_reply) "
    "VALUES($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$11,$12)"};

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

// SKIP LOCKED: nodes claiming at once each take a different job instead of queueing on one row.
// The claim bumps the job's fencing epoch and appends to the owner-change log in the same
// statement.
inline constexpr Query kClaimJob{
    "claim_job",
    "WITH c AS (SELECT j.job_id FROM agent_jobs j WHERE " KILN_PG_CLAIMABLE
    " ORDER BY j.created_at LIMIT 1 FOR UPDATE SKIP LOCKED), "
    "u AS (UPDATE agent_jobs j SET owner_node=$1, lease_expires_at=$2::bigint + $3::bigint, "
    "updated_at=$2::bigint, lease_epoch=j.lease_epoch + 1 FROM c WHERE j.job_id = c.job_id "
    "RETURNING " KILN_PG_JOB_COLUMNS "), "
    "l AS (INSERT INTO job_leases(job_id, epoch, node_id, claimed_at) "
    "SELECT u.job_id, u.lease_epoch, $1, $2::bigint FROM u) "
    "SELECT * FROM u"};

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

inline constexpr Query kAddToken{
    "add_token",
    "INSERT INTO api_tokens(token_hash, tenant_id, created_at) VALUES($1,$2,$3) "
    "ON CONFLICT(token_hash) DO NOTHING"};

inline constexpr Query kTenantForToken{
    "tenant_for_token",
    "SELECT tenant_id FROM api_tokens WHERE token_hash=$1 AND revoked_at IS NULL"};

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

}  // namespace kiln::store::postgres::sql
