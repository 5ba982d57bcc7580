// The events and failures a job run writes, built in plain functions: g++ 12 miscompiles some
// braced initializer lists inside coroutines ("array used as initializer"), so coroutines call
// these instead of spelling payloads out. Pure functions.
#pragma once
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "agent/job_outcome.h"
#include "agent/loop_detector.h"
#include "common/result.h"
#include "sandbox/sandbox.h"
#include "store/store.h"

namespace kiln::agent {

using store::NewEvent;

nlohmann::json statusPayload(store::JobStatus s);
NewEvent stepEvent(const store::Step& s, bool isError);
NewEvent diffEvent(const store::Step& s);
NewEvent compressedEvent(const store::Step& s);
std::vector<NewEvent> statusEvents(store::JobStatus st);
std::vector<NewEvent> pauseEvents(const std::string& question);
std::vector<NewEvent> approvalEvents(const std::string& action, const std::string& question,
                                     const std::string& summary);
std::vector<NewEvent> failEvents(const nlohmann::json& err);
std::vector<NewEvent> completeEvents(const std::string& summary, const std::string& branch,
                                     const std::string& commit);
// A verify step: its step event and the `verify` event {passed, exitCode, outputTail}.
std::vector<NewEvent> verifyEvents(const store::Step& s, const nlohmann::json& result);
std::vector<NewEvent> eventList(NewEvent a);
std::vector<NewEvent> eventList(NewEvent a, NewEvent b);

// j[key] when j is an object holding a string there, else "" (stored JSON is never trusted).
std::string jsonString(const nlohmann::json& j, const char* key);

// The job's `error` for a failure: {code, message, ...extra}.
nlohmann::json errorPayload(const JobFailure& f);

JobFailure llmFailure(const Status& st);
JobFailure limitFailure(const sandbox::LimitBreach& b);
JobFailure budgetFailure(const char* limit, std::string message);
JobFailure wallBudgetFailure(int64_t maxWallSeconds, bool commandKilled);
JobFailure loopFailure(const LoopVerdict& v);
// The tenant's usdPerDay spent while the job ran.
JobFailure tenantSpendFailure(const store::QuotaBreach& b);
// A CLI agent's own failure object {code, message, ...}.
JobFailure cliFailure(const nlohmann::json& f);

}  // namespace kiln::agent
