// Parser for the devin.baby-compatible /api/v1/tasks alias: a task is a job whose prompt is the
// task description. Pure functions.
#pragma once
#include "api/request/jobs.h"

namespace kiln::api::request {

// POST /api/v1/tasks {prompt, agent?, repoUrl?}. Without repoUrl, repoUrl stays empty.
Result<CreateJobRequest> parseCreateTask(const json& body);

}  // namespace kiln::api::request
