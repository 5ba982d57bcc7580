#include "api/request/fields.h"

namespace kiln::api::request {

std::string fieldPath(std::string_view where, const char* key) {
  return where.empty() ? std::string(key) : std::string(where) + "." + key;
}

namespace {

// nullptr when absent or null.
const json* field(const json& obj, const char* key) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return nullptr;
  return &*it;
}

}  // namespace

bool nestsDeeperThan(std::string_view body, int maxDepth) {
  int depth = 0;
  bool inString = false;
  for (size_t i = 0; i < body.size(); ++i) {
    char c = body[i];
    if (inString) {
      if (c == '\\') {
        ++i;
      } else if (c == '"') {
        inString = false;
      }
    } else if (c == '"') {
      inString = true;
    } else if (c == '[' || c == '{') {
      if (++depth > maxDepth) return true;
    } else if ((c == ']' || c == '}') && depth > 0) {
      --depth;
    }
  }
  return false;
}

std::optional<json> parseBody(std::string_view body) {
  if (body.find_first_not_of(" \t\r\n") == std::string_view::npos) return json::object();
  if (nestsDeeperThan(body, kMaxJsonDepth)) return std::nullopt;
  json j = json::parse(body.begin(), body.end(), nullptr, false);
  if (j.is_discarded()) return std::nullopt;
  return j;
}

Status checkObject(const json& v, std::string_view where,
                   std::initializer_list<std::string_view> allowed) {
  std::string what = where.empty() ? "request body" : std::string(where);
  if (!v.is_object()) return invalidArgument(what + " must be a JSON object");
  for (const auto& [key, _] : v.items()) {
    bool known = false;
    for (auto a : allowed) known = known || key == a;
    if (!known) return invalidArgument("unknown field '" + fieldPath(where, key.c_str()) + "'");
  }
  return Status::ok();
}

Status requiredString(const json& obj, std::string_view where, const char* key, size_t maxLen,
                      std::string& out) {
  std::optional<std::string> v;
  RETURN_IF_ERROR(optionalString(obj, where, key, maxLen, v));
  if (!v || v->empty()) return invalidArgument(fieldPath(where, key) + " is required");
  out = std::move(*v);
  return Status::ok();
}

Status optionalString(const json& obj, std::string_view where, const char* key, size_t maxLen,
                      std::optional<std::string>& out) {
  const json* v = field(obj, key);
  if (!v) return Status::ok();
  if (!v->is_string()) return invalidArgument(fieldPath(where, key) + " must be a string");
  const auto& s = v->get_ref<const std::string&>();
  if (s.size() > maxLen) {
    return invalidArgument(fieldPath(where, key) + " is longer than " + std::to_string(maxLen) +
                           " bytes");
  }
  out = s;
  return Status::ok();
}

Status optionalInt(const json& obj, std::string_view where, const char* key, int64_t min,
                   int64_t max, std::optional<int64_t>& out) {
  const json* v = field(obj, key);
  if (!v) return Status::ok();
  bool inRange = false;
  if (v->is_number_unsigned()) {
    auto u = v->get<uint64_t>();
    inRange = u <= static_cast<uint64_t>(max) && static_cast<int64_t>(u) >= min;
  } else if (v->is_number_integer()) {
    auto i = v->get<int64_t>();
    inRange = i >= min && i <= max;
  } else {
    return invalidArgument(fieldPath(where, key) + " must be an integer");
  }
  if (!inRange) {
    return invalidArgument(fieldPath(where, key) + " must be between " + std::to_string(min) + " and " +
                           std::to_string(max));
  }
  out = v->get<int64_t>();
  return Status::ok();
}

Status optionalNumber(const json& obj, std::string_view where, const char* key, double min,
                      double max, std::optional<double>& out) {
  const json* v = field(obj, key);
  if (!v) return Status::ok();
  if (!v->is_number()) return invalidArgument(fieldPath(where, key) + " must be a number");
  double d = v->get<double>();
  if (!(d >= min && d <= max)) {
    return invalidArgument(fieldPath(where, key) + " must be between " + json(min).dump() + " and " +
                           json(max).dump());
  }
  out = d;
  return Status::ok();
}

Status optionalBool(const json& obj, std::string_view where, const char* key,
                    std::optional<bool>& out) {
  const json* v = field(obj, key);
  if (!v) return Status::ok();
  if (!v->is_boolean()) return invalidArgument(fieldPath(where, key) + " must be true or false");
  out = v->get<bool>();
  return Status::ok();
}

}  // namespace kiln::api::request
