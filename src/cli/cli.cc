#include "cli/cli.h"

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <exception>
#include <iostream>

#include "cli/commands.h"
#include "secrets/log_sink.h"

namespace kiln::cli {

namespace {

// Every parsed flag, filled by CLI11; the chosen subcommand's callback reads it.
struct Flags {
  ClientFlags client;
  ServeFlags serve;
  int serveMaxJobs = 0;
  int serveMaxAttempts = 0;
  RunFlags run;
  JobsFlags jobs;
  std::string jobId;
  bool follow = false;
  bool json = false;
  std::vector<std::string> message;
  TokenFlags token;
  QuotaFlags quota;
  SecretFlags secret;
};

void addGlobalOptions(CLI::App& app, Flags& f) {
  app.add_option("--server", f.client.server, "kiln server URL (env KILN_SERVER)");
  app.add_option("--token", f.client.token,
                 "API token (env KILN_TOKEN; default: the data dir's admin.token)");
  app.add_option("--data-dir", f.client.dataDir,
                 "data dir (env KILN_DATA_DIR; default ~/.local/share/kiln)");
}

void addServe(CLI::App& app, Flags& f, int& code) {
  auto* cmd = app.add_subcommand("serve", "Run a kiln server (API, scheduler, sandboxes)");
  cmd->add_option("--listen", f.serve.listen,
                  "HOST:PORT to listen on; port 0 picks one "
                  "(env KILN_LISTEN; default 127.0.0.1:8080)");
  cmd->add_option("--metrics-listen", f.serve.metricsListen,
                  "HOST:PORT serving /metrics (and /healthz) without a token, e.g. for "
                  "Prometheus; on --listen, /metrics needs a token (env KILN_METRICS_LISTEN)");
  cmd->add_option("--allow-local-repos", f.serve.allowLocalRepos,
                  "DIR...: accept jobs whose repoUrl is a local path (or file://) only under "
                  "these absolute directories, never inside the data dir; without it no local "
                  "path is accepted (env KILN_ALLOW_LOCAL_REPOS, ':'-separated)")
      ->expected(1, -1);
  cmd->add_option(
      "--max-streams-per-token", f.serve.maxStreamsPerToken,
      "event streams (GET /api/v1/jobs/{id}/stream) one API token may hold open at "
      "once; beyond, 429 too_many_streams (env KILN_MAX_STREAMS_PER_TOKEN; default 16)");
  cmd->add_option("--store", f.serve.storeUrl,
                  "store URL, sqlite:PATH or postgres://... (env KILN_STORE)");
  cmd->add_option("--max-jobs", f.serveMaxJobs, "jobs running at once (env KILN_MAX_JOBS)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--max-attempts", f.serveMaxAttempts,
                  "runs of a job that may fail unexpectedly (a store error, an internal error) "
                  "before it is FAILED with code internal (env KILN_MAX_ATTEMPTS; default 3)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--node-id", f.serve.nodeId, "this node's id (default: hostname-random)");
  cmd->add_option("--default-limits", f.serve.defaultLimits,
                  "limits for jobs that set none, as JSON, e.g. '{\"maxSteps\":100,"
                  "\"maxUsd\":5,\"maxWallSeconds\":1800,\"contextTokens\":64000}' "
                  "(env KILN_DEFAULT_LIMITS; built in: 50 steps, 3600 s, 64000 tokens)");
  cmd->add_flag("--sandbox-userns", f.serve.sandboxUserNs,
                "as root: give each sandbox a user namespace too, so that root and the agent "
                "inside are unprivileged ids on the host (env KILN_SANDBOX_USERNS=1; run by "
                "another user, kiln is in rootless mode and always does)");
  cmd->add_option("--drain-timeout", f.serve.drainTimeout,
                  "seconds a draining node (POST /api/v1/nodes/{id}/drain, SIGTERM) lets its "
                  "running jobs finish before it hands them over to other nodes at a step "
                  "boundary (env KILN_DRAIN_TIMEOUT; default 0)");
  cmd->add_option("--min-free-disk-mb", f.serve.minFreeDiskMb,
                  "stop claiming jobs while the data dir's filesystem has less free "
                  "(env KILN_MIN_FREE_DISK_MB; default 512)");
  cmd->add_option("--min-free-memory-mb", f.serve.minFreeMemoryMb,
                  "stop claiming jobs while less memory is available "
                  "(env KILN_MIN_FREE_MEMORY_MB; default 256)");
  cmd->add_option("--sandbox-backend", f.serve.sandboxBackend,
                  "backend of jobs that name none: namespace (Linux namespaces, the host's "
                  "kernel) or gvisor (runsc: a kernel of its own) (env KILN_SANDBOX_BACKEND; "
                  "default namespace)");
  cmd->add_option("--warm-pool", f.serve.warmPools,
                  "keep N sandboxes of BACKEND[:IMAGE] started for jobs to take, e.g. "
                  "gvisor=4 (repeatable; env KILN_WARM_POOLS, comma-separated); refused at start "
                  "when it cannot be filled")
      ->take_all()
      ->allow_extra_args(false);
  cmd->add_option("--gvisor-platform", f.serve.gvisorPlatform,
                  "auto (kvm where it works, else ptrace), ptrace or kvm "
                  "(env KILN_GVISOR_PLATFORM)");
  cmd->callback([&] {
    if (f.serveMaxJobs > 0) f.serve.maxJobs = f.serveMaxJobs;
    if (f.serveMaxAttempts > 0) f.serve.maxAttempts = f.serveMaxAttempts;
    code = serveCommand(f.serve, f.client);
  });
}

void addRun(CLI::App& app, Flags& f, int& code) {
  auto* cmd = app.add_subcommand("run", "Submit a task, follow it live, print the diff");
  cmd->footer(
      "Exit status: 0 COMPLETED, 2 FAILED, 3 STOPPED, 1 any other error.\n"
      "Without a reachable server (--server, or the data dir's server.json) it starts an\n"
      "embedded one for the duration of the run.");
  cmd->add_option("--repo", f.run.repo, "git repository: URL or local path")->required();
  cmd->add_option("--ref", f.run.ref, "branch, tag or commit (default: HEAD)");
  cmd->add_option("--agent", f.run.agent,
                  "agent: mock, openai, anthropic, or an agent CLI run in the sandbox: claude, "
                  "codex, cursor, cli (with --command)");
  cmd->add_option("--command", f.run.command,
                  "agent CLI to run (shell text; the task is appended as one argument); "
                  "overrides the preset of --agent claude/codex/cursor, default agent cli");
  cmd->add_option("--pass-env", f.run.passEnv,
                  "pass this variable of the server's environment to the agent CLI (repeatable; "
                  "API key names, or names the server lists in KILN_CLI_ENV)");
  cmd->add_option("--model", f.run.model, "model name for the provider");
  cmd->add_option("--max-steps", f.run.maxSteps, "stop after this many steps")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--max-usd", f.run.maxUsd, "stop once the model spend exceeds this")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--approve-before", f.run.approvals,
                  "pause for `kiln approve` before this action: commit, push (repeatable)");
  cmd->add_flag("--push", f.run.push,
                "push branch kiln/<job> to the repo's remote at the end (an http(s) remote; "
                "token from the server's KILN_GIT_PUSH_TOKEN)");
  cmd->add_option("--allow-host", f.run.allowHosts,
                  "let the sandbox reach this host through the egress proxy (repeatable)");
  cmd->add_option(
      "--mcp", f.run.mcp,
      "NAME=COMMAND: an MCP server (stdio) started in the sandbox, its tools offered "
      "to the agent as mcp__NAME__<tool> (repeatable; built-in agents, claude, codex; e.g. "
      "--mcp 'fs=mcp-server-filesystem /workspace')");
  cmd->add_option("task", f.run.task, "what the agent should do")->required();
  cmd->callback([&] { code = runCommand(f.run, f.client); });
}

void addJobs(CLI::App& app, Flags& f, int& code) {
  auto* cmd = app.add_subcommand("jobs", "List recent jobs");
  cmd->add_option("--status", f.jobs.status, "only jobs in this status (e.g. RUNNING)");
  cmd->add_option("--limit", f.jobs.limit, "at most this many jobs")->check(CLI::Range(1, 1000));
  cmd->add_flag("--json", f.jobs.json, "print the raw JSON");
  cmd->callback([&] { code = jobsCommand(f.jobs, f.client); });
}

void addNodes(CLI::App& app, Flags& f, int& code) {
  auto* cmd = app.add_subcommand("nodes", "List the fleet's nodes (admin token)");
  cmd->add_flag("--json", f.json, "print the raw JSON");
  auto* drain = cmd->add_subcommand(
      "drain", "Make a node stop claiming; its jobs finish or hand over to other nodes");
  drain->add_option("id", f.jobId, "node id")->required();
  drain->add_flag("--wait", f.follow, "return once the node runs no job any more");
  drain->callback([&] { code = drainCommand(f.jobId, f.follow, f.client); });
  cmd->callback([&, drain] {
    if (!drain->parsed()) code = nodesCommand(f.json, f.client);
  });
}

void addTokens(CLI::App& app, Flags& f, int& code) {
  auto* cmd = app.add_subcommand(
      "token",
      "API tokens (an admin token; without a running server, or with --direct, the data dir's "
      "store itself)");
  cmd->require_subcommand(1);
  auto* create = cmd->add_subcommand("create",
                                     "Make a token; it is printed once, alone on the "
                                     "last line");
  create->add_option("--tenant", f.token.tenant,
                     "the token's tenant, made if new (default: the caller's; only the operator's "
                     "admin, tenant default, names another)");
  create->add_option("--name", f.token.name, "what the token is for, e.g. ci");
  create->add_option("--role", f.token.role, "admin, member (default) or viewer")
      ->check(CLI::IsMember({"admin", "member", "viewer"}));
  auto* list = cmd->add_subcommand("list", "List tokens (never their secrets)");
  list->add_option("--tenant", f.token.tenant, "only this tenant's");
  auto* revoke = cmd->add_subcommand("revoke", "Revoke a token: it answers 401 from now on");
  revoke->add_option("id", f.jobId, "token id (tok_...)")->required();
  for (auto* sub : {create, list, revoke}) {
    sub->add_flag("--direct", f.token.direct,
                  "use the data dir's store (KILN_STORE) and token key (KILN_TOKEN_KEY, else "
                  "<data-dir>/token.key) even when a server runs");
    if (sub != revoke) sub->add_flag("--json", f.token.json, "print the raw JSON");
  }
  create->callback([&] { code = tokenCreateCommand(f.token, f.client); });
  list->callback([&] { code = tokenListCommand(f.token, f.client); });
  revoke->callback([&] { code = tokenRevokeCommand(f.jobId, f.token, f.client); });
}

void addTenants(CLI::App& app, Flags& f, int& code) {
  auto* cmd = app.add_subcommand("tenant", "A tenant's quotas");
  cmd->require_subcommand(1);
  auto* quota = cmd->add_subcommand("quota", "Show or set a tenant's quotas");
  quota->require_subcommand(1);
  auto* show = quota->add_subcommand("show", "Show the quotas and what the tenant uses");
  auto* set = quota->add_subcommand(
      "set", "Set quotas (the operator's admin token); 'none' removes one, others are kept");
  set->add_option("--max-running", f.quota.maxRunning, "jobs that may run at once");
  set->add_option("--jobs-per-hour", f.quota.jobsPerHour, "jobs created in any 60 minutes");
  set->add_option("--usd-per-day", f.quota.usdPerDay, "model spend per UTC day");
  for (auto* sub : {show, set}) {
    sub->add_option("tenant", f.quota.tenant, "tenant id")->required();
    sub->add_flag("--json", f.quota.json, "print the raw JSON");
  }
  show->callback([&] { code = quotaCommand(f.quota, false, f.client); });
  set->callback([&] { code = quotaCommand(f.quota, true, f.client); });
}

void addSecrets(CLI::App& app, Flags& f, int& code) {
  auto* cmd = app.add_subcommand("secret",
                                 "The tenant's secrets (jobs get them; values never "
                                 "shown)");
  cmd->require_subcommand(1);
  auto* set = cmd->add_subcommand("set", "Set a secret; the value comes from stdin or a prompt");
  set->add_option("name", f.secret.name, "the variable name jobs see")->required();
  set->add_option("--host", f.secret.hosts,
                  "a host the value may be sent to (proxy mode: the sandbox sees a placeholder)");
  set->add_option("--mode", f.secret.mode, "env (the value in the sandbox) or proxy")
      ->check(CLI::IsMember({"env", "proxy"}));
  set->callback([&] { code = secretSetCommand(f.secret, f.client); });
  auto* list = cmd->add_subcommand("list", "List the tenant's secrets (names, modes, hosts)");
  list->add_flag("--json", f.json, "print the raw JSON");
  list->callback([&] { code = secretListCommand(f.json, f.client); });
  auto* rm = cmd->add_subcommand("rm", "Remove a secret");
  rm->add_option("name", f.secret.name, "its name")->required();
  rm->callback([&] { code = secretRemoveCommand(f.secret.name, f.client); });
}

CLI::App* addJobCommand(CLI::App& app, Flags& f, const std::string& name, const std::string& help) {
  auto* cmd = app.add_subcommand(name, help);
  cmd->add_option("id", f.jobId, "job id")->required();
  return cmd;
}

void addJobCommands(CLI::App& app, Flags& f, int& code) {
  auto* logs = addJobCommand(app, f, "logs", "Print a job's events (-f: follow until it ends)");
  logs->add_flag("-f,--follow", f.follow, "keep following until the job is done");
  logs->callback([&] { code = logsCommand(f.jobId, f.follow, f.client); });

  addJobCommand(app, f, "stop", "Stop a job and kill its sandbox")->callback([&] {
    code = stopCommand(f.jobId, f.client);
  });
  auto* reply = addJobCommand(app, f, "reply", "Answer a paused job's question");
  reply->add_option("message", f.message, "the answer")->required();
  reply->callback([&] { code = replyCommand(f.jobId, f.message, f.client); });
  addJobCommand(app, f, "approve", "Pass a paused job's approval gate (commit, push)")
      ->callback([&] { code = approveCommand(f.jobId, f.client); });
  auto* cont = addJobCommand(app, f, "continue",
                             "Give a finished job a follow-up task in the same workspace");
  cont->add_option("task", f.message, "the follow-up task")->required();
  cont->callback([&] { code = continueCommand(f.jobId, f.message, f.client); });
  addJobCommand(app, f, "diff", "Print a job's workspace diff")->callback([&] {
    code = diffCommand(f.jobId, f.client);
  });
  auto* status = addJobCommand(app, f, "status", "Print a job as JSON");
  status->add_flag("--json", f.json, "compact JSON on one line");
  status->callback([&] { code = statusCommand(f.jobId, f.json, f.client); });
}

void setUpLogging() {
  // Logs go to stderr so stdout stays the command's output (diffs, tables, JSON).
  // Every line passes the redacting sink: no job's secret reaches a log (secrets/log_sink.h).
  auto sink = std::make_shared<secrets::RedactingSink>(
      std::make_shared<spdlog::sinks::stderr_color_sink_mt>());
  auto logger = std::make_shared<spdlog::logger>("kiln", sink);
  spdlog::set_default_logger(logger);
  spdlog::set_level(spdlog::level::info);
  if (const char* lvl = std::getenv("KILN_LOG_LEVEL")) {
    spdlog::set_level(spdlog::level::from_str(lvl));
  }
}

int parseAndRun(int argc, char** argv) {
  CLI::App app("kiln: run autonomous coding agents in sandboxes", "kiln");
  app.require_subcommand(1);
  app.fallthrough();  // global options also work after the subcommand name
  app.set_version_flag("--version", std::string("kiln ") + KILN_VERSION);
  Flags flags;
  int code = kExitOk;
  addGlobalOptions(app, flags);
  addServe(app, flags, code);
  addRun(app, flags, code);
  addJobs(app, flags, code);
  addJobCommands(app, flags, code);
  app.add_subcommand("ui", "Print the web dashboard's URL with a sign-in link")->callback([&] {
    code = uiCommand(flags.client);
  });
  addNodes(app, flags, code);
  addTokens(app, flags, code);
  addTenants(app, flags, code);
  addSecrets(app, flags, code);
  setUpLogging();
  // The embedded node of `kiln run` logs only warnings: the live view is the output.
  if (argc > 1 && std::string(argv[1]) == "run" && !std::getenv("KILN_LOG_LEVEL")) {
    spdlog::set_level(spdlog::level::warn);
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // Usage errors exit 1 like other client errors; --help exits 0.
    return app.exit(e) == 0 ? kExitOk : kExitClientError;
  }
  return code;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return parseAndRun(argc, argv);
  } catch (const std::exception& e) {
    return fail(std::string("internal error: ") + e.what());
  }
}

}  // namespace kiln::cli
