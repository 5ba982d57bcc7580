// Thin RAII wrappers over libpq's C API: a connection with prepared statements, typed
// parameters and rows, and a small pool that reconnects with backoff. A Connection is not
// thread-safe; the ConnectionPool is, and hands each connection to one thread at a time.
#pragma once
#include <libpq-fe.h>

#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"

namespace kiln::store::postgres {

// A statement prepared once per connection under `name`.
struct Query {
  const char* name;
  const char* sql;
};

// Positional parameters ($1, $2, ...), sent as text except bytes (binary bytea).
class Params {
 public:
  // Text columns hold valid UTF-8 without NUL: other bytes become U+FFFD.
  Params& text(std::string_view v);
  Params& i64(int64_t v);
  Params& f64(double v);
  Params& boolean(bool v);
  Params& optText(const std::optional<std::string>& v) { return v ? text(*v) : null(); }
  Params& json(const nlohmann::json& j);  // dumped; SQL NULL for a null json
  Params& bytes(std::string_view v);      // bytea
  Params& null();

  int size() const { return static_cast<int>(values_.size()); }
  std::vector<const char*> values() const;
  const int* lengths() const { return lengths_.data(); }
  const int* formats() const { return formats_.data(); }

 private:
  Params& add(std::string v, int format);
  std::vector<std::string> values_;
  std::vector<bool> null_;
  std::vector<int> lengths_;
  std::vector<int> formats_;
};

// The rows of one statement's result (text format).
class Rows {
 public:
  explicit Rows(PGresult* r) : r_(r, PQclear) {}
  int size() const { return PQntuples(r_.get()); }
  bool empty() const { return size() == 0; }
  bool isNull(int row, int col) const { return PQgetisnull(r_.get(), row, col); }
  std::string text(int row, int col) const;
  std::optional<std::string> optText(int row, int col) const;
  int64_t i64(int row, int col) const;
  double f64(int row, int col) const;
  bool boolean(int row, int col) const;
  std::string bytes(int row, int col) const;  // a bytea column
  // Rows affected by an INSERT/UPDATE/DELETE.
  int64_t affected() const;
  PGresult* raw() const { return r_.get(); }

 private:
  std::unique_ptr<PGresult, void (*)(PGresult*)> r_;
};

class Connection {
 public:
  // `url` is a postgres:// or postgresql:// URL (or a libpq conninfo string).
  // `lockTimeoutMs` > 0 bounds every wait for a row lock (then Unavailable).
  static Result<std::unique_ptr<Connection>> open(const std::string& url,
                                                  int64_t lockTimeoutMs = 0);
  ~Connection();
  Connection(const Connection&) = delete;

  // Runs a prepared statement, preparing it on this connection at first use.
  Result<Rows> run(const Query& q, const Params& p = {});
  // Runs SQL text with no parameters (several statements allowed).
  Status exec(const std::string& sql);
  // False once the connection broke; the pool then replaces it.
  bool healthy() const { return PQstatus(conn_) == CONNECTION_OK && !broken_; }
  // Whether the last failure left nothing behind and may be run again: the connection broke
  // (the server rolls the transaction back) or the transaction lost a deadlock.
  bool retryable() const;
  PGconn* raw() { return conn_; }

 private:
  explicit Connection(PGconn* c) : conn_(c) {}
  Status resultStatus(PGresult* r, const char* what);
  PGconn* conn_;
  bool broken_ = false;
  std::string lastSqlState_;
  std::set<std::string> prepared_;
};

// JSON as stored: compact, invalid UTF-8 replaced.
std::string dumpJson(const nlohmann::json& j);

// The URL with any password replaced by "***", for messages and logs.
std::string redactUrl(const std::string& url);

// A fixed number of connections to one database. acquire() hands out a healthy one,
// reconnecting broken ones with exponential backoff (100 ms to 2 s); while the database is down
// it waits at most `waitMs` and then fails with Unavailable. Thread-safe.
class ConnectionPool {
 public:
  class Lease {
   public:
    Lease(ConnectionPool* pool, std::unique_ptr<Connection> c) : pool_(pool), c_(std::move(c)) {}
    Lease(Lease&& o) noexcept = default;
    ~Lease() {
      if (c_) pool_->release(std::move(c_));
    }
    Connection& operator*() { return *c_; }
    Connection* operator->() { return c_.get(); }

   private:
    ConnectionPool* pool_;
    std::unique_ptr<Connection> c_;
  };

  ConnectionPool(std::string url, size_t size, int64_t waitMs);
  Result<Lease> acquire();
  const std::string& url() const { return url_; }

 private:
  void release(std::unique_ptr<Connection> c);

  const std::string url_;
  const size_t size_;
  const int64_t waitMs_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::unique_ptr<Connection>> idle_;  // GUARDED_BY(mu_)
  size_t open_ = 0;                                // GUARDED_BY(mu_): idle + handed out
  int64_t nextConnectAtMs_ = 0;                    // GUARDED_BY(mu_): backoff
  int64_t backoffMs_ = 0;                          // GUARDED_BY(mu_)
  std::string lastError_;                          // GUARDED_BY(mu_)
};

inline Status statusOf(const Status& s) { return s; }
template <class T>
Status statusOf(const Result<T>& r) {
  return r.status();
}

// Runs `fn(Connection&)` (returning a Status or a Result) in a transaction (BEGIN … COMMIT) on
// a pooled connection. A transaction that failed because the connection broke before COMMIT was
// sent, or that lost a deadlock, was rolled back by the server: it runs again on a fresh
// connection (bounded by the pool's wait). Any other failure rolls back and is returned; so is a
// failed COMMIT, which may or may not have committed.
template <class F>
auto inTransaction(ConnectionPool& pool, F&& fn) -> decltype(fn(std::declval<Connection&>())) {
  for (int attempt = 0;; ++attempt) {
    auto lease = pool.acquire();
    if (!lease.isOk()) return lease.status();
    Connection& c = **lease;
    Status st = c.exec("BEGIN");
    if (st.isOk()) {
      auto out = fn(c);
      st = statusOf(out);
      if (st.isOk()) {
        Status commit = c.exec("COMMIT");
        if (commit.isOk()) return out;
        return commit;
      }
      if (c.healthy()) (void)c.exec("ROLLBACK");
    }
    if (!c.retryable() || attempt >= 3) return st;
  }
}

}  // namespace kiln::store::postgres
