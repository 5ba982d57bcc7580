#include "store/postgres/pg_conn.h"

#include <spdlog/spdlog.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>

#include "common/clock.h"

namespace kiln::store::postgres {
namespace {

int64_t steadyMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// libpq messages end with a newline and may span lines: the first line is the one that says
// what went wrong.
std::string firstLine(const char* msg) {
  std::string s = msg ? msg : "";
  s = s.substr(0, s.find('\n'));
  while (!s.empty() && (s.back() == ' ' || s.back() == '\r')) s.pop_back();
  return s.empty() ? "unknown error" : s;
}

// Length of the valid UTF-8 sequence at s[i], 0 if none.
size_t utf8Length(std::string_view s, size_t i) {
  unsigned char c = static_cast<unsigned char>(s[i]);
  size_t n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
  if (n == 0 || c == 0 || i + n > s.size()) return 0;
  if (n == 2 && c < 0xc2) return 0;  // overlong
  for (size_t k = 1; k < n; ++k)
    if ((static_cast<unsigned char>(s[i + k]) >> 6) != 2) return 0;
  if (n == 3) {
    unsigned char c1 = static_cast<unsigned char>(s[i + 1]);
    if ((c == 0xe0 && c1 < 0xa0) || (c == 0xed && c1 >= 0xa0)) return 0;  // overlong, surrogate
  }
  if (n == 4) {
    unsigned char c1 = static_cast<unsigned char>(s[i + 1]);
    if ((c == 0xf0 && c1 < 0x90) || c > 0xf4 || (c == 0xf4 && c1 >= 0x90)) return 0;
  }
  return n;
}

// PostgreSQL refuses NUL and invalid UTF-8 in text; SQLite stores them. Both become U+FFFD.
std::string validUtf8(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    size_t n = utf8Length(s, i);
    if (n == 0) {
      out += "\xef\xbf\xbd";
      ++i;
    } else {
      out.append(s.substr(i, n));
      i += n;
    }
  }
  return out;
}

}  // namespace

Params& Params::add(std::string v, int format) {
  lengths_.push_back(static_cast<int>(v.size()));
  values_.push_back(std::move(v));
  null_.push_back(false);
  formats_.push_back(format);
  return *this;
}

Params& Params::text(std::string_view v) { return add(validUtf8(v), 0); }
Params& Params::i64(int64_t v) { return add(std::to_string(v), 0); }
Params& Params::f64(double v) {
  char buf[40];
  std::snprintf(buf, sizeof buf, "%.17g", v);
  return add(buf, 0);
}
Params& Params::boolean(bool v) { return add(v ? "true" : "false", 0); }
Params& Params::json(const nlohmann::json& j) {
  if (j.is_null()) return null();
  return add(dumpJson(j), 0);
}
Params& Params::bytes(std::string_view v) { return add(std::string(v), 1); }
Params& Params::null() {
  add("", 0);
  null_.back() = true;
  return *this;
}

std::vector<const char*> Params::values() const {
  std::vector<const char*> out;
  for (size_t i = 0; i < values_.size(); ++i)
    out.push_back(null_[i] ? nullptr : values_[i].c_str());
  return out;
}

std::string Rows::text(int row, int col) const {
  return std::string(PQgetvalue(r_.get(), row, col),
                     static_cast<size_t>(PQgetlength(r_.get(), row, col)));
}

std::optional<std::string> Rows::optText(int row, int col) const {
  if (isNull(row, col)) return std::nullopt;
  return text(row, col);
}

int64_t Rows::i64(int row, int col) const {
  return std::strtoll(PQgetvalue(r_.get(), row, col), nullptr, 10);
}

double Rows::f64(int row, int col) const {
  return std::strtod(PQgetvalue(r_.get(), row, col), nullptr);
}

bool Rows::boolean(int row, int col) const { return PQgetvalue(r_.get(), row, col)[0] == 't'; }

std::string Rows::bytes(int row, int col) const {
  if (isNull(row, col)) return "";
  size_t n = 0;
  unsigned char* raw =
      PQunescapeBytea(reinterpret_cast<const unsigned char*>(PQgetvalue(r_.get(), row, col)), &n);
  if (!raw) return "";
  std::string out(reinterpret_cast<char*>(raw), n);
  PQfreemem(raw);
  return out;
}

int64_t Rows::affected() const { return std::strtoll(PQcmdTuples(r_.get()), nullptr, 10); }

std::string dumpJson(const nlohmann::json& j) {
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::string redactUrl(const std::string& url) {
  auto scheme = url.find("://");
  auto at = url.find('@');
  if (scheme == std::string::npos || at == std::string::npos || at < scheme) return url;
  auto colon = url.find(':', scheme + 3);
  if (colon == std::string::npos || colon > at) return url;
  return url.substr(0, colon + 1) + "***" + url.substr(at);
}

Result<std::unique_ptr<Connection>> Connection::open(const std::string& url,
                                                     int64_t lockTimeoutMs) {
  // Defaults first: the URL's own parameters override them.
  const char* keys[] = {"connect_timeout", "application_name", "dbname", nullptr};
  const char* values[] = {"5", "kiln", url.c_str(), nullptr};
  PGconn* c = PQconnectdbParams(keys, values, 1);
  if (!c) return Status(Code::kUnavailable, "postgres: out of memory");
  if (PQstatus(c) != CONNECTION_OK) {
    std::string msg = firstLine(PQerrorMessage(c));
    PQfinish(c);
    return Status(Code::kUnavailable, "cannot connect to " + redactUrl(url) + ": " + msg);
  }
  std::unique_ptr<Connection> out(new Connection(c));
  // The store keeps UTC milliseconds as integers; only NOTICEs about existing objects would
  // reach stderr.
  PQsetNoticeProcessor(
      c, [](void*, const char*) {}, nullptr);
  RETURN_IF_ERROR(out->exec("SET client_min_messages = warning"));
  if (lockTimeoutMs > 0) {
    RETURN_IF_ERROR(out->exec("SET lock_timeout = " + std::to_string(lockTimeoutMs)));
  }
  return out;
}

Connection::~Connection() { PQfinish(conn_); }

bool Connection::retryable() const {
  return !healthy() || lastSqlState_ == "40P01" || lastSqlState_ == "40001";
}

Status Connection::resultStatus(PGresult* r, const char* what) {
  ExecStatusType st = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
  if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) {
    lastSqlState_.clear();
    return Status::ok();
  }
  const char* state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : nullptr;
  lastSqlState_ = state ? state : "";
  std::string msg = firstLine(r ? PQresultErrorMessage(r) : PQerrorMessage(conn_));
  if (msg == "unknown error") msg = firstLine(PQerrorMessage(conn_));
  // No SQLSTATE, class 08 (connection exception) or 57P0x (the server is shutting down): this
  // connection is gone.
  if (lastSqlState_.empty() || lastSqlState_.rfind("08", 0) == 0 ||
      lastSqlState_.rfind("57P0", 0) == 0 || PQstatus(conn_) != CONNECTION_OK) {
    broken_ = true;
    return Status(Code::kUnavailable, std::string("postgres: ") + what + ": " + msg);
  }
  // Integrity constraints are conflicts; a lost deadlock or serialization, or a lock wait past
  // lock_timeout (55P03), is a busy database the caller may retry.
  Code code = lastSqlState_.rfind("23", 0) == 0                            ? Code::kConflict
              : lastSqlState_.rfind("40", 0) == 0 || lastSqlState_ == "55P03" ? Code::kUnavailable
                                                                           : Code::kInternal;
  return Status(code, std::string("postgres: ") + what + ": " + msg);
}

Result<Rows> Connection::run(const Query& q, const Params& p) {
  if (!prepared_.count(q.name)) {
    Rows prep(PQprepare(conn_, q.name, q.sql, 0, nullptr));
    RETURN_IF_ERROR(resultStatus(prep.raw(), q.name));
    prepared_.insert(q.name);
  }
  auto values = p.values();
  Rows rows(PQexecPrepared(conn_, q.name, p.size(), values.data(), p.lengths(), p.formats(), 0));
  RETURN_IF_ERROR(resultStatus(rows.raw(), q.name));
  return rows;
}

Status Connection::exec(const std::string& sql) {
  Rows r(PQexec(conn_, sql.c_str()));
  return resultStatus(r.raw(), sql.substr(0, sql.find_first_of(" \n")).c_str());
}

ConnectionPool::ConnectionPool(std::string url, size_t size, int64_t waitMs)
    : url_(std::move(url)), size_(size), waitMs_(waitMs) {}

Result<ConnectionPool::Lease> ConnectionPool::acquire() {
  const int64_t deadline = steadyMs() + waitMs_;
  std::unique_lock lock(mu_);
  for (;;) {
    while (!idle_.empty()) {
      std::unique_ptr<Connection> c = std::move(idle_.back());
      idle_.pop_back();
      if (c->healthy()) return Lease(this, std::move(c));
      --open_;  // dropped; a new one is made below
    }
    int64_t now = steadyMs();
    if (open_ < size_ && now >= nextConnectAtMs_) {
      ++open_;
      lock.unlock();
      auto c = Connection::open(url_, waitMs_);
      lock.lock();
      if (c.isOk()) {
        if (backoffMs_ > 0) spdlog::info("store: connected to PostgreSQL again");
        backoffMs_ = 0;
        nextConnectAtMs_ = 0;
        lastError_.clear();
        return Lease(this, std::move(c).value());
      }
      --open_;
      if (backoffMs_ == 0) spdlog::warn("store: {}", c.status().message());
      backoffMs_ = std::min<int64_t>(backoffMs_ ? backoffMs_ * 2 : 100, 2'000);
      nextConnectAtMs_ = steadyMs() + backoffMs_;
      lastError_ = c.status().message();
      cv_.notify_all();
      continue;
    }
    if (now >= deadline) {
      return Status(Code::kUnavailable,
                    lastError_.empty() ? "store: every database connection is busy"
                                       : "store: no database connection (" + lastError_ + ")");
    }
    int64_t wakeAt = deadline;
    if (open_ < size_) wakeAt = std::min(wakeAt, nextConnectAtMs_);
    cv_.wait_for(lock, std::chrono::milliseconds(std::max<int64_t>(1, wakeAt - now)));
  }
}

void ConnectionPool::release(std::unique_ptr<Connection> c) {
  std::lock_guard lock(mu_);
  if (c->healthy()) {
    idle_.push_back(std::move(c));
  } else {
    // A connection that broke says the server went away (restart, failover): the idle ones
    // most likely broke too, so they are replaced rather than each failing a transaction.
    open_ -= 1 + idle_.size();
    idle_.clear();
  }
  cv_.notify_one();
}

}  // namespace kiln::store::postgres
