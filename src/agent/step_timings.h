// StepTimings: kiln's own orchestration overhead per agent step — the time from a model reply
// arriving to the next model request starting, minus the time the tools ran. It covers what kiln
// adds around a step: argument checks, the in-flight mark, the workspace diff, the step's
// transaction, events, context upkeep. Kept as a window of the newest samples; exported on
// /metrics as a Prometheus summary. Thread-safe; one per process (stepTimings()).
#pragma once
#include <chrono>
#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

namespace kiln::agent {

class StepTimings {
 public:
  explicit StepTimings(size_t window = 10000) : window_(window) { samples_.reserve(window); }
  void record(std::chrono::nanoseconds overhead);
  // 0 when there are no samples. q in [0, 1].
  std::chrono::nanoseconds quantile(double q) const;
  uint64_t count() const;
  // `kiln_agent_step_overhead_seconds` as a Prometheus summary (HELP/TYPE lines included).
  std::string render() const;

 private:
  const size_t window_;
  mutable std::mutex mu_;
  std::vector<int64_t> samples_;  // ns, a ring once full           GUARDED_BY(mu_)
  size_t next_ = 0;               //                                GUARDED_BY(mu_)
  uint64_t count_ = 0;            //                                GUARDED_BY(mu_)
  double sumSeconds_ = 0;         //                                GUARDED_BY(mu_)
};

StepTimings& stepTimings();

}  // namespace kiln::agent
