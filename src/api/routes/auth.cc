#include "api/routes/auth.h"

#include "common/ids.h"

namespace kiln::api {
namespace {

Status unauthenticated(std::string m) { return {Code::kUnauthenticated, std::move(m)}; }

}  // namespace

Task<Result<std::string>> authenticate(Request& req) {
  auto header = req.http[http::field::authorization];
  constexpr beast::string_view kScheme = "bearer ";
  if (header.size() <= kScheme.size() ||
      !beast::iequals(header.substr(0, kScheme.size()), kScheme)) {
    co_return unauthenticated("missing 'Authorization: Bearer <token>' header");
  }
  std::string token(header.substr(kScheme.size()));
  while (!token.empty() && token.back() == ' ') token.pop_back();
  std::string hash = sha256Hex(token);
  req.tokenHash = hash;
  auto* store = req.env.deps.store;
  // An unknown or revoked token is kUnauthenticated already (Store::tenantForToken).
  auto tenant = co_await req.env.deps.pool->run([&] { return store->tenantForToken(hash); });
  co_return tenant;
}

}  // namespace kiln::api
