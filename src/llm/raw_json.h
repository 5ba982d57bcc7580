// Finds a value inside JSON text without re-serializing it, so what a model wrote (a tool call's
// arguments) can be passed back byte for byte. Read-only views into the caller's text.
#pragma once
#include <cstddef>
#include <optional>
#include <string_view>
#include <variant>
#include <vector>

namespace kiln::llm {

// One step of a path into a JSON document: an object member's name or an array index.
using JsonPathStep = std::variant<std::string_view, size_t>;

// The text of the value at `path` in the JSON document `text` (no surrounding whitespace), or
// nullopt when the path does not exist or the text is not well-formed along the way.
std::optional<std::string_view> rawJsonAt(std::string_view text,
                                          const std::vector<JsonPathStep>& path);

}  // namespace kiln::llm
