#include <cctype>

#include "sandbox/egress/allowlist.h"
#include "secrets/secrets.h"

// The parsers of secrets/secrets.h (a job request's `secrets`, a tenant's secret): apart from
// the rest so that the fuzz targets link them without libsodium.
namespace kiln::secrets {
namespace {

using nlohmann::json;

bool isVarName(std::string_view n) {
  if (n.empty() || n.size() > 128 || std::isdigit(static_cast<unsigned char>(n[0]))) return false;
  for (char c : n)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_') return false;
  return true;
}

std::optional<Mode> parseMode(std::string_view s) {
  if (s == "env") return Mode::kEnv;
  if (s == "proxy") return Mode::kProxy;
  return std::nullopt;
}

Status checkValue(const std::string& field, const json& v) {
  if (!v.is_string()) return invalidArgument(field + " must be a string");
  const std::string& s = v.get_ref<const std::string&>();
  if (s.size() < kMinValueBytes || s.size() > kMaxValueBytes) {
    // Short values are refused: redacting "abc" from every stored output would mangle it.
    return invalidArgument(field + " must be " + std::to_string(kMinValueBytes) + " to " +
                           std::to_string(kMaxValueBytes) + " bytes");
  }
  if (s.find('\0') != std::string::npos) return invalidArgument(field + " must not hold NUL");
  return Status::ok();
}

Result<std::vector<std::string>> parseHosts(const std::string& field, const json& v) {
  constexpr size_t kMaxHosts = 16;
  if (!v.is_array() || v.size() > kMaxHosts) {
    return invalidArgument(field + " must be an array of at most 16 host names");
  }
  std::vector<std::string> hosts;
  for (const auto& h : v) {
    if (!h.is_string()) return invalidArgument(field + " must be an array of host names");
    hosts.push_back(h.get<std::string>());
  }
  auto list = sandbox::egress::Allowlist::parse(hosts);
  if (!list.isOk()) return invalidArgument(field + ": " + list.status().message());
  return hosts;
}

}  // namespace

const char* modeName(Mode m) { return m == Mode::kProxy ? "proxy" : "env"; }

Result<Secret> parseSecret(const std::string& name, const json& j, std::string_view where) {
  const std::string field = std::string(where) + "." + name;
  if (!isVarName(name)) {
    return invalidArgument(std::string(where) + ": '" + name +
                           "' is not a variable name ([A-Za-z_][A-Za-z0-9_]*, at most 128)");
  }
  if (name.rfind("KILN_", 0) == 0) {
    return invalidArgument(std::string(where) + ": KILN_* names are kiln's own");
  }
  Secret s;
  s.name = name;
  if (j.is_string()) {
    RETURN_IF_ERROR(checkValue(field, j));
    s.value = j.get<std::string>();
    return s;
  }
  if (!j.is_object()) {
    return invalidArgument(field + " must be a string or an object {value, hosts, mode}");
  }
  for (const auto& [k, v] : j.items()) {
    if (k != "value" && k != "hosts" && k != "mode") {
      return invalidArgument(field + ": unknown field '" + k + "'");
    }
  }
  if (!j.contains("value")) return invalidArgument(field + ".value is required");
  RETURN_IF_ERROR(checkValue(field + ".value", j["value"]));
  s.value = j["value"].get<std::string>();
  if (j.contains("hosts")) {
    ASSIGN_OR_RETURN(s.hosts, parseHosts(field + ".hosts", j["hosts"]));
  }
  s.mode = s.hosts.empty() ? Mode::kEnv : Mode::kProxy;
  if (j.contains("mode")) {
    auto m = j["mode"].is_string() ? parseMode(j["mode"].get<std::string>()) : std::nullopt;
    if (!m) return invalidArgument(field + ".mode must be \"env\" or \"proxy\"");
    s.mode = *m;
  }
  if (s.mode == Mode::kProxy && s.hosts.empty()) {
    return invalidArgument(field + ": proxy mode needs hosts (where the value may be sent)");
  }
  return s;
}

Result<std::vector<Secret>> parseSecrets(const json& j, std::string_view where) {
  std::vector<Secret> out;
  if (j.is_null()) return out;
  if (!j.is_object()) return invalidArgument(std::string(where) + " must be an object");
  if (j.size() > kMaxSecretsPerJob) {
    return invalidArgument(std::string(where) + " may hold at most " +
                           std::to_string(kMaxSecretsPerJob) + " secrets");
  }
  for (const auto& [name, v] : j.items()) {
    ASSIGN_OR_RETURN(Secret s, parseSecret(name, v, where));
    out.push_back(std::move(s));
  }
  return out;
}

}  // namespace kiln::secrets
