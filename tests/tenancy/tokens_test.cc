// tenancy/tokens.h: the token key (environment or a 0600 key file in the data dir), its
// fingerprint check against the store, and issued tokens whose keyed hash alone is stored.
#include "tenancy/tokens.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include "common/files.h"
#include "common/ids.h"
#include "support/temp_dir.h"

namespace kiln::tenancy {
namespace {

TEST(TokenKeyTest, TheEnvironmentWinsElseAKeyFileIsMadeOnceWithMode0600) {
  kiln::testing::TempDir dir;
  auto fromEnv = TokenKey::load(dir.path(), "0123456789abcdef0123456789abcdef");
  ASSERT_TRUE(fromEnv.isOk()) << fromEnv.status().toString();
  EXPECT_EQ(fromEnv->source(), "KILN_TOKEN_KEY");
  EXPECT_EQ(TokenKey::load(dir.path(), "short").status().code(), Code::kInvalidArgument);

  auto made = TokenKey::load(dir.path(), "");
  ASSERT_TRUE(made.isOk()) << made.status().toString();
  struct stat st {};
  ASSERT_EQ(::stat((dir.path() + "/token.key").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  auto again = TokenKey::load(dir.path(), "");
  ASSERT_TRUE(again.isOk());
  EXPECT_EQ(again->hash("kiln_x"), made->hash("kiln_x")) << "the key file is read, not remade";
  EXPECT_NE(fromEnv->hash("kiln_x"), made->hash("kiln_x"));
  EXPECT_EQ(made->hash("kiln_x"), hmacSha256Hex(made->secret(), "kiln_x"));
  EXPECT_NE(made->hash("kiln_x"), sha256Hex("kiln_x"));
  // The fingerprint names the key without being it.
  EXPECT_EQ(made->fingerprint(), again->fingerprint());
  EXPECT_NE(made->fingerprint(), fromEnv->fingerprint());
  EXPECT_EQ(made->fingerprint().find(made->secret()), std::string::npos);
}

TEST(TokenKeyTest, AStoreAcceptsOnlyTheKeyItFirstSaw) {
  kiln::testing::TempDir dir;
  auto st = store::Store::open({"sqlite:" + dir.file("kiln.db")});
  ASSERT_TRUE(st.isOk());
  TokenKey first("first-key-0123456789abcdef-0123456789", "KILN_TOKEN_KEY");
  TokenKey second("second-key-0123456789abcdef-012345678", "KILN_TOKEN_KEY");
  EXPECT_TRUE(checkStoreKey(**st, first).isOk());
  EXPECT_TRUE(checkStoreKey(**st, first).isOk());
  Status other = checkStoreKey(**st, second);
  EXPECT_EQ(other.code(), Code::kInvalidArgument);
  EXPECT_NE(other.message().find("KILN_TOKEN_KEY"), std::string::npos) << other.message();
}

TEST(IssueTokenTest, OnlyTheKeyedHashIsStoredAndTheTenantIsMade) {
  kiln::testing::TempDir dir;
  auto st = store::Store::open({"sqlite:" + dir.file("kiln.db")});
  ASSERT_TRUE(st.isOk());
  TokenKey key("a-key-0123456789abcdef-0123456789abcdef", "KILN_TOKEN_KEY");
  auto issued = issueToken(**st, key, "acme", "ci", store::Role::kViewer, 1'000);
  ASSERT_TRUE(issued.isOk()) << issued.status().toString();
  EXPECT_EQ(issued->secret.rfind("kiln_", 0), 0u);
  EXPECT_EQ(issued->token.id.rfind("tok_", 0), 0u);
  EXPECT_TRUE((*st)->getTenant("acme").isOk());
  auto grant = (*st)->tokenGrant(key.hash(issued->secret));
  ASSERT_TRUE(grant.isOk());
  EXPECT_EQ(grant->tenantId, "acme");
  EXPECT_EQ(grant->role, store::Role::kViewer);
  EXPECT_EQ((*st)->tokenGrant(sha256Hex(issued->secret)).status().code(), Code::kUnauthenticated);
  const nlohmann::json j = tokenJson(issued->token);
  EXPECT_FALSE(j.contains("token"));
  EXPECT_EQ(j["role"], "viewer");
  EXPECT_TRUE(j["revokedAt"].is_null());
  EXPECT_EQ(issueToken(**st, key, "Bad!", "", store::Role::kMember, 0).status().code(),
            Code::kInvalidArgument);
  st->reset();
  for (const char* file : {"kiln.db", "kiln.db-wal"}) {
    std::string bytes = readFile(dir.file(file)).valueOr("");
    EXPECT_EQ(bytes.find(issued->secret), std::string::npos) << file;
  }
  for (const char* bad : {"", "Acme", "-x", "a b", "a/b"}) {
    EXPECT_FALSE(validTenantId(bad)) << bad;
  }
  EXPECT_TRUE(validTenantId("team-1.prod_x"));
}

}  // namespace
}  // namespace kiln::tenancy
