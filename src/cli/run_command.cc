// `kiln run`: submit a job, follow it live, print the diff, exit with the job's outcome.
#include <unistd.h>

#include <filesystem>
#include <iostream>
#include <mutex>

#include "cli/commands.h"
#include "cli/follow.h"
#include "cli/job_request.h"
#include "cli/session.h"
#include "cli/signal_watcher.h"

namespace kiln::cli {

namespace {

// Ctrl-C while following asks the server to stop the job (the run then ends as STOPPED);
// a second one quits at once.
class InterruptToStop {
 public:
  InterruptToStop()
      : watcher_([this](int, int count) {
          if (count > 1) _exit(130);
          std::lock_guard lock(mu_);
          if (jobId_.empty()) _exit(130);
          std::cerr << "\nkiln: stopping job " << jobId_ << " (Ctrl-C again to quit)\n";
          (void)HttpClient(url_, token_)
              .postJson("/api/v1/jobs/" + jobId_ + "/stop", json::object());
        }) {}

  void arm(const HttpClient& client, const std::string& jobId) {
    std::lock_guard lock(mu_);
    url_ = client.baseUrl();
    token_ = client.token();
    jobId_ = jobId;
  }

 private:
  std::mutex mu_;
  std::string url_, token_, jobId_;  // GUARDED_BY(mu_)
  SignalWatcher watcher_;            // last: its thread may call back into the fields above
};

Result<std::string> submit(HttpClient& client, const json& request) {
  auto resp = client.postJson("/api/v1/jobs", request);
  if (!resp) return resp.status();
  ASSIGN_OR_RETURN(json body, jsonBody(*resp));
  std::string id = body.value("jobId", body.value("id", ""));
  if (id.empty()) return internalError("server did not return a jobId");
  return id;
}

// The final status when the stream could not tell us (it dropped for good).
std::string fetchStatus(HttpClient& client, const std::string& jobId) {
  auto resp = client.get("/api/v1/jobs/" + jobId);
  if (!resp) return "";
  auto body = jsonBody(*resp);
  return body && body->is_object() ? normalizeStatus(body->value("status", "")) : "";
}

void printDiff(HttpClient& client, const std::string& jobId) {
  auto resp = client.get("/api/v1/jobs/" + jobId + "/diff");
  if (!resp) {
    std::cerr << "kiln: could not fetch the diff: " << resp.status().message() << "\n";
    return;
  }
  if (resp->status != 200) {
    std::cerr << "kiln: could not fetch the diff: " << apiError(*resp).message() << "\n";
    return;
  }
  if (resp->body.empty()) {
    std::cout << "(no changes)\n";
    return;
  }
  std::cout << "\n" << resp->body;
  if (resp->body.back() != '\n') std::cout << "\n";
}

}  // namespace

int runCommand(const RunFlags& flags, const ClientFlags& clientFlags) {
  std::error_code ec;
  auto request = buildJobRequest(flags, std::filesystem::current_path(ec).string());
  if (!request) return fail(request.status().message());
  // Before any thread starts, so the embedded node's threads inherit the blocked signals.
  InterruptToStop interrupt;
  // An embedded server is this command's own: it may read the one local repo it was given.
  std::vector<std::string> localRepo;
  std::string repo = request->value("repoUrl", "");
  if (repo.rfind("file://", 0) == 0) repo = repo.substr(7);
  if (!repo.empty() && repo[0] == '/') localRepo.push_back(repo);
  auto session = ServerSession::connectOrEmbed(clientSettings(clientFlags), localRepo);
  if (!session) return fail(session.status().message());
  HttpClient& client = (*session)->client();
  if ((*session)->embedded()) {
    std::cerr << "kiln: no server running; started an embedded one at " << client.baseUrl() << "\n";
  }
  auto jobId = submit(client, *request);
  if (!jobId) return fail(jobId.status().message());
  interrupt.arm(client, *jobId);
  std::cout << "job " << *jobId << " submitted to " << client.baseUrl() << "\n" << std::flush;

  auto followed = followJob(client, *jobId, terminalStyle(*jobId), FollowOptions{}, std::cout);
  std::string status = followed ? followed->finalStatus : "";
  if (!followed)
    std::cerr << "kiln: lost the event stream: " << followed.status().message() << "\n";
  if (status.empty()) status = fetchStatus(client, *jobId);
  printDiff(client, *jobId);
  return exitCodeForStatus(status);
}

}  // namespace kiln::cli
