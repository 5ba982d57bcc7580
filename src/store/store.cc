#include "store/store.h"

#include <algorithm>
#include <cstdio>

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

const char* roleName(Role r) {
  switch (r) {
    case Role::kViewer:
      return "viewer";
    case Role::kMember:
      return "member";
    case Role::kAdmin:
      return "admin";
  }
  return "viewer";
}

std::optional<Role> parseRole(std::string_view s) {
  for (Role r : {Role::kViewer, Role::kMember, Role::kAdmin}) {
    if (s == roleName(r)) return r;
  }
  return std::nullopt;
}

namespace {

std::string number(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.6f", v);
  std::string s = buf;
  while (s.back() == '0') s.pop_back();
  if (s.back() == '.') s.pop_back();
  return s;
}

int64_t ceilSeconds(int64_t ms) { return std::max<int64_t>(1, (ms + 999) / 1000); }

}  // namespace

std::optional<QuotaBreach> quotaBreach(const std::string& tenantId, const TenantQuota& quota,
                                       const TenantUsage& usage, bool newJob, int64_t nowMs) {
  const std::string who = "tenant " + tenantId;
  if (quota.maxRunning && usage.active >= *quota.maxRunning) {
    // Nothing says when a job will end: a hint.
    return QuotaBreach{
        "maxRunning", static_cast<double>(*quota.maxRunning), static_cast<double>(usage.active), 30,
        who + " has " + std::to_string(usage.active) +
            " unfinished jobs; its quota maxRunning is " + std::to_string(*quota.maxRunning)};
  }
  if (newJob && quota.jobsPerHour && usage.jobsLastHour >= *quota.jobsPerHour) {
    // The oldest job of the window leaves it first.
    const int64_t frees = usage.oldestInHour ? usage.oldestInHour + 3'600'000 - nowMs : 3'600'000;
    return QuotaBreach{"jobsPerHour", static_cast<double>(*quota.jobsPerHour),
                       static_cast<double>(usage.jobsLastHour), ceilSeconds(frees),
                       who + " created " + std::to_string(usage.jobsLastHour) +
                           " jobs in the last hour; its quota jobsPerHour is " +
                           std::to_string(*quota.jobsPerHour)};
  }
  if (quota.usdPerDay && usage.usdToday >= *quota.usdPerDay) {
    const int64_t midnight = (utcDay(nowMs) + 1) * 86'400'000;
    return QuotaBreach{"usdPerDay", *quota.usdPerDay, usage.usdToday, ceilSeconds(midnight - nowMs),
                       who + " spent $" + number(usage.usdToday) +
                           " today (UTC); its quota usdPerDay is $" + number(*quota.usdPerDay)};
  }
  return std::nullopt;
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
