// StoreDecorator: a Store that forwards every call to another Store, with one hook before each
// call. Two uses: guardStore() (every engine Store::open returns is wrapped in one) turns an
// exception thrown by an engine into an Internal status, so none crosses the store pool's
// thread boundary; tests subclass it to inject faults (tests/support/fault_injection_store.h),
// the way leveldb's FaultInjectionTestEnv wraps an Env. Thread-safe if the inner store and the
// hook are.
#pragma once
#include <memory>
#include <string>
#include <string_view>

#include "store/store.h"

namespace kiln::store {

class StoreDecorator : public Store {
 public:
  // `catchExceptions`: an exception thrown by the hook or the inner store becomes an Internal
  // status; otherwise it propagates to the caller.
  StoreDecorator(std::unique_ptr<Store> inner, bool catchExceptions)
      : inner_(std::move(inner)), catchExceptions_(catchExceptions) {}

  Store& inner() { return *inner_; }

  // Store
  Status createJob(const Job& job, const std::vector<NewEvent>& events) override;
  Result<Job> getJob(const std::string& jobId, const std::string& tenantId) override;
  Result<JobPage> listJobs(const std::string& tenantId, std::optional<JobStatus> status, int limit,
                           const std::string& cursor) override;
  Result<UpdateResult> updateJob(const std::string& jobId, const JobUpdate& update) override;
  Result<std::optional<Job>> claimJob(const std::string& nodeId, int64_t nowMs,
                                      int64_t leaseMs) override;
  Result<std::vector<std::string>> renewLeases(const std::string& nodeId,
                                               const std::vector<HeldLease>& held, int64_t nowMs,
                                               int64_t leaseMs) override;
  Result<std::vector<LeaseClaim>> leaseHistory(const std::string& jobId) override;
  Result<std::vector<Event>> recordStep(const Step& step, const Lease& lease,
                                        const std::vector<NewEvent>& events) override;
  Result<std::vector<Step>> listSteps(const std::string& jobId) override;
  Result<std::string> latestPatch(const std::string& jobId) override;
  Result<std::vector<Event>> appendEvents(const std::string& jobId, const Lease& lease,
                                          const std::vector<NewEvent>& events) override;
  Result<std::vector<Event>> listEvents(const std::string& jobId, int64_t afterSeq,
                                        int limit) override;
  Result<std::vector<JobTotals>> jobTotals() override;
  Result<std::optional<QuotaBreach>> createJobWithinQuota(const Job& job,
                                                          const std::vector<NewEvent>& events,
                                                          int64_t nowMs) override;
  Status ensureTenant(const std::string& tenantId, const std::string& name) override;
  Status getTenant(const std::string& tenantId) override;
  Status addToken(const std::string& tokenHash, const ApiToken& token) override;
  Result<TokenGrant> tokenGrant(const std::string& tokenHash) override;
  Result<std::vector<ApiToken>> listTokens(const std::string& tenantId) override;
  Result<ApiToken> revokeToken(const std::string& tokenId, const std::string& tenantId,
                               int64_t nowMs) override;
  Result<std::string> ensureSetting(const std::string& name, const std::string& value) override;
  Status setQuota(const std::string& tenantId, const TenantQuota& quota) override;
  Result<TenantQuota> getQuota(const std::string& tenantId) override;
  Result<TenantUsage> tenantUsage(const std::string& tenantId, int64_t nowMs) override;
  Status putSecret(const TenantSecret& secret) override;
  Result<std::vector<TenantSecret>> listSecrets(const std::string& tenantId) override;
  Status deleteSecret(const std::string& tenantId, const std::string& name) override;
  Result<bool> heartbeatNode(const NodeRecord& node) override;
  Result<std::vector<NodeRecord>> listNodes() override;
  Status requestDrain(const std::string& nodeId) override;
  void watch(SignalHandler handler) override { inner_->watch(std::move(handler)); }

 protected:
  // Runs before every call: `method` is the Store method's name, `jobId` the job the call
  // concerns ("" for none; claimJob's is ""). A non-ok status is returned instead of making the
  // call. May throw.
  virtual Status before(std::string_view method, const std::string& jobId) { return Status::ok(); }

 private:
  template <class R, class F>
  R forward(std::string_view method, const std::string& jobId, F&& call);

  std::unique_ptr<Store> inner_;
  const bool catchExceptions_;
};

// `engine` behind a StoreDecorator that catches exceptions.
std::unique_ptr<Store> guardStore(std::unique_ptr<Store> engine);

}  // namespace kiln::store
