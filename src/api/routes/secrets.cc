// GET /api/v1/secrets, PUT and DELETE /api/v1/secrets/{name}: a tenant's own secrets (never
// their values), and the sealing of a job request's secrets on create.
#include <map>

#include "api/request/fields.h"
#include "api/routes/routes.h"
#include "common/clock.h"
#include "secrets/secret_box.h"

namespace kiln::api {
namespace {

constexpr size_t kMaxTenantSecrets = 256;

ApiError noKey() { return {503, "secrets_unavailable", "this server has no secrets key"}; }

json secretJson(const store::TenantSecret& s) {
  json j = {{"name", s.name},
            {"mode", s.mode},
            {"createdAt", formatTimeMs(s.createdAt)},
            {"updatedAt", formatTimeMs(s.updatedAt)}};
  if (!s.hosts.empty()) j["hosts"] = s.hosts;
  return j;
}

Task<Reply> listSecrets(Request& req) {
  auto* store = req.env.deps.store;
  auto list = co_await req.env.deps.pool->run([&] { return store->listSecrets(req.tenantId); });
  if (!list) co_return errorReply(list.status());
  json out = json::array();
  for (const auto& s : *list) out.push_back(secretJson(s));
  co_return jsonReply(200, {{"secrets", std::move(out)}});
}

// The body {value, hosts?, mode?} sealed into the tenant's row, or why not.
Result<store::TenantSecret> tenantSecret(const Request& req, const json& body,
                                         const secrets::SecretBox& box) {
  ASSIGN_OR_RETURN(secrets::Secret s, secrets::parseSecret(req.param("name"), body, "secret"));
  if (!body.is_object()) return invalidArgument("the body must be {value, hosts?, mode?}");
  store::TenantSecret t;
  t.tenantId = req.tenantId;
  t.name = s.name;
  t.mode = secrets::modeName(s.mode);
  t.hosts = s.hosts;
  t.sealed = box.seal(s.value);
  t.createdAt = t.updatedAt = req.env.deps.clock->nowMs();
  return t;
}

Task<Reply> putSecret(Request& req) {
  const secrets::SecretBox* box = req.env.deps.secretBox;
  if (box == nullptr) co_return errorReply(noKey());
  auto body = request::parseBody(req.body());
  if (!body) co_return errorReply(ApiError::invalidJson("request body is not valid JSON"));
  auto secret = tenantSecret(req, *body, *box);
  if (!secret) co_return errorReply(secret.status());
  auto* store = req.env.deps.store;
  auto existing = co_await req.env.deps.pool->run([&] { return store->listSecrets(req.tenantId); });
  if (!existing) co_return errorReply(existing.status());
  bool replaces = false;
  for (const auto& s : *existing) replaces = replaces || s.name == secret->name;
  if (!replaces && existing->size() >= kMaxTenantSecrets) {
    co_return errorReply(
        ApiError{422, "too_many_secrets", "a tenant may hold at most 256 secrets"});
  }
  Status st = co_await req.env.deps.pool->run([&] { return store->putSecret(*secret); });
  if (!st) co_return errorReply(st);
  co_return jsonReply(replaces ? 200 : 201, secretJson(*secret));
}

Task<Reply> deleteSecret(Request& req) {
  const std::string& name = req.param("name");
  auto* store = req.env.deps.store;
  Status st =
      co_await req.env.deps.pool->run([&] { return store->deleteSecret(req.tenantId, name); });
  if (!st) co_return errorReply(st.code() == Code::kNotFound ? notFound("no secret " + name) : st);
  co_return jsonReply(200, {{"name", name}, {"deleted", true}});
}

}  // namespace

Result<json> sealJobSecrets(const ApiDeps& deps, const std::string& tenantId,
                            const std::vector<secrets::Secret>& given) {
  ASSIGN_OR_RETURN(auto tenant, deps.store->listSecrets(tenantId));
  if (tenant.empty() && given.empty()) return json();
  if (deps.secretBox == nullptr) return Status(Code::kUnavailable, noKey().message);
  // The tenant's first; a job's own secret of the same name wins.
  std::map<std::string, secrets::SealedSecret> byName;
  for (const auto& t : tenant) {
    byName[t.name] = {t.name, t.mode == "proxy" ? secrets::Mode::kProxy : secrets::Mode::kEnv,
                      t.hosts, t.sealed};
  }
  for (const auto& s : given) byName[s.name] = secrets::seal(s, *deps.secretBox);
  std::vector<secrets::SealedSecret> all;
  for (auto& [name, s] : byName) all.push_back(std::move(s));
  return secrets::sealAll(all);
}

void addSecretRoutes(Router& r) {
  // Any role sees the names; setting or removing a tenant-wide credential is an admin's.
  r.add(http::verb::get, "/api/v1/secrets", Access::kRead, listSecrets);
  r.add(http::verb::put, "/api/v1/secrets/{name}", Access::kAdmin, putSecret);
  r.add(http::verb::delete_, "/api/v1/secrets/{name}", Access::kAdmin, deleteSecret);
}

}  // namespace kiln::api
