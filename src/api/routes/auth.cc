#include "api/routes/auth.h"

#include "common/ids.h"

namespace kiln::api {
namespace {

Status unauthenticated(std::string m) { return {Code::kUnauthenticated, std::move(m)}; }
Status denied(std::string m) { return {Code::kPermissionDenied, std::move(m)}; }

Status checkAccess(const Request& req, Access access) {
  const char* role = store::roleName(req.role);
  switch (access) {
    case Access::kOpen:
    case Access::kRead:
      return Status::ok();
    case Access::kWrite:
      if (req.role != store::Role::kViewer) return Status::ok();
      return denied("a viewer token may only read; this needs a member or admin token");
    case Access::kAdmin:
      if (req.role == store::Role::kAdmin) return Status::ok();
      return denied(std::string("this needs an admin token; this token's role is ") + role);
    case Access::kOperator:
      if (req.operatorTenant()) return Status::ok();
      return denied(std::string("this is the operator's: it needs a token of the tenant \"") +
                    store::kOperatorTenant + "\"");
    case Access::kOperatorAdmin:
      if (req.operatorTenant() && req.role == store::Role::kAdmin) return Status::ok();
      return denied(
          std::string("this is the operator's: it needs an admin token of the tenant \"") +
          store::kOperatorTenant + "\"");
  }
  return denied("unknown access level");
}

}  // namespace

Task<Status> authorize(Request& req, Access access) {
  auto header = req.http[http::field::authorization];
  constexpr beast::string_view kScheme = "bearer ";
  if (header.size() <= kScheme.size() ||
      !beast::iequals(header.substr(0, kScheme.size()), kScheme)) {
    co_return unauthenticated("missing 'Authorization: Bearer <token>' header");
  }
  std::string token(header.substr(kScheme.size()));
  while (!token.empty() && token.back() == ' ') token.pop_back();
  req.tokenHash = hmacSha256Hex(req.env.opts.tokenKey, token);
  auto* store = req.env.deps.store;
  // An unknown or revoked token is kUnauthenticated already (Store::tokenGrant).
  auto grant = co_await req.env.deps.pool->run([&] { return store->tokenGrant(req.tokenHash); });
  if (!grant) co_return grant.status();
  req.tenantId = std::move(grant->tenantId);
  req.role = grant->role;
  req.tokenId = std::move(grant->tokenId);
  co_return checkAccess(req, access);
}

}  // namespace kiln::api
