// Bearer-token authentication and role checks for the routes that need a token: the token's
// keyed hash names a tenant and a role in the store (tenancy/tokens.h).
#pragma once
#include <string>

#include "api/router.h"

namespace kiln::api {

// Authenticates the request's bearer token (filling req.tenantId, role, tokenId and
// tokenHash) and checks that its role and tenant may call a route of `access`: Unauthenticated
// for a missing, unknown or revoked token, PermissionDenied (saying what is needed) when it may
// not.
Task<Status> authorize(Request& req, Access access);

}  // namespace kiln::api
