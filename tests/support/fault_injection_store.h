// FaultInjectionStore: a real Store (normally SQLite) behind a decorator that makes one chosen
// call fail, in the spirit of leveldb's FaultInjectionTestEnv: the k-th call that concerns a
// given job returns an error, returns Unavailable (what SQLITE_BUSY becomes), or throws. It also
// counts the calls each job makes. Thread-safe.
#pragma once
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "store/store_decorator.h"

namespace kiln::testing {

class FaultInjectionStore : public store::StoreDecorator {
 public:
  enum class Fault { kError, kUnavailable, kThrow };
  static const char* faultName(Fault f);

  explicit FaultInjectionStore(std::unique_ptr<store::Store> inner)
      : StoreDecorator(std::move(inner), /*catchExceptions=*/false) {}

  // The `k`-th call (1-based) concerning `jobId` from now on fails with `fault`, once.
  void failCall(const std::string& jobId, int k, Fault fault);
  // The next call of `method` (any job, or none: claimJob, renewLeases) fails with `fault`, once.
  void failNext(const std::string& method, Fault fault);
  // Calls made so far that concerned `jobId`, and the name of each.
  int callsFor(const std::string& jobId);
  std::vector<std::string> methodsFor(const std::string& jobId);
  // The method the armed fault hit ("" until it fired).
  std::string firedAt();
  // renewLeases calls that reached the store, and every job id their answers said this node no
  // longer holds.
  int renewals();
  std::vector<std::string> reportedLost();

  Result<std::vector<std::string>> renewLeases(const std::string& nodeId,
                                               const std::vector<store::HeldLease>& held,
                                               int64_t nowMs, int64_t leaseMs) override;

 protected:
  Status before(std::string_view method, const std::string& jobId) override;

 private:
  // Returns (or throws) the fault.
  static Status inject(std::string_view method, Fault fault);

  std::mutex mu_;
  std::map<std::string, std::vector<std::string>> calls_;  // GUARDED_BY(mu_)
  std::string armedJob_;                                   // GUARDED_BY(mu_)
  int armedAt_ = 0;                                        // GUARDED_BY(mu_)
  Fault fault_ = Fault::kError;                            // GUARDED_BY(mu_)
  std::string armedMethod_;                                // GUARDED_BY(mu_)
  Fault methodFault_ = Fault::kError;                      // GUARDED_BY(mu_)
  std::string fired_;                                      // GUARDED_BY(mu_)
  int renewals_ = 0;                                       // GUARDED_BY(mu_)
  std::vector<std::string> lost_;                          // GUARDED_BY(mu_)
};

}  // namespace kiln::testing
