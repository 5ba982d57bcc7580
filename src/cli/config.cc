#include "cli/config.h"

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <sstream>

#include "sandbox/pool.h"

namespace kiln::cli {

EnvLookup processEnv() {
  return [](const std::string& name) -> std::optional<std::string> {
    const char* v = std::getenv(name.c_str());
    if (v == nullptr || *v == '\0') return std::nullopt;
    return std::string(v);
  };
}

namespace {

std::string firstOf(const std::string& flag, const std::optional<std::string>& env,
                    const std::string& fallback) {
  if (!flag.empty()) return flag;
  if (env) return *env;
  return fallback;
}

Result<int> parsePositiveInt(const std::string& what, const std::string& s) {
  char* end = nullptr;
  errno = 0;
  long v = std::strtol(s.c_str(), &end, 10);
  if (errno != 0 || end == s.c_str() || *end != '\0' || v < 1 || v > 1'000'000) {
    return invalidArgument(what + ": expected a positive integer, got '" + s + "'");
  }
  return static_cast<int>(v);
}

Result<int64_t> parseNonNegative(const std::string& what, const std::string& s) {
  char* end = nullptr;
  errno = 0;
  long long v = std::strtoll(s.c_str(), &end, 10);
  if (errno != 0 || end == s.c_str() || *end != '\0' || v < 0 || v > 1'000'000'000) {
    return invalidArgument(what + ": expected a non-negative integer, got '" + s + "'");
  }
  return static_cast<int64_t>(v);
}

// The server's default job limits: a JSON object of the fields jobs can set in `limits`, under
// the same rules (api::request::parseJobLimits).
Result<api::request::JobLimits> parseDefaultLimits(const std::string& text) {
  if (text.empty()) return api::request::JobLimits{};
  const char* what = "--default-limits (KILN_DEFAULT_LIMITS)";
  auto j = nlohmann::json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    return invalidArgument(std::string(what) +
                           ": expected a JSON object such as "
                           "{\"maxSteps\": 100, \"maxUsd\": 5}, got '" +
                           text + "'");
  }
  auto limits = api::request::parseJobLimits(j, "limits");
  if (!limits.isOk()) return limits.status().withContext(what);
  return limits;
}

}  // namespace

Result<node::NodeOptions> resolveServeOptions(const ServeFlags& flags, const EnvLookup& env) {
  node::NodeOptions opts;
  opts.listen = firstOf(flags.listen, env("KILN_LISTEN"), opts.listen);
  opts.metricsListen = firstOf(flags.metricsListen, env("KILN_METRICS_LISTEN"), "");
  opts.allowLocalRepos = flags.allowLocalRepos;
  if (opts.allowLocalRepos.empty()) {
    std::string dirs = env("KILN_ALLOW_LOCAL_REPOS").value_or("");
    for (size_t i = 0; i <= dirs.size();) {
      size_t j = std::min(dirs.find(':', i), dirs.size());
      if (j > i) opts.allowLocalRepos.push_back(dirs.substr(i, j - i));
      i = j + 1;
    }
  }
  for (const auto& dir : opts.allowLocalRepos) {
    if (dir.empty() || dir[0] != '/') {
      return invalidArgument("--allow-local-repos wants absolute directories, got '" + dir + "'");
    }
  }
  if (auto v = firstOf(flags.maxStreamsPerToken, env("KILN_MAX_STREAMS_PER_TOKEN"), "");
      !v.empty()) {
    ASSIGN_OR_RETURN(opts.maxStreamsPerToken,
                     parsePositiveInt("--max-streams-per-token (KILN_MAX_STREAMS_PER_TOKEN)", v));
  }
  opts.dataDir = firstOf(flags.dataDir, env("KILN_DATA_DIR"), "");
  opts.storeUrl = firstOf(flags.storeUrl, env("KILN_STORE"), "");
  opts.tokenKey = env("KILN_TOKEN_KEY").value_or("");
  opts.nodeId = flags.nodeId;
  if (flags.maxJobs) {
    if (*flags.maxJobs < 1) return invalidArgument("--max-jobs must be at least 1");
    opts.maxJobs = *flags.maxJobs;
  } else if (auto e = env("KILN_MAX_JOBS")) {
    ASSIGN_OR_RETURN(opts.maxJobs, parsePositiveInt("KILN_MAX_JOBS", *e));
  }
  if (flags.maxAttempts) {
    if (*flags.maxAttempts < 1) return invalidArgument("--max-attempts must be at least 1");
    opts.maxAttempts = *flags.maxAttempts;
  } else if (auto e = env("KILN_MAX_ATTEMPTS")) {
    ASSIGN_OR_RETURN(opts.maxAttempts, parsePositiveInt("KILN_MAX_ATTEMPTS", *e));
  }
  ASSIGN_OR_RETURN(opts.defaultLimits, parseDefaultLimits(firstOf(flags.defaultLimits,
                                                                  env("KILN_DEFAULT_LIMITS"), "")));
  const std::string userNs = env("KILN_SANDBOX_USERNS").value_or("");
  if (userNs != "" && userNs != "0" && userNs != "1") {
    return invalidArgument("KILN_SANDBOX_USERNS must be 0 or 1, got '" + userNs + "'");
  }
  opts.sandboxUserNamespace = flags.sandboxUserNs || userNs == "1";
  if (auto v = firstOf(flags.drainTimeout, env("KILN_DRAIN_TIMEOUT"), ""); !v.empty()) {
    ASSIGN_OR_RETURN(int64_t seconds, parseNonNegative("--drain-timeout (KILN_DRAIN_TIMEOUT)", v));
    opts.drainTimeoutMs = seconds * 1000;
  }
  if (auto v = firstOf(flags.minFreeDiskMb, env("KILN_MIN_FREE_DISK_MB"), ""); !v.empty()) {
    ASSIGN_OR_RETURN(opts.minFreeDiskMb,
                     parseNonNegative("--min-free-disk-mb (KILN_MIN_FREE_DISK_MB)", v));
  }
  if (auto v = firstOf(flags.minFreeMemoryMb, env("KILN_MIN_FREE_MEMORY_MB"), ""); !v.empty()) {
    ASSIGN_OR_RETURN(opts.minFreeMemoryMb,
                     parseNonNegative("--min-free-memory-mb (KILN_MIN_FREE_MEMORY_MB)", v));
  }
  opts.sandboxBackend = firstOf(flags.sandboxBackend, env("KILN_SANDBOX_BACKEND"), "namespace");
  if (opts.sandboxBackend != "namespace" && opts.sandboxBackend != "gvisor") {
    return invalidArgument("--sandbox-backend must be namespace or gvisor, got '" +
                           opts.sandboxBackend + "'");
  }
  opts.gvisorPlatform = firstOf(flags.gvisorPlatform, env("KILN_GVISOR_PLATFORM"), "auto");
  opts.runsc = env("KILN_RUNSC").value_or("");
  // KILN_WARM_POOLS: the same as --warm-pool, comma-separated; the flags win.
  std::vector<std::string> pools = flags.warmPools;
  if (pools.empty()) {
    std::istringstream list(env("KILN_WARM_POOLS").value_or(""));
    for (std::string p; std::getline(list, p, ',');) {
      if (!p.empty()) pools.push_back(p);
    }
  }
  for (const std::string& p : pools) {
    ASSIGN_OR_RETURN(sandbox::WarmPoolConfig pool, sandbox::parseWarmPool(p));
    opts.warmPools.push_back(pool);
  }
  for (const auto* addr : {&opts.listen, &opts.metricsListen}) {
    if (!addr->empty() && addr->rfind(':') == std::string::npos) {
      return invalidArgument("listen address must be HOST:PORT, got '" + *addr + "'");
    }
  }
  return opts;
}

ClientSettings resolveClientSettings(const ClientFlags& flags, const EnvLookup& env,
                                     const std::function<std::string()>& defaultDataDir) {
  ClientSettings s;
  s.server = firstOf(flags.server, env("KILN_SERVER"), "");
  s.token = firstOf(flags.token, env("KILN_TOKEN"), "");
  s.dataDir = flags.dataDir;
  if (s.dataDir.empty()) s.dataDir = env("KILN_DATA_DIR").value_or("");
  if (s.dataDir.empty()) s.dataDir = defaultDataDir();
  while (s.server.size() > 1 && s.server.back() == '/') s.server.pop_back();
  return s;
}

Result<std::string> parseServerFile(const std::string& contents) {
  auto j = nlohmann::json::parse(contents, nullptr, false);
  if (j.is_discarded() || !j.is_object() || !j.contains("url") || !j["url"].is_string()) {
    return invalidArgument("server.json: expected {\"url\": \"http://host:port\"}");
  }
  return j["url"].get<std::string>();
}

std::string trimRight(std::string s) {
  while (!s.empty() &&
         (s.back() == '\n' || s.back() == '\r' || s.back() == ' ' || s.back() == '\t')) {
    s.pop_back();
  }
  return s;
}

}  // namespace kiln::cli
