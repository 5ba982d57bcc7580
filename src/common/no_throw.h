// callNoThrow: runs the body of a thread (or one turn of its loop, or one request) so that no
// exception leaves it: one escaping a thread calls std::terminate, which for the runtime ends
// PID 1 and with it the whole sandbox. Thread-safe.
#pragma once
#include <cstdio>
#include <exception>
#include <string>
#include <utility>

namespace kiln {

// Calls fn(). When it throws: logs "kiln: <what>: <exception>" to stderr, stores the exception's
// message in *why (when not null) and returns false.
template <class F>
bool callNoThrow(const char* what, std::string* why, F&& fn) noexcept {
  const char* message = "unknown exception";
  try {
    std::forward<F>(fn)();
    return true;
  } catch (const std::exception& e) {
    message = e.what();
    std::fprintf(stderr, "kiln: %s: %s\n", what, message);
    try {
      if (why) *why = message;  // e, and its message, live only inside this handler
    } catch (...) {
    }
    return false;
  } catch (...) {
    std::fprintf(stderr, "kiln: %s: %s\n", what, message);
  }
  try {
    if (why) *why = message;
  } catch (...) {
  }
  return false;
}

template <class F>
bool callNoThrow(const char* what, F&& fn) noexcept {
  return callNoThrow(what, nullptr, std::forward<F>(fn));
}

}  // namespace kiln
