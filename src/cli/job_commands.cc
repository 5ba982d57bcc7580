// `kiln jobs | logs | stop | reply | diff | status`: thin wrappers over the HTTP API.
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <iostream>

#include "cli/commands.h"
#include "cli/follow.h"
#include "cli/render.h"
#include "cli/session.h"

namespace kiln::cli {

int fail(const std::string& message) {
  std::cerr << "kiln: " << message << "\n";
  return kExitClientError;
}

namespace {

Result<std::unique_ptr<ServerSession>> open(const ClientFlags& flags) {
  return ServerSession::connect(clientSettings(flags));
}

// Runs one request against the discovered server and returns its parsed JSON body.
Result<json> call(HttpClient& client, const std::string& method, const std::string& target,
                  const json& body = json::object()) {
  auto resp = method == "GET"    ? client.get(target)
              : method == "POST" ? client.postJson(target, body)
                                 : client.sendJson(method, target, body);
  if (!resp) return resp.status();
  return jsonBody(*resp);
}

std::string jobPath(const std::string& id) { return "/api/v1/jobs/" + id; }

std::string joinWords(const std::vector<std::string>& words) {
  std::string out;
  for (const auto& w : words) out += (out.empty() ? "" : " ") + w;
  return out;
}

std::string urlEncode(const std::string& s) {
  static const char* kHex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out.push_back(static_cast<char>(c));
    } else {
      out += {'%', kHex[c >> 4], kHex[c & 15]};
    }
  }
  return out;
}

}  // namespace

Result<json> request(const ClientFlags& flags, const std::string& method, const std::string& target,
                     const json& body) {
  ASSIGN_OR_RETURN(std::unique_ptr<ServerSession> session, open(flags));
  return call(session->client(), method, target, body);
}

ClientSettings clientSettings(const ClientFlags& flags) {
  return resolveClientSettings(flags, processEnv(), node::defaultDataDir);
}

RenderStyle terminalStyle(const std::string& jobId) {
  RenderStyle style;
  style.color = isatty(STDOUT_FILENO) && std::getenv("NO_COLOR") == nullptr;
  style.jobId = jobId;
  return style;
}

int jobsCommand(const JobsFlags& flags, const ClientFlags& clientFlags) {
  std::string target = "/api/v1/jobs?limit=" + std::to_string(flags.limit);
  if (!flags.status.empty()) target += "&status=" + urlEncode(normalizeStatus(flags.status));
  auto body = request(clientFlags, "GET", target);
  if (!body) return fail(body.status().message());
  if (flags.json) {
    std::cout << body->dump(2) << "\n";
    return kExitOk;
  }
  const json& jobs = body->is_object() && body->contains("jobs") ? (*body)["jobs"] : *body;
  auto now = std::chrono::duration_cast<std::chrono::milliseconds>(
                 std::chrono::system_clock::now().time_since_epoch())
                 .count();
  std::cout << renderJobsTable(jobs, now);
  return kExitOk;
}

int logsCommand(const std::string& jobId, bool follow, const ClientFlags& clientFlags) {
  auto session = open(clientFlags);
  if (!session) return fail(session.status().message());
  FollowOptions opts;
  opts.untilDone = follow;
  auto res = followJob((*session)->client(), jobId, terminalStyle(jobId), opts, std::cout);
  if (!res) return fail(res.status().message());
  return kExitOk;
}

int stopCommand(const std::string& jobId, const ClientFlags& clientFlags) {
  auto body = request(clientFlags, "POST", jobPath(jobId) + "/stop");
  if (!body) return fail(body.status().message());
  std::cout << jobId << ": " << normalizeStatus(body->value("status", "stopped")) << "\n";
  return kExitOk;
}

int replyCommand(const std::string& jobId, const std::vector<std::string>& message,
                 const ClientFlags& clientFlags) {
  std::string text = joinWords(message);
  if (text.empty()) return fail("reply: the message is empty");
  auto body = request(clientFlags, "POST", jobPath(jobId) + "/reply", {{"message", text}});
  if (!body) return fail(body.status().message());
  std::cout << jobId << ": reply sent";
  if (body->is_object() && body->contains("status")) {
    std::cout << " (" << normalizeStatus(body->value("status", "")) << ")";
  }
  std::cout << "\n";
  return kExitOk;
}

int approveCommand(const std::string& jobId, const ClientFlags& clientFlags) {
  auto body = request(clientFlags, "POST", jobPath(jobId) + "/approve");
  if (!body) return fail(body.status().message());
  std::cout << jobId << ": approved\n";
  return kExitOk;
}

int continueCommand(const std::string& jobId, const std::vector<std::string>& task,
                    const ClientFlags& clientFlags) {
  std::string text = joinWords(task);
  if (text.empty()) return fail("continue: the follow-up task is empty");
  auto body = request(clientFlags, "POST", jobPath(jobId) + "/continue", {{"taskDesc", text}});
  if (!body) return fail(body.status().message());
  std::cout << jobId << ": queued again with the follow-up (kiln logs -f " << jobId << ")\n";
  return kExitOk;
}

int diffCommand(const std::string& jobId, const ClientFlags& clientFlags) {
  auto session = open(clientFlags);
  if (!session) return fail(session.status().message());
  auto resp = (*session)->client().get(jobPath(jobId) + "/diff");
  if (!resp) return fail(resp.status().message());
  if (resp->status != 200) return fail(apiError(*resp).message());
  std::cout << resp->body;
  return kExitOk;
}

int statusCommand(const std::string& jobId, bool asJson, const ClientFlags& clientFlags) {
  auto body = request(clientFlags, "GET", jobPath(jobId));
  if (!body) return fail(body.status().message());
  std::cout << body->dump(asJson ? -1 : 2) << "\n";
  return kExitOk;
}

}  // namespace kiln::cli
