#include "store/sqlite/migrations.h"

namespace kiln::store::sqlite {

const std::vector<Migration>& migrations() {
  static const std::vector<Migration> kMigrations = {
      {1, R"sql(
CREATE TABLE tenants(
  tenant_id TEXT PRIMARY KEY,
  name TEXT NOT NULL,
  created_at INTEGER NOT NULL);
CREATE TABLE api_tokens(
  token_hash TEXT PRIMARY KEY,
  tenant_id TEXT NOT NULL REFERENCES tenants(tenant_id),
  created_at INTEGER NOT NULL,
  revoked_at INTEGER);
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
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL,
  started_at INTEGER NOT NULL DEFAULT 0,
  token_spend_usd REAL NOT NULL DEFAULT 0,
  tokens_in INTEGER NOT NULL DEFAULT 0,
  tokens_out INTEGER NOT NULL DEFAULT 0,
  step_count INTEGER NOT NULL DEFAULT 0,
  error TEXT,
  owner_node TEXT,
  lease_expires_at INTEGER NOT NULL DEFAULT 0,
  base_commit TEXT NOT NULL DEFAULT '',
  pending_reply TEXT);
CREATE INDEX agent_jobs_status ON agent_jobs(status, created_at);
CREATE INDEX agent_jobs_tenant ON agent_jobs(tenant_id, created_at, job_id);
CREATE TABLE execution_steps(
  step_id TEXT PRIMARY KEY,
  job_id TEXT NOT NULL REFERENCES agent_jobs(job_id),
  step_number INTEGER NOT NULL,
  phase TEXT NOT NULL DEFAULT 'acting',
  planner_thought TEXT NOT NULL DEFAULT '',
  tool_called TEXT NOT NULL DEFAULT '',
  tool_arguments TEXT NOT NULL DEFAULT '{}',
  tool_output TEXT NOT NULL DEFAULT '',
  workspace_hash TEXT NOT NULL DEFAULT '',
  workspace_patch BLOB,
  tokens_in INTEGER NOT NULL DEFAULT 0,
  tokens_out INTEGER NOT NULL DEFAULT 0,
  usd REAL NOT NULL DEFAULT 0,
  executed_at INTEGER NOT NULL,
  UNIQUE(job_id, step_number));
CREATE TABLE job_events(
  job_id TEXT NOT NULL,
  seq INTEGER NOT NULL,
  type TEXT NOT NULL,
  payload TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  PRIMARY KEY(job_id, seq)) WITHOUT ROWID;
)sql"},
      {2, R"sql(
ALTER TABLE agent_jobs ADD COLUMN inflight_call TEXT;
)sql"},
      {3, R"sql(
ALTER TABLE agent_jobs ADD COLUMN approval TEXT;
)sql"},
      // Fencing (lease_epoch, the owner-change log), attempts, and how each step's call went.
      {4, R"sql(
ALTER TABLE agent_jobs ADD COLUMN lease_epoch INTEGER NOT NULL DEFAULT 0;
ALTER TABLE agent_jobs ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0;
ALTER TABLE execution_steps ADD COLUMN is_error INTEGER NOT NULL DEFAULT 0;
ALTER TABLE execution_steps ADD COLUMN exit_code INTEGER NOT NULL DEFAULT 0;
ALTER TABLE execution_steps ADD COLUMN mutating INTEGER NOT NULL DEFAULT 0;
CREATE TABLE job_leases(
  job_id TEXT NOT NULL,
  epoch INTEGER NOT NULL,
  node_id TEXT NOT NULL,
  claimed_at INTEGER NOT NULL,
  PRIMARY KEY(job_id, epoch)) WITHOUT ROWID;
)sql"},
      // The model's calls as it made them (store::Step); older rows read as their defaults.
      {5, R"sql(
ALTER TABLE execution_steps ADD COLUMN call_id TEXT NOT NULL DEFAULT '';
ALTER TABLE execution_steps ADD COLUMN call_index INTEGER NOT NULL DEFAULT 0;
ALTER TABLE execution_steps ADD COLUMN raw_arguments TEXT NOT NULL DEFAULT '';
ALTER TABLE execution_steps ADD COLUMN refusal INTEGER NOT NULL DEFAULT 0;
ALTER TABLE execution_steps ADD COLUMN shell_state TEXT;
)sql"},
      // The newest run of the job's verify command (store::Job::verify).
      {6, R"sql(
ALTER TABLE agent_jobs ADD COLUMN verify TEXT;
)sql"},
      // Fleet nodes and their heartbeats.
      {7, R"sql(
CREATE TABLE kiln_nodes(
  node_id TEXT PRIMARY KEY,
  address TEXT NOT NULL,
  version TEXT NOT NULL,
  started_at INTEGER NOT NULL,
  heartbeat_at INTEGER NOT NULL,
  running_jobs INTEGER NOT NULL,
  max_jobs INTEGER NOT NULL,
  claiming INTEGER NOT NULL,
  draining INTEGER NOT NULL,
  drain_requested INTEGER NOT NULL DEFAULT 0,
  figures TEXT NOT NULL DEFAULT '{}');
)sql"},
      // Tenants, tokens and roles; quotas. Tokens stored before are unkeyed SHA-256 hashes of
      // admin tokens (each node registers its admin token again, keyed, at start): they keep
      // their role, an id from their hash and the name "unkeyed".
      {8, R"sql(
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
  max_running INTEGER,
  jobs_per_hour INTEGER,
  usd_per_day REAL,
  updated_at INTEGER NOT NULL);
CREATE TABLE tenant_spend(
  tenant_id TEXT NOT NULL,
  day INTEGER NOT NULL,
  usd REAL NOT NULL DEFAULT 0,
  PRIMARY KEY(tenant_id, day)) WITHOUT ROWID;
CREATE INDEX agent_jobs_leased ON agent_jobs(tenant_id, lease_expires_at) WHERE owner_node <> '';
CREATE INDEX agent_jobs_tenant_status ON agent_jobs(tenant_id, status);
)sql"},
      // Secrets, sealed: a job's (store::Job::secrets) and each tenant's (store::TenantSecret).
      {9, R"sql(
ALTER TABLE agent_jobs ADD COLUMN secrets TEXT;
CREATE TABLE tenant_secrets(
  tenant_id TEXT NOT NULL,
  name TEXT NOT NULL,
  mode TEXT NOT NULL,
  hosts TEXT NOT NULL DEFAULT '[]',
  sealed TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL,
  PRIMARY KEY(tenant_id, name)) WITHOUT ROWID;
)sql"},
  };
  return kMigrations;
}

}  // namespace kiln::store::sqlite
