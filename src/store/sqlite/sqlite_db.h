// Thin RAII wrappers over the SQLite C API: a connection and prepared statements with typed
// binds and reads. Not thread-safe: SqliteStore serializes access with its own mutex.
#pragma once
#include <sqlite3.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "common/result.h"

namespace kiln::store::sqlite {

class Statement {
 public:
  Statement(sqlite3* db, sqlite3_stmt* stmt) : db_(db), stmt_(stmt) {}
  Statement(Statement&& o) noexcept : db_(o.db_), stmt_(o.stmt_) { o.stmt_ = nullptr; }
  Statement(const Statement&) = delete;
  ~Statement() { sqlite3_finalize(stmt_); }

  // Binds by 1-based position; chainable.
  Statement& bind(int i, std::string_view v);
  Statement& bind(int i, const char* v) { return bind(i, std::string_view(v)); }
  Statement& bind(int i, const std::string& v) { return bind(i, std::string_view(v)); }
  Statement& bind(int i, int64_t v);
  Statement& bind(int i, int v) { return bind(i, static_cast<int64_t>(v)); }
  Statement& bind(int i, double v);
  Statement& bind(int i, const std::optional<std::string>& v);
  Statement& bindBlob(int i, std::string_view v);
  Statement& bindNull(int i);

  // Makes the statement runnable again with new binds.
  void reset() {
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
  }
  // Steps once: true if a row is available, false when done.
  Result<bool> step();
  // Steps to completion (for writes).
  Status run();

  std::string text(int col) const;
  std::optional<std::string> optText(int col) const;
  int64_t i64(int col) const { return sqlite3_column_int64(stmt_, col); }
  double f64(int col) const { return sqlite3_column_double(stmt_, col); }
  bool isNull(int col) const { return sqlite3_column_type(stmt_, col) == SQLITE_NULL; }

 private:
  sqlite3* db_;
  sqlite3_stmt* stmt_;
};

class Database {
 public:
  static Result<std::unique_ptr<Database>> open(const std::string& path, int busyTimeoutMs);
  ~Database();

  Result<Statement> prepare(std::string_view sql);
  Status exec(const std::string& sql);
  int changes() const { return sqlite3_changes(db_); }
  Status error(const std::string& what) const;

 private:
  explicit Database(sqlite3* db) : db_(db) {}
  sqlite3* db_;
};

// BEGIN IMMEDIATE … COMMIT; rolls back in the destructor unless committed.
class Transaction {
 public:
  explicit Transaction(Database& db) : db_(db) {}
  Status begin() {
    Status st = db_.exec("BEGIN IMMEDIATE");
    open_ = st.isOk();
    return st;
  }
  Status commit() {
    open_ = false;
    return db_.exec("COMMIT");
  }
  ~Transaction() {
    if (open_) (void)db_.exec("ROLLBACK");
  }

 private:
  Database& db_;
  bool open_ = false;
};

}  // namespace kiln::store::sqlite
