#pragma once
#include <memory>
#include <string>

#include "common/result.h"
#include "store/store.h"

namespace kiln::store {

struct PostgresOptions {
  size_t poolSize = 6;  // connections per node, besides the listener's
  // How long a call waits for a connection (the database down or restarting) or for a row lock
  // another transaction holds, before it fails with Unavailable (StoreOptions::busyTimeoutMs).
  int64_t busyTimeoutMs = 2'000;
};

// Connects to the PostgreSQL database at `url` (postgres://user:pass@host:port/db?...), fails
// with one clear line if it cannot, and applies pending migrations.
Result<std::unique_ptr<Store>> openPostgresStore(const std::string& url,
                                                 const PostgresOptions& opts = {});

}  // namespace kiln::store
