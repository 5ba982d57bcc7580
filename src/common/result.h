// Errors are values: Status carries a stable code and a human message; Result<T> is a value or a
// Status. Exceptions never cross a module boundary.
#pragma once
#include <optional>
#include <string>
#include <utility>
#include <variant>

#include "common/assert.h"

namespace kiln {

// Stable error codes. They appear in API error bodies, so never rename one.
enum class Code {
  kOk,
  kInvalidArgument,   // 400
  kUnauthenticated,   // 401
  kPermissionDenied,  // 403
  kNotFound,          // 404
  kConflict,          // 409: wrong state for the request
  kTooLarge,          // 413
  kUnprocessable,     // 422: well-formed but cannot be acted on (unreachable repo)
  kUnavailable,       // 503
  kDeadlineExceeded,
  kResourceExhausted,
  kInternal,
};

const char* codeName(Code c);
int httpStatusFor(Code c);

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(Code code, std::string message) : code_(code), message_(std::move(message)) {}
  static Status ok() { return Status(); }

  bool isOk() const { return code_ == Code::kOk; }
  explicit operator bool() const { return isOk(); }
  Code code() const { return code_; }
  const std::string& message() const { return message_; }
  // "code: message", for logs.
  std::string toString() const;
  // Prefixes the message with context, e.g. "cgroup: write memory.max: EACCES".
  Status withContext(const std::string& ctx) const {
    return isOk() ? *this : Status(code_, ctx + ": " + message_);
  }

 private:
  Code code_ = Code::kOk;
  std::string message_;
};

inline Status invalidArgument(std::string m) { return {Code::kInvalidArgument, std::move(m)}; }
inline Status notFound(std::string m) { return {Code::kNotFound, std::move(m)}; }
inline Status internalError(std::string m) { return {Code::kInternal, std::move(m)}; }
inline Status conflict(std::string m) { return {Code::kConflict, std::move(m)}; }
// An errno-carrying failure: "what: strerror(errno)".
Status errnoStatus(const std::string& what, int err);

template <class T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}
  Result(Status status) : v_(std::move(status)) {
    KILN_ASSERT(!std::get<Status>(v_).isOk(), "a Result made from an ok Status has no value");
  }

  bool isOk() const { return v_.index() == 0; }
  explicit operator bool() const { return isOk(); }
  const Status& status() const {
    static const Status kOk;
    return isOk() ? kOk : std::get<Status>(v_);
  }
  T& value() & { return std::get<T>(v_); }
  const T& value() const& { return std::get<T>(v_); }
  T&& value() && { return std::get<T>(std::move(v_)); }
  // The value, or `fallback` when this holds an error.
  T valueOr(T fallback) && { return isOk() ? std::get<T>(std::move(v_)) : std::move(fallback); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

 private:
  std::variant<T, Status> v_;
};

}  // namespace kiln

#define KILN_CONCAT_INNER(a, b) a##b
#define KILN_CONCAT(a, b) KILN_CONCAT_INNER(a, b)

// Returns the status from the enclosing function if it is not ok.
#define RETURN_IF_ERROR(expr)                 \
  do {                                        \
    ::kiln::Status _st = (expr);              \
    if (!_st.isOk()) return _st;              \
  } while (0)

// `ASSIGN_OR_RETURN(auto x, makeX());`
#define ASSIGN_OR_RETURN(lhs, expr)                                  \
  auto KILN_CONCAT(_res_, __LINE__) = (expr);                         \
  if (!KILN_CONCAT(_res_, __LINE__).isOk())                           \
    return KILN_CONCAT(_res_, __LINE__).status();                     \
  lhs = std::move(KILN_CONCAT(_res_, __LINE__)).value()

// Coroutine variants.
#define CO_RETURN_IF_ERROR(expr)              \
  do {                                        \
    ::kiln::Status _st = (expr);              \
    if (!_st.isOk()) co_return _st;           \
  } while (0)
