// Warm pools: sandboxes started ahead of their jobs (SandboxBackend::startIdle), so that a job
// gets a ready one in the time it takes to attach its workspace. One pool per (backend, image);
// a taken sandbox is the job's (never returned, never reused) and a replacement starts in the
// background once the takes are over: no take in progress and none in the last
// kRefillQuietMs (or the pool is empty), one at a time, at a lower CPU priority (niceness
// +kFillerNice) until it is ready, so that a burst of takes never competes with cold starts.
#pragma once
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "common/result.h"
#include "sandbox/sandbox.h"

namespace kiln::sandbox {

// `--warm-pool BACKEND[:IMAGE]=N`.
struct WarmPoolConfig {
  std::string backend;  // "namespace" | "gvisor"
  std::string image;    // empty: the host's system dirs
  int size = 0;
};

// Parses "BACKEND[:IMAGE]=N" (1 <= N <= kMaxWarmPoolSize).
Result<WarmPoolConfig> parseWarmPool(const std::string& text);
inline constexpr int kMaxWarmPoolSize = 1000;
inline constexpr int kRefillQuietMs = 20;
inline constexpr int kFillerNice = 10;

struct WarmPoolStats {
  int size = 0;         // configured
  int idle = 0;         // started, waiting for a job
  uint64_t hits = 0;    // takes that got a sandbox
  uint64_t misses = 0;  // takes that fit the pool but found it empty
};

// Keeps `size` idle sandboxes of `backend` started. Thread-safe. Its filler thread creates every
// pooled sandbox: their parent-death signal follows that thread, which lives as long as the
// pool, so a pool must outlive the sandboxes taken from it (the node destroys jobs first).
class WarmPool {
 public:
  // backend: not owned, outlives the pool. idPrefix: unique to this pool (ids are
  // <idPrefix><n>).
  WarmPool(SandboxBackend& backend, WarmPoolConfig config, std::string idPrefix);
  ~WarmPool();  // stops filling and destroys the idle sandboxes
  WarmPool(const WarmPool&) = delete;
  WarmPool& operator=(const WarmPool&) = delete;

  // Starts one sandbox now, on the calling thread, and keeps it: the check that this pool can
  // be filled at all (`kiln serve` refuses one it cannot fill, with this status). Then starts
  // the filler thread.
  Status start();
  // Whether a job with spec can take from this pool: the same image, network "none", not root
  // inside (what a sandbox is started with; limits are applied at take time).
  bool fits(const SandboxSpec& spec) const;
  // An idle sandbox with spec's workspace attached and its limits applied, or nullopt when none
  // is idle (a miss; the caller creates one cold). A failed attach destroys that sandbox and is
  // returned. Blocking (the attach): call it on the BlockingPool.
  std::optional<Result<std::unique_ptr<Sandbox>>> take(const SandboxSpec& spec);
  // Waits until every slot is idle, or the timeout; returns whether it is full.
  bool waitFull(int timeoutMs);

  WarmPoolStats stats() const;
  const WarmPoolConfig& config() const { return config_; }
  // The last start failure of the filler, if its last start failed.
  std::optional<Status> lastError() const;

 private:
  void fillLoop();
  // Whether the filler may start a sandbox now (else how long to wait, 0 = until woken).
  std::optional<std::chrono::milliseconds> refillDelay() const;  // under mu_
  Result<std::unique_ptr<Sandbox>> startOne();

  SandboxBackend& backend_;
  const WarmPoolConfig config_;
  const std::string idPrefix_;
  mutable std::mutex mu_;
  std::condition_variable wake_;                    // the filler: a take, or stop
  std::condition_variable changed_;                 // waitFull
  std::deque<std::unique_ptr<Sandbox>> idle_;       // GUARDED_BY(mu_)
  uint64_t hits_ = 0, misses_ = 0;                  // GUARDED_BY(mu_)
  uint64_t started_ = 0;                            // GUARDED_BY(mu_): ids handed out
  int taking_ = 0;                                  // GUARDED_BY(mu_): takes in progress
  std::chrono::steady_clock::time_point lastTake_;  // GUARDED_BY(mu_): when the last ended
  std::optional<Status> lastError_;                 // GUARDED_BY(mu_)
  bool stopping_ = false;                           // GUARDED_BY(mu_)
  std::thread filler_;
};

}  // namespace kiln::sandbox
