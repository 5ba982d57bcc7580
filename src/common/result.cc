#include "common/result.h"

#include <cstring>

#include "common/http_error.h"

namespace kiln {

namespace {

struct CodeInfo {
  Code code;
  const char* name;
  int httpStatus;
};

// The one table of codes: their stable names and HTTP statuses, read by the API server, the
// runtime and both of their clients.
constexpr CodeInfo kCodes[] = {
    {Code::kOk, "ok", 200},
    {Code::kInvalidArgument, "invalid_argument", 400},
    {Code::kUnauthenticated, "unauthenticated", 401},
    {Code::kPermissionDenied, "permission_denied", 403},
    {Code::kNotFound, "not_found", 404},
    {Code::kConflict, "conflict", 409},
    {Code::kTooLarge, "payload_too_large", 413},
    {Code::kUnprocessable, "unprocessable", 422},
    {Code::kResourceExhausted, "resource_exhausted", 429},
    {Code::kInternal, "internal", 500},
    {Code::kUnavailable, "unavailable", 503},
    {Code::kDeadlineExceeded, "deadline_exceeded", 504},
};

const CodeInfo& infoFor(Code c) {
  for (const CodeInfo& info : kCodes) {
    if (info.code == c) return info;
  }
  return infoFor(Code::kInternal);
}

}  // namespace

const char* codeName(Code c) { return infoFor(c).name; }

int httpStatusFor(Code c) { return infoFor(c).httpStatus; }

Code codeForHttpStatus(int status) {
  for (const CodeInfo& info : kCodes) {
    if (info.httpStatus == status) return info.code;
  }
  return Code::kInternal;
}

std::string Status::toString() const {
  if (isOk()) return "ok";
  return std::string(codeName(code_)) + ": " + message_;
}

Status errnoStatus(const std::string& what, int err) {
  return Status(Code::kInternal, what + ": " + std::strerror(err));
}

}  // namespace kiln
