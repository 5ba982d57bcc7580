// Typed reads of JSON request fields with validation messages that name the field, shared by
// the per-resource parsers in this directory. Stateless functions.
#pragma once
#include <cstdint>
#include <initializer_list>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>

#include "common/result.h"

namespace kiln::api::request {

using nlohmann::json;

// The longest a short name field (a ref, an agent, a backend, an image...) may be.
constexpr size_t kMaxName = 256;

// A field's name in messages: "where.key", or "key" at the top level.
std::string fieldPath(std::string_view where, const char* key);

// The deepest a request body's arrays and objects may nest (ApiOptions::maxJsonDepth's default).
constexpr int kMaxJsonDepth = 64;

// The parsed body, or nullopt if it is not valid JSON or nests deeper than kMaxJsonDepth. An
// empty body parses as `{}`.
std::optional<json> parseBody(std::string_view body);

// True when `body` opens more than `maxDepth` arrays/objects inside each other (brackets in
// strings do not count). A linear scan without parsing, so that it is cheap on any input.
bool nestsDeeperThan(std::string_view body, int maxDepth);

// InvalidArgument unless `v` is an object holding only `allowed` keys.
Status checkObject(const json& v, std::string_view where,
                   std::initializer_list<std::string_view> allowed);

// Each reads obj[key] (where = "limits" gives "limits.maxSteps" in messages). A missing key or
// null leaves `out` untouched (optional) or fails (required).
Status requiredString(const json& obj, std::string_view where, const char* key, size_t maxLen,
                      std::string& out);
Status optionalString(const json& obj, std::string_view where, const char* key, size_t maxLen,
                      std::optional<std::string>& out);
Status optionalInt(const json& obj, std::string_view where, const char* key, int64_t min,
                   int64_t max, std::optional<int64_t>& out);
Status optionalNumber(const json& obj, std::string_view where, const char* key, double min,
                      double max, std::optional<double>& out);
Status optionalBool(const json& obj, std::string_view where, const char* key,
                    std::optional<bool>& out);

}  // namespace kiln::api::request
