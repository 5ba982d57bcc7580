#include "store/sqlite/sqlite_db.h"

namespace kiln::store::sqlite {

Statement& Statement::bind(int i, std::string_view v) {
  sqlite3_bind_text(stmt_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
  return *this;
}
Statement& Statement::bind(int i, int64_t v) {
  sqlite3_bind_int64(stmt_, i, v);
  return *this;
}
Statement& Statement::bind(int i, double v) {
  sqlite3_bind_double(stmt_, i, v);
  return *this;
}
Statement& Statement::bind(int i, const std::optional<std::string>& v) {
  return v ? bind(i, std::string_view(*v)) : bindNull(i);
}
Statement& Statement::bindBlob(int i, std::string_view v) {
  sqlite3_bind_blob(stmt_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
  return *this;
}
Statement& Statement::bindNull(int i) {
  sqlite3_bind_null(stmt_, i);
  return *this;
}

Result<bool> Statement::step() {
  int rc = sqlite3_step(stmt_);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  Code code = rc == SQLITE_CONSTRAINT ? Code::kConflict
              : rc == SQLITE_BUSY     ? Code::kUnavailable
                                      : Code::kInternal;
  return Status(code, std::string("sqlite: ") + sqlite3_errmsg(db_));
}

Status Statement::run() {
  for (;;) {
    auto r = step();
    if (!r.isOk()) return r.status();
    if (!*r) return Status::ok();
  }
}

std::string Statement::text(int col) const {
  const void* p = sqlite3_column_blob(stmt_, col);
  int n = sqlite3_column_bytes(stmt_, col);
  return p ? std::string(static_cast<const char*>(p), static_cast<size_t>(n)) : std::string();
}

std::optional<std::string> Statement::optText(int col) const {
  if (isNull(col)) return std::nullopt;
  return text(col);
}

Result<std::unique_ptr<Database>> Database::open(const std::string& path, int busyTimeoutMs) {
  sqlite3* db = nullptr;
  int rc = sqlite3_open_v2(
      path.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
  if (rc != SQLITE_OK) {
    std::string msg = db ? sqlite3_errmsg(db) : "out of memory";
    sqlite3_close(db);
    return Status(Code::kUnavailable, "sqlite: open " + path + ": " + msg);
  }
  std::unique_ptr<Database> out(new Database(db));
  // WAL: readers never block the writer; busy_timeout: several processes may share the file.
  // synchronous=NORMAL in WAL mode survives a process crash (kill -9); only power loss can drop
  // the newest transactions.
  RETURN_IF_ERROR(out->exec("PRAGMA journal_mode=WAL"));
  RETURN_IF_ERROR(out->exec("PRAGMA synchronous=NORMAL"));
  RETURN_IF_ERROR(out->exec("PRAGMA foreign_keys=ON"));
  sqlite3_busy_timeout(db, busyTimeoutMs);
  return out;
}

Database::~Database() { sqlite3_close_v2(db_); }

Result<Statement> Database::prepare(std::string_view sql) {
  sqlite3_stmt* stmt = nullptr;
  int rc = sqlite3_prepare_v2(db_, sql.data(), static_cast<int>(sql.size()), &stmt, nullptr);
  if (rc != SQLITE_OK) return error("prepare");
  return Statement(db_, stmt);
}

Status Database::exec(const std::string& sql) {
  char* err = nullptr;
  int rc = sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &err);
  if (rc == SQLITE_OK) return Status::ok();
  std::string msg = err ? err : sqlite3_errstr(rc);
  sqlite3_free(err);
  return Status(rc == SQLITE_BUSY ? Code::kUnavailable : Code::kInternal, "sqlite: " + msg);
}

Status Database::error(const std::string& what) const {
  return Status(Code::kInternal, "sqlite: " + what + ": " + sqlite3_errmsg(db_));
}

}  // namespace kiln::store::sqlite
