// The route table of the v1 API (docs/api.md), and the helpers the handlers share.
#pragma once
#include <memory>

#include "api/request/jobs.h"
#include "api/router.h"

namespace kiln::api {

std::shared_ptr<const Router> buildRouter();
// The --metrics-listen address's routes: /metrics without a token, and /healthz.
std::shared_ptr<const Router> buildMetricsRouter();

// Handler groups, one file each.
void addJobReadRoutes(Router& r);      // list, get, steps, diff, stream
void addJobControlRoutes(Router& r);   // create, stop, reply, approve, continue
void addTaskRoutes(Router& r);         // devin.baby aliases
void addSystemRoutes(Router& r);       // healthz, metrics (with a token)
void addOpenMetricsRoutes(Router& r);  // healthz, metrics (open)
void addWebRoutes(Router& r);          // the dashboard page and its assets
void addNodeRoutes(Router& r);         // fleet nodes, drain
void addTenantRoutes(Router& r);       // tokens, quotas

// 429 quota_exceeded with Retry-After (docs/api.md, "Quotas").
Reply quotaReply(const store::QuotaBreach& breach);

void addSecretRoutes(Router& r);       // a tenant's secrets

// A job's stored `secrets`: its tenant's secrets, then the request's own (sealed with the
// node's key; a request's secret wins over the tenant's of the same name). Null when there
// are none; Unavailable when there are some and the server has no key. Blocking (the store).
Result<json> sealJobSecrets(const ApiDeps& deps, const std::string& tenantId,
                            const std::vector<secrets::Secret>& given);

// The per-node gauges of /metrics (Prometheus text), from the nodes table.
Result<std::string> renderNodeMetrics(store::Store* store, int64_t nowMs);

// The job named by the `{id}` path parameter if the request's tenant may see it; NotFound for
// ids that are not UUIDs, unknown, or another tenant's.
Task<Result<store::Job>> loadJob(Request& req);

// Validates, normalises the repo URL, checks reachability, stores a QUEUED job and wakes the
// scheduler. The 201 body is {<idField>: id, status}.
Task<Reply> createJob(Request& req, request::CreateJobRequest& create, const char* idField);

// GET .../stream and .../events: hands the connection to the SSE stream.
Task<Reply> streamJob(Request& req);

}  // namespace kiln::api
