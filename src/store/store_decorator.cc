#include "store/store_decorator.h"

#include <exception>

namespace kiln::store {

template <class R, class F>
R StoreDecorator::forward(std::string_view method, const std::string& jobId, F&& call) {
  try {
    if (Status st = before(method, jobId); !st.isOk()) return R(std::move(st));
    return call();
  } catch (const std::exception& e) {
    if (!catchExceptions_) throw;
    return R(internalError("store: " + std::string(method) + " threw: " + e.what()));
  } catch (...) {
    if (!catchExceptions_) throw;
    return R(internalError("store: " + std::string(method) + " threw"));
  }
}

Status StoreDecorator::createJob(const Job& job, const std::vector<NewEvent>& events) {
  return forward<Status>("createJob", job.id, [&] { return inner_->createJob(job, events); });
}

Result<Job> StoreDecorator::getJob(const std::string& jobId, const std::string& tenantId) {
  return forward<Result<Job>>("getJob", jobId, [&] { return inner_->getJob(jobId, tenantId); });
}

Result<JobPage> StoreDecorator::listJobs(const std::string& tenantId,
                                         std::optional<JobStatus> status, int limit,
                                         const std::string& cursor) {
  return forward<Result<JobPage>>(
      "listJobs", "", [&] { return inner_->listJobs(tenantId, status, limit, cursor); });
}

Result<UpdateResult> StoreDecorator::updateJob(const std::string& jobId, const JobUpdate& update) {
  return forward<Result<UpdateResult>>("updateJob", jobId,
                                       [&] { return inner_->updateJob(jobId, update); });
}

Result<std::optional<Job>> StoreDecorator::claimJob(const std::string& nodeId, int64_t nowMs,
                                                    int64_t leaseMs) {
  return forward<Result<std::optional<Job>>>(
      "claimJob", "", [&] { return inner_->claimJob(nodeId, nowMs, leaseMs); });
}

Result<std::vector<std::string>> StoreDecorator::renewLeases(const std::string& nodeId,
                                                             const std::vector<HeldLease>& held,
                                                             int64_t nowMs, int64_t leaseMs) {
  return forward<Result<std::vector<std::string>>>(
      "renewLeases", "", [&] { return inner_->renewLeases(nodeId, held, nowMs, leaseMs); });
}

Result<std::vector<LeaseClaim>> StoreDecorator::leaseHistory(const std::string& jobId) {
  return forward<Result<std::vector<LeaseClaim>>>("leaseHistory", jobId,
                                                  [&] { return inner_->leaseHistory(jobId); });
}

Result<std::vector<Event>> StoreDecorator::recordStep(const Step& step, const Lease& lease,
                                                      const std::vector<NewEvent>& events) {
  return forward<Result<std::vector<Event>>>(
      "recordStep", step.jobId, [&] { return inner_->recordStep(step, lease, events); });
}

Result<std::vector<Step>> StoreDecorator::listSteps(const std::string& jobId) {
  return forward<Result<std::vector<Step>>>("listSteps", jobId,
                                            [&] { return inner_->listSteps(jobId); });
}

Result<std::string> StoreDecorator::latestPatch(const std::string& jobId) {
  return forward<Result<std::string>>("latestPatch", jobId,
                                      [&] { return inner_->latestPatch(jobId); });
}

Result<std::vector<Event>> StoreDecorator::appendEvents(const std::string& jobId,
                                                        const Lease& lease,
                                                        const std::vector<NewEvent>& events) {
  return forward<Result<std::vector<Event>>>(
      "appendEvents", jobId, [&] { return inner_->appendEvents(jobId, lease, events); });
}

Result<std::vector<Event>> StoreDecorator::listEvents(const std::string& jobId, int64_t afterSeq,
                                                      int limit) {
  return forward<Result<std::vector<Event>>>(
      "listEvents", jobId, [&] { return inner_->listEvents(jobId, afterSeq, limit); });
}

Result<std::vector<JobTotals>> StoreDecorator::jobTotals() {
  return forward<Result<std::vector<JobTotals>>>("jobTotals", "",
                                                 [&] { return inner_->jobTotals(); });
}

Status StoreDecorator::ensureTenant(const std::string& tenantId, const std::string& name) {
  return forward<Status>("ensureTenant", "", [&] { return inner_->ensureTenant(tenantId, name); });
}

Status StoreDecorator::getTenant(const std::string& tenantId) {
  return forward<Status>("getTenant", "", [&] { return inner_->getTenant(tenantId); });
}

Result<std::optional<QuotaBreach>> StoreDecorator::createJobWithinQuota(
    const Job& job, const std::vector<NewEvent>& events, int64_t nowMs) {
  return forward<Result<std::optional<QuotaBreach>>>("createJobWithinQuota", job.id, [&] {
    return inner_->createJobWithinQuota(job, events, nowMs);
  });
}

Status StoreDecorator::addToken(const std::string& tokenHash, const ApiToken& token) {
  return forward<Status>("addToken", "", [&] { return inner_->addToken(tokenHash, token); });
}

Result<TokenGrant> StoreDecorator::tokenGrant(const std::string& tokenHash) {
  return forward<Result<TokenGrant>>("tokenGrant", "",
                                     [&] { return inner_->tokenGrant(tokenHash); });
}

Result<std::vector<ApiToken>> StoreDecorator::listTokens(const std::string& tenantId) {
  return forward<Result<std::vector<ApiToken>>>("listTokens", "",
                                                [&] { return inner_->listTokens(tenantId); });
}

Result<ApiToken> StoreDecorator::revokeToken(const std::string& tokenId,
                                             const std::string& tenantId, int64_t nowMs) {
  return forward<Result<ApiToken>>("revokeToken", "",
                                   [&] { return inner_->revokeToken(tokenId, tenantId, nowMs); });
}

Result<std::string> StoreDecorator::ensureSetting(const std::string& name,
                                                  const std::string& value) {
  return forward<Result<std::string>>("ensureSetting", "",
                                      [&] { return inner_->ensureSetting(name, value); });
}

Status StoreDecorator::setQuota(const std::string& tenantId, const TenantQuota& quota) {
  return forward<Status>("setQuota", "", [&] { return inner_->setQuota(tenantId, quota); });
}

Result<TenantQuota> StoreDecorator::getQuota(const std::string& tenantId) {
  return forward<Result<TenantQuota>>("getQuota", "", [&] { return inner_->getQuota(tenantId); });
}

Result<TenantUsage> StoreDecorator::tenantUsage(const std::string& tenantId, int64_t nowMs) {
  return forward<Result<TenantUsage>>("tenantUsage", "",
                                      [&] { return inner_->tenantUsage(tenantId, nowMs); });
}

Status StoreDecorator::putSecret(const TenantSecret& secret) {
  return forward<Status>("putSecret", "", [&] { return inner_->putSecret(secret); });
}

Result<std::vector<TenantSecret>> StoreDecorator::listSecrets(const std::string& tenantId) {
  return forward<Result<std::vector<TenantSecret>>>("listSecrets", "",
                                                    [&] { return inner_->listSecrets(tenantId); });
}

Status StoreDecorator::deleteSecret(const std::string& tenantId, const std::string& name) {
  return forward<Status>("deleteSecret", "", [&] { return inner_->deleteSecret(tenantId, name); });
}

Result<bool> StoreDecorator::heartbeatNode(const NodeRecord& node) {
  return forward<Result<bool>>("heartbeatNode", "", [&] { return inner_->heartbeatNode(node); });
}

Result<std::vector<NodeRecord>> StoreDecorator::listNodes() {
  return forward<Result<std::vector<NodeRecord>>>("listNodes", "",
                                                  [&] { return inner_->listNodes(); });
}

Status StoreDecorator::requestDrain(const std::string& nodeId) {
  return forward<Status>("requestDrain", "", [&] { return inner_->requestDrain(nodeId); });
}

std::unique_ptr<Store> guardStore(std::unique_ptr<Store> engine) {
  return std::make_unique<StoreDecorator>(std::move(engine), true);
}

}  // namespace kiln::store
