#include "agent/tool_text.h"

#include "common/json_fields.h"

namespace kiln::agent {

std::string capped(const std::string& s, size_t n) {
  if (s.size() <= n) return s;
  return s.substr(0, n) + "\n[... " + std::to_string(s.size() - n) + " more bytes ...]";
}

std::string withNewline(std::string s) {
  if (!s.empty() && s.back() != '\n') s += '\n';
  return s;
}

std::string tailOf(const std::string& s) {
  return s.size() <= kTailBytes ? s : s.substr(s.size() - kTailBytes);
}

std::string stringAt(const nlohmann::json& j, const char* key) { return fieldOr(j, key, ""); }

const nlohmann::json& fieldAt(const nlohmann::json& j, const char* key) {
  static const nlohmann::json kNull;
  if (!j.is_object()) return kNull;
  auto it = j.find(key);
  return it != j.end() ? *it : kNull;
}

}  // namespace kiln::agent
