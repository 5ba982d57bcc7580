#pragma once
#include <memory>
#include <string>

#include "common/result.h"
#include "store/store.h"

namespace kiln::store {

// Opens (creating if needed) the SQLite database at `path` and migrates it.
Result<std::unique_ptr<Store>> openSqliteStore(const std::string& path);

}  // namespace kiln::store
