// Secrets end to end through the real `kiln serve`: a job's secret (and a tenant's, set with
// `kiln secret set` on stdin) reaches the sandbox's environment in `env` mode, and whatever the
// agent does with it (echo it, write it into a file that ends up in the diff, put it in its
// thought or a tool argument) the value is in no stored step, event, SSE stream, diff, server
// log, job view or byte of the SQLite database and its WAL.
#include <gtest/gtest.h>
#include <unistd.h>

#include <fstream>
#include <thread>

#include "common/files.h"
#include "support/fake_llm.h"
#include "support/http_client.h"
#include "support/job_checks.h"
#include "support/kiln_process.h"
#include "support/script_server.h"
#include "support/temp_dir.h"

namespace kiln::testing {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

constexpr const char* kJobValue = "npm_J0bS3cr3tV4lu3_7c1e";
constexpr const char* kTenantValue = "tnt_T3n4ntS3cr3t_91ab";

json agentTurn(const std::string& thought, const std::string& tool, const json& args) {
  return {{"thought", thought},
          {"tool_calls", json::array({{{"name", tool}, {"arguments", args}}})},
          {"usage", {{"in", 100}, {"out", 10}}}};
}

class SecretsE2eTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "needs root for namespace sandboxes";
    makeSampleRepo(dir_.file("repo"));
  }

  void start(const json& script, std::vector<std::pair<std::string, std::string>> env = {}) {
    llm_ = std::make_unique<FakeLlm>(script, dir_.path());
    env.emplace_back("OPENAI_BASE_URL", llm_->url() + "/v1");
    env.emplace_back("OPENAI_API_KEY", "sk-test");
    kiln_ = std::make_unique<KilnProcess>(dir_.file("data"), std::vector<std::string>{}, env);
    client_ = std::make_unique<HttpClient>("127.0.0.1", kiln_->port());
    client_->setBearer(kiln_->token());
  }

  // `kiln <args>` against the server, `input` on stdin; its stdout and stderr.
  std::string kilnCli(const std::string& args, const std::string& input, int* rc) {
    TempDir tmp;
    std::ofstream(tmp.file("in")) << input;
    std::string out;
    *rc = shell(std::string(KILN_BINARY) +
                    " --server http://127.0.0.1:" + std::to_string(kiln_->port()) + " --token " +
                    kiln_->token() + " " + args + " < " + tmp.file("in") + " 2>&1",
                &out);
    return out;
  }

  json waitFinished(const std::string& id) {
    return waitJobStatus(*client_, id, kFinishedStatuses, [this] { return kiln_->log(); });
  }

  // Every byte of the data dir's database files (the main file, its WAL and journal).
  std::string databaseBytes() {
    std::string all;
    for (const char* suffix : {"", "-wal", "-shm", "-journal"}) {
      auto bytes = readFile(dir_.file("data") + "/kiln.db" + suffix);
      if (bytes.isOk()) all += *bytes;
    }
    return all;
  }

  TempDir dir_;
  std::unique_ptr<FakeLlm> llm_;
  std::unique_ptr<KilnProcess> kiln_;
  std::unique_ptr<HttpClient> client_;
};

TEST_F(SecretsE2eTest, EnvSecretsReachTheSandboxButNoStoredOrStreamedTextOrByte) {
  const std::string job = kJobValue, tenant = kTenantValue;
  start(json::array({
      agentTurn("Printing the token.", "bash",
                {{"command", "echo token=$NPM_TOKEN; echo t=$TEAM_KEY"}}),
      // The model writes the value itself (in its thought and the call's arguments).
      agentTurn("It is " + job + ".", "bash",
                {{"command", "[ \"$NPM_TOKEN\" = '" + job +
                                 "' ] && echo env-holds-the-value; "
                                 "printf '%s\\n%s\\n' \"$NPM_TOKEN\" \"$TEAM_KEY\" > leaked.txt"}}),
      agentTurn("", "read_file", {{"path", "leaked.txt"}}),
      agentTurn("", "bash", {{"command", "cat /no/such/" + job}}),
      // Encoded: base64 as `echo | base64` makes it, URL-safe, shifted by a byte, and hex.
      agentTurn("", "bash",
                {{"command",
                  "echo \"$NPM_TOKEN\" | base64; printf %s \"$NPM_TOKEN\" | basenc --base64url; "
                  "echo; printf 'x%s' \"$TEAM_KEY\" | base64; "
                  "python3 -c \"import os; print(os.environ['NPM_TOKEN'].encode().hex())\""}}),
      // Split between two chunks of output, half a second apart.
      agentTurn("", "bash",
                {{"command",
                  "printf 'split=%s' \"${NPM_TOKEN:0:10}\"; sleep 0.5; "
                  "printf '%s\\n' \"${NPM_TOKEN:10}\""}}),
      agentTurn("Done.", "finish", {{"summary", "leaked " + job}}),
  }));
  int rc = 0;
  std::string out = kilnCli("secret set TEAM_KEY", tenant + "\n", &rc);
  ASSERT_EQ(rc, 0) << out;
  out = kilnCli("secret list", "", &rc);
  ASSERT_EQ(rc, 0) << out;
  EXPECT_NE(out.find("TEAM_KEY"), std::string::npos) << out;
  EXPECT_EQ(out.find(tenant), std::string::npos) << out;

  auto created = client_->postJson("/api/v1/jobs", {{"repoUrl", dir_.file("repo")},
                                                    {"taskDesc", "Use the token"},
                                                    {"agent", "openai"},
                                                    {"model", "gpt-4o"},
                                                    {"secrets", {{"NPM_TOKEN", job}}}});
  ASSERT_TRUE(created.isOk());
  ASSERT_EQ(created->status, 201) << created->body;
  const std::string id = created->json().value("jobId", "");
  json view = waitFinished(id);
  EXPECT_EQ(view.value("status", ""), "COMPLETED") << view.dump() << kiln_->log();
  EXPECT_EQ(view["secrets"], (json{{{"name", "NPM_TOKEN"}, {"mode", "env"}},
                                   {{"name", "TEAM_KEY"}, {"mode", "env"}}}))
      << view.dump();

  auto steps = client_->get("/api/v1/jobs/" + id + "/steps");
  ASSERT_TRUE(steps.isOk());
  // The values were there: the sandbox's environment held them, and the agent printed them.
  EXPECT_NE(steps->body.find("env-holds-the-value"), std::string::npos) << steps->body;
  EXPECT_NE(steps->body.find("token=[redacted:NPM_TOKEN]"), std::string::npos) << steps->body;
  EXPECT_NE(steps->body.find("t=[redacted:TEAM_KEY]"), std::string::npos) << steps->body;
  EXPECT_NE(steps->body.find("It is [redacted:NPM_TOKEN]."), std::string::npos) << steps->body;
  // The encoded step: all four forms redacted.
  size_t encodedStep = steps->body.find("basenc --base64url");
  ASSERT_NE(encodedStep, std::string::npos) << steps->body;
  const std::string afterIt = steps->body.substr(encodedStep);
  size_t markers = 0;
  for (size_t at = afterIt.find("[redacted:"); at != std::string::npos;
       at = afterIt.find("[redacted:", at + 1))
    ++markers;
  EXPECT_GE(markers, 4u) << afterIt.substr(0, 2000);

  auto sse = SseReader::open("127.0.0.1", kiln_->port(), "/api/v1/jobs/" + id + "/stream",
                             {{"Authorization", "Bearer " + kiln_->token()}});
  ASSERT_TRUE(sse.isOk());
  std::string streamed, terminal;
  for (const auto& e : (*sse)->readUntil("done", 30s)) {
    streamed += e.type + ":" + e.data + "\n";
    if (e.type == "terminal") terminal += e.json().value("data", "");
  }
  // The terminal's chunks put back together: a value split between two is redacted too.
  EXPECT_NE(terminal.find("split=[redacted:NPM_TOKEN]"), std::string::npos) << terminal;
  EXPECT_EQ(terminal.find(job), std::string::npos) << terminal;
  EXPECT_NE(streamed.find("done:"), std::string::npos) << streamed;
  auto diff = client_->get("/api/v1/jobs/" + id + "/diff");
  ASSERT_TRUE(diff.isOk());
  EXPECT_NE(diff->body.find("+[redacted:NPM_TOKEN]"), std::string::npos) << diff->body;
  auto jobJson = client_->get("/api/v1/jobs/" + id);
  ASSERT_TRUE(jobJson.isOk());
  auto list = client_->get("/api/v1/secrets");
  ASSERT_TRUE(list.isOk());
  kiln_->kill(SIGTERM);  // the WAL and the log are complete
  const std::string db = databaseBytes();
  ASSERT_GT(db.size(), 0u);
  EXPECT_NE(db.find("[redacted:NPM_TOKEN]"), std::string::npos);  // the steps are in there
  // The values and their whole encodings, as the sandbox's tools made them.
  std::vector<std::string> forms = {job, tenant};
  for (const char* cmd :
       {"base64 -w0", "basenc --base64url -w0", "od -An -tx1 -v | tr -d ' \\n'"}) {
    for (const std::string& value : {job + "\n", job, "x" + tenant}) {
      std::string out;
      ASSERT_EQ(shell("printf %s " + shellQuote(value) + " | " + cmd, &out), 0);
      while (!out.empty() && out.back() == '\n') out.pop_back();
      forms.push_back(out);
    }
  }
  for (const std::string& value : forms) {
    EXPECT_EQ(steps->body.find(value), std::string::npos) << steps->body;
    EXPECT_EQ(streamed.find(value), std::string::npos) << streamed;
    EXPECT_EQ(diff->body.find(value), std::string::npos) << diff->body;
    EXPECT_EQ(jobJson->body.find(value), std::string::npos) << jobJson->body;
    EXPECT_EQ(list->body.find(value), std::string::npos) << list->body;
    EXPECT_EQ(kiln_->log().find(value), std::string::npos) << kiln_->log();
    EXPECT_EQ(db.find(value), std::string::npos) << "the database holds a secret's value";
  }
}

TEST_F(SecretsE2eTest, SecretsRoutesAndRequestsRefuseBadInputAndNeverEchoAValue) {
  start(json::array());
  auto put = client_->request(http::verb::put, "/api/v1/secrets/DEPLOY_KEY",
                              json{{"value", "dk_0123456789"}, {"hosts", {"example.com"}}}.dump(),
                              {{"Content-Type", "application/json"}});
  ASSERT_TRUE(put.isOk());
  EXPECT_EQ(put->status, 201) << put->body;
  EXPECT_EQ(put->json().value("mode", ""), "proxy");
  put = client_->request(http::verb::put, "/api/v1/secrets/DEPLOY_KEY",
                         json{{"value", "dk_9876543210"}}.dump(),
                         {{"Content-Type", "application/json"}});
  EXPECT_EQ(put->status, 200) << put->body;
  for (const json& body : {json{{"value", "short"}}, json{{"nope", 1}}, json("dk_0123456789")}) {
    auto bad = client_->request(http::verb::put, "/api/v1/secrets/X_KEY", body.dump(),
                                {{"Content-Type", "application/json"}});
    EXPECT_EQ(bad->status, 400) << body.dump() << bad->body;
  }
  auto badName = client_->request(http::verb::put, "/api/v1/secrets/KILN_X",
                                  json{{"value", "dk_0123456789"}}.dump(),
                                  {{"Content-Type", "application/json"}});
  EXPECT_EQ(badName->status, 400) << badName->body;
  auto list = client_->get("/api/v1/secrets");
  ASSERT_EQ(list->json()["secrets"].size(), 1u) << list->body;
  EXPECT_EQ(list->body.find("dk_"), std::string::npos) << list->body;

  auto job = client_->postJson(
      "/api/v1/jobs",
      {{"repoUrl", dir_.file("repo")}, {"taskDesc", "x"}, {"secrets", {{"A_KEY", "tiny"}}}});
  EXPECT_EQ(job->status, 400) << job->body;
  EXPECT_EQ(job->body.find("tiny"), std::string::npos) << job->body;
  job = client_->postJson("/api/v1/jobs", {{"repoUrl", dir_.file("repo")},
                                           {"taskDesc", "x"},
                                           {"sandbox", {{"env", {{"A_KEY", "1"}}}}},
                                           {"secrets", {{"A_KEY", "a_0123456789"}}}});
  EXPECT_EQ(job->status, 400) << job->body;

  auto del = client_->request(http::verb::delete_, "/api/v1/secrets/DEPLOY_KEY", "", {});
  EXPECT_EQ(del->status, 200) << del->body;
  del = client_->request(http::verb::delete_, "/api/v1/secrets/DEPLOY_KEY", "", {});
  EXPECT_EQ(del->status, 404) << del->body;
  EXPECT_EQ(del->json()["error"]["code"], "not_found");
  int rc = 0;
  std::string out = kilnCli("secret rm DEPLOY_KEY", "", &rc);
  EXPECT_NE(rc, 0) << out;
}

// A loopback address the sandbox's NO_PROXY (localhost, 127.0.0.1) does not exempt: requests to
// it go through the egress proxy, which reaches the host's servers on it.
constexpr const char* kServerIp = "127.0.0.2";
constexpr const char* kProxyValue = "sk_Pr0xyOnlyV4lu3_5d2f";

TEST_F(SecretsE2eTest, ProxySecretsReachOnlyTheirHostAndNeverTheSandbox) {
  // The test servers' own certificate, which the node trusts (SSL_CERT_FILE) and the repo
  // carries for the sandbox's explicit end-to-end check.
  std::string out;
  ASSERT_EQ(shell("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
                  "-keyout " +
                      dir_.file("key.pem") + " -out " + dir_.file("cert.pem") +
                      " -days 2 -subj /CN=kiln-test-server -addext subjectAltName=IP:" + kServerIp +
                      " 2>&1",
                  &out),
            0)
      << out;
  ASSERT_EQ(shell("cp " + dir_.file("cert.pem") + " " + dir_.file("repo") +
                      "/server.pem && git -C " + dir_.file("repo") + " add server.pem && git -C " +
                      dir_.file("repo") + " -c user.name=t -c user.email=t@t commit -qm cert",
                  &out),
            0)
      << out;
  const std::string value = kProxyValue;
  auto server = [&](const char* log) {
    return std::make_unique<ScriptServer>(
        "https_check_server.py",
        std::vector<std::string>{"--host", kServerIp, "--cert", dir_.file("cert.pem"), "--key",
                                 dir_.file("key.pem"), "--expect", "Bearer " + value, "--log",
                                 dir_.file(log)});
  };
  auto named = server("named.jsonl"), other = server("other.jsonl");
  const std::string a = std::string(kServerIp) + ":" + std::to_string(named->port());
  const std::string b = std::string(kServerIp) + ":" + std::to_string(other->port());
  start(
      json::array({
          agentTurn("", "bash",
                    {{"command",
                      "env | grep '^API_TOKEN='; "
                      "if cat /proc/*/environ 2>/dev/null | grep -q -- '" +
                          value +
                          "'; "
                          "then echo VALUE-INSIDE; else echo VALUE-ABSENT; fi; "
                          "grep -c kiln-placeholder- /proc/self/environ"}}),
          agentTurn("", "bash",
                    {{"command",
                      "curl -sS https://" + a +
                          "/curl -H \"Authorization: Bearer $API_TOKEN\"; "
                          "python3 -c \"import os, urllib.request as u; print(u.urlopen(u.Request("
                          "'https://" +
                          a +
                          "/py', headers={'Authorization': 'Bearer ' + "
                          "os.environ['API_TOKEN']})).read().decode().strip())\"; "
                          // An upload streams through the interception in pieces.
                          "head -c 300000 /dev/zero | tr '\\0' x | curl -sS --data-binary @- "
                          "https://" +
                          a + "/upload -H \"Authorization: Bearer $API_TOKEN\""}}),
          agentTurn("", "bash",
                    {{"command", "curl -sS --cacert server.pem https://" + b +
                                     "/own-cert -H \"Authorization: Bearer $API_TOKEN\"; "
                                     "curl -sS https://" +
                                     b + "/kiln-ca >/dev/null 2>&1; echo other-rc=$?"}}),
          agentTurn("Done.", "finish", {{"summary", "checked"}}),
      }),
      {{"SSL_CERT_FILE", dir_.file("cert.pem")}});
  auto created = client_->postJson(
      "/api/v1/jobs", {{"repoUrl", dir_.file("repo")},
                       {"taskDesc", "Call the API"},
                       {"agent", "openai"},
                       {"model", "gpt-4o"},
                       {"sandbox", {{"network", "allowlist"}, {"allowHosts", {b}}}},
                       {"secrets", {{"API_TOKEN", {{"value", value}, {"hosts", {a}}}}}}});
  ASSERT_TRUE(created.isOk());
  ASSERT_EQ(created->status, 201) << created->body;
  const std::string id = created->json().value("jobId", "");
  json view = waitFinished(id);
  EXPECT_EQ(view.value("status", ""), "COMPLETED") << view.dump() << kiln_->log();
  EXPECT_EQ(view["secrets"][0]["mode"], "proxy") << view.dump();
  auto steps = client_->get("/api/v1/jobs/" + id + "/steps");
  ASSERT_TRUE(steps.isOk());
  json s = steps->json();
  if (s.is_object()) s = s["steps"];
  ASSERT_GE(s.size(), 3u) << steps->body;
  auto output = [&](size_t i) { return s[i].value("toolOutput", ""); };
  // Inside: only the placeholder, in the variable and in every readable environ.
  EXPECT_NE(output(0).find("API_TOKEN=kiln-placeholder-"), std::string::npos) << output(0);
  EXPECT_NE(output(0).find("VALUE-ABSENT"), std::string::npos) << output(0);
  EXPECT_EQ(output(0).find("VALUE-INSIDE"), std::string::npos) << output(0);
  // The named host got the real credential, from curl and from Python, through kiln's CA.
  EXPECT_EQ(output(1), "credential-ok\ncredential-ok\ncredential-ok len=300000\n\n[exit code 0]")
      << output(1);
  // The other host: end-to-end TLS with its own certificate (verified against it alone), the
  // placeholder unreplaced, and kiln's CA not accepted for it (nothing intercepted it).
  EXPECT_NE(output(2).find("credential-wrong"), std::string::npos) << output(2);
  EXPECT_NE(output(2).find("other-rc=60"), std::string::npos) << output(2);
  std::vector<json> namedLog = readJsonLines(dir_.file("named.jsonl"));
  ASSERT_EQ(namedLog.size(), 3u);
  for (const json& r : namedLog) EXPECT_EQ(r["authorization"], "Bearer " + value);
  std::vector<json> otherLog = readJsonLines(dir_.file("other.jsonl"));
  ASSERT_EQ(otherLog.size(), 1u);
  EXPECT_EQ(otherLog[0]["authorization"].get<std::string>().rfind("Bearer kiln-placeholder-", 0),
            0u);
  kiln_->kill(SIGTERM);
  EXPECT_EQ(steps->body.find(value), std::string::npos);
  EXPECT_EQ(kiln_->log().find(value), std::string::npos) << kiln_->log();
  EXPECT_EQ(databaseBytes().find(value), std::string::npos);
}

}  // namespace
}  // namespace kiln::testing
