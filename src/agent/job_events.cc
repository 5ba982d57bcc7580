#include "agent/job_events.h"

namespace kiln::agent {
namespace {

using json = nlohmann::json;
using store::JobStatus;

constexpr size_t kStepEventOutputBytes = 4096;

std::string preview(const std::string& s, size_t n) {
  return s.size() <= n ? s
                       : s.substr(0, n) + "\n[... " + std::to_string(s.size() - n) +
                             " more bytes in /steps ...]";
}

}  // namespace

json statusPayload(JobStatus s) { return {{"status", store::jobStatusName(s)}}; }

NewEvent stepEvent(const store::Step& s, bool isError) {
  return {"step",
          {{"stepNumber", s.stepNumber},
           {"phase", s.phase},
           {"plannerThought", s.plannerThought},
           {"toolCalled", s.toolCalled},
           {"toolArguments", s.toolArguments},
           {"toolOutput", preview(s.toolOutput, kStepEventOutputBytes)},
           {"isError", isError},
           {"refusal", s.refusal},
           {"tokens", {{"in", s.tokensIn}, {"out", s.tokensOut}}},
           {"usd", s.usd}}};
}

NewEvent diffEvent(const store::Step& s) {
  return {"diff", {{"stepNumber", s.stepNumber}, {"diff", s.workspacePatch.value_or("")}}};
}

NewEvent compressedEvent(const store::Step& s) {
  return {"context_compressed",
          {{"stepNumber", s.stepNumber},
           {"keptFromStep", s.toolArguments.value("keptFromStep", 0)},
           {"summary", s.plannerThought}}};
}

std::vector<NewEvent> statusEvents(JobStatus st) { return {{"status", statusPayload(st)}}; }

std::vector<NewEvent> pauseEvents(const std::string& question) {
  return {{"question", {{"question", question}, {"kind", "question"}}},
          {"status", statusPayload(JobStatus::kPaused)}};
}

std::vector<NewEvent> approvalEvents(const std::string& action, const std::string& question,
                                     const std::string& summary) {
  return {
      {"question",
       {{"question", question}, {"kind", "approval"}, {"action", action}, {"summary", summary}}},
      {"status", statusPayload(JobStatus::kPaused)}};
}

std::vector<NewEvent> failEvents(const json& err) {
  return {{"error", err},
          {"status", statusPayload(JobStatus::kFailed)},
          {"done", {{"status", "FAILED"}, {"error", err}}}};
}

std::vector<NewEvent> completeEvents(const std::string& summary, const std::string& branch,
                                     const std::string& commit) {
  return {
      {"status", statusPayload(JobStatus::kCompleted)},
      {"done",
       {{"status", "COMPLETED"}, {"summary", summary}, {"branch", branch}, {"commit", commit}}}};
}

std::vector<NewEvent> verifyEvents(const store::Step& s, const json& result) {
  return {stepEvent(s, s.isError), {"verify", result}};
}

std::vector<NewEvent> eventList(NewEvent a) {
  std::vector<NewEvent> v;
  v.push_back(std::move(a));
  return v;
}

std::vector<NewEvent> eventList(NewEvent a, NewEvent b) {
  std::vector<NewEvent> v = eventList(std::move(a));
  v.push_back(std::move(b));
  return v;
}

std::string jsonString(const json& j, const char* key) {
  if (!j.is_object()) return "";
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : "";
}

json errorPayload(const JobFailure& f) {
  json err = f.extra.is_object() ? f.extra : json::object();
  err["code"] = f.code;
  err["message"] = f.message;
  return err;
}

JobFailure llmFailure(const Status& st) {
  if (st.code() == Code::kUnauthenticated) {
    return JobFailure{
        "llm_unauthorized",
        "the model API rejected the credentials (check the API key): " + st.message()};
  }
  return JobFailure{"llm_error", st.message()};
}

JobFailure limitFailure(const sandbox::LimitBreach& b) {
  return JobFailure{"sandbox_limit", b.message, {{"resource", b.resource}}};
}

JobFailure budgetFailure(const char* limit, std::string message) {
  return JobFailure{"budget_exceeded", std::move(message), {{"limit", limit}}};
}

JobFailure wallBudgetFailure(int64_t maxWallSeconds, bool commandKilled) {
  return budgetFailure("maxWallSeconds",
                       "ran longer than " + std::to_string(maxWallSeconds) + " s" +
                           (commandKilled ? " (the running command was killed)" : ""));
}

JobFailure loopFailure(const LoopVerdict& v) {
  return JobFailure{"loop_detected", "the agent is stuck: " + v.reason, {{"rule", v.rule}}};
}

JobFailure tenantSpendFailure(const store::QuotaBreach& b) {
  return JobFailure{"quota_exceeded",
                    b.message + "; the job stopped before its next model call (continue it once "
                                "the quota allows)",
                    {{"quota", b.quota}, {"limit", b.limit}, {"used", b.used}}};
}

JobFailure cliFailure(const json& f) {
  if (!f.is_object()) return JobFailure{"agent_failed", f.dump()};
  const json code = f.contains("code") ? f["code"] : json();
  const json message = f.contains("message") ? f["message"] : json();
  return JobFailure{code.is_string() ? code.get<std::string>() : "agent_failed",
                    message.is_string() ? message.get<std::string>() : "", f};
}

const char* outcomeName(PhaseOutcome::Kind k) {
  switch (k) {
    case PhaseOutcome::Kind::kContinue:
      return "continue";
    case PhaseOutcome::Kind::kEnd:
      return "end";
    case PhaseOutcome::Kind::kStop:
      return "stop";
    case PhaseOutcome::Kind::kFail:
      return "fail";
    case PhaseOutcome::Kind::kRetry:
      return "retry";
  }
  return "?";
}

}  // namespace kiln::agent
