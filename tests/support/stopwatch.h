// Wall-clock figures for the benchmarks (bench/): seconds on the steady clock since a point.
#pragma once
#include <chrono>

namespace kiln::testing {

inline double secondsSince(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

}  // namespace kiln::testing
