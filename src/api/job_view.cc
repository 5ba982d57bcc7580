#include "api/job_view.h"

#include "api/reply.h"
#include "common/clock.h"
#include "secrets/secrets.h"

namespace kiln::api {
namespace {

json timeOrNull(int64_t ms) { return ms > 0 ? json(formatTimeMs(ms)) : json(nullptr); }

// The job's secrets as {name, mode, hosts}: never a value, sealed or not.
json secretsJson(const json& stored) {
  json out = json::array();
  auto sealed = secrets::readSealed(stored);
  if (sealed.isOk())
    for (const auto& s : *sealed) out.push_back(s.describe());
  return out;
}

}  // namespace

json jobJson(const store::Job& job) {
  return {
      {"jobId", job.id},
      {"status", store::jobStatusName(job.status)},
      {"repoUrl", job.repoUrl},
      {"ref", job.ref},
      {"taskDesc", job.taskDesc},
      {"agent", job.agent},
      {"model", job.model},
      {"limits", job.limits},
      {"spec", job.spec},
      {"secrets", secretsJson(job.secrets)},
      {"steps", job.stepCount},
      {"tokensIn", job.tokensIn},
      {"tokensOut", job.tokensOut},
      {"tokenSpendUsd", job.tokenSpendUsd},
      {"createdAt", timeOrNull(job.createdAt)},
      {"updatedAt", timeOrNull(job.updatedAt)},
      {"startedAt", timeOrNull(job.startedAt)},
      {"baseCommit", job.baseCommit},
      {"awaitingReply", job.status == store::JobStatus::kPaused && !job.pendingReply},
      {"approval", job.approval},
      {"verify", job.verify},
      {"attempts", job.attempts},
      {"error", job.error},
  };
}

json stepJson(const store::Step& step) {
  return {
      {"stepNumber", step.stepNumber},
      {"phase", step.phase},
      {"plannerThought", step.plannerThought},
      {"toolCalled", step.toolCalled},
      {"toolArguments", step.toolArguments},
      {"toolOutput", step.toolOutput},
      {"executedAt", timeOrNull(step.executedAt)},
      {"tokens", {{"in", step.tokensIn}, {"out", step.tokensOut}}},
      {"usd", step.usd},
      {"workspaceHash", step.workspaceHash},
      {"callId", step.callId},
      {"refusal", step.refusal},
      {"isError", step.isError},
  };
}

std::string sseFrame(const store::Event& event) {
  // A newline in the type would end the field early; the payload is compact JSON, so it has
  // none.
  std::string type = event.type;
  for (char& c : type) {
    if (c == '\n' || c == '\r') c = ' ';
  }
  return "id: " + std::to_string(event.seq) + "\nevent: " + type +
         "\ndata: " + dumpJson(event.payload) + "\n\n";
}

}  // namespace kiln::api
