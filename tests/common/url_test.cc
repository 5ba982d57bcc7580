// parseUrl: the one URL splitter (libcurl's parser underneath).
#include "common/url.h"

#include <gtest/gtest.h>

namespace kiln {
namespace {

TEST(UrlTest, SplitsEveryPart) {
  auto u = parseUrl("https://user:pw@Example.com:8443/a/../b?c=d#frag");
  ASSERT_TRUE(u.isOk()) << u.status().toString();
  EXPECT_EQ(u->scheme, "https");
  EXPECT_EQ(u->userinfo, "user:pw");
  EXPECT_EQ(u->host, "Example.com");
  EXPECT_EQ(u->port, "8443");
  EXPECT_EQ(u->path, "/a/../b");  // as written: a proxy forwards it so
  EXPECT_EQ(u->query, "c=d");
  EXPECT_EQ(u->fragment, "frag");
  EXPECT_EQ(u->authority(), "Example.com:8443");

  auto v6 = parseUrl("http://[::1]:9");
  ASSERT_TRUE(v6.isOk());
  EXPECT_EQ(v6->host, "::1");
  EXPECT_TRUE(v6->ipv6);
  EXPECT_EQ(v6->path, "/");
  EXPECT_EQ(v6->authority(), "[::1]:9");

  auto bare = parseUrl("git://host?q");
  ASSERT_TRUE(bare.isOk());
  EXPECT_EQ(bare->port, "");
  EXPECT_EQ(bare->path, "/");
  EXPECT_EQ(bare->query, "q");
  EXPECT_EQ(parseUrl("ssh://git@github.com/o/r.git")->userinfo, "git");
}

TEST(UrlTest, RefusesWhatIsNotAnAbsoluteUrlWithAHost) {
  for (const char* bad :
       {"", "host:80", "git@github.com:o/r.git", "http:/x", "http:///x", "file:///abs/path",
        "http://a:b:c/", "http://x:99999/", "http://[::1", "http://a b/", "/local/path"}) {
    EXPECT_FALSE(parseUrl(bad).isOk()) << bad;
  }
  EXPECT_FALSE(parseUrl(std::string("http://a\0b/", 11)).isOk());
}

}  // namespace
}  // namespace kiln
