#include "secrets/secrets.h"

#include "common/ids.h"

namespace kiln::secrets {

using nlohmann::json;

json SealedSecret::describe() const {
  json j = {{"name", name}, {"mode", modeName(mode)}};
  if (!hosts.empty()) j["hosts"] = hosts;
  return j;
}

json SealedSecret::toJson() const {
  json j = describe();
  j["sealed"] = sealed;
  return j;
}

SealedSecret seal(const Secret& s, const SecretBox& box) {
  return {s.name, s.mode, s.hosts, box.seal(s.value)};
}

json sealAll(const std::vector<SealedSecret>& sealed) {
  json out = json::array();
  for (const auto& s : sealed) out.push_back(s.toJson());
  return out;
}

Result<std::vector<SealedSecret>> readSealed(const json& stored) {
  std::vector<SealedSecret> out;
  if (stored.is_null()) return out;
  if (!stored.is_array()) return invalidArgument("stored secrets: not an array");
  for (const auto& e : stored) {
    if (!e.is_object() || !e.contains("name") || !e["name"].is_string() || !e.contains("sealed") ||
        !e["sealed"].is_string()) {
      return invalidArgument("stored secrets: an entry without name or sealed value");
    }
    SealedSecret s;
    s.name = e["name"].get<std::string>();
    s.sealed = e["sealed"].get<std::string>();
    s.mode = e.value("mode", "env") == "proxy" ? Mode::kProxy : Mode::kEnv;
    if (auto h = e.find("hosts"); h != e.end() && h->is_array()) {
      for (const auto& x : *h)
        if (x.is_string()) s.hosts.push_back(x.get<std::string>());
    }
    out.push_back(std::move(s));
  }
  return out;
}

Result<std::vector<Secret>> openAll(const json& stored, const SecretBox& box) {
  ASSIGN_OR_RETURN(auto sealed, readSealed(stored));
  std::vector<Secret> out;
  for (auto& s : sealed) {
    auto value = box.open(s.sealed);
    if (!value) return value.status().withContext("secret " + s.name);
    out.push_back({std::move(s.name), std::move(*value), s.mode, std::move(s.hosts)});
  }
  return out;
}

std::string placeholder(const std::string& jobId, const std::string& name) {
  return "kiln-placeholder-" + sha256Hex(jobId + "\n" + name).substr(0, 24);
}

}  // namespace kiln::secrets
