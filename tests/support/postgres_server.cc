#include "support/postgres_server.h"

#include <fcntl.h>
#include <libpq-fe.h>
#include <netinet/in.h>
#include <pwd.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <mutex>
#include <stdexcept>

#include "support/temp_dir.h"

namespace kiln::testing {
namespace fs = std::filesystem;
namespace {

std::mutex gMu;
std::unique_ptr<PostgresServer> gServer;  // GUARDED_BY(gMu)
std::string gReason;                      // GUARDED_BY(gMu)
bool gTried = false;                      // GUARDED_BY(gMu)

// The newest installed server's bin dir (Debian keeps initdb off PATH).
std::string findBinDir() {
  std::string best;
  int bestVersion = 0;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator("/usr/lib/postgresql", ec)) {
    int v = std::atoi(e.path().filename().c_str());
    if (v > bestVersion && fs::exists(e.path() / "bin/initdb")) {
      bestVersion = v;
      best = (e.path() / "bin").string();
    }
  }
  return best;
}

uint16_t freePort() {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  uint16_t port = 0;
  if (bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 &&
      getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0) {
    port = ntohs(a.sin_port);
  }
  close(fd);
  return port;
}

std::string mustRun(const std::string& cmd) {
  std::string out;
  if (shell(cmd, &out) != 0) throw std::runtime_error(cmd + ":\n" + out);
  return out;
}

// Starts `sh -c script` in its own session with a pipe on its stdin: the script's `read`
// returns when every copy of the write end is closed, which happens when this process exits
// however it exits. Returns the write end (close-on-exec, so no child of the tests holds it).
int startWatchdog(const std::string& script) {
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) throw std::runtime_error("pipe2 failed");
  pid_t pid = fork();
  if (pid == 0) {
    dup2(fds[0], 0);
    for (int fd = 3; fd < 1024; ++fd) close(fd);
    setsid();
    execl("/bin/sh", "sh", "-c", script.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  close(fds[0]);
  if (pid < 0) {
    close(fds[1]);
    throw std::runtime_error("fork failed");
  }
  return fds[1];
}

}  // namespace

PostgresServer* PostgresServer::shared() {
  std::lock_guard lock(gMu);
  if (!gTried) {
    gTried = true;
    std::unique_ptr<PostgresServer> s(new PostgresServer());
    try {
      s->init();
      gServer = std::move(s);
    } catch (const std::exception& e) {
      gReason = e.what();
    }
  }
  return gServer.get();
}

std::string PostgresServer::unavailableReason() {
  std::lock_guard lock(gMu);
  return gReason;
}

void PostgresServer::init() {
  binDir_ = findBinDir();
  if (binDir_.empty()) throw std::runtime_error("not installed (no /usr/lib/postgresql/*/bin)");
  const bool root = geteuid() == 0;
  if (root) {
    if (!getpwnam("postgres")) throw std::runtime_error("running as root without a postgres user");
    asUser_ = "runuser -u postgres -- ";
  }
  const char* tmp = getenv("TMPDIR");
  std::string base = tmp && *tmp ? tmp : "/tmp";
  // initdb takes seconds and every test process needs a cluster: the first one initdb's a
  // template (under a lock), the others copy it.
  std::string version = fs::path(binDir_).parent_path().filename();
  std::string tmpl = base + "/kiln-pg-template-" + version + "-" + std::to_string(geteuid());
  {
    int lock = open((tmpl + ".lock").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (lock < 0 || flock(lock, LOCK_EX) != 0) throw std::runtime_error("lock " + tmpl);
    try {
      if (!fs::exists(tmpl + "/kiln-template-ready")) {
        mustRun("rm -rf " + shellQuote(tmpl) + " " + shellQuote(tmpl + ".new") +
                " && mkdir -m 700 " + shellQuote(tmpl + ".new") +
                (root ? " && chown postgres " + shellQuote(tmpl + ".new") : ""));
        mustRun(asUser_ + shellQuote(binDir_ + "/initdb") + " -D " + shellQuote(tmpl + ".new") +
                " --no-sync -A trust -U postgres -E UTF8 --locale=C");
        mustRun("touch " + shellQuote(tmpl + ".new/kiln-template-ready") + " && mv " +
                shellQuote(tmpl + ".new") + " " + shellQuote(tmpl));
      }
    } catch (...) {
      close(lock);
      throw;
    }
    close(lock);
  }
  char dirTmpl[] = "/tmp/kiln-pg-XXXXXX";  // short: the socket path must fit in 107 bytes
  if (!mkdtemp(dirTmpl)) throw std::runtime_error("mkdtemp failed");
  dir_ = dirTmpl;
  std::string stopCmd = asUser_ + shellQuote(binDir_ + "/pg_ctl") + " stop -s -m immediate -D " +
                        shellQuote(dir_ + "/data");
  watchdogFd_ =
      startWatchdog("read _; " + stopCmd + " >/dev/null 2>&1; rm -rf " + shellQuote(dir_));
  mustRun("cp -a " + shellQuote(tmpl) + " " + shellQuote(dir_ + "/data") + " && rm " +
          shellQuote(dir_ + "/data/kiln-template-ready") +
          (root ? " && chown postgres " + shellQuote(dir_) : ""));
  port_ = freePort();
  start();
}

PostgresServer::~PostgresServer() {
  if (running_)
    (void)shell(asUser_ + shellQuote(binDir_ + "/pg_ctl") + " stop -s -w -m immediate -D " +
                shellQuote(dir_ + "/data"));
  std::error_code ec;
  if (!dir_.empty()) fs::remove_all(dir_, ec);
  if (watchdogFd_ >= 0) close(watchdogFd_);
}

void PostgresServer::start() {
  std::string opts = "-p " + std::to_string(port_) + " -k " + dir_ +
                     " -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off "
                     "-c full_page_writes=off -c max_connections=300";
  mustRun(asUser_ + shellQuote(binDir_ + "/pg_ctl") + " start -s -w -t 60 -D " +
          shellQuote(dir_ + "/data") + " -l " + shellQuote(dir_ + "/server.log") + " -o " +
          shellQuote(opts));
  running_ = true;
}

void PostgresServer::stop() {
  mustRun(asUser_ + shellQuote(binDir_ + "/pg_ctl") + " stop -s -w -m fast -D " +
          shellQuote(dir_ + "/data"));
  running_ = false;
}

std::string PostgresServer::log() const {
  std::string out;
  (void)shell("tail -c 20000 " + shellQuote(dir_ + "/server.log"), &out);
  return out;
}

std::string PostgresServer::conninfo(const std::string& db) const {
  std::string name = db.substr(db.rfind('/') + 1);
  return "host=127.0.0.1 port=" + std::to_string(port_) + " user=postgres dbname=" + name +
         " connect_timeout=10";
}

std::vector<std::string> PostgresServer::query(const std::string& db, const std::string& sql) {
  PGconn* c = PQconnectdb(conninfo(db).c_str());
  std::unique_ptr<PGconn, void (*)(PGconn*)> conn(c, PQfinish);
  if (PQstatus(c) != CONNECTION_OK)
    throw std::runtime_error(std::string("connect: ") + PQerrorMessage(c));
  std::unique_ptr<PGresult, void (*)(PGresult*)> res(PQexec(c, sql.c_str()), PQclear);
  ExecStatusType st = PQresultStatus(res.get());
  if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK) {
    throw std::runtime_error(sql + ": " + PQresultErrorMessage(res.get()));
  }
  std::vector<std::string> rows;
  for (int r = 0; r < PQntuples(res.get()); ++r) {
    std::string row;
    for (int col = 0; col < PQnfields(res.get()); ++col) {
      if (col) row += "|";
      row += PQgetvalue(res.get(), r, col);
    }
    rows.push_back(std::move(row));
  }
  return rows;
}

std::string PostgresServer::createDatabase() {
  static std::atomic<int> counter{0};
  std::string name = "kiln_test_" + std::to_string(getpid()) + "_" + std::to_string(++counter);
  query("postgres", "CREATE DATABASE " + name);
  return "postgres://postgres@127.0.0.1:" + std::to_string(port_) + "/" + name;
}

}  // namespace kiln::testing
