#pragma once
#include <memory>
#include <string>

#include "common/result.h"
#include "store/store.h"

namespace kiln::store {

// Opens (creating if needed) the SQLite database at `path` and migrates it. A call waits at most
// `busyTimeoutMs` for a lock another connection holds, then fails with Unavailable.
Result<std::unique_ptr<Store>> openSqliteStore(const std::string& path, int busyTimeoutMs);

}  // namespace kiln::store
