// Resolution of CLI settings from flags, environment and the data dir. Pure functions over an
// injected environment lookup, so precedence is unit-testable without touching the process env.
#pragma once
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "common/files.h"
#include "common/result.h"
#include "node/node.h"

namespace kiln::cli {

// Looks up an environment variable; nullopt when unset or empty.
using EnvLookup = std::function<std::optional<std::string>(const std::string&)>;
EnvLookup processEnv();

// `kiln serve` flags as given on the command line; empty/unset means "not given".
struct ServeFlags {
  std::string listen;
  std::string metricsListen;
  std::vector<std::string> allowLocalRepos;
  std::string maxStreamsPerToken;  // a positive integer as given ("" = not given)
  std::string dataDir;
  std::string storeUrl;
  std::optional<int> maxJobs;
  std::optional<int> maxAttempts;
  std::string nodeId;
  std::string defaultLimits;  // JSON object
  bool sandboxUserNs = false;
  // Fleet: non-negative integers as given ("" = not given).
  std::string drainTimeout;  // seconds
  std::string minFreeDiskMb;
  std::string minFreeMemoryMb;
  std::string sandboxBackend;          // --sandbox-backend
  std::vector<std::string> warmPools;  // --warm-pool BACKEND[:IMAGE]=N, repeatable
  std::string gvisorPlatform;          // --gvisor-platform
};

// Flags > KILN_LISTEN / KILN_METRICS_LISTEN / KILN_ALLOW_LOCAL_REPOS (':'-separated) /
// KILN_DATA_DIR / KILN_STORE / KILN_MAX_JOBS / KILN_MAX_ATTEMPTS / KILN_DEFAULT_LIMITS /
// KILN_SANDBOX_USERNS / KILN_DRAIN_TIMEOUT / KILN_MIN_FREE_DISK_MB / KILN_MIN_FREE_MEMORY_MB /
// KILN_SANDBOX_BACKEND / KILN_WARM_POOLS / KILN_GVISOR_PLATFORM > NodeOptions defaults;
// KILN_TOKEN_KEY (environment only, never a flag: it is a secret) is the token key.
// The data dir default is left empty for node::resolveDefaults to fill.
Result<node::NodeOptions> resolveServeOptions(const ServeFlags& flags, const EnvLookup& env);

// Client-side flags shared by every job command.
struct ClientFlags {
  std::string server;
  std::string token;
  std::string dataDir;
};

// Where the client looks: an explicit server (flag > KILN_SERVER) or none, meaning "discover via
// <dataDir>/server.json"; the token (flag > KILN_TOKEN), else read from <dataDir>/admin.token.
struct ClientSettings {
  std::string server;  // empty = discover
  std::string token;   // empty = read tokenFile
  std::string dataDir;
  std::string serverFile() const { return dataDir + "/server.json"; }
  std::string tokenFile() const { return dataDir + "/admin.token"; }
};

// `defaultDataDir` supplies the data dir when neither flag nor KILN_DATA_DIR is set.
ClientSettings resolveClientSettings(const ClientFlags& flags, const EnvLookup& env,
                                     const std::function<std::string()>& defaultDataDir);

// Parses server.json's {"url": ...}; error when missing or malformed.
Result<std::string> parseServerFile(const std::string& contents);

// Strips trailing whitespace/newlines (token files end with one).
std::string trimRight(std::string s);

}  // namespace kiln::cli
