// ApiMetrics: the API's own counters for /metrics (Prometheus text format). Lock-free counters
// and a small mutex-guarded map; safe from any thread.
#pragma once
#include <atomic>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>

namespace kiln::api {

class ApiMetrics {
 public:
  void countRequest(int status);
  void sseOpened() { sseOpen_++; }
  void sseClosed() { sseOpen_--; }
  int64_t sseOpen() const { return sseOpen_.load(); }
  // The API's counters as Prometheus text (HELP/TYPE lines included).
  std::string render() const;

 private:
  mutable std::mutex mu_;
  std::map<int, uint64_t> requestsByStatus_;  // GUARDED_BY(mu_)
  std::atomic<int64_t> sseOpen_{0};
};

// Counts one open SSE client for as long as it lives.
class SseClientGauge {
 public:
  explicit SseClientGauge(ApiMetrics& m) : m_(m) { m_.sseOpened(); }
  ~SseClientGauge() { m_.sseClosed(); }
  SseClientGauge(const SseClientGauge&) = delete;
  SseClientGauge& operator=(const SseClientGauge&) = delete;

 private:
  ApiMetrics& m_;
};

}  // namespace kiln::api
