// NodeMonitor: this node's row in the store's nodes table (a heartbeat with its running jobs,
// capacity and figures) and the capacity check that opens and closes the scheduler's claims:
// a node claims only while it has a free slot and its data dir's disk and the memory it may use
// stay above the configured floors. It also carries out a drain asked through the store
// (POST /api/v1/nodes/{id}/drain). One coroutine on the node's I/O threads; store and
// filesystem reads go to the BlockingPool. Thread-safe.
#pragma once
#include <atomic>
#include <cstdint>
#include <string>

#include "common/asio.h"
#include "common/blocking_pool.h"
#include "scheduler/scheduler.h"
#include "store/store.h"

namespace kiln::node {

struct NodeMonitorOptions {
  std::string nodeId;
  std::string address;  // the API URL
  std::string version;
  std::string dataDir;
  int maxJobs = 64;
  int64_t heartbeatMs = 2'000;
  int64_t minFreeDiskMb = 1'024;  // in the data dir's filesystem
  int64_t minFreeMemoryMb = 256;  // MemAvailable, or the cgroup's headroom when lower
  int64_t drainTimeoutMs = 0;     // a drained node's jobs hand over after this long
};

// What the node may use now.
struct Capacity {
  int64_t diskFreeBytes = -1;  // -1 = unknown
  int64_t memAvailableBytes = -1;
};
Capacity readCapacity(const std::string& dataDir);

class NodeMonitor {
 public:
  NodeMonitor(asio::io_context& ioc, store::Store& store, BlockingPool& pool,
              scheduler::Scheduler& scheduler, NodeMonitorOptions opts);
  void start();
  // Heartbeat now (a drain signal came), instead of at the next tick.
  void beat();
  // Marks this node draining in the store at once (shutdown). Blocking: not on an I/O thread.
  void reportDraining();
  void stop();

 private:
  Task<void> loop();
  // One heartbeat: reads capacity, opens or closes claims, writes the row, acts on a drain.
  void tick();
  store::NodeRecord record(const Capacity& c, std::string blockedBy) const;

  store::Store& store_;
  BlockingPool& pool_;
  scheduler::Scheduler& scheduler_;
  const NodeMonitorOptions opts_;
  const int64_t startedAt_;
  asio::strand<asio::io_context::executor_type> strand_;
  asio::steady_timer timer_;  // on strand_
  std::atomic<bool> stopping_{false};
  std::mutex tickMu_;  // one tick at a time
};

}  // namespace kiln::node
