#include "agent/delivery.h"

#include <spdlog/spdlog.h>

#include <cstdlib>

#include "agent/job_events.h"

namespace kiln::agent {
namespace {

using json = nlohmann::json;
using store::JobStatus;

json pendingApproval(const std::string& action) {
  return {{"action", action}, {"state", "pending"}};
}

std::string approvalQuestion(const std::string& action, const std::string& jobId) {
  if (action == "push") return "Approve pushing branch kiln/" + jobId + " to the remote?";
  return "Approve committing the agent's changes on branch kiln/" + jobId +
         "? Approve to go on, or reply with what to change.";
}

json commitArgs(const store::Job& job, const std::string& summary) {
  std::string title = job.taskDesc.substr(0, job.taskDesc.find('\n')).substr(0, 72);
  return {{"branch", "kiln/" + job.id}, {"message", "kiln: " + title + "\n\n" + summary}};
}

// A diff on a throwaway index: what gets committed and reviewed.
json freshDiffArgs(const std::string& base) { return {{"base", base}, {"fresh", true}}; }

// The push of the job's branch to its remote. The token (KILN_GIT_PUSH_TOKEN on the node) goes
// to the runtime only, never into a stored step.
json pushArgs(const store::Job& job, bool withToken) {
  json a = {{"remote", job.repoUrl}, {"branch", "kiln/" + job.id}};
  const char* token = std::getenv("KILN_GIT_PUSH_TOKEN");
  if (withToken && token && *token) a["token"] = token;
  return a;
}

// The sandbox pushes over the network; it cannot see the host's files.
std::optional<std::string> pushUnsupported(const std::string& repoUrl) {
  if (repoUrl.empty()) return "push: the job has no repoUrl";
  if (repoUrl[0] == '/' || repoUrl.rfind("file://", 0) == 0) {
    return "push: the job's repo is a local path (" + repoUrl +
           "); push needs a network remote (https://, ssh://). Take the work from "
           "GET /api/v1/jobs/{id}/diff instead.";
  }
  return std::nullopt;
}

// A step of the delivery (commit, push): kiln's own action, recorded like a tool call.
store::Step deliveryStep(int number, std::string thought, std::string tool, json args,
                         std::string output, std::string tree) {
  store::Step s;
  s.stepNumber = number;
  s.phase = "delivering";
  s.plannerThought = std::move(thought);
  s.toolCalled = std::move(tool);
  s.toolArguments = std::move(args);
  s.toolOutput = std::move(output);
  s.workspaceHash = std::move(tree);
  return s;
}

Task<PhaseOutcome> pauseForApproval(JobSession& s, const std::string& action,
                                    const std::string& summary) {
  store::JobUpdate u;
  u.status = JobStatus::kPaused;
  u.releaseLease = true;
  u.ifStatusIn.push_back(JobStatus::kRunning);
  u.approval = pendingApproval(action);
  u.events = approvalEvents(action, approvalQuestion(action, s.job().id), summary);
  PhaseOutcome o = co_await s.update(u);
  if (!o.goesOn()) co_return o;
  spdlog::info("job {}: paused for approval of the {}", s.job().id, action);
  co_return PhaseOutcome::end("paused for approval");
}

// Commits the work; `commit` gets its hash.
Task<PhaseOutcome> commitWork(JobSession& s, const std::string& summary, std::string& commit) {
  const store::Job& job = s.job();
  json args = commitArgs(job, summary);
  const std::string commitPath = "/git/commit";
  auto c = co_await s.rt->call(commitPath, args);
  if (!c.isOk())
    co_return PhaseOutcome::fail({"delivery_failed", "commit: " + c.status().message()});
  const std::string diffPath = "/git/diff";
  const json diffBody = freshDiffArgs(job.baseCommit);
  auto d = co_await s.rt->call(diffPath, diffBody);
  if (!d.isOk()) co_return PhaseOutcome::fail({"delivery_failed", "diff: " + d.status().message()});
  store::Step step = deliveryStep(s.nextStep++, "Commit the work on branch kiln/" + job.id + ".",
                                  "git_commit", args, c->dump(), jsonString(*d, "tree"));
  step.workspacePatch = jsonString(*d, "diff");
  PhaseOutcome o = co_await s.record(step, eventList(stepEvent(step, false), diffEvent(step)));
  commit = jsonString(*c, "commit");
  co_return o;
}

Task<PhaseOutcome> pushWork(JobSession& s) {
  const store::Job& job = s.job();
  if (auto why = pushUnsupported(job.repoUrl))
    co_return PhaseOutcome::fail({"delivery_failed", *why});
  const std::string pushPath = "/git/push";
  const json pushBody = pushArgs(job, true);
  auto p = co_await s.rt->call(pushPath, pushBody);
  if (!p.isOk()) co_return PhaseOutcome::fail({"delivery_failed", "push: " + p.status().message()});
  store::Step step = deliveryStep(s.nextStep++, "Push branch kiln/" + job.id + " to the remote.",
                                  "git_push", pushArgs(job, false), p->dump(), s.lastTree);
  co_return co_await s.record(step, eventList(stepEvent(step, false)));
}

// The gate the job has passed ("commit" | "push"), "" if none.
std::string approvedAction(const json& approval) {
  return jsonString(approval, "state") == "approved" ? jsonString(approval, "action") : "";
}

}  // namespace

Task<PhaseOutcome> deliver(JobSession& s, const std::string& summary) {
  const store::Job& job = s.job();
  const api::request::Approvals approvals = s.spec().gates();
  const std::string approved = approvedAction(job.approval);
  std::string commit;
  if (s.committedSinceFinish()) {  // resumed past the commit (e.g. at the push gate)
    commit = s.lastCommit();
  } else {
    if (approvals.covers("commit") && approved != "commit") {
      const std::string action = "commit";
      co_return co_await pauseForApproval(s, action, summary);
    }
    PhaseOutcome o = co_await commitWork(s, summary, commit);
    if (!o.goesOn()) co_return o;
  }
  if (s.spec().push) {
    if (approvals.covers("push") && approved != "push") {
      const std::string action = "push";
      co_return co_await pauseForApproval(s, action, summary);
    }
    PhaseOutcome o = co_await pushWork(s);
    if (!o.goesOn()) co_return o;
  }
  store::JobUpdate u;
  u.status = JobStatus::kCompleted;
  u.releaseLease = true;
  u.ifStatusIn.push_back(JobStatus::kRunning);
  if (!job.approval.is_null()) u.approval = json(nullptr);
  u.events = completeEvents(summary, "kiln/" + job.id, commit);
  PhaseOutcome o = co_await s.update(u);
  if (!o.goesOn()) co_return o;
  co_return PhaseOutcome::end("completed");
}

}  // namespace kiln::agent
