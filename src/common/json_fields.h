// fieldOr: reads one field of JSON that came from a peer without throwing. nlohmann's value()
// and get() throw on a value of another type, and an exception must not cross a thread or
// module boundary. Pure; thread-safe.
#pragma once
#include <cstdint>
#include <limits>
#include <nlohmann/json.hpp>
#include <string>
#include <type_traits>

namespace kiln {

// obj[key] as a T, or `fallback` when obj is not an object, lacks key, or holds another type
// there (an integer T also refuses a number out of its range).
template <class T>
T fieldOr(const nlohmann::json& obj, const char* key, T fallback) {
  if (!obj.is_object()) return fallback;
  auto it = obj.find(key);
  if (it == obj.end()) return fallback;
  if constexpr (std::is_same_v<T, std::string>) {
    return it->is_string() ? it->template get<std::string>() : fallback;
  } else if constexpr (std::is_same_v<T, bool>) {
    return it->is_boolean() ? it->template get<bool>() : fallback;
  } else if constexpr (std::is_integral_v<T>) {
    if (it->is_number_unsigned()) {
      uint64_t v = it->template get<uint64_t>();
      return v <= static_cast<uint64_t>(std::numeric_limits<T>::max()) ? static_cast<T>(v)
                                                                       : fallback;
    }
    if (!it->is_number_integer()) return fallback;
    int64_t v = it->template get<int64_t>();
    if constexpr (std::is_signed_v<T>) {
      return v >= std::numeric_limits<T>::min() && v <= std::numeric_limits<T>::max()
                 ? static_cast<T>(v)
                 : fallback;
    } else {
      return v >= 0 && static_cast<uint64_t>(v) <= std::numeric_limits<T>::max() ? static_cast<T>(v)
                                                                                 : fallback;
    }
  } else {
    static_assert(std::is_floating_point_v<T>, "fieldOr: string, bool, integer or floating point");
    return it->is_number() ? it->template get<T>() : fallback;
  }
}

// For string literals: fieldOr(j, "k", "default").
inline std::string fieldOr(const nlohmann::json& obj, const char* key, const char* fallback) {
  return fieldOr<std::string>(obj, key, fallback);
}

}  // namespace kiln
