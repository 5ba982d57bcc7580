// TerminalStream: turns a command's live output chunks into durable `terminal` events, in order,
// without blocking the job's strand: chunks are buffered and one flusher at a time appends them
// to the store on the BlockingPool, fenced by the job's lease: once the store refuses the lease,
// the stream drops everything (a node that lost its job writes nothing more). The end of a
// chunk that could begin one of the job's secret values is held back until the stream's next
// chunk (or drain()), so a value split between two chunks reaches the store's redaction whole.
// Use from the job's strand only.
#pragma once
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/asio.h"
#include "common/blocking_pool.h"
#include "events/event_bus.h"
#include "secrets/redact.h"
#include "store/store.h"

namespace kiln::agent {

class TerminalStream {
 public:
  // `ex` is the job's strand; push() and drain() must be called on it.
  TerminalStream(asio::any_io_executor ex, store::Store& store, events::EventBus& bus,
                 BlockingPool& pool, std::string jobId, store::Lease lease)
      : ex_(ex),
        store_(store),
        bus_(bus),
        pool_(pool),
        jobId_(std::move(jobId)),
        lease_(std::move(lease)),
        idle_(ex),
        secrets_(secrets::LiveSecrets::process().find(jobId_)) {}

  void push(std::string_view stream, std::string_view data);
  // Returns once every pushed chunk is in the store (or dropped: the lease is lost).
  Task<void> drain();
  // The store refused the lease: nothing more is written.
  bool leaseLost() const { return leaseLost_; }

 private:
  Task<void> flush();

  asio::any_io_executor ex_;
  store::Store& store_;
  events::EventBus& bus_;
  BlockingPool& pool_;
  const std::string jobId_;
  const store::Lease lease_;
  bool leaseLost_ = false;
  // Queues `data` as the next terminal output of `stream`.
  void queue(std::string_view stream, std::string_view data);
  void startFlush();

  std::vector<store::NewEvent> pending_;
  bool flushing_ = false;
  asio::steady_timer idle_;                      // cancelled when a flush ends, to wake drain()
  std::optional<secrets::Redactions> secrets_;   // the job's values, when it has any
  std::map<std::string, std::string> heldBack_;  // by stream: a possible start of a value
};

}  // namespace kiln::agent
