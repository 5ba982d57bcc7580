#include "api/request/tenants.h"

#include "api/request/fields.h"
#include "tenancy/tokens.h"

namespace kiln::api::request {

Result<CreateTokenRequest> parseCreateToken(const json& body) {
  RETURN_IF_ERROR(checkObject(body, "", {"tenant", "name", "role"}));
  CreateTokenRequest out;
  RETURN_IF_ERROR(optionalString(body, "", "tenant", 64, out.tenant));
  if (out.tenant && !tenancy::validTenantId(*out.tenant)) {
    return invalidArgument(
        "tenant must be 1 to 64 of a-z, 0-9, '.', '_', '-' (starting with a "
        "letter or digit)");
  }
  std::optional<std::string> name;
  RETURN_IF_ERROR(optionalString(body, "", "name", 128, name));
  if (name && !tenancy::validTokenName(*name)) {
    return invalidArgument("name must be at most 128 printable ASCII characters");
  }
  out.name = name.value_or("");
  std::optional<std::string> role;
  RETURN_IF_ERROR(optionalString(body, "", "role", 16, role));
  if (role) {
    auto r = store::parseRole(*role);
    if (!r) return invalidArgument("role must be admin, member or viewer");
    out.role = *r;
  }
  return out;
}

Result<store::TenantQuota> parseQuota(const json& body, store::TenantQuota current) {
  RETURN_IF_ERROR(checkObject(body, "", {"maxRunning", "jobsPerHour", "usdPerDay"}));
  auto cleared = [&](const char* key) {
    auto it = body.find(key);
    return it != body.end() && it->is_null();
  };
  std::optional<int64_t> maxRunning, jobsPerHour;
  std::optional<double> usdPerDay;
  RETURN_IF_ERROR(optionalInt(body, "", "maxRunning", 0, 1'000'000, maxRunning));
  RETURN_IF_ERROR(optionalInt(body, "", "jobsPerHour", 0, 1'000'000, jobsPerHour));
  RETURN_IF_ERROR(optionalNumber(body, "", "usdPerDay", 0, 1e9, usdPerDay));
  if (maxRunning || cleared("maxRunning")) current.maxRunning = maxRunning;
  if (jobsPerHour || cleared("jobsPerHour")) current.jobsPerHour = jobsPerHour;
  if (usdPerDay || cleared("usdPerDay")) current.usdPerDay = usdPerDay;
  return current;
}

}  // namespace kiln::api::request
