// RedactingStore: the one gate every job text passes on its way into the store. It wraps the
// node's Store and, before each write of a job's steps, events, error, in-flight call, verify
// result or workspace patch, replaces every value of that job's secrets with
// "[redacted:NAME]" (secrets/redact.h). Because every writer (the runner's phases, the terminal
// stream, the API's own updates, a writer added later) goes through Store, none can bypass it.
// A job's values come from its sealed `secrets` (opened with the node's SecretBox, once per job
// and process, and kept in LiveSecrets::process() for the log sink too). A job whose secrets do
// not open with this node's key had none of them put into its sandbox here, so its writes pass
// unchanged. Thread-safe if the inner store is.
#pragma once
#include <memory>

#include "secrets/redact.h"
#include "secrets/secret_box.h"
#include "store/store_decorator.h"

namespace kiln::store {

class RedactingStore : public StoreDecorator {
 public:
  // `box` must outlive the store.
  RedactingStore(std::unique_ptr<Store> inner, const secrets::SecretBox& box)
      : StoreDecorator(std::move(inner), false), box_(box) {}

  // Store (the writes that carry job text)
  Status createJob(const Job& job, const std::vector<NewEvent>& events) override;
  Result<std::optional<QuotaBreach>> createJobWithinQuota(const Job& job,
                                                          const std::vector<NewEvent>& events,
                                                          int64_t nowMs) override;
  Result<UpdateResult> updateJob(const std::string& jobId, const JobUpdate& update) override;
  Result<std::vector<Event>> recordStep(const Step& step, const Lease& lease,
                                        const std::vector<NewEvent>& events) override;
  Result<std::vector<Event>> appendEvents(const std::string& jobId, const Lease& lease,
                                          const std::vector<NewEvent>& events) override;

 private:
  // The job's values: from LiveSecrets, else read and opened (then remembered).
  Result<secrets::Redactions> redactionsFor(const std::string& jobId);
  secrets::Redactions remember(const std::string& jobId, const json& sealed);

  const secrets::SecretBox& box_;
};

}  // namespace kiln::store
