#include "store/redacting_store.h"

#include <spdlog/spdlog.h>

namespace kiln::store {
namespace {

void redactEvents(const secrets::Redactions& r, std::vector<NewEvent>& events) {
  for (auto& e : events) r.apply(e.payload);
}

void redactOptional(const secrets::Redactions& r, std::optional<json>& j) {
  if (j) r.apply(*j);
}

}  // namespace

secrets::Redactions RedactingStore::remember(const std::string& jobId, const json& sealed) {
  secrets::Redactions r;
  if (!sealed.is_null()) {
    auto opened = secrets::openAll(sealed, box_);
    if (opened.isOk()) {
      r = secrets::Redactions(*opened);
    } else {
      spdlog::warn(
          "job {}: its secrets do not open on this node ({}); none were given to its "
          "sandbox here",
          jobId, opened.status().message());
    }
  }
  secrets::LiveSecrets::process().put(jobId, r);
  return r;
}

Result<secrets::Redactions> RedactingStore::redactionsFor(const std::string& jobId) {
  if (auto known = secrets::LiveSecrets::process().find(jobId)) return *known;
  ASSIGN_OR_RETURN(Job job, inner().getJob(jobId, ""));
  return remember(jobId, job.secrets);
}

Status RedactingStore::createJob(const Job& job, const std::vector<NewEvent>& events) {
  const secrets::Redactions r = remember(job.id, job.secrets);
  std::vector<NewEvent> redacted = events;
  redactEvents(r, redacted);
  return StoreDecorator::createJob(job, redacted);
}

Result<std::optional<QuotaBreach>> RedactingStore::createJobWithinQuota(
    const Job& job, const std::vector<NewEvent>& events, int64_t nowMs) {
  const secrets::Redactions r = remember(job.id, job.secrets);
  std::vector<NewEvent> redacted = events;
  redactEvents(r, redacted);
  return StoreDecorator::createJobWithinQuota(job, redacted, nowMs);
}

Result<UpdateResult> RedactingStore::updateJob(const std::string& jobId, const JobUpdate& update) {
  auto r = redactionsFor(jobId);
  // An unknown job: the inner store answers NotFound.
  if (!r.isOk() && r.status().code() != Code::kNotFound) return r.status();
  if (!r.isOk() || r->empty()) return StoreDecorator::updateJob(jobId, update);
  JobUpdate u = update;
  redactOptional(*r, u.error);
  redactOptional(*r, u.inflightCall);
  redactOptional(*r, u.approval);
  redactOptional(*r, u.verify);
  redactEvents(*r, u.events);
  return StoreDecorator::updateJob(jobId, u);
}

Result<std::vector<Event>> RedactingStore::recordStep(const Step& step, const Lease& lease,
                                                      const std::vector<NewEvent>& events) {
  ASSIGN_OR_RETURN(secrets::Redactions r, redactionsFor(step.jobId));
  if (r.empty()) return StoreDecorator::recordStep(step, lease, events);
  Step s = step;
  r.apply(s.plannerThought);
  r.apply(s.toolArguments);
  r.apply(s.toolOutput);
  r.apply(s.rawArguments);
  r.apply(s.shellState);
  if (s.workspacePatch) r.apply(*s.workspacePatch);
  std::vector<NewEvent> redacted = events;
  redactEvents(r, redacted);
  return StoreDecorator::recordStep(s, lease, redacted);
}

Result<std::vector<Event>> RedactingStore::appendEvents(const std::string& jobId,
                                                        const Lease& lease,
                                                        const std::vector<NewEvent>& events) {
  ASSIGN_OR_RETURN(secrets::Redactions r, redactionsFor(jobId));
  if (r.empty()) return StoreDecorator::appendEvents(jobId, lease, events);
  std::vector<NewEvent> redacted = events;
  redactEvents(r, redacted);
  return StoreDecorator::appendEvents(jobId, lease, redacted);
}

}  // namespace kiln::store
