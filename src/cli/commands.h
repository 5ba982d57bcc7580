// The subcommands behind cli.cc's parser. Each returns the process exit code and prints one-line
// errors ("kiln: ...") to stderr itself. Private to cli/.
#pragma once
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "cli/config.h"
#include "cli/job_request.h"
#include "cli/render.h"

namespace kiln::cli {

// Exit codes shared by the job commands (see exitCodeForStatus for run's).
inline constexpr int kExitOk = 0;
inline constexpr int kExitClientError = 1;

struct JobsFlags {
  std::string status;
  int limit = 20;
  bool json = false;
};

// `kiln token ...` and `kiln tenant quota ...`.
struct TokenFlags {
  std::string tenant;
  std::string name;
  std::string role = "member";
  bool direct = false;  // the data dir's store itself, even when a server runs
  bool json = false;
};
struct QuotaFlags {
  std::string tenant;
  std::string maxRunning;  // a number, "none" (no limit), or "" (unchanged)
  std::string jobsPerHour;
  std::string usdPerDay;
  bool json = false;
};

int serveCommand(const ServeFlags& flags, const ClientFlags& client);
int runCommand(const RunFlags& flags, const ClientFlags& client);
int jobsCommand(const JobsFlags& flags, const ClientFlags& client);
int logsCommand(const std::string& jobId, bool follow, const ClientFlags& client);
int stopCommand(const std::string& jobId, const ClientFlags& client);
int replyCommand(const std::string& jobId, const std::vector<std::string>& message,
                 const ClientFlags& client);
int approveCommand(const std::string& jobId, const ClientFlags& client);
int continueCommand(const std::string& jobId, const std::vector<std::string>& task,
                    const ClientFlags& client);
int diffCommand(const std::string& jobId, const ClientFlags& client);
int statusCommand(const std::string& jobId, bool json, const ClientFlags& client);
// Prints the dashboard URL and a sign-in link (URL#token=...).
int uiCommand(const ClientFlags& client);
// `kiln nodes`: the fleet's nodes; `kiln nodes drain ID [--wait]`.
int nodesCommand(bool json, const ClientFlags& client);
int drainCommand(const std::string& nodeId, bool wait, const ClientFlags& client);
// Prints the new token alone on the last line.
int tokenCreateCommand(const TokenFlags& flags, const ClientFlags& client);
int tokenListCommand(const TokenFlags& flags, const ClientFlags& client);
int tokenRevokeCommand(const std::string& id, const TokenFlags& flags, const ClientFlags& client);
// `set`: changes the quotas given; else shows them.
int quotaCommand(const QuotaFlags& flags, bool set, const ClientFlags& client);

// `kiln secret set NAME [--host H]... [--mode env|proxy]` (value from stdin or a prompt),
// `kiln secret list [--json]`, `kiln secret rm NAME`.
struct SecretFlags {
  std::string name;
  std::vector<std::string> hosts;
  std::string mode;
};
int secretSetCommand(const SecretFlags& flags, const ClientFlags& client);
int secretListCommand(bool json, const ClientFlags& client);
int secretRemoveCommand(const std::string& name, const ClientFlags& client);

// One request to the discovered server: its parsed JSON body.
Result<nlohmann::json> request(const ClientFlags& flags, const std::string& method,
                               const std::string& target,
                               const nlohmann::json& body = nlohmann::json::object());

// Flags + process env + default data dir.
ClientSettings clientSettings(const ClientFlags& flags);
// Colour only when stdout is a terminal and NO_COLOR is unset.
RenderStyle terminalStyle(const std::string& jobId);

// Prints "kiln: <message>" to stderr and returns kExitClientError.
int fail(const std::string& message);

}  // namespace kiln::cli
