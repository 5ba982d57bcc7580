// Numbered schema migrations of the SQLite engine, applied in order at open. Never edit a
// released migration: add the next one.
#pragma once
#include <string_view>
#include <vector>

namespace kiln::store::sqlite {

struct Migration {
  int version;
  std::string_view sql;
};

const std::vector<Migration>& migrations();

}  // namespace kiln::store::sqlite
