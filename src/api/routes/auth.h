// Bearer-token authentication for /api/ routes: the token's SHA-256 names a tenant in the
// store.
#pragma once
#include <string>

#include "api/router.h"

namespace kiln::api {

// The tenant of the request's bearer token, or Unauthenticated.
Task<Result<std::string>> authenticate(Request& req);

}  // namespace kiln::api
