// ApiServer: the public HTTP API (docs/api.md) on Boost.Beast, C++20 coroutines on the node's
// I/O threads: no thread per connection or per SSE client. Store calls go through the
// BlockingPool. Thread-safe; start() and stop() from the owner.
#pragma once
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

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
namespace kiln::secrets {
class SecretBox;
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
  // Seals the secrets of job requests and `PUT /secrets`; null: such requests get 503.
  const secrets::SecretBox* secretBox = nullptr;
};

// The limits that keep one client from taking the server down (docs/api.md, "Limits").
struct ApiOptions {
  std::string listen = "127.0.0.1:8080";  // HOST:PORT, port 0 = any free port
  size_t maxBodyBytes = 1 << 20;          // 413 payload_too_large
  uint32_t maxHeaderBytes = 16 * 1024;    // request line and headers; 431 headers_too_large
  // A request's head and body must have arrived this long after the connection became ready
  // for it (accepted, or the previous answer written); else the connection is closed. Also
  // how long an idle keep-alive connection stays open.
  std::chrono::milliseconds requestTimeout{30'000};
  int maxConnections = 512;     // open connections (SSE included); beyond: 503, closed
  int maxStreamsPerToken = 16;  // open SSE streams per bearer token; beyond: 429
  // Local repositories (a path or file://) are accepted only under these directories (none by
  // default), and never under `dataDir`.
  std::vector<std::string> allowLocalRepos;
  std::string dataDir;
  // HOST:PORT of a second listener that serves /metrics (and /healthz) without a token; on
  // the main listener /metrics always needs one. Empty: no second listener.
  std::string metricsListen;
  bool checkRepoReachable = true;  // git ls-remote on job create
  // The secret bearer tokens are hashed with (tenancy::TokenKey::secret()); required.
  std::string tokenKey;
};

class ApiServer {
 public:
  virtual ~ApiServer() = default;
  // Binds and starts accepting on `ioc`'s threads. Fails with a clear status if it can't bind.
  static Result<std::unique_ptr<ApiServer>> start(asio::io_context& ioc, const ApiOptions& opts,
                                                  const ApiDeps& deps);
  virtual uint16_t port() const = 0;
  // The metrics listener's port, 0 without one.
  virtual uint16_t metricsPort() const = 0;
  // Stops accepting and closes open connections (SSE streams end).
  virtual void stop() = 0;
};

}  // namespace kiln::api
