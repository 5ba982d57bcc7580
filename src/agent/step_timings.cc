#include "agent/step_timings.h"

#include <algorithm>
#include <cstdio>

namespace kiln::agent {

void StepTimings::record(std::chrono::nanoseconds overhead) {
  int64_t ns = std::max<int64_t>(0, overhead.count());
  std::lock_guard lock(mu_);
  if (samples_.size() < window_) {
    samples_.push_back(ns);
  } else {
    samples_[next_] = ns;
    next_ = (next_ + 1) % window_;
  }
  ++count_;
  sumSeconds_ += static_cast<double>(ns) / 1e9;
}

std::chrono::nanoseconds StepTimings::quantile(double q) const {
  std::vector<int64_t> s;
  {
    std::lock_guard lock(mu_);
    s = samples_;
  }
  if (s.empty()) return {};
  size_t i = std::min(s.size() - 1, static_cast<size_t>(q * static_cast<double>(s.size())));
  std::nth_element(s.begin(), s.begin() + static_cast<ptrdiff_t>(i), s.end());
  return std::chrono::nanoseconds(s[i]);
}

uint64_t StepTimings::count() const {
  std::lock_guard lock(mu_);
  return count_;
}

std::string StepTimings::render() const {
  std::string out =
      "# HELP kiln_agent_step_overhead_seconds kiln's own time per agent step: model reply "
      "received to next model request, minus tool run time (newest 10000 steps).\n"
      "# TYPE kiln_agent_step_overhead_seconds summary\n";
  char line[160];
  for (double q : {0.5, 0.9, 0.99}) {
    std::snprintf(line, sizeof line, "kiln_agent_step_overhead_seconds{quantile=\"%g\"} %.9f\n",
                  q, static_cast<double>(quantile(q).count()) / 1e9);
    out += line;
  }
  double sum;
  uint64_t n;
  {
    std::lock_guard lock(mu_);
    sum = sumSeconds_;
    n = count_;
  }
  std::snprintf(line, sizeof line, "kiln_agent_step_overhead_seconds_sum %.9f\n", sum);
  out += line;
  out += "kiln_agent_step_overhead_seconds_count " + std::to_string(n) + "\n";
  return out;
}

StepTimings& stepTimings() {
  static StepTimings timings;
  return timings;
}

}  // namespace kiln::agent
