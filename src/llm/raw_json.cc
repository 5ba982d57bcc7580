#include "llm/raw_json.h"

#include <nlohmann/json.hpp>
#include <string>

namespace kiln::llm {
namespace {

constexpr size_t kNpos = std::string_view::npos;

size_t skipSpace(std::string_view s, size_t i) {
  while (i < s.size() && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r')) ++i;
  return i;
}

// The index just past the string that starts at s[i] == '"', or npos.
size_t stringEnd(std::string_view s, size_t i) {
  for (++i; i < s.size(); ++i) {
    if (s[i] == '\\') {
      ++i;
    } else if (s[i] == '"') {
      return i + 1;
    }
  }
  return kNpos;
}

// The index just past the value that starts at s[i] (no leading whitespace), or npos. Scalars
// end at the next structural character; their validity is the JSON parser's business.
size_t valueEnd(std::string_view s, size_t i) {
  if (i >= s.size()) return kNpos;
  if (s[i] == '"') return stringEnd(s, i);
  if (s[i] != '{' && s[i] != '[') {
    size_t end = s.find_first_of(",}] \t\r\n", i);
    return end == kNpos ? s.size() : end;
  }
  int depth = 0;
  for (; i < s.size(); ++i) {
    char c = s[i];
    if (c == '"') {
      i = stringEnd(s, i);
      if (i == kNpos) return kNpos;
      --i;
    } else if (c == '{' || c == '[') {
      ++depth;
    } else if (c == '}' || c == ']') {
      if (--depth == 0) return i + 1;
    }
  }
  return kNpos;
}

// From the value at s[i] in an object or array: the start of the next item, or npos when this
// one was the last (or the text is not well-formed).
size_t nextItem(std::string_view s, size_t i) {
  i = valueEnd(s, i);
  if (i == kNpos) return kNpos;
  i = skipSpace(s, i);
  if (i >= s.size() || s[i] != ',') return kNpos;
  return skipSpace(s, i + 1);
}

// The value of member `name` of the object at s[i] == '{' (start index), or npos.
size_t memberStart(std::string_view s, size_t i, std::string_view name) {
  i = skipSpace(s, i + 1);
  while (i < s.size() && s[i] == '"') {
    size_t keyEnd = stringEnd(s, i);
    if (keyEnd == kNpos) return kNpos;
    // Keys may use escapes: compare decoded.
    auto key = nlohmann::json::parse(s.substr(i, keyEnd - i), nullptr, false);
    i = skipSpace(s, keyEnd);
    if (i >= s.size() || s[i] != ':') return kNpos;
    i = skipSpace(s, i + 1);
    if (key.is_string() && key.get_ref<const std::string&>() == name) return i;
    i = nextItem(s, i);
    if (i == kNpos) return kNpos;
  }
  return kNpos;
}

size_t elementStart(std::string_view s, size_t i, size_t index) {
  i = skipSpace(s, i + 1);
  for (size_t n = 0; i < s.size() && s[i] != ']'; ++n) {
    if (n == index) return i;
    i = nextItem(s, i);
    if (i == kNpos) return kNpos;
  }
  return kNpos;
}

}  // namespace

std::optional<std::string_view> rawJsonAt(std::string_view text,
                                          const std::vector<JsonPathStep>& path) {
  size_t i = skipSpace(text, 0);
  for (const JsonPathStep& step : path) {
    if (i >= text.size()) return std::nullopt;
    if (const auto* name = std::get_if<std::string_view>(&step)) {
      if (text[i] != '{') return std::nullopt;
      i = memberStart(text, i, *name);
    } else {
      if (text[i] != '[') return std::nullopt;
      i = elementStart(text, i, std::get<size_t>(step));
    }
    if (i == kNpos) return std::nullopt;
  }
  size_t end = valueEnd(text, i);
  if (end == kNpos) return std::nullopt;
  return text.substr(i, end - i);
}

}  // namespace kiln::llm
