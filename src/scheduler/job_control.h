// JobControl: what the API asks of the scheduler once it has changed the store. The store
// change is the durable part (a stop is recorded even if this node dies right after); these
// calls only make the running node react at once. Thread-safe.
#pragma once
#include <string>

namespace kiln::scheduler {

class JobControl {
 public:
  virtual ~JobControl() = default;
  // New QUEUED jobs exist: try to claim now instead of at the next poll.
  virtual void wake() = 0;
  // The job was marked STOPPED in the store: if it runs here, cancel it and kill its sandbox.
  virtual void stopped(const std::string& jobId) = 0;
  // A reply was stored for a PAUSED job: if it waits here, resume it.
  virtual void replied(const std::string& jobId) = 0;
};

}  // namespace kiln::scheduler
