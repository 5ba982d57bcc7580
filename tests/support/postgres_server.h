// PostgresServer: a real PostgreSQL server for the tests of one test process: initdb into a
// temp dir (from a cached template of a first initdb), pg_ctl start on a free 127.0.0.1 port
// with its unix socket in the temp dir, run as the `postgres` user when the tests run as root.
// Started on first use, stopped at process exit; a watchdog process stops it and removes the
// dir if the test process dies without exiting (crash, kill -9). Each test takes a fresh
// database. Thread-safe.
#pragma once
#include <gtest/gtest.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace kiln::testing {

class PostgresServer {
 public:
  // The server of this test process, started on first call. nullptr when PostgreSQL is not
  // installed or cannot start; unavailableReason() says why.
  static PostgresServer* shared();
  static std::string unavailableReason();
  ~PostgresServer();

  // Creates an empty database and returns its URL, postgres://postgres@127.0.0.1:PORT/NAME.
  std::string createDatabase();
  uint16_t port() const { return port_; }
  // Stops the server (fast shutdown: open connections are cut) and starts it again on the
  // same port and data, for the tests of losing the database.
  void stop();
  void start();
  // Runs one SQL statement on database `db` (the name, or a URL from createDatabase) and
  // returns its rows, each row's columns joined by '|'. Throws std::runtime_error on failure.
  std::vector<std::string> query(const std::string& db, const std::string& sql);
  // The server's log, for failure messages.
  std::string log() const;

 private:
  PostgresServer() = default;
  void init();
  std::string conninfo(const std::string& db) const;

  std::string binDir_;
  std::string asUser_;  // "runuser -u postgres -- " as root
  std::string dir_;     // temp dir: data/, the socket, the log
  uint16_t port_ = 0;
  int watchdogFd_ = -1;
  bool running_ = false;
};

}  // namespace kiln::testing

// Skips the test with the reason when this machine has no PostgreSQL; sets `server`.
#define KILN_REQUIRE_POSTGRES(server)                                                       \
  auto* server = ::kiln::testing::PostgresServer::shared();                                 \
  if (!server) {                                                                            \
    GTEST_SKIP() << "PostgreSQL: " << ::kiln::testing::PostgresServer::unavailableReason(); \
  }
