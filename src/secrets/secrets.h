// Job secrets: what a job request's `secrets` field (and a tenant's `kiln secret set`) gives,
// their stored (sealed) form, and how a running job sees each one: `env` puts the value in the
// job's sandbox environment; `proxy` puts a placeholder there and the node's egress proxy
// swaps in the value on requests to the secret's hosts only. Pure functions and values.
#pragma once
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "secrets/secret_box.h"

namespace kiln::secrets {

enum class Mode { kEnv, kProxy };
const char* modeName(Mode m);

// One secret in the clear: only ever in memory (the API handler, a job's runner).
struct Secret {
  std::string name;   // an environment variable name, not KILN_*
  std::string value;  // 8..8192 bytes, no NUL
  Mode mode = Mode::kEnv;
  std::vector<std::string> hosts;  // egress allowlist entries; required in proxy mode
};

// A secret as the store holds it (a job's `secrets` column, the tenant_secrets table): the
// value sealed with the node's SecretBox.
struct SealedSecret {
  std::string name;
  Mode mode = Mode::kEnv;
  std::vector<std::string> hosts;
  std::string sealed;
  nlohmann::json toJson() const;
  // {name, mode, hosts}: what the API shows; never the value.
  nlohmann::json describe() const;
};

constexpr size_t kMinValueBytes = 8;
constexpr size_t kMaxValueBytes = 8192;
constexpr size_t kMaxSecretsPerJob = 32;

// A job request's `secrets`: {"NAME": "value"} (env mode) or {"NAME": {"value": "...",
// "hosts": [...], "mode": "env"|"proxy"}} (proxy is the default when hosts are given).
// InvalidArgument naming the field; the message never holds a value.
Result<std::vector<Secret>> parseSecrets(const nlohmann::json& j, std::string_view where);
// One secret from its name and JSON form (a string, or the object form above).
Result<Secret> parseSecret(const std::string& name, const nlohmann::json& j,
                           std::string_view where);

SealedSecret seal(const Secret& s, const SecretBox& box);
// The stored JSON array of sealed secrets.
nlohmann::json sealAll(const std::vector<SealedSecret>& sealed);
// Reads the stored array back (InvalidArgument when it is malformed), without opening.
Result<std::vector<SealedSecret>> readSealed(const nlohmann::json& stored);
// Opens every secret of the stored array; InvalidArgument when one does not open.
Result<std::vector<Secret>> openAll(const nlohmann::json& stored, const SecretBox& box);

// What a proxy-mode secret's variable holds inside job `jobId`'s sandbox: the same in every
// run of the job, unrelated to the value.
std::string placeholder(const std::string& jobId, const std::string& name);

}  // namespace kiln::secrets
