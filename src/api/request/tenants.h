// Parsers for the tokens and tenants resources (POST /api/v1/tokens, POST
// /api/v1/tenants/{id}/quota): a request body into a typed request, or an InvalidArgument status
// that names the offending field. Pure functions.
#pragma once
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "common/result.h"
#include "store/store.h"

namespace kiln::api::request {

// POST /api/v1/tokens.
struct CreateTokenRequest {
  std::optional<std::string> tenant;  // unset: the caller's tenant
  std::string name;
  store::Role role = store::Role::kMember;
};
Result<CreateTokenRequest> parseCreateToken(const nlohmann::json& body);

// POST /api/v1/tenants/{id}/quota: `current` with the body's changes (a key set to null removes
// that quota; a key left out keeps it).
Result<store::TenantQuota> parseQuota(const nlohmann::json& body, store::TenantQuota current);

}  // namespace kiln::api::request
