#include "store/postgres/pg_listener.h"

#include <libpq-fe.h>
#include <poll.h>
#include <spdlog/spdlog.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "store/postgres/pg_conn.h"

namespace kiln::store::postgres {
namespace {

constexpr int kIdleCheckMs = 10'000;  // an idle connection is probed so a dead peer is noticed
constexpr const char* kListen =
    "LISTEN kiln_work; LISTEN kiln_events; LISTEN kiln_stop; LISTEN kiln_drain";

std::optional<StoreSignal> parse(const PGnotify& n) {
  std::string channel = n.relname ? n.relname : "";
  std::string payload = n.extra ? n.extra : "";
  if (channel == "kiln_work") return StoreSignal{StoreSignal::Kind::kWork, payload};
  if (channel == "kiln_stop") return StoreSignal{StoreSignal::Kind::kStopped, payload};
  if (channel == "kiln_drain") return StoreSignal{StoreSignal::Kind::kDrain, payload};
  if (channel == "kiln_events") {
    auto colon = payload.rfind(':');
    if (colon == std::string::npos) return std::nullopt;
    return StoreSignal{StoreSignal::Kind::kEvents, payload.substr(0, colon),
                       std::strtoll(payload.c_str() + colon + 1, nullptr, 10)};
  }
  return std::nullopt;
}

}  // namespace

Listener::Listener(std::string url, SignalHandler handler)
    : url_(std::move(url)), handler_(std::move(handler)) {
  wakeFd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  thread_ = std::thread([this] { run(); });
}

Listener::~Listener() {
  stop_ = true;
  uint64_t one = 1;
  (void)!write(wakeFd_, &one, sizeof one);
  if (thread_.joinable()) thread_.join();
  close(wakeFd_);
}

bool Listener::pause(int64_t ms) {
  pollfd p{wakeFd_, POLLIN, 0};
  poll(&p, 1, static_cast<int>(ms));
  return !stop_;
}

void Listener::run() {
  int64_t backoffMs = 100;
  bool first = true;
  while (!stop_) {
    auto conn = Connection::open(url_);
    if (!conn.isOk()) {
      if (!pause(backoffMs)) return;
      backoffMs = std::min<int64_t>(backoffMs * 2, 2'000);
      continue;
    }
    if (!(*conn)->exec(kListen).isOk()) {
      if (!pause(backoffMs)) return;
      continue;
    }
    backoffMs = 100;
    // Whatever was sent while no connection listened is lost: every node re-checks.
    if (!first) handler_(StoreSignal{StoreSignal::Kind::kResync, ""});
    first = false;
    if (!listen((*conn)->raw())) return;
    spdlog::warn("store: lost the PostgreSQL notification connection; reconnecting");
  }
}

bool Listener::listen(PGconn* conn) {
  for (;;) {
    pollfd fds[2] = {{PQsocket(conn), POLLIN, 0}, {wakeFd_, POLLIN, 0}};
    int n = poll(fds, 2, kIdleCheckMs);
    if (stop_) return false;
    if (n == 0) {
      // Idle: a round trip proves the server is still there.
      PGresult* r = PQexec(conn, "SELECT 1");
      bool ok = PQresultStatus(r) == PGRES_TUPLES_OK;
      PQclear(r);
      if (!ok) return true;
    } else if (n > 0 && !PQconsumeInput(conn)) {
      return true;
    }
    while (PGnotify* note = PQnotifies(conn)) {
      auto signal = parse(*note);
      PQfreemem(note);
      if (signal) handler_(*signal);
    }
    if (PQstatus(conn) != CONNECTION_OK) return true;
  }
}

}  // namespace kiln::store::postgres
