// docs/api.md is the API's source of truth: every route it documents must be routed.
#include <fstream>
#include <regex>
#include <sstream>

#include "api/api_fixture.h"

namespace kiln::api {
namespace {

using namespace std::chrono_literals;

struct DocumentedRoute {
  std::string method;
  std::string path;
};

std::vector<DocumentedRoute> documentedRoutes() {
  std::ifstream in(std::string(KILN_SOURCE_DIR) + "/docs/api.md");
  std::stringstream ss;
  ss << in.rdbuf();
  std::string text = ss.str();
  static const std::regex kHeading(R"(\n### `(GET|POST) ([^` ]+)`)");
  std::vector<DocumentedRoute> out;
  for (std::sregex_iterator it(text.begin(), text.end(), kHeading), end; it != end; ++it) {
    out.push_back({(*it)[1], (*it)[2]});
  }
  return out;
}

class ApiDocsTest : public ApiFixture {};

TEST_F(ApiDocsTest, EveryDocumentedRouteIsServed) {
  auto routes = documentedRoutes();
  ASSERT_GE(routes.size(), 14u);
  std::string id = createJob();
  for (const auto& r : routes) {
    std::string path = std::regex_replace(r.path, std::regex(R"(\{id\})"), id);
    path = path.substr(0, path.find('?'));
    SCOPED_TRACE(r.method + " " + path);
    int status = 0;
    if (path.ends_with("/stream") || path.ends_with("/events")) {
      auto sse = openSse(path);
      ASSERT_TRUE(sse);
      status = sse->status();
    } else {
      auto res = client_->request(r.method == "GET" ? http::verb::get : http::verb::post, path,
                                  r.method == "POST" ? "{}" : "");
      ASSERT_TRUE(res.isOk());
      status = res->status;
      if (status == 404) EXPECT_EQ(res->body.find("no route"), std::string::npos);
    }
    EXPECT_NE(status, 405);
    EXPECT_LT(status, 500);
  }
}

}  // namespace
}  // namespace kiln::api
