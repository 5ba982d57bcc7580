// docs/api.md is the API's source of truth: every route it documents is called here, in the state
// its section names, and must answer the status, content type, fields and literal values that
// section documents ("→ **200** `{"status": "stopped"}`", "the job object", a ```json block).
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>

#include "api/api_fixture.h"
#include "common/ids.h"

namespace kiln::api {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

std::string apiDoc() {
  std::ifstream in(std::string(KILN_SOURCE_DIR) + "/docs/api.md");
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// The text from `heading` (a line start) to the next heading of level <= 3.
std::string sectionAt(const std::string& doc, size_t heading) {
  size_t end = heading + 1;
  for (;;) {
    end = doc.find("\n#", end);
    if (end == std::string::npos) return doc.substr(heading);
    size_t hashes = doc.find_first_not_of('#', end + 1) - (end + 1);
    if (hashes <= 3) return doc.substr(heading, end - heading);
    ++end;
  }
}

// The top-level keys of the first JSON-like object in `text` (the docs write `"…"`, `a | b` and
// comments, so this is a scanner, not a JSON parser), each with its value when that is a
// string literal standing alone (not "…", not followed by `|`).
std::map<std::string, std::optional<std::string>> documentedFields(const std::string& text) {
  std::map<std::string, std::optional<std::string>> out;
  size_t open = text.find('{');
  if (open == std::string::npos) return out;
  int depth = 0;
  bool expectKey = false;
  for (size_t i = open; i < text.size(); ++i) {
    char c = text[i];
    if (c == '{' || c == '[') {
      expectKey = ++depth == 1;
    } else if (c == '}' || c == ']') {
      if (--depth == 0) break;
    } else if (c == ',' && depth == 1) {
      expectKey = true;
    } else if (c == '/' && text.compare(i, 2, "//") == 0) {
      i = text.find('\n', i);  // a comment of the create example
      if (i == std::string::npos) break;
    } else if (c == '"') {
      const size_t close = text.find('"', i + 1);
      if (close == std::string::npos) break;
      if (depth == 1 && expectKey) {
        std::string key = text.substr(i + 1, close - i - 1);
        size_t value = text.find_first_not_of(" :", close + 1);
        std::optional<std::string> literal;
        if (value != std::string::npos && text[value] == '"') {
          size_t end = text.find('"', value + 1);
          std::string v = text.substr(value + 1, end - value - 1);
          size_t after = text.find_first_not_of(' ', end + 1);
          if (v.find("…") == std::string::npos &&
              (after == std::string::npos || text[after] != '|')) {
            literal = v;
          }
        }
        out[key] = literal;
        expectKey = false;
      }
      i = close;  // a string, key or value, is never scanned inside
    }
  }
  return out;
}

// The first ```json block after `from` in `text`, or "".
std::string jsonBlockAfter(const std::string& text, size_t from) {
  size_t start = text.find("```json\n", from);
  if (start == std::string::npos) return "";
  size_t end = text.find("```", start + 8);
  return text.substr(start + 8, end - start - 8);
}

// The keys of an example block: its values are examples, never checked.
std::map<std::string, std::optional<std::string>> exampleFields(const std::string& block) {
  auto fields = documentedFields(block);
  for (auto& [key, value] : fields) value.reset();
  return fields;
}

// What a route's section documents about its success answer.
struct Documented {
  std::string method, path;
  int status = 0;
  std::string contentType;  // checked as a prefix; empty: application/json
  std::map<std::string, std::optional<std::string>> fields;  // of the JSON body
  bool bodyIsArray = false;                                  // fields are those of each element
  std::string arrayOfJobsKey;            // "jobs": [job, …]: each element has jobFields
  std::string locationPrefix;            // a Location header that starts so
  std::vector<std::string> metricNames;  // /metrics
  bool eventStream = false;
};

// The keys of the job object (the example under "## Job").
std::map<std::string, std::optional<std::string>> jobFields(const std::string& doc) {
  return exampleFields(jsonBlockAfter(doc, doc.find("\n## Job\n")));
}

std::vector<Documented> documentedRoutes() {
  const std::string doc = apiDoc();
  const std::string sse = sectionAt(doc, doc.find("\n## Event stream (SSE)") + 1);
  static const std::regex kHeading(R"(\n### `(GET|POST|PUT|DELETE) ([^` ]+)`)");
  static const std::regex kAnswer(R"(→ \*\*(\d{3})\*\*([^\n]*))");
  static const std::regex kSseAnswer(R"(answers `(\d{3})` with `Content-Type: ([^`]+)`)");
  static const std::regex kTextType(R"(\(`(text/[^`]+)`)");
  std::vector<Documented> out;
  for (std::sregex_iterator it(doc.begin(), doc.end(), kHeading), end; it != end; ++it) {
    Documented d;
    d.method = (*it)[1];
    d.path = (*it)[2];
    d.path = d.path.substr(0, d.path.find('?'));
    const std::string section = sectionAt(doc, it->position() + 1);
    std::smatch m;
    if (section.find("#event-stream-sse") != std::string::npos ||
        section.find("SSE stream") != std::string::npos) {
      EXPECT_TRUE(std::regex_search(sse, m, kSseAnswer)) << "the Event stream section";
      d.eventStream = true;
      d.status = std::stoi(m[1]);
      d.contentType = m[2];
    } else if (std::regex_search(section, m, kAnswer)) {
      d.status = std::stoi(m[1]);
      const std::string rest = m[2];
      if (size_t tick = rest.find('`'); tick != std::string::npos && rest.size() > tick + 1 &&
                                        (rest[tick + 1] == '{' || rest[tick + 1] == '[')) {
        d.fields = documentedFields(rest.substr(tick));
      }
      for (const auto& [key, value] : d.fields) {
        if (rest.find("\"" + key + "\": [job") != std::string::npos) d.arrayOfJobsKey = key;
      }
      if (rest.find("the job object") != std::string::npos) d.fields = jobFields(doc);
      if (size_t ct = rest.find("`Content-Type: "); ct != std::string::npos) {
        d.contentType = rest.substr(ct + 15, rest.find('`', ct + 15) - ct - 15);
      }
      // "with the asset's type (`text/javascript`, `text/css`)": what they have in common.
      static const std::regex kType(R"(`(text/[^`]+)`)");
      for (std::sregex_iterator t(rest.begin(), rest.end(), kType), e; t != e; ++t) {
        std::string type = (*t)[1];
        if (d.contentType.empty()) {
          d.contentType = type;
        } else {
          size_t n = 0;
          while (n < type.size() && n < d.contentType.size() && type[n] == d.contentType[n]) ++n;
          d.contentType.resize(n);
        }
      }
      if (size_t loc = rest.find("`Location: "); loc != std::string::npos) {
        std::string where = rest.substr(loc + 11, rest.find('`', loc + 11) - loc - 11);
        d.locationPrefix = where.substr(0, where.find('{'));
      }
      if (rest.find_first_not_of(' ') == std::string::npos) {  // the shape is a block below
        std::string block = jsonBlockAfter(section, m.position(0));
        d.bodyIsArray = block.find_first_not_of(" \n") != std::string::npos &&
                        block[block.find_first_not_of(" \n")] == '[';
        d.fields = exampleFields(block);
      }
    } else if (std::regex_search(section, m, kTextType)) {  // /metrics, the web page: text
      d.status = 200;
      d.contentType = m[1];
      if (size_t start = section.find("```\n"); start != std::string::npos) {
        std::string block = section.substr(start + 4);
        block = block.substr(0, block.find("```"));
        std::istringstream lines(block);
        for (std::string line; std::getline(lines, line);) {
          d.metricNames.push_back(line.substr(0, line.find_first_of("{ ")));
        }
      }
    }
    out.push_back(std::move(d));
  }
  return out;
}

// How each documented route is called: the state its job must be in and the request body.
struct Call {
  std::optional<store::JobStatus> jobStatus;  // set before the call
  bool withStep = false;                      // a recorded step, for /steps
  std::string body;
};

const std::map<std::string, Call>& calls() {
  static const std::map<std::string, Call> kCalls = {
      {"POST /api/v1/jobs",
       {{}, false, R"({"repoUrl":"https://example.com/r.git","taskDesc":"x"})"}},
      {"GET /api/v1/jobs", {}},
      {"GET /api/v1/jobs/{id}", {}},
      {"GET /api/v1/jobs/{id}/steps", {{}, true, ""}},
      {"GET /api/v1/jobs/{id}/diff", {}},
      {"GET /api/v1/jobs/{id}/stream", {}},
      {"POST /api/v1/jobs/{id}/stop", {store::JobStatus::kRunning, false, ""}},
      {"POST /api/v1/jobs/{id}/reply", {store::JobStatus::kPaused, false, R"({"message":"B"})"}},
      {"POST /api/v1/jobs/{id}/approve", {store::JobStatus::kPaused, false, ""}},
      {"POST /api/v1/jobs/{id}/continue",
       {store::JobStatus::kCompleted, false, R"({"taskDesc":"now add tests"})"}},
      {"POST /api/v1/tasks", {{}, false, R"({"prompt":"say hi"})"}},
      {"GET /api/v1/tasks/{id}/events", {}},
      {"GET /healthz", {}},
      {"GET /api/v1/secrets", {}},
      {"PUT /api/v1/secrets/{name}", {{}, false, R"({"value":"docs-secret-value"})"}},
      {"DELETE /api/v1/secrets/{name}", {}},  // the one the PUT made
      {"GET /api/v1/nodes", {}},
      {"POST /api/v1/nodes/{id}/drain", {}},  // {id}: the node heartbeating below
      {"GET /metrics", {}},
      {"POST /api/v1/tokens", {{}, false, R"({"name":"ci"})"}},
      {"GET /api/v1/tokens", {}},
      {"POST /api/v1/tokens/{id}/revoke", {}},  // {id}: a token made below
      {"GET /api/v1/tenants/{id}/quota", {}},   // {id}: the caller's tenant
      {"POST /api/v1/tenants/{id}/quota", {{}, false, R"({"maxRunning":1000,"jobsPerHour":1000})"}},
      {"GET /", {}},
      {"GET /assets/{name}", {}},  // a name the page refers to
  };
  return kCalls;
}

class ApiDocsTest : public ApiFixture {
 protected:
  void expectFields(const json& body, const Documented& d, const std::string& what) {
    ASSERT_TRUE(body.is_object()) << what << ": " << body.dump();
    for (const auto& [key, literal] : d.fields) {
      ASSERT_TRUE(body.contains(key)) << what << " lacks \"" << key << "\": " << body.dump();
      if (literal) {
        EXPECT_EQ(body[key], *literal) << what << " \"" << key << "\"";
      }
    }
  }
};

TEST_F(ApiDocsTest, EveryDocumentedRouteAnswersAsDocumented) {
  const auto routes = documentedRoutes();
  ASSERT_GE(routes.size(), 14u);
  // One node of the fleet, for /api/v1/nodes and the per-node figures of /metrics.
  store::NodeRecord node;
  node.id = "kiln-0";
  node.address = "http://127.0.0.1:1";
  node.version = "test";
  node.startedAt = node.heartbeatAt = clock_.nowMs();
  node.maxJobs = 64;
  node.figures = {{"diskFreeBytes", int64_t{51234567890}}, {"memAvailableBytes", int64_t{2000}}};
  ASSERT_TRUE(store_->heartbeatNode(node).isOk());
  // Nodes are the operator's: their routes take the admin tenant's token.
  constexpr const char* kAdminToken = "token-admin";
  addToken(kAdminToken, "default", store::Role::kAdmin);
  std::set<std::string> seen;
  for (const Documented& d : routes) {
    const std::string name = d.method + " " + d.path;
    SCOPED_TRACE(name);
    seen.insert(name);
    auto call = calls().find(name);
    ASSERT_NE(call, calls().end()) << "a documented route without a case in this test";
    ASSERT_NE(d.status, 0) << "docs/api.md documents no success status for it";
    std::string id = createJob();
    if (call->second.jobStatus) setStatus(id, *call->second.jobStatus);
    if (call->second.withStep) {
      store::Step step;
      step.jobId = id;
      step.stepNumber = 1;
      step.toolCalled = "bash";
      step.toolArguments = {{"cmd", "ls"}};
      step.toolOutput = "README.md\n";
      // A step is written under the job's lease: claim (the oldest queued first) up to it.
      std::optional<store::Lease> lease;
      for (int i = 0; i < 100 && !lease; ++i) {
        auto claimed = store_->claimJob("node", clock_.nowMs(), 60'000);
        ASSERT_TRUE(claimed.isOk() && claimed->has_value());
        if ((*claimed)->id == id) lease = store::Lease{"node", (*claimed)->leaseEpoch};
      }
      ASSERT_TRUE(lease.has_value());
      ASSERT_TRUE(store_->recordStep(step, *lease, {}).isOk());
    }
    std::string target = id;
    if (d.path.rfind("/api/v1/nodes/", 0) == 0) target = node.id;
    if (d.path.rfind("/api/v1/tenants/", 0) == 0) target = "a";
    if (d.path.rfind("/api/v1/tokens/", 0) == 0)
      target = addToken("to-revoke", "a", store::Role::kViewer);
    std::string path = std::regex_replace(d.path, std::regex(R"(\{id\})"), target);
    if (path.rfind("/api/v1/secrets/", 0) == 0) {
      path = "/api/v1/secrets/DOCS_KEY";
    } else if (path.find("{name}") != std::string::npos) {
      auto page = client_->get("/");
      ASSERT_TRUE(page.isOk());
      std::smatch asset;
      static const std::regex kRef(R"re((?:href|src)="/assets/([^"]+)")re");
      ASSERT_TRUE(std::regex_search(page->body, asset, kRef)) << page->body;
      path = "/assets/" + asset[1].str();
    }
    if (d.eventStream) {
      auto sse = openSse(path);
      ASSERT_TRUE(sse);
      EXPECT_EQ(sse->status(), d.status);
      auto type = sse->headers().find("content-type");
      ASSERT_NE(type, sse->headers().end());
      EXPECT_EQ(type->second.rfind(d.contentType, 0), 0u) << type->second;
      auto first = sse->next(10s);
      ASSERT_TRUE(first) << "no first event";
      EXPECT_EQ(first->id, "1");
      EXPECT_EQ(first->type, "status");
      EXPECT_EQ(first->json()["status"], "QUEUED");
      continue;
    }
    // The operator's routes (/metrics too, unless read on --metrics-listen) take the admin
    // token of the tenant "default".
    const bool operatorRoute = d.path.rfind("/api/v1/nodes", 0) == 0 || d.path == "/metrics" ||
                               name == "POST /api/v1/tenants/{id}/quota";
    client_->setBearer(operatorRoute ? kAdminToken : d.path.rfind("/api/", 0) == 0 ? kToken : "");
    auto res = client_->request(http::string_to_verb(d.method), path, call->second.body);
    client_->setBearer(kToken);
    ASSERT_TRUE(res.isOk()) << res.status().toString();
    ASSERT_EQ(res->status, d.status) << res->body;
    const std::string type = d.contentType.empty() ? "application/json" : d.contentType;
    EXPECT_EQ(res->header("content-type").rfind(type, 0), 0u) << res->header("content-type");
    if (!d.locationPrefix.empty()) {
      EXPECT_EQ(res->header("location").rfind(d.locationPrefix, 0), 0u) << res->header("location");
    }
    for (const std::string& metric : d.metricNames) {
      EXPECT_NE(res->body.find("\n" + metric), std::string::npos) << metric;
    }
    if (d.fields.empty()) continue;
    const json body = res->json();
    if (d.bodyIsArray) {
      ASSERT_TRUE(body.is_array() && !body.empty()) << res->body;
      for (const json& element : body) expectFields(element, d, "an element");
    } else if (!d.arrayOfJobsKey.empty()) {
      expectFields(body, d, "the answer");
      Documented job = d;
      job.fields = jobFields(apiDoc());
      ASSERT_TRUE(body[d.arrayOfJobsKey].is_array() && !body[d.arrayOfJobsKey].empty());
      for (const json& element : body[d.arrayOfJobsKey]) expectFields(element, job, "a job");
    } else {
      expectFields(body, d, "the answer");
    }
  }
  for (const auto& [name, call] : calls()) {
    EXPECT_TRUE(seen.count(name)) << name << " is called here but not documented";
  }
}

}  // namespace
}  // namespace kiln::api
