// The Status of an HTTP error answer from kiln's own APIs (the server's /api/v1 and the runtime
// contract), whose bodies are {"error":{"code","message"}}. Pure; thread-safe.
#pragma once
#include <string_view>

#include "common/result.h"

namespace kiln {

// The code of an HTTP status: the inverse of httpStatusFor (result.h), read from the same table;
// kInternal for a status that is not in it.
Code codeForHttpStatus(int status);

// The code is codeForHttpStatus(httpStatus); the message is "<error.code>: <error.message>", or
// "HTTP <status>: <the start of the body>" when the body is not such an error. Never throws,
// whatever the body holds.
Status statusFromHttpError(int httpStatus, std::string_view body);

}  // namespace kiln
