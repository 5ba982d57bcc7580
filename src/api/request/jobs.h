// Parsers for the /api/v1/jobs resource: turn a request body or query string into a typed
// request, or an InvalidArgument status that names the offending field. Pure functions.
#pragma once
#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "api/request/job_spec.h"
#include "common/result.h"
#include "secrets/secrets.h"
#include "store/store.h"

namespace kiln::api::request {

using nlohmann::json;

constexpr int kDefaultListLimit = 50;
constexpr int kMaxListLimit = 200;

// POST /api/v1/jobs.
struct CreateJobRequest {
  std::string repoUrl;  // as given; the handler normalises it
  std::string taskDesc;
  std::string ref;
  std::optional<std::string> agent;  // unset = the Job default
  std::string model;
  JobLimits limits;  // only the fields the client set
  JobSpec spec;
  // In the clear, from the request: the handler seals them (never part of `spec`).
  std::vector<secrets::Secret> secrets;
};
Result<CreateJobRequest> parseCreateJob(const json& body);

// GET /api/v1/jobs?status=&limit=&cursor=.
struct ListJobsQuery {
  std::optional<store::JobStatus> status;
  int limit = kDefaultListLimit;
  std::string cursor;
};
Result<ListJobsQuery> parseListJobs(const std::map<std::string, std::string>& query);

// POST /api/v1/jobs/{id}/reply: the message.
Result<std::string> parseReply(const json& body);
// POST /api/v1/jobs/{id}/continue: the follow-up task.
Result<std::string> parseContinue(const json& body);
// POST stop/approve take no fields; `{}` or an empty body.
Status parseEmpty(const json& body);

// Where an SSE stream resumes: the Last-Event-ID header wins over ?after=; 0 = from the start.
Result<int64_t> parseResumeSeq(const std::string& lastEventId, const std::string& after);

}  // namespace kiln::api::request
