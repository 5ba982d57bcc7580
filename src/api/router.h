// Router: maps (method, path) to a handler, with `{name}` path parameters. Built once at start,
// then read-only, so safe to use from every connection's strand at once.
#pragma once
#include <atomic>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "api/metrics.h"
#include "api/reply.h"
#include "api/server.h"

namespace kiln::api {

// Open SSE streams per key (a bearer token's hash), capped. Thread-safe.
class StreamSlots {
 public:
  // Holds one slot until destroyed.
  class Slot {
   public:
    Slot(StreamSlots& owner, std::string key) : owner_(&owner), key_(std::move(key)) {}
    Slot(Slot&& o) noexcept : owner_(std::exchange(o.owner_, nullptr)), key_(std::move(o.key_)) {}
    Slot& operator=(Slot&&) = delete;
    ~Slot() {
      if (owner_) owner_->release(key_);
    }

   private:
    StreamSlots* owner_;
    std::string key_;
  };
  // A slot for `key`, or nullopt when `key` already holds `max`.
  std::optional<Slot> tryAcquire(const std::string& key, int max);

 private:
  void release(const std::string& key);
  std::mutex mu_;
  std::map<std::string, int> open_;  // GUARDED_BY(mu_)
};

// What every handler may use: the server's dependencies, options and counters. Outlives every
// connection (held by shared_ptr from the server and each session).
struct ServerEnv {
  ApiOptions opts;
  ApiDeps deps;
  ApiMetrics metrics;
  StreamSlots streams;
  std::atomic<bool> stopping{false};
};

// Who may call a route (docs/api.md, "Tenants, tokens and roles"). Every level but kOpen needs
// a live bearer token; the router answers 401 without one and 403 permission_denied when its
// role or tenant falls short, before the handler runs.
enum class Access {
  kOpen,           // no token: /healthz, the dashboard, /metrics on --metrics-listen
  kRead,           // any role: reads of the token's own tenant
  kWrite,          // member or admin: creating and steering jobs
  kAdmin,          // admin: the tenant's tokens (the handler confines it to its tenant)
  kOperator,       // any role of the operator tenant: nodes, /metrics
  kOperatorAdmin,  // an admin of the operator tenant: draining nodes, setting quotas
};

// One parsed request as a handler sees it.
struct Request {
  ServerEnv& env;
  const http::request<http::string_body>& http;
  std::string tenantId;                       // set by auth for routes that need a token
  std::string tokenHash;                      // set by auth: the bearer token's keyed hash
  std::map<std::string, std::string> params;  // path parameters
  std::map<std::string, std::string> query;   // decoded query string
  store::Role role = store::Role::kViewer;    // set by auth
  std::string tokenId;                        // set by auth

  // The token belongs to the operator tenant (store::kOperatorTenant).
  bool operatorTenant() const { return tenantId == store::kOperatorTenant; }

  const std::string& param(const std::string& name) const;
  // The query value or "" if absent.
  std::string queryValue(const std::string& name) const;
  const std::string& body() const { return http.body(); }
};

using Handler = std::function<Task<Reply>(Request&)>;

class Router {
 public:
  // `pattern` like "/api/v1/jobs/{id}/stream".
  void add(http::verb method, std::string_view pattern, Access access, Handler h);

  enum class MatchKind { kFound, kNotFound, kMethodNotAllowed };
  struct Match {
    MatchKind kind = MatchKind::kNotFound;
    const Handler* handler = nullptr;
    Access access = Access::kOpen;
    std::map<std::string, std::string> params;
    std::string allow;  // for 405: the methods the path does accept
  };
  Match match(http::verb method, std::string_view path) const;

 private:
  struct Route {
    http::verb method;
    std::vector<std::string> segments;  // "{id}" marks a parameter
    Access access;
    Handler handler;
  };
  std::vector<Route> routes_;
};

// Splits "a/b?x=1&y=%20" into path and decoded query parameters. False on bad escapes.
bool splitTarget(std::string_view target, std::string& path,
                 std::map<std::string, std::string>& query);
std::string percentDecode(std::string_view s, bool plusIsSpace, bool* ok);

}  // namespace kiln::api
