// The sealing of secrets (libsodium secretbox), the node's key file, the request's `secrets`
// field and the redaction of values.
#include "secrets/secrets.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include "common/files.h"
#include "secrets/redact.h"
#include "secrets/secret_box.h"
#include "support/temp_dir.h"

namespace kiln::secrets {
namespace {

using nlohmann::json;

TEST(SecretBoxTest, SealsWithAFreshNonceAndOpensOnlyWithItsKey) {
  auto box = SecretBox::fromKey(std::string(32, 'k'));
  auto other = SecretBox::fromKey(std::string(32, 'o'));
  ASSERT_TRUE(box.isOk() && other.isOk());
  const std::string a = (*box)->seal("npm_abcdef123456"), b = (*box)->seal("npm_abcdef123456");
  EXPECT_NE(a, b);  // a fresh nonce each time
  EXPECT_EQ(a.find("abcdef123456"), std::string::npos);
  EXPECT_EQ((*box)->open(a).value(), "npm_abcdef123456");
  EXPECT_EQ((*other)->open(a).status().code(), Code::kInvalidArgument);
  std::string tampered = a;
  tampered[tampered.size() - 3] = tampered[tampered.size() - 3] == 'A' ? 'B' : 'A';
  EXPECT_FALSE((*box)->open(tampered).isOk());
  EXPECT_FALSE((*box)->open("v1:").isOk());
  EXPECT_FALSE((*box)->open("plain").isOk());
  EXPECT_FALSE(SecretBox::fromKey("short").isOk());
}

TEST(SecretBoxTest, TheKeyFileIsCreated0600AndReusedAndAGroupReadableOneIsRefused) {
  kiln::testing::TempDir dir;
  ::unsetenv(kKeyEnv);
  auto first = SecretBox::load(dir.path());
  ASSERT_TRUE(first.isOk()) << first.status().toString();
  struct stat sb {};
  ASSERT_EQ(::stat(dir.file("secrets.key").c_str(), &sb), 0);
  EXPECT_EQ(sb.st_mode & 0777, 0600u);
  auto second = SecretBox::load(dir.path());
  ASSERT_TRUE(second.isOk());
  EXPECT_EQ((*second)->open((*first)->seal("value-12345678")).value(), "value-12345678");
  ::chmod(dir.file("secrets.key").c_str(), 0640);
  EXPECT_EQ(SecretBox::load(dir.path()).status().code(), Code::kUnprocessable);
}

TEST(SecretBoxTest, KilnSecretsKeyWinsOverTheFileAndMustBe32BytesOfBase64) {
  kiln::testing::TempDir dir;
  const std::string key = newKeyBase64();
  ::setenv(kKeyEnv, key.c_str(), 1);
  auto a = SecretBox::load(dir.path());
  kiln::testing::TempDir other;
  auto b = SecretBox::load(other.path());  // another node with the same key
  ::setenv(kKeyEnv, "bm90IDMyIGJ5dGVz", 1);
  auto bad = SecretBox::load(dir.path());
  ::unsetenv(kKeyEnv);
  ASSERT_TRUE(a.isOk() && b.isOk());
  EXPECT_EQ((*b)->open((*a)->seal("shared-across-nodes")).value(), "shared-across-nodes");
  struct stat sb {};
  EXPECT_NE(::stat(dir.file("secrets.key").c_str(), &sb), 0);
  EXPECT_EQ(bad.status().code(), Code::kInvalidArgument);
}

TEST(SecretRequestTest, ParsesBothFormsAndRefusesBadOnesWithoutEchoingTheValue) {
  auto ok = parseSecrets(
      json{{"NPM_TOKEN", "npm_0123456789"},
           {"GH", {{"value", "ghp_0123456789"}, {"hosts", {"api.github.com"}}}},
           {"PLAIN", {{"value", "abcdefgh12"}, {"hosts", {"x.org"}}, {"mode", "env"}}}},
      "secrets");
  ASSERT_TRUE(ok.isOk()) << ok.status().toString();
  ASSERT_EQ(ok->size(), 3u);
  for (const auto& s : *ok) {
    if (s.name == "NPM_TOKEN") EXPECT_EQ(s.mode, Mode::kEnv);
    if (s.name == "GH") EXPECT_EQ(s.mode, Mode::kProxy);
    if (s.name == "PLAIN") EXPECT_EQ(s.mode, Mode::kEnv);
  }
  const std::vector<json> bad = {
      json{{"KILN_X", "0123456789"}},
      json{{"1BAD", "0123456789"}},
      json{{"SHORT", "abc"}},
      json{{"P", {{"value", "0123456789"}, {"mode", "proxy"}}}},  // proxy without hosts
      json{{"P", {{"value", "0123456789"}, {"hosts", {"bad host!"}}}}},
      json{{"P", {{"value", "0123456789"}, {"extra", 1}}}},
      json::array(),
  };
  for (const auto& b : bad) {
    auto r = parseSecrets(b, "secrets");
    EXPECT_EQ(r.status().code(), Code::kInvalidArgument) << b.dump();
    EXPECT_EQ(r.status().message().find("0123456789"), std::string::npos);
  }
}

TEST(SecretRequestTest, SealedSecretsOpenBackAndDescribeWithoutValues) {
  auto box = SecretBox::fromKey(std::string(32, 'k'));
  Secret s{"GH", "ghp_abcdefgh", Mode::kProxy, {"api.github.com"}};
  json stored = sealAll({seal(s, **box)});
  EXPECT_EQ(stored.dump().find("ghp_abcdefgh"), std::string::npos);
  auto opened = openAll(stored, **box);
  ASSERT_TRUE(opened.isOk());
  EXPECT_EQ((*opened)[0].value, "ghp_abcdefgh");
  EXPECT_EQ((*opened)[0].hosts, s.hosts);
  EXPECT_EQ(readSealed(stored)->at(0).describe(),
            (json{{"name", "GH"}, {"mode", "proxy"}, {"hosts", {"api.github.com"}}}));
  EXPECT_EQ(placeholder("job-1", "GH"), placeholder("job-1", "GH"));
  EXPECT_NE(placeholder("job-1", "GH"), placeholder("job-2", "GH"));
}

TEST(RedactionTest, EveryOccurrenceInTextAndJsonLongestFirst) {
  Redactions r(
      {{"A", "secret-value-1", Mode::kEnv, {}}, {"B", "xsecret-value-1x", Mode::kEnv, {}}});
  std::string t = "a secret-value-1 b xsecret-value-1x secret-value-1secret-value-1";
  r.apply(t);
  EXPECT_EQ(t, "a [redacted:A] b [redacted:B] [redacted:A][redacted:A]");
  json j = {{"k", "secret-value-1"}, {"arr", {"x secret-value-1", 3}}, {"secret-value-1", true}};
  r.apply(j);
  EXPECT_TRUE(j.contains("[redacted:A]")) << j.dump();  // keys too
  EXPECT_EQ(j["k"], "[redacted:A]");
  EXPECT_EQ(j["arr"][0], "x [redacted:A]");
}

// What the real tools make of `text`: `printf %s TEXT | CMD`.
std::string encoded(const std::string& text, const std::string& cmd) {
  std::string out;
  EXPECT_EQ(
      kiln::testing::shell("printf %s " + kiln::testing::shellQuote(text) + " | " + cmd, &out), 0);
  while (!out.empty() && out.back() == '\n') out.pop_back();
  return out;
}

TEST(RedactionTest, HexAndBase64FormsAtAnyAlignmentAreRedacted) {
  const std::string v = "ghp_S3cr3tT0k3n+/~value";
  Redactions r({{"GH", v, Mode::kEnv, {}}});
  // Before and after the value: bytes that shift it within base64's 3-byte groups, and a
  // newline as `echo $V | base64` adds.
  for (const std::string before : {"", "a", "ab", "abc"}) {
    for (const std::string after : {"", "\n", "xy"}) {
      for (const char* cmd :
           {"base64 -w0", "basenc --base64url -w0", "od -An -tx1 -v | tr -d ' \n'",
            "od -An -tx1 -v | tr -d ' \n' | tr a-f A-F"}) {
        const std::string enc = encoded(before + v + after, cmd);
        ASSERT_FALSE(enc.empty()) << cmd;
        std::string t = "out: " + enc + " end";
        r.apply(t);
        EXPECT_NE(t.find("[redacted:GH]"), std::string::npos)
            << cmd << " of '" << before << "'+v+'" << after << "': " << t;
        // At most two digits of each end stay: a few bits of the first and last bytes.
        EXPECT_LE(t.size(), std::string("out:  end[redacted:GH]").size() + 8 +
                                (before.size() + after.size()) * 2 + 4)
            << cmd << ": " << t;
      }
    }
  }
}

TEST(RedactionTest, TheEndOfAChunkThatBeginsAValueIsHeldBack) {
  Redactions r({{"K", "secret-value-1", Mode::kEnv, {}}});
  EXPECT_EQ(r.partialAtEnd("token=secret-va"), 9u);
  EXPECT_EQ(r.partialAtEnd("token=s"), 1u);
  EXPECT_EQ(r.partialAtEnd("token=secret-value-1"), 0u) << "whole: apply() redacts it";
  EXPECT_EQ(r.partialAtEnd("token=x"), 0u);
  EXPECT_EQ(r.partialAtEnd(""), 0u);
  EXPECT_EQ(Redactions().partialAtEnd("secret-va"), 0u);
}

TEST(RedactionTest, ShortValuesAndOrdinaryTextAreLeftAlone) {
  Redactions shortOne({{"PIN", "1234567", Mode::kEnv, {}}});
  std::string hex = encoded("1234567", "od -An -tx1 -v | tr -d ' \n'");
  std::string t = "pin 1234567, hex " + hex + ", base64 " + encoded("1234567", "base64 -w0");
  shortOne.apply(t);
  EXPECT_EQ(t, "pin [redacted:PIN], hex " + hex + ", base64 MTIzNDU2Nw==")
      << "values under 8 bytes: only as they are";
  Redactions r({{"K", "ghp_S3cr3tT0k3n_value", Mode::kEnv, {}}});
  std::string plain = "diff --git a/x b/x\nindex 0123abc..4567def 100644\nSGVsbG8gd29ybGQ=\n";
  std::string copy = plain;
  r.apply(copy);
  EXPECT_EQ(copy, plain);
}

}  // namespace
}  // namespace kiln::secrets
