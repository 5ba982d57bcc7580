#include "store/postgres/pg_migrations.h"

#include <string_view>
#include <vector>

#include "common/clock.h"

namespace kiln::store::postgres {
namespace {

struct Migration {
  int version;
  std::string_view sql;
};

// Version 1 is the SQLite engine's schema as of its migration 3, plus the events counter.
const std::vector<Migration>& migrations() {
  static const std::vector<Migration> kMigrations = {
      {1, R"sql(
CREATE TABLE tenants(
  tenant_id TEXT PRIMARY KEY,
  name TEXT NOT NULL,
  created_at BIGINT NOT NULL);
CREATE TABLE api_tokens(
  token_hash TEXT PRIMARY KEY,
  tenant_id TEXT NOT NULL REFERENCES tenants(tenant_id),
  created_at BIGINT NOT NULL,
  revoked_at BIGINT);
CREATE TABLE agent_jobs(
  job_id TEXT PRIMARY KEY,
  tenant_id TEXT NOT NULL,
  repository_url TEXT NOT NULL,
  ref TEXT NOT NULL DEFAULT '',
  task_description TEXT NOT NULL,
  agent TEXT NOT NULL,
  model TEXT NOT NULL DEFAULT '',
  status TEXT NOT NULL,
  limits TEXT NOT NULL DEFAULT '{}',
  spec TEXT NOT NULL DEFAULT '{}',
  created_at BIGINT NOT NULL,
  updated_at BIGINT NOT NULL,
  started_at BIGINT NOT NULL DEFAULT 0,
  token_spend_usd DOUBLE PRECISION NOT NULL DEFAULT 0,
  tokens_in BIGINT NOT NULL DEFAULT 0,
  tokens_out BIGINT NOT NULL DEFAULT 0,
  step_count INTEGER NOT NULL DEFAULT 0,
  error TEXT,
  owner_node TEXT,
  lease_expires_at BIGINT NOT NULL DEFAULT 0,
  base_commit TEXT NOT NULL DEFAULT '',
  pending_reply TEXT,
  inflight_call TEXT,
  approval TEXT,
  last_event_seq BIGINT NOT NULL DEFAULT 0);
CREATE INDEX agent_jobs_claimable ON agent_jobs(created_at)
  WHERE status IN ('QUEUED', 'PROVISIONING', 'RUNNING', 'PAUSED');
CREATE INDEX agent_jobs_status ON agent_jobs(status, created_at, job_id);
CREATE INDEX agent_jobs_tenant ON agent_jobs(tenant_id, created_at, job_id);
CREATE TABLE execution_steps(
  step_id TEXT PRIMARY KEY,
  job_id TEXT NOT NULL REFERENCES agent_jobs(job_id),
  step_number INTEGER NOT NULL,
  phase TEXT NOT NULL DEFAULT 'acting',
  planner_thought TEXT NOT NULL DEFAULT '',
  tool_called TEXT NOT NULL DEFAULT '',
  tool_arguments TEXT NOT NULL DEFAULT '{}',
  tool_output BYTEA NOT NULL,
  workspace_hash TEXT NOT NULL DEFAULT '',
  workspace_patch BYTEA,
  tokens_in BIGINT NOT NULL DEFAULT 0,
  tokens_out BIGINT NOT NULL DEFAULT 0,
  usd DOUBLE PRECISION NOT NULL DEFAULT 0,
  executed_at BIGINT NOT NULL,
  UNIQUE(job_id, step_number));
CREATE TABLE job_events(
  job_id TEXT NOT NULL,
  seq BIGINT NOT NULL,
  type TEXT NOT NULL,
  payload TEXT NOT NULL,
  created_at BIGINT NOT NULL,
  PRIMARY KEY(job_id, seq));
)sql"},
      {2, R"sql(
CREATE TABLE kiln_nodes(
  node_id TEXT PRIMARY KEY,
  address TEXT NOT NULL,
  version TEXT NOT NULL,
  started_at BIGINT NOT NULL,
  heartbeat_at BIGINT NOT NULL,
  running_jobs INTEGER NOT NULL,
  max_jobs INTEGER NOT NULL,
  claiming BOOLEAN NOT NULL,
  draining BOOLEAN NOT NULL,
  drain_requested BOOLEAN NOT NULL DEFAULT false,
  figures TEXT NOT NULL DEFAULT '{}');
)sql"},
      // Fencing (lease_epoch, the owner-change log), attempts, and how each step's call went.
      {3, R"sql(
ALTER TABLE agent_jobs ADD COLUMN lease_epoch BIGINT NOT NULL DEFAULT 0;
ALTER TABLE agent_jobs ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0;
ALTER TABLE execution_steps ADD COLUMN is_error BOOLEAN NOT NULL DEFAULT false;
ALTER TABLE execution_steps ADD COLUMN exit_code INTEGER NOT NULL DEFAULT 0;
ALTER TABLE execution_steps ADD COLUMN mutating BOOLEAN NOT NULL DEFAULT false;
CREATE TABLE job_leases(
  job_id TEXT NOT NULL,
  epoch BIGINT NOT NULL,
  node_id TEXT NOT NULL,
  claimed_at BIGINT NOT NULL,
  PRIMARY KEY(job_id, epoch));
)sql"},
      // The model's calls as it made them (store::Step); older rows read as their defaults.
      {4, R"sql(
ALTER TABLE execution_steps ADD COLUMN call_id TEXT NOT NULL DEFAULT '';
ALTER TABLE execution_steps ADD COLUMN call_index INTEGER NOT NULL DEFAULT 0;
ALTER TABLE execution_steps ADD COLUMN raw_arguments TEXT NOT NULL DEFAULT '';
ALTER TABLE execution_steps ADD COLUMN refusal BOOLEAN NOT NULL DEFAULT false;
ALTER TABLE execution_steps ADD COLUMN shell_state TEXT;
)sql"},
      // The newest run of the job's verify command (store::Job::verify).
      {5, R"sql(
ALTER TABLE agent_jobs ADD COLUMN verify TEXT;
)sql"},
      // Tenants, tokens and roles; quotas (as the SQLite engine's migration 8).
      {6, R"sql(
ALTER TABLE api_tokens ADD COLUMN token_id TEXT;
ALTER TABLE api_tokens ADD COLUMN name TEXT NOT NULL DEFAULT '';
ALTER TABLE api_tokens ADD COLUMN role TEXT NOT NULL DEFAULT 'admin';
UPDATE api_tokens SET token_id = 'tok_' || substr(token_hash, 1, 16), name = 'unkeyed';
CREATE UNIQUE INDEX api_tokens_id ON api_tokens(token_id);
CREATE TABLE kiln_settings(
  name TEXT PRIMARY KEY,
  value TEXT NOT NULL);
CREATE TABLE tenant_quotas(
  tenant_id TEXT PRIMARY KEY,
  max_running BIGINT,
  jobs_per_hour BIGINT,
  usd_per_day DOUBLE PRECISION,
  updated_at BIGINT NOT NULL);
CREATE TABLE tenant_spend(
  tenant_id TEXT NOT NULL,
  day BIGINT NOT NULL,
  usd DOUBLE PRECISION NOT NULL DEFAULT 0,
  PRIMARY KEY(tenant_id, day));
CREATE INDEX agent_jobs_leased ON agent_jobs(tenant_id, lease_expires_at) WHERE owner_node <> '';
CREATE INDEX agent_jobs_tenant_status ON agent_jobs(tenant_id, status);
)sql"},
      // Secrets, sealed: a job's (store::Job::secrets) and each tenant's (store::TenantSecret).
      {7, R"sql(
ALTER TABLE agent_jobs ADD COLUMN secrets TEXT;
CREATE TABLE tenant_secrets(
  tenant_id TEXT NOT NULL,
  name TEXT NOT NULL,
  mode TEXT NOT NULL,
  hosts TEXT NOT NULL DEFAULT '[]',
  sealed TEXT NOT NULL,
  created_at BIGINT NOT NULL,
  updated_at BIGINT NOT NULL,
  PRIMARY KEY(tenant_id, name));
)sql"},
  };
  return kMigrations;
}

// pg_advisory_xact_lock key: "kiln" in ASCII.
constexpr const char* kMigrationLock = "SELECT pg_advisory_xact_lock(1801677934)";

}  // namespace

Status migrate(ConnectionPool& pool) {
  return inTransaction(pool, [&](Connection& c) -> Status {
    // The lock comes first: even CREATE TABLE IF NOT EXISTS races with itself.
    RETURN_IF_ERROR(c.exec(kMigrationLock));
    RETURN_IF_ERROR(
        c.exec("CREATE TABLE IF NOT EXISTS schema_migrations(version INTEGER PRIMARY KEY, "
               "applied_at BIGINT NOT NULL)"));
    static constexpr Query kApplied{"migration_applied",
                                    "SELECT 1 FROM schema_migrations WHERE version = $1"};
    static constexpr Query kRecord{"migration_record",
                                   "INSERT INTO schema_migrations VALUES($1, $2)"};
    for (const auto& m : migrations()) {
      ASSIGN_OR_RETURN(Rows applied, c.run(kApplied, Params().i64(m.version)));
      if (!applied.empty()) continue;
      RETURN_IF_ERROR(
          c.exec(std::string(m.sql)).withContext("migration " + std::to_string(m.version)));
      RETURN_IF_ERROR(
          c.run(kRecord, Params().i64(m.version).i64(RealClock::instance().nowMs())).status());
    }
    return Status::ok();
  });
}

}  // namespace kiln::store::postgres
