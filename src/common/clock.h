// Clock: the time seam. RealClock reads the system clock; tests use FakeClock. Thread-safe.
#pragma once
#include <atomic>
#include <cstdint>
#include <string>

namespace kiln {

class Clock {
 public:
  virtual ~Clock() = default;
  // Milliseconds since the Unix epoch.
  virtual int64_t nowMs() const = 0;
};

class RealClock : public Clock {
 public:
  int64_t nowMs() const override;
  static Clock& instance();
};

class FakeClock : public Clock {
 public:
  explicit FakeClock(int64_t startMs = 1'700'000'000'000) : now_(startMs) {}
  int64_t nowMs() const override { return now_.load(); }
  void advanceMs(int64_t d) { now_ += d; }

 private:
  std::atomic<int64_t> now_;
};

// RFC 3339 UTC with milliseconds, e.g. 2026-11-23T10:50:59.123Z.
std::string formatTimeMs(int64_t ms);

}  // namespace kiln
