// KILN_ASSERT: a release assert for broken invariants (docs/architecture.md, "Error policy"). On
// in every build type, unlike <cassert>: it prints the condition, the message and where, then
// ends the process. Expected failures are Status values, never an assert. Header-only and free
// of logging libraries, so the static kiln-runtime can use it too.
#pragma once
#include <cstdio>
#include <cstdlib>

namespace kiln {

[[noreturn]] inline void assertFailed(const char* cond, const char* message, const char* file,
                                      int line) {
  std::fprintf(stderr, "kiln: invariant broken at %s:%d: %s (%s)\n", file, line, message, cond);
  std::fflush(stderr);
  std::abort();
}

}  // namespace kiln

#define KILN_ASSERT(cond, message)                                       \
  do {                                                                   \
    if (!(cond)) ::kiln::assertFailed(#cond, message, __FILE__, __LINE__); \
  } while (0)
