// ApiServer: the public HTTP API (docs/api.md) on Boost.Beast, C++20 coroutines on the node's
// I/O threads: no thread per connection or per SSE client. Store calls go through the
// BlockingPool. Thread-safe; start() and stop() from the owner.
#pragma once
#include <cstdint>
#include <memory>
#include <string>

#include "common/asio.h"
#include "common/blocking_pool.h"
#include "common/clock.h"
#include "common/result.h"
#include "events/event_bus.h"
#include "scheduler/job_control.h"
#include "store/store.h"

namespace kiln::sandbox {
class Supervisor;
}

namespace kiln::api {

struct ApiDeps {
  store::Store* store = nullptr;
  events::EventBus* bus = nullptr;
  scheduler::JobControl* jobs = nullptr;
  BlockingPool* pool = nullptr;  // store calls
  Clock* clock = nullptr;
  BlockingPool* slowPool = nullptr;  // git ls-remote and other slow work; null = `pool`
  const sandbox::Supervisor* sandboxes = nullptr;  // optional: warm pool metrics
};

struct ApiOptions {
  std::string listen = "127.0.0.1:8080";  // HOST:PORT, port 0 = any free port
  size_t maxBodyBytes = 1 << 20;
  bool checkRepoReachable = true;  // git ls-remote on job create
};

class ApiServer {
 public:
  virtual ~ApiServer() = default;
  // Binds and starts accepting on `ioc`'s threads. Fails with a clear status if it can't bind.
  static Result<std::unique_ptr<ApiServer>> start(asio::io_context& ioc, const ApiOptions& opts,
                                                  const ApiDeps& deps);
  virtual uint16_t port() const = 0;
  // Stops accepting and closes open connections (SSE streams end).
  virtual void stop() = 0;
};

}  // namespace kiln::api
