#include "node/node_monitor.h"

#include <spdlog/spdlog.h>
#include <sys/statvfs.h>

#include "common/clock.h"
#include "common/files.h"

namespace kiln::node {
namespace {

// "MemAvailable:   123456 kB" -> bytes; -1 if absent.
int64_t memAvailable() {
  std::string meminfo = readFile("/proc/meminfo").valueOr("");
  auto at = meminfo.find("MemAvailable:");
  if (at == std::string::npos) return -1;
  return std::strtoll(meminfo.c_str() + at + 13, nullptr, 10) * 1024;
}

// The cgroup path of this process for `controller` ("" = the v2 hierarchy), or nullopt.
std::optional<std::string> cgroupPath(const std::string& controller) {
  std::string self = readFile("/proc/self/cgroup").valueOr("");
  std::string key = controller.empty() ? "0::" : ":" + controller + ":";
  auto at = self.find(key);
  if (at == std::string::npos) return std::nullopt;
  at += key.size();
  std::string path = self.substr(at, self.find('\n', at) - at);
  return path == "/" ? std::string() : path;
}

int64_t readNumber(const std::string& path) {
  std::string s = readFile(path).valueOr("");
  return s.empty() || s.rfind("max", 0) == 0 ? -1 : std::strtoll(s.c_str(), nullptr, 10);
}

// The headroom under this process's cgroup memory limit (v2, else v1); -1 when there is none.
int64_t cgroupHeadroom() {
  int64_t limit = -1, used = 0;
  if (auto v1 = cgroupPath("memory")) {
    std::string dir = "/sys/fs/cgroup/memory" + *v1;
    limit = readNumber(dir + "/memory.limit_in_bytes");
    used = readNumber(dir + "/memory.usage_in_bytes");
  } else if (auto v2 = cgroupPath("")) {
    std::string dir = "/sys/fs/cgroup" + *v2;
    limit = readNumber(dir + "/memory.max");
    used = readNumber(dir + "/memory.current");
  }
  if (limit < 0 || limit >= (int64_t{1} << 60)) return -1;  // v1 writes "no limit" as ~2^63
  return std::max<int64_t>(0, limit - std::max<int64_t>(0, used));
}

}  // namespace

Capacity readCapacity(const std::string& dataDir) {
  Capacity c;
  struct statvfs vfs {};
  if (statvfs(dataDir.c_str(), &vfs) == 0) {
    c.diskFreeBytes = static_cast<int64_t>(vfs.f_bavail) * static_cast<int64_t>(vfs.f_frsize);
  }
  c.memAvailableBytes = memAvailable();
  if (int64_t h = cgroupHeadroom();
      h >= 0 && (c.memAvailableBytes < 0 || h < c.memAvailableBytes)) {
    c.memAvailableBytes = h;
  }
  return c;
}

NodeMonitor::NodeMonitor(asio::io_context& ioc, store::Store& store, BlockingPool& pool,
                         scheduler::Scheduler& scheduler, NodeMonitorOptions opts)
    : store_(store),
      pool_(pool),
      scheduler_(scheduler),
      opts_(std::move(opts)),
      startedAt_(RealClock::instance().nowMs()),
      strand_(asio::make_strand(ioc)),
      timer_(strand_) {}

void NodeMonitor::start() { asio::co_spawn(strand_, loop(), asio::detached); }

void NodeMonitor::beat() {
  asio::post(strand_, [this] { timer_.cancel(); });
}

void NodeMonitor::stop() {
  stopping_ = true;
  asio::post(strand_, [this] { timer_.cancel(); });
}

Task<void> NodeMonitor::loop() {
  while (!stopping_) {
    co_await pool_.run([this] { tick(); });
    timer_.expires_after(std::chrono::milliseconds(opts_.heartbeatMs));
    boost::system::error_code ec;
    co_await timer_.async_wait(asio::redirect_error(asio::use_awaitable, ec));
  }
}

store::NodeRecord NodeMonitor::record(const Capacity& c, std::string blockedBy) const {
  store::NodeRecord n;
  n.id = opts_.nodeId;
  n.address = opts_.address;
  n.version = opts_.version;
  n.startedAt = startedAt_;
  n.heartbeatAt = RealClock::instance().nowMs();
  n.runningJobs = static_cast<int>(scheduler_.running());
  n.maxJobs = opts_.maxJobs;
  n.draining = scheduler_.draining();
  n.claiming = blockedBy.empty();
  n.figures = {{"diskFreeBytes", c.diskFreeBytes},
               {"memAvailableBytes", c.memAvailableBytes},
               {"minFreeDiskBytes", opts_.minFreeDiskMb << 20},
               {"minFreeMemoryBytes", opts_.minFreeMemoryMb << 20},
               {"blockedBy", std::move(blockedBy)}};
  return n;
}

void NodeMonitor::tick() {
  std::lock_guard lock(tickMu_);
  const Capacity c = readCapacity(opts_.dataDir);
  std::string low;  // what keeps the node from claiming, besides slots and a drain
  if (c.diskFreeBytes >= 0 && c.diskFreeBytes < (opts_.minFreeDiskMb << 20)) {
    low = "disk";
  } else if (c.memAvailableBytes >= 0 && c.memAvailableBytes < (opts_.minFreeMemoryMb << 20)) {
    low = "memory";
  }
  if (low.empty() != scheduler_.claiming()) {
    if (low.empty()) {
      spdlog::info("node: capacity is back; claiming again");
    } else {
      spdlog::warn("node: {} is low (disk free {} MiB, memory available {} MiB); not claiming", low,
                   c.diskFreeBytes >> 20, c.memAvailableBytes >> 20);
    }
    scheduler_.setClaiming(low.empty());
    if (low.empty()) scheduler_.wake();
  }
  std::string blockedBy = scheduler_.draining()                                        ? "draining"
                          : !low.empty()                                               ? low
                          : scheduler_.running() >= static_cast<size_t>(opts_.maxJobs) ? "slots"
                                                                                       : "";
  auto drain = store_.heartbeatNode(record(c, blockedBy));
  if (!drain.isOk()) {
    spdlog::warn("node: heartbeat: {}", drain.status().toString());
    return;
  }
  if (*drain && !scheduler_.draining()) {
    scheduler_.drain(opts_.drainTimeoutMs);
    (void)store_.heartbeatNode(record(c, "draining"));
  }
}

void NodeMonitor::reportDraining() {
  std::lock_guard lock(tickMu_);
  (void)store_.heartbeatNode(record(readCapacity(opts_.dataDir), "draining"));
}

}  // namespace kiln::node
