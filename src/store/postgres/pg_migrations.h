// Numbered schema migrations of the PostgreSQL engine, applied in order at open under an
// advisory lock, so nodes starting together apply each exactly once. Never edit a released
// migration: add the next one.
#pragma once
#include "common/result.h"
#include "store/postgres/pg_conn.h"

namespace kiln::store::postgres {

// Applies the pending migrations in one transaction.
Status migrate(ConnectionPool& pool);

}  // namespace kiln::store::postgres
