// The job options' one schema (api/request/job_spec.h): what the API, `--default-limits` and the
// runner's reading of stored JSON share.
#include "api/request/job_spec.h"

#include <gtest/gtest.h>

namespace kiln::api::request {
namespace {

using nlohmann::json;

TEST(JobSpecTest, LimitsParseWithTheirRangesAndNameTheField) {
  auto l = parseJobLimits(json{{"maxSteps", 7}, {"maxUsd", 0.5}});
  ASSERT_TRUE(l.isOk()) << l.status().toString();
  EXPECT_EQ(l->maxSteps, 7);
  EXPECT_EQ(l->maxUsd, 0.5);
  EXPECT_FALSE(l->maxTokens);
  EXPECT_EQ(l->steps(), 7);
  EXPECT_EQ(l->wallSeconds(), JobLimits::kDefaultMaxWallSeconds);
  EXPECT_EQ(l->toJson(), (json{{"maxSteps", 7}, {"maxUsd", 0.5}}));
  auto bad = parseJobLimits(json{{"maxSteps", "ten"}});
  EXPECT_EQ(bad.status().code(), Code::kInvalidArgument);
  EXPECT_NE(bad.status().message().find("limits.maxSteps"), std::string::npos);
  EXPECT_FALSE(parseJobLimits(json{{"maxSteps", 2.5}}).isOk());
  EXPECT_FALSE(parseJobLimits(json{{"maxUsd", -1}}).isOk());
  EXPECT_FALSE(parseJobLimits(json{{"bogus", 1}}).isOk());
  EXPECT_FALSE(parseJobLimits(json::array()).isOk());
  EXPECT_TRUE(parseJobLimits(json()).isOk());
}

TEST(JobSpecTest, McpServersReadBackAndBadOnesNameTheField) {
  const json servers = json::array(
      {{{"name", "fs"}, {"command", {"mcp-server-filesystem", "/workspace"}}},
       {{"name", "mem-2"}, {"command", {"node", "server.js"}}, {"env", {{"MEMORY", "/tmp/m"}}}}});
  auto spec = parseJobSpec(json{{"mcpServers", servers}});
  ASSERT_TRUE(spec.isOk()) << spec.status().toString();
  ASSERT_EQ(spec->mcpServers.size(), 2u);
  EXPECT_EQ(spec->mcpServers[1].env.at("MEMORY"), "/tmp/m");
  EXPECT_EQ(spec->toJson()["mcpServers"], servers);
  auto again = parseJobSpec(spec->toJson());
  ASSERT_TRUE(again.isOk());
  EXPECT_EQ(again->toJson(), spec->toJson());

  const std::pair<json, const char*> bad[] = {
      {json::object(), "mcpServers must be an array"},
      {json::array({{{"name", "Fs"}, {"command", {"x"}}}}), "mcpServers[0].name must be"},
      {json::array({{{"name", std::string(33, 'a')}, {"command", {"x"}}}}), ".name must be"},
      {json::array({{{"command", {"x"}}}}), "mcpServers[0].name must be"},
      {json::array({{{"name", "a"}, {"command", "x --y"}}}), "mcpServers[0].command must be"},
      {json::array({{{"name", "a"}, {"command", json::array()}}}), ".command must be"},
      {json::array({{{"name", "a"}, {"command", {""}}}}), ".command must be"},
      {json::array({{{"name", "a"}, {"command", {"x", 3}}}}), ".command must be"},
      {json::array({{{"name", "a"}, {"command", {"x"}}, {"env", {{"KILN_X", "1"}}}}}),
       "mcpServers[0].env: KILN_*"},
      {json::array({{{"name", "a"}, {"command", {"x"}}, {"cwd", "/"}}}), "cwd"},
      {json::array({{{"name", "a"}, {"command", {"x"}}}, {{"name", "a"}, {"command", {"y"}}}}),
       "the name 'a' is used twice"},
  };
  for (const auto& [value, message] : bad) {
    auto r = parseJobSpec(json{{"mcpServers", value}});
    ASSERT_FALSE(r.isOk()) << value.dump();
    EXPECT_NE(r.status().message().find(message), std::string::npos)
        << value.dump() << ": " << r.status().message();
  }
  json nine = json::array();
  for (int i = 0; i < 9; ++i)
    nine.push_back({{"name", "s" + std::to_string(i)}, {"command", {"x"}}});
  EXPECT_FALSE(parseJobSpec(json{{"mcpServers", nine}}).isOk());
}

TEST(JobSpecTest, DefaultsFillOnlyTheUnsetLimits) {
  JobLimits own;
  own.maxSteps = 3;
  JobLimits node;
  node.maxSteps = 100;
  node.maxUsd = 5;
  JobLimits l = own.withDefaults(node);
  EXPECT_EQ(l.maxSteps, 3);
  EXPECT_EQ(l.maxUsd, 5);
}

TEST(JobSpecTest, HalfACpuStaysHalfACpu) {
  auto spec = parseJobSpec(json{{"sandbox", {{"cpus", 0.5}, {"network", "egress"}}}});
  ASSERT_TRUE(spec.isOk()) << spec.status().toString();
  EXPECT_DOUBLE_EQ(spec->sandboxOrDefault().cpus, 0.5);
  EXPECT_EQ(spec->sandboxOrDefault().network, "allowlist");
  // The stored form reads back the same.
  auto again = parseJobSpec(spec->toJson());
  ASSERT_TRUE(again.isOk());
  EXPECT_DOUBLE_EQ(again->sandboxOrDefault().cpus, 0.5);
  EXPECT_FALSE(parseJobSpec(json{{"sandbox", {{"cpus", "half"}}}}).isOk());
  EXPECT_FALSE(parseJobSpec(json{{"sandbox", {{"cpus", 0}}}}).isOk());
}

TEST(JobSpecTest, ApprovalsAreAllOrNamedGates) {
  auto all = parseJobSpec(json{{"approvals", true}, {"push", true}});
  ASSERT_TRUE(all.isOk());
  EXPECT_TRUE(all->gates().covers("push"));
  EXPECT_TRUE(all->push);
  auto named = parseJobSpec(json{{"approvals", {"commit"}}});
  ASSERT_TRUE(named.isOk());
  EXPECT_TRUE(named->gates().covers("commit"));
  EXPECT_FALSE(named->gates().covers("push"));
  EXPECT_FALSE(parseJobSpec(json{{"approvals", {1, 2}}}).isOk());
  EXPECT_FALSE(parseJobSpec(json{{"push", "yes"}}).isOk());
}

TEST(JobSpecTest, ShellEnvAndCommandTimeoutReadBackFromTheStoredForm) {
  auto spec = parseJobSpec(
      json{{"sandbox", {{"shell", "login"}, {"env", {{"PATH", "/opt/x/bin:/bin"}, {"A", "b"}}}}}});
  ASSERT_TRUE(spec.isOk()) << spec.status().toString();
  auto again = parseJobSpec(spec->toJson());
  ASSERT_TRUE(again.isOk()) << again.status().toString();
  EXPECT_EQ(again->sandboxOrDefault().shell, "login");
  EXPECT_EQ(again->sandboxOrDefault().env.at("A"), "b");
  EXPECT_EQ(again->sandboxOrDefault().env.at("PATH"), "/opt/x/bin:/bin");
  EXPECT_FALSE(parseJobSpec(json{{"sandbox", {{"env", {{"PATH", "/bin/./x"}}}}}}).isOk());
  EXPECT_FALSE(parseJobSpec(json{{"sandbox", {{"env", {{"A=B", "c"}}}}}}).isOk());
  EXPECT_FALSE(parseJobSpec(json{{"sandbox", {{"env", {{"A", std::string("x\0y", 3)}}}}}}).isOk());
  auto l = parseJobLimits(json{{"commandTimeoutSeconds", 5}});
  ASSERT_TRUE(l.isOk());
  EXPECT_EQ(l->commandTimeout(), 5);
  EXPECT_EQ(JobLimits{}.commandTimeout(), JobLimits::kDefaultCommandTimeoutSeconds);
  JobLimits node;
  node.commandTimeoutSeconds = 9;
  EXPECT_EQ(JobLimits{}.withDefaults(node).commandTimeout(), 9);
  EXPECT_FALSE(parseJobLimits(json{{"commandTimeoutSeconds", 86401}}).isOk());
}

TEST(JobSpecTest, WorkdirAndUserReadBackAndHostileWorkdirsAreRefused) {
  auto spec = parseJobSpec(json{{"sandbox", {{"workdir", "/testbed"}, {"user", "root"}}}});
  ASSERT_TRUE(spec.isOk()) << spec.status().toString();
  auto again = parseJobSpec(spec->toJson());
  ASSERT_TRUE(again.isOk()) << again.status().toString();
  EXPECT_EQ(again->sandboxOrDefault().workdir, "/testbed");
  EXPECT_EQ(again->sandboxOrDefault().user, "root");
  auto plain = parseJobSpec(json{{"sandbox", json::object()}});
  ASSERT_TRUE(plain.isOk());
  EXPECT_EQ(plain->sandboxOrDefault().workdir, "/workspace");
  EXPECT_EQ(plain->sandboxOrDefault().user, "agent");
  EXPECT_FALSE(plain->toJson()["sandbox"].contains("workdir"));
  EXPECT_TRUE(parseJobSpec(json{{"sandbox", {{"workdir", "/src/my-repo.git"}}}}).isOk());
  for (const char* bad : {"", "/", "testbed", "/testbed/", "/a/../etc", "/a//b", "/./a", "/usr/src",
                          "/etc", "/proc/1", "/tmp/x", "/home/agent/r", "/root/r", "/a b",
                          "/a/b/c/d/e/f/g/h/i", "/x;rm"}) {
    auto r = parseJobSpec(json{{"sandbox", {{"workdir", bad}}}});
    EXPECT_FALSE(r.isOk()) << "workdir " << bad;
    if (!r.isOk()) EXPECT_NE(r.status().message().find("sandbox.workdir"), std::string::npos);
  }
  EXPECT_FALSE(parseJobSpec(json{{"sandbox", {{"workdir", 5}}}}).isOk());
  EXPECT_FALSE(parseJobSpec(json{{"sandbox", {{"user", "admin"}}}}).isOk());
  EXPECT_FALSE(parseJobSpec(json{{"sandbox", {{"user", 0}}}}).isOk());
}

TEST(JobSpecTest, VerifyHasACommandAndBoundedRetries) {
  auto spec = parseJobSpec(json{{"verify", {{"command", "pytest -q"}}}});
  ASSERT_TRUE(spec.isOk()) << spec.status().toString();
  ASSERT_TRUE(spec->verify);
  EXPECT_EQ(spec->verify->command, "pytest -q");
  EXPECT_TRUE(spec->verify->required);
  EXPECT_EQ(spec->verify->maxRetries, 2);
  auto again = parseJobSpec(spec->toJson());
  ASSERT_TRUE(again.isOk() && again->verify);
  EXPECT_EQ(again->verify->command, "pytest -q");
  auto optional = parseJobSpec(
      json{{"verify", {{"command", "make check"}, {"required", false}, {"maxRetries", 0}}}});
  ASSERT_TRUE(optional.isOk() && optional->verify);
  EXPECT_FALSE(optional->verify->required);
  EXPECT_EQ(optional->verify->maxRetries, 0);
  EXPECT_FALSE(parseJobSpec(json{{"verify", {{"command", "  "}}}}).isOk());
  EXPECT_FALSE(parseJobSpec(json{{"verify", {{"required", true}}}}).isOk());
  EXPECT_FALSE(parseJobSpec(json{{"verify", {{"command", "x"}, {"maxRetries", 11}}}}).isOk());
  EXPECT_FALSE(parseJobSpec(json{{"verify", {{"command", "x"}, {"bogus", 1}}}}).isOk());
  EXPECT_FALSE(parseJobSpec(json{{"verify", "pytest"}}).isOk());
}

}  // namespace
}  // namespace kiln::api::request
