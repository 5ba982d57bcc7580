// The dashboard's static routes (src/api/routes/web.cc): the page at every dashboard path, the
// content-hashed assets with their types, caching, ETag revalidation and gzip. The browser
// itself is tested in tests/web/.
#include <regex>

#include "api/api_fixture.h"

namespace kiln::api {
namespace {

class ApiWebTest : public ApiFixture {
 protected:
  // The asset names the page links to.
  std::vector<std::string> linkedAssets(const std::string& html) {
    static const std::regex kRef(R"re((?:href|src)="/assets/([^"]+)")re");
    std::vector<std::string> out;
    for (std::sregex_iterator it(html.begin(), html.end(), kRef), end; it != end; ++it) {
      out.push_back((*it)[1]);
    }
    return out;
  }
  // A client without a token.
  std::unique_ptr<testing::HttpClient> anonymous() {
    return std::make_unique<testing::HttpClient>("127.0.0.1", server_->port());
  }
};

TEST_F(ApiWebTest, EveryDashboardPathAnswersThePageWithoutAToken) {
  auto client = anonymous();
  auto& c = *client;
  std::string first;
  for (const std::string& path :
       std::vector<std::string>{"/", "/jobs", "/jobs/new", "/jobs/" + newUuid(), "/nodes"}) {
    SCOPED_TRACE(path);
    auto r = c.get(path);
    ASSERT_TRUE(r.isOk());
    EXPECT_EQ(r->status, 200);
    EXPECT_EQ(r->header("content-type"), "text/html; charset=utf-8");
    EXPECT_EQ(r->header("cache-control"), "no-cache");
    EXPECT_NE(r->header("content-security-policy").find("default-src 'self'"), std::string::npos);
    EXPECT_NE(r->body.find("<div id=\"app\">"), std::string::npos);
    if (first.empty()) first = r->body;
    EXPECT_EQ(r->body, first);
  }
  // The page carries no data: the API still wants the token.
  auto api = c.get("/api/v1/jobs");
  ASSERT_TRUE(api.isOk());
  EXPECT_EQ(api->status, 401);
}

TEST_F(ApiWebTest, AssetsHaveTheirTypesAndAreCachedForGood) {
  auto client = anonymous();
  auto& c = *client;
  auto page = c.get("/");
  ASSERT_TRUE(page.isOk());
  auto assets = linkedAssets(page->body);
  ASSERT_EQ(assets.size(), 2u) << page->body;
  for (const auto& name : assets) {
    SCOPED_TRACE(name);
    auto r = c.get("/assets/" + name);
    ASSERT_TRUE(r.isOk());
    ASSERT_EQ(r->status, 200);
    EXPECT_EQ(r->header("content-type"),
              name.ends_with(".js") ? "text/javascript; charset=utf-8" : "text/css; charset=utf-8");
    EXPECT_EQ(r->header("cache-control"), "public, max-age=31536000, immutable");
    EXPECT_EQ(r->header("x-content-type-options"), "nosniff");
    EXPECT_GT(r->body.size(), 1000u);
    EXPECT_EQ(r->header("content-encoding"), "");  // not asked for
  }
}

TEST_F(ApiWebTest, GzipWhenAcceptedAndEtagRevalidation) {
  auto client = anonymous();
  auto& c = *client;
  auto page = c.get("/");
  ASSERT_TRUE(page.isOk());
  std::string js;
  for (const auto& n : linkedAssets(page->body))
    if (n.ends_with(".js")) js = "/assets/" + n;
  auto plain = c.get(js);
  auto gz = c.get(js, {{"Accept-Encoding", "br, gzip;q=0.8"}});
  auto refused = c.get(js, {{"Accept-Encoding", "gzip;q=0, identity"}});
  ASSERT_TRUE(plain.isOk() && gz.isOk() && refused.isOk());
  EXPECT_EQ(gz->header("content-encoding"), "gzip");
  EXPECT_EQ(gz->header("vary"), "Accept-Encoding");
  ASSERT_GE(gz->body.size(), 2u);
  EXPECT_EQ(static_cast<unsigned char>(gz->body[0]), 0x1f);
  EXPECT_EQ(static_cast<unsigned char>(gz->body[1]), 0x8b);
  EXPECT_LT(gz->body.size(), plain->body.size() / 2);
  EXPECT_EQ(refused->header("content-encoding"), "");
  EXPECT_EQ(refused->body, plain->body);
  EXPECT_NE(gz->header("etag"), plain->header("etag"));

  for (const auto* r : {&*plain, &*gz}) {
    std::string etag = r->header("etag");
    ASSERT_FALSE(etag.empty());
    testing::Headers h = {{"If-None-Match", "\"other\", W/" + etag}};
    if (r == &*gz) h["Accept-Encoding"] = "gzip";
    auto again = c.get(js, h);
    ASSERT_TRUE(again.isOk());
    EXPECT_EQ(again->status, 304);
    EXPECT_EQ(again->body, "");
    EXPECT_EQ(again->header("etag"), etag);
  }
  auto stale = c.get("/", {{"If-None-Match", "\"stale\""}});
  ASSERT_TRUE(stale.isOk());
  EXPECT_EQ(stale->status, 200);
}

TEST_F(ApiWebTest, UnknownAssetsAndPathsAre404) {
  auto client = anonymous();
  auto& c = *client;
  for (std::string path : {"/assets/nope.js", "/assets/index.html", "/jobs/a/b", "/favicon.ico"}) {
    SCOPED_TRACE(path);
    auto r = c.get(path);
    ASSERT_TRUE(r.isOk());
    EXPECT_EQ(r->status, 404);
    EXPECT_EQ(r->json()["error"]["code"], "not_found");
  }
  auto post = c.post("/jobs");
  ASSERT_TRUE(post.isOk());
  EXPECT_EQ(post->status, 405);
}

}  // namespace
}  // namespace kiln::api
