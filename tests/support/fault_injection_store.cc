#include "support/fault_injection_store.h"

#include <stdexcept>

namespace kiln::testing {

const char* FaultInjectionStore::faultName(Fault f) {
  switch (f) {
    case Fault::kError:
      return "error";
    case Fault::kUnavailable:
      return "unavailable";
    case Fault::kThrow:
      return "throw";
  }
  return "?";
}

void FaultInjectionStore::failCall(const std::string& jobId, int k, Fault fault) {
  std::lock_guard lock(mu_);
  armedJob_ = jobId;
  armedAt_ = static_cast<int>(calls_[jobId].size()) + k;
  fault_ = fault;
  fired_.clear();
}

void FaultInjectionStore::failNext(const std::string& method, Fault fault) {
  std::lock_guard lock(mu_);
  armedMethod_ = method;
  methodFault_ = fault;
  fired_.clear();
}

int FaultInjectionStore::callsFor(const std::string& jobId) {
  std::lock_guard lock(mu_);
  return static_cast<int>(calls_[jobId].size());
}

std::vector<std::string> FaultInjectionStore::methodsFor(const std::string& jobId) {
  std::lock_guard lock(mu_);
  return calls_[jobId];
}

std::string FaultInjectionStore::firedAt() {
  std::lock_guard lock(mu_);
  return fired_;
}

int FaultInjectionStore::renewals() {
  std::lock_guard lock(mu_);
  return renewals_;
}

std::vector<std::string> FaultInjectionStore::reportedLost() {
  std::lock_guard lock(mu_);
  return lost_;
}

Result<std::vector<std::string>> FaultInjectionStore::renewLeases(
    const std::string& nodeId, const std::vector<store::HeldLease>& held, int64_t nowMs,
    int64_t leaseMs) {
  auto lost = StoreDecorator::renewLeases(nodeId, held, nowMs, leaseMs);
  std::lock_guard lock(mu_);
  ++renewals_;
  if (lost.isOk()) lost_.insert(lost_.end(), lost->begin(), lost->end());
  return lost;
}

Status FaultInjectionStore::before(std::string_view method, const std::string& jobId) {
  Fault fault;
  {
    std::lock_guard lock(mu_);
    if (!armedMethod_.empty() && method == armedMethod_) {
      armedMethod_.clear();
      fired_ = std::string(method);
      fault = methodFault_;
      return inject(method, fault);
    }
    if (jobId.empty()) return Status::ok();
    auto& calls = calls_[jobId];
    calls.emplace_back(method);
    if (jobId != armedJob_ || static_cast<int>(calls.size()) != armedAt_) return Status::ok();
    armedJob_.clear();
    fired_ = std::string(method) + " (call " + std::to_string(calls.size()) + ")";
    fault = fault_;
  }
  return inject(method, fault);
}

Status FaultInjectionStore::inject(std::string_view method, Fault fault) {
  const std::string what = "injected fault in " + std::string(method);
  switch (fault) {
    case Fault::kError:
      return internalError(what);
    case Fault::kUnavailable:
      return Status(Code::kUnavailable, what + ": database is locked");
    case Fault::kThrow:
      throw std::runtime_error(what);
  }
  return Status::ok();
}

}  // namespace kiln::testing
