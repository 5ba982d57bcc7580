// The typed form of a job's options, and the one definition of their schema and validation:
// `limits` (JobLimits), `sandbox` (SandboxRequest), and the job spec around them (JobSpec:
// approvals, push, command, cli). The API parses a request body into these once, at the edge
// (request/jobs.cc); `kiln serve --default-limits` parses the node's default limits with the
// same rules (src/cli/config.cc); the runner parses a job's stored JSON into them once, when it
// loads the job, and never reads the raw JSON again. Pure functions and values.
#pragma once
#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"

namespace kiln::api::request {

// A job's budgets. Unset fields fall back to the node's defaults, then to the built-in ones.
struct JobLimits {
  std::optional<int64_t> maxSteps;        // 1..100000; built in: 50
  std::optional<double> maxUsd;           // 0..1e6; built in: none
  std::optional<int64_t> maxTokens;       // 1..2^40; built in: none
  std::optional<int64_t> maxWallSeconds;  // 1..30 days; built in: 3600
  std::optional<int64_t> contextTokens;   // 1000..2^30; built in: 64000
  // A bash command's time limit when the call does not ask for another; 1..86400; built in: 120.
  std::optional<int64_t> commandTimeoutSeconds;

  static constexpr int64_t kDefaultMaxSteps = 50;
  static constexpr int64_t kDefaultMaxWallSeconds = 3600;
  static constexpr int64_t kDefaultContextTokens = 64000;
  static constexpr int64_t kDefaultCommandTimeoutSeconds = 120;

  // These limits with every unset field taken from `defaults`.
  JobLimits withDefaults(const JobLimits& defaults) const;
  int64_t steps() const { return maxSteps.value_or(kDefaultMaxSteps); }
  int64_t wallSeconds() const { return maxWallSeconds.value_or(kDefaultMaxWallSeconds); }
  int64_t context() const { return contextTokens.value_or(kDefaultContextTokens); }
  int64_t commandTimeout() const {
    return commandTimeoutSeconds.value_or(kDefaultCommandTimeoutSeconds);
  }
  // Only the fields that are set.
  nlohmann::json toJson() const;
  bool operator==(const JobLimits&) const = default;
};

// What a job asks of its sandbox.
struct SandboxRequest {
  std::string backend;  // "" (the node's), "namespace" or "gvisor"
  // CPU time in cores: 0 = unlimited, 0.5 = half of one core (a 50% cgroup quota), 2 = two.
  double cpus = 0;
  int64_t memoryMb = 0;          // 0 = unlimited
  int64_t diskMb = 0;            // 0 = unlimited
  std::string network = "none";  // "none" | "allowlist"
  std::vector<std::string> allowHosts;
  std::string image;  // "" = the host's system dirs
  // How the bash tool runs commands: "fresh" (bash -c each), "login" (bash -lc each) or
  // "session" (one persistent bash per job; src/runtime/shell_session.h).
  std::string shell = "fresh";
  // Variables the job's commands get on top of the runtime's base environment. Names are
  // [A-Za-z_][A-Za-z0-9_]*, not KILN_*; PATH must be absolute directories of the sandbox.
  std::map<std::string, std::string> env;
  // Where the repo is inside the sandbox and commands start (e.g. "/testbed"): an absolute,
  // normalised path of [A-Za-z0-9._-] components, not "/" and not in a system dir.
  std::string workdir = "/workspace";
  // Who runs the commands: "agent" (uid 1000) or "root" (root inside the sandbox's user
  // namespace or gVisor: still no capabilities over the host).
  std::string user = "agent";
  nlohmann::json toJson() const;
};

// Which human gates pause a job before delivery.
struct Approvals {
  bool all = false;                // `approvals: true`
  std::vector<std::string> gates;  // `approvals: ["commit", "push"]`
  bool covers(std::string_view gate) const;
};

// The job's definition of done, checked after the agent's finish (src/agent/verify.h).
struct VerifySpec {
  std::string command;     // run with bash -c in the workspace
  bool required = true;    // a failure goes back to the agent, and in the end fails the job
  int64_t maxRetries = 2;  // 0..10: how often a failure goes back to the agent
  nlohmann::json toJson() const;
};

// An MCP server (stdio) the job's built-in agent uses: started inside the sandbox at each run,
// its tools offered to the model as `mcp__<name>__<tool>` (src/agent/mcp_client.h).
struct McpServerSpec {
  std::string name;                        // [a-z0-9_-], 1..32, unique in the job
  std::vector<std::string> command;        // argv, run in the sandbox's workdir
  std::map<std::string, std::string> env;  // on top of the sandbox's environment
  nlohmann::json toJson() const;
};

// Everything a job asks for besides its repo, task, agent and model.
struct JobSpec {
  std::optional<SandboxRequest> sandbox;
  std::optional<nlohmann::json> approvals;  // as given: true/false or an array of gate names
  bool push = false;
  std::optional<bool> stream;
  // For CLI agents (src/agent/cli_agent.h resolves them): a string or an argv array, and
  // {env, allowHosts, promptVia}.
  std::optional<nlohmann::json> command;
  std::optional<nlohmann::json> cli;
  std::optional<VerifySpec> verify;
  std::vector<McpServerSpec> mcpServers;  // at most kMaxMcpServers

  static constexpr size_t kMaxMcpServers = 8;

  Approvals gates() const;
  SandboxRequest sandboxOrDefault() const { return sandbox.value_or(SandboxRequest{}); }
  // The stored form: only the fields that are set.
  nlohmann::json toJson() const;
};

// Each reads the JSON form (a request body's field, or what the store holds) and validates it:
// InvalidArgument naming the field (`where` prefixes it, e.g. "limits.maxSteps must be an
// integer"). Null means unset.
Result<JobLimits> parseJobLimits(const nlohmann::json& j, std::string_view where = "limits");
Result<SandboxRequest> parseSandboxRequest(const nlohmann::json& j,
                                           std::string_view where = "sandbox");
// `j` holds the spec's fields at its top level (a job request body, minus the fields that are
// not part of the spec, or a stored spec); unknown keys are left to the caller.
Result<JobSpec> parseJobSpec(const nlohmann::json& j);

}  // namespace kiln::api::request
