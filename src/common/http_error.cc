#include "common/http_error.h"

#include <nlohmann/json.hpp>
#include <string>

namespace kiln {

Status statusFromHttpError(int httpStatus, std::string_view body) {
  const Code code = codeForHttpStatus(httpStatus);
  const auto j = nlohmann::json::parse(body, nullptr, false);
  if (j.is_object()) {
    auto error = j.find("error");
    if (error != j.end() && error->is_object()) {
      auto name = error->find("code");
      auto message = error->find("message");
      return Status(
          code,
          (name != error->end() && name->is_string() ? name->get<std::string>() : codeName(code)) +
              ": " +
              (message != error->end() && message->is_string() ? message->get<std::string>()
                                                               : "(no message)"));
    }
  }
  std::string text = "HTTP " + std::to_string(httpStatus);
  if (!body.empty()) text += ": " + std::string(body.substr(0, 200));
  return Status(code, text);
}

}  // namespace kiln
