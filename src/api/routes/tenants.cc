// Tokens and quotas: POST/GET /api/v1/tokens, POST /api/v1/tokens/{id}/revoke, GET/POST
// /api/v1/tenants/{id}/quota. A tenant's admin manages its own tenant's tokens; the operator's
// admin (tenant "default") every tenant's, and only it sets quotas. Another tenant's token or
// tenant answers 404, like one that does not exist.
#include "api/request/tenants.h"

#include "api/request/fields.h"
#include "api/routes/routes.h"
#include "tenancy/tokens.h"

namespace kiln::api {
namespace {

// The tenant a request names (a body field, a query parameter, the path), if the caller may
// see it: its own, or any for the operator; NotFound otherwise.
Status visibleTenant(const Request& req, const std::string& tenant) {
  if (tenant == req.tenantId || req.operatorTenant()) return Status::ok();
  return notFound("no tenant " + tenant);
}

Task<Reply> createToken(Request& req) {
  auto body = request::parseBody(req.body());
  if (!body) co_return errorReply(ApiError::invalidJson("request body is not valid JSON"));
  auto create = request::parseCreateToken(*body);
  if (!create) co_return errorReply(create.status());
  const std::string tenant = create->tenant.value_or(req.tenantId);
  if (Status st = visibleTenant(req, tenant); !st) co_return errorReply(st);
  auto* store = req.env.deps.store;
  const tenancy::TokenKey key(req.env.opts.tokenKey, "the API");
  const int64_t now = req.env.deps.clock->nowMs();
  auto issued = co_await req.env.deps.pool->run(
      [&] { return tenancy::issueToken(*store, key, tenant, create->name, create->role, now); });
  if (!issued) co_return errorReply(issued.status());
  json out = tenancy::tokenJson(issued->token);
  out["token"] = issued->secret;
  co_return jsonReply(201, out);
}

Task<Reply> listTokens(Request& req) {
  for (const auto& [k, v] : req.query) {
    if (k != "tenant") co_return errorReply(invalidArgument("unknown query parameter " + k));
  }
  std::string tenant = req.queryValue("tenant");
  if (!tenant.empty()) {
    if (Status st = visibleTenant(req, tenant); !st) co_return errorReply(st);
  } else if (!req.operatorTenant()) {
    tenant = req.tenantId;
  }
  auto* store = req.env.deps.store;
  auto tokens = co_await req.env.deps.pool->run([&] { return store->listTokens(tenant); });
  if (!tokens) co_return errorReply(tokens.status());
  json out = json::array();
  for (const auto& t : *tokens) out.push_back(tenancy::tokenJson(t));
  co_return jsonReply(200, {{"tokens", std::move(out)}});
}

Task<Reply> revokeToken(Request& req) {
  auto body = request::parseBody(req.body());
  if (!body) co_return errorReply(ApiError::invalidJson("request body is not valid JSON"));
  if (auto st = request::parseEmpty(*body); !st) co_return errorReply(st);
  const std::string& id = req.param("id");
  const std::string tenant = req.operatorTenant() ? "" : req.tenantId;
  auto* store = req.env.deps.store;
  const int64_t now = req.env.deps.clock->nowMs();
  auto revoked =
      co_await req.env.deps.pool->run([&] { return store->revokeToken(id, tenant, now); });
  if (!revoked) co_return errorReply(revoked.status());
  co_return jsonReply(200, tenancy::tokenJson(*revoked));
}

json optionalJson(const std::optional<int64_t>& v) { return v ? json(*v) : json(); }
json optionalJson(const std::optional<double>& v) { return v ? json(*v) : json(); }

json quotaJson(const std::string& tenant, const store::TenantQuota& q,
               const store::TenantUsage& u) {
  return {{"tenant", tenant},
          {"maxRunning", optionalJson(q.maxRunning)},
          {"jobsPerHour", optionalJson(q.jobsPerHour)},
          {"usdPerDay", optionalJson(q.usdPerDay)},
          {"usage",
           {{"running", u.running},
            {"active", u.active},
            {"jobsLastHour", u.jobsLastHour},
            {"usdToday", u.usdToday}}}};
}

// The tenant's quotas and usage, after `change` (when set) replaced the quotas.
Result<json> quotaOf(store::Store* store, const std::string& tenant,
                     const std::optional<json>& change, int64_t nowMs) {
  RETURN_IF_ERROR(store->getTenant(tenant));
  ASSIGN_OR_RETURN(store::TenantQuota quota, store->getQuota(tenant));
  if (change) {
    ASSIGN_OR_RETURN(quota, request::parseQuota(*change, quota));
    RETURN_IF_ERROR(store->setQuota(tenant, quota));
  }
  ASSIGN_OR_RETURN(store::TenantUsage usage, store->tenantUsage(tenant, nowMs));
  return quotaJson(tenant, quota, usage);
}

// `change` is a reference to the caller's named local (the g++ 12 coroutine pitfall of
// src/common/blocking_pool.h).
Task<Reply> quota(Request& req, const std::optional<json>& change) {
  const std::string& tenant = req.param("id");
  if (Status st = visibleTenant(req, tenant); !st) co_return errorReply(st);
  auto* store = req.env.deps.store;
  const int64_t now = req.env.deps.clock->nowMs();
  auto out = co_await req.env.deps.pool->run([&] { return quotaOf(store, tenant, change, now); });
  if (!out) co_return errorReply(out.status());
  co_return jsonReply(200, *out);
}

Task<Reply> getQuota(Request& req) {
  const std::optional<json> none;
  co_return co_await quota(req, none);
}

Task<Reply> setQuota(Request& req) {
  auto body = request::parseBody(req.body());
  if (!body) co_return errorReply(ApiError::invalidJson("request body is not valid JSON"));
  const std::optional<json> change = std::move(*body);
  co_return co_await quota(req, change);
}

}  // namespace

Reply quotaReply(const store::QuotaBreach& b) {
  Reply r = jsonReply(429, {{"error",
                             {{"code", "quota_exceeded"},
                              {"message", b.message},
                              {"quota", b.quota},
                              {"limit", b.limit},
                              {"used", b.used},
                              {"retryAfterSeconds", b.retryAfterSeconds}}}});
  r.headers.emplace_back("Retry-After", std::to_string(b.retryAfterSeconds));
  return r;
}

void addTenantRoutes(Router& r) {
  r.add(http::verb::post, "/api/v1/tokens", Access::kAdmin, createToken);
  r.add(http::verb::get, "/api/v1/tokens", Access::kAdmin, listTokens);
  r.add(http::verb::post, "/api/v1/tokens/{id}/revoke", Access::kAdmin, revokeToken);
  r.add(http::verb::get, "/api/v1/tenants/{id}/quota", Access::kRead, getQuota);
  r.add(http::verb::post, "/api/v1/tenants/{id}/quota", Access::kOperatorAdmin, setQuota);
}

}  // namespace kiln::api
