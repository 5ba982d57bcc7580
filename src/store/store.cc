#include "store/store.h"

#include "store/postgres/pg_store.h"
#include "store/sqlite/sqlite_store.h"
#include "store/store_decorator.h"

namespace kiln::store {

const char* jobStatusName(JobStatus s) {
  switch (s) {
    case JobStatus::kQueued:
      return "QUEUED";
    case JobStatus::kProvisioning:
      return "PROVISIONING";
    case JobStatus::kRunning:
      return "RUNNING";
    case JobStatus::kPaused:
      return "PAUSED";
    case JobStatus::kCompleted:
      return "COMPLETED";
    case JobStatus::kFailed:
      return "FAILED";
    case JobStatus::kStopped:
      return "STOPPED";
  }
  return "FAILED";
}

std::optional<JobStatus> parseJobStatus(std::string_view s) {
  for (JobStatus st :
       {JobStatus::kQueued, JobStatus::kProvisioning, JobStatus::kRunning, JobStatus::kPaused,
        JobStatus::kCompleted, JobStatus::kFailed, JobStatus::kStopped}) {
    if (s == jobStatusName(st)) return st;
  }
  return std::nullopt;
}

bool isTerminal(JobStatus s) {
  return s == JobStatus::kCompleted || s == JobStatus::kFailed || s == JobStatus::kStopped;
}

Result<std::unique_ptr<Store>> Store::open(const StoreOptions& opts) {
  const std::string& url = opts.url;
  if (opts.busyTimeoutMs < 0) return invalidArgument("store: negative busy timeout");
  if (url.rfind("postgres://", 0) == 0 || url.rfind("postgresql://", 0) == 0) {
    PostgresOptions pg;
    pg.busyTimeoutMs = opts.busyTimeoutMs;
    ASSIGN_OR_RETURN(auto engine, openPostgresStore(url, pg));
    return guardStore(std::move(engine));
  }
  std::string path = url.rfind("sqlite:", 0) == 0 ? url.substr(7) : url;
  if (path.empty()) return invalidArgument("store: empty SQLite path");
  ASSIGN_OR_RETURN(auto engine, openSqliteStore(path, opts.busyTimeoutMs));
  return guardStore(std::move(engine));
}

}  // namespace kiln::store
