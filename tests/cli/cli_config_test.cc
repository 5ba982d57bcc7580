#include <gtest/gtest.h>

#include <map>

#include "cli/config.h"
#include "cli/job_request.h"

namespace kiln::cli {
namespace {

EnvLookup fakeEnv(std::map<std::string, std::string> vars) {
  return [vars](const std::string& name) -> std::optional<std::string> {
    auto it = vars.find(name);
    if (it == vars.end()) return std::nullopt;
    return it->second;
  };
}

std::string defaultDir() { return "/default/data"; }

TEST(CliServeOptionsTest, DefaultsWhenNothingIsGiven) {
  auto opts = resolveServeOptions({}, fakeEnv({}));
  ASSERT_TRUE(opts.isOk()) << opts.status().toString();
  EXPECT_EQ(opts->listen, "127.0.0.1:8080");
  EXPECT_EQ(opts->dataDir, "");  // left for node::resolveDefaults
  EXPECT_EQ(opts->maxJobs, node::NodeOptions{}.maxJobs);
}

TEST(CliServeOptionsTest, EnvOverridesDefaults) {
  auto opts = resolveServeOptions({}, fakeEnv({{"KILN_LISTEN", "0.0.0.0:9000"},
                                               {"KILN_DATA_DIR", "/env/data"},
                                               {"KILN_STORE", "sqlite:/env/k.db"},
                                               {"KILN_MAX_JOBS", "7"}}));
  ASSERT_TRUE(opts.isOk()) << opts.status().toString();
  EXPECT_EQ(opts->listen, "0.0.0.0:9000");
  EXPECT_EQ(opts->dataDir, "/env/data");
  EXPECT_EQ(opts->storeUrl, "sqlite:/env/k.db");
  EXPECT_EQ(opts->maxJobs, 7);
}

TEST(CliServeOptionsTest, FlagsOverrideEnv) {
  ServeFlags flags;
  flags.listen = "127.0.0.1:0";
  flags.dataDir = "/flag/data";
  flags.storeUrl = "sqlite:/flag/k.db";
  flags.maxJobs = 3;
  flags.nodeId = "n1";
  auto opts = resolveServeOptions(flags, fakeEnv({{"KILN_LISTEN", "0.0.0.0:9000"},
                                                  {"KILN_DATA_DIR", "/env/data"},
                                                  {"KILN_STORE", "sqlite:/env/k.db"},
                                                  {"KILN_MAX_JOBS", "7"}}));
  ASSERT_TRUE(opts.isOk()) << opts.status().toString();
  EXPECT_EQ(opts->listen, "127.0.0.1:0");
  EXPECT_EQ(opts->dataDir, "/flag/data");
  EXPECT_EQ(opts->storeUrl, "sqlite:/flag/k.db");
  EXPECT_EQ(opts->maxJobs, 3);
  EXPECT_EQ(opts->nodeId, "n1");
}

TEST(CliServeOptionsTest, AllowLocalReposAndMetricsListenFromFlagsOrEnv) {
  auto none = resolveServeOptions({}, fakeEnv({}));
  ASSERT_TRUE(none.isOk());
  EXPECT_TRUE(none->allowLocalRepos.empty());
  EXPECT_EQ(none->metricsListen, "");

  auto env = resolveServeOptions({}, fakeEnv({{"KILN_ALLOW_LOCAL_REPOS", "/a::/b/c"},
                                              {"KILN_METRICS_LISTEN", "127.0.0.1:9100"}}));
  ASSERT_TRUE(env.isOk()) << env.status().toString();
  EXPECT_EQ(env->allowLocalRepos, (std::vector<std::string>{"/a", "/b/c"}));
  EXPECT_EQ(env->metricsListen, "127.0.0.1:9100");

  ServeFlags flags;
  flags.allowLocalRepos = {"/flag"};
  flags.metricsListen = "0.0.0.0:9200";
  auto flagged = resolveServeOptions(flags, fakeEnv({{"KILN_ALLOW_LOCAL_REPOS", "/a"}}));
  ASSERT_TRUE(flagged.isOk());
  EXPECT_EQ(flagged->allowLocalRepos, std::vector<std::string>{"/flag"});
  EXPECT_EQ(flagged->metricsListen, "0.0.0.0:9200");

  EXPECT_FALSE(resolveServeOptions({}, fakeEnv({{"KILN_ALLOW_LOCAL_REPOS", "rel/dir"}})).isOk());
  EXPECT_FALSE(resolveServeOptions({}, fakeEnv({{"KILN_METRICS_LISTEN", "9100"}})).isOk());
}

TEST(CliServeOptionsTest, RejectsBadMaxJobsAndListen) {
  EXPECT_EQ(resolveServeOptions({}, fakeEnv({{"KILN_MAX_JOBS", "lots"}})).status().code(),
            Code::kInvalidArgument);
  EXPECT_EQ(resolveServeOptions({}, fakeEnv({{"KILN_MAX_JOBS", "0"}})).status().code(),
            Code::kInvalidArgument);
  ServeFlags flags;
  flags.listen = "8080";
  EXPECT_EQ(resolveServeOptions(flags, fakeEnv({})).status().code(), Code::kInvalidArgument);
}

TEST(CliServeOptionsTest, DefaultLimitsFromFlagOrEnvAreValidated) {
  auto env = resolveServeOptions({}, fakeEnv({{"KILN_DEFAULT_LIMITS", R"({"maxSteps": 7})"}}));
  ASSERT_TRUE(env.isOk()) << env.status().toString();
  EXPECT_EQ(env->defaultLimits.maxSteps, 7);
  ServeFlags flags;
  flags.defaultLimits = R"({"maxUsd": 2.5, "contextTokens": 32000})";
  auto flag = resolveServeOptions(flags, fakeEnv({{"KILN_DEFAULT_LIMITS", R"({"maxSteps": 7})"}}));
  ASSERT_TRUE(flag.isOk()) << flag.status().toString();
  EXPECT_EQ(flag->defaultLimits.maxUsd, 2.5);
  EXPECT_FALSE(flag->defaultLimits.maxSteps.has_value());
  for (const char* bad : {"[1]", "{", R"({"maxStep": 3})", R"({"maxSteps": 2.5})",
                          R"({"maxUsd": -1})", R"({"maxSteps": "9"})"}) {
    auto r = resolveServeOptions({}, fakeEnv({{"KILN_DEFAULT_LIMITS", bad}}));
    EXPECT_EQ(r.status().code(), Code::kInvalidArgument) << bad;
  }
}

TEST(CliClientSettingsTest, FlagsBeatEnvBeatDefaults) {
  auto env = fakeEnv(
      {{"KILN_SERVER", "http://env:1"}, {"KILN_TOKEN", "envtok"}, {"KILN_DATA_DIR", "/env/data"}});
  ClientSettings fromEnv = resolveClientSettings({}, env, defaultDir);
  EXPECT_EQ(fromEnv.server, "http://env:1");
  EXPECT_EQ(fromEnv.token, "envtok");
  EXPECT_EQ(fromEnv.dataDir, "/env/data");

  ClientSettings fromFlags =
      resolveClientSettings({"http://flag:2/", "flagtok", "/flag/data"}, env, defaultDir);
  EXPECT_EQ(fromFlags.server, "http://flag:2");  // trailing slash dropped
  EXPECT_EQ(fromFlags.token, "flagtok");
  EXPECT_EQ(fromFlags.dataDir, "/flag/data");
  EXPECT_EQ(fromFlags.serverFile(), "/flag/data/server.json");
  EXPECT_EQ(fromFlags.tokenFile(), "/flag/data/admin.token");
}

TEST(CliClientSettingsTest, NothingSetMeansDiscoverInDefaultDataDir) {
  ClientSettings s = resolveClientSettings({}, fakeEnv({}), defaultDir);
  EXPECT_EQ(s.server, "");
  EXPECT_EQ(s.token, "");
  EXPECT_EQ(s.dataDir, "/default/data");
}

TEST(CliServerFileTest, ParsesUrlAndRejectsGarbage) {
  auto url = parseServerFile(R"({"url":"http://127.0.0.1:4321","pid":12})");
  ASSERT_TRUE(url.isOk());
  EXPECT_EQ(*url, "http://127.0.0.1:4321");
  EXPECT_FALSE(parseServerFile("not json").isOk());
  EXPECT_FALSE(parseServerFile(R"({"pid":12})").isOk());
}

TEST(CliConfigTest, TrimRightDropsTokenFileNewline) {
  EXPECT_EQ(trimRight("abc\n"), "abc");
  EXPECT_EQ(trimRight("abc \r\n"), "abc");
  EXPECT_EQ(trimRight(""), "");
}

TEST(CliJobRequestTest, BuildsBodyWithAbsoluteLocalRepo) {
  RunFlags flags;
  flags.repo = "myrepo";
  flags.task = {"add", "a", "README"};
  flags.maxSteps = 5;
  flags.maxUsd = 0.5;
  flags.agent = "mock";
  auto req = buildJobRequest(flags, "/home/u/src");
  ASSERT_TRUE(req.isOk()) << req.status().toString();
  EXPECT_EQ((*req)["repoUrl"], "/home/u/src/myrepo");
  EXPECT_EQ((*req)["taskDesc"], "add a README");
  EXPECT_EQ((*req)["agent"], "mock");
  EXPECT_EQ((*req)["limits"]["maxSteps"], 5);
  EXPECT_DOUBLE_EQ((*req)["limits"]["maxUsd"].get<double>(), 0.5);
  EXPECT_FALSE(req->contains("ref"));
  EXPECT_FALSE(req->contains("model"));
}

TEST(CliJobRequestTest, CommandMeansTheCliAgentAndPassEnvFillsCliEnv) {
  RunFlags flags;
  flags.repo = "/r";
  flags.task = {"fix", "it"};
  flags.command = "aider --yes-always --message";
  flags.passEnv = {"ANTHROPIC_API_KEY"};
  auto req = buildJobRequest(flags, "/");
  ASSERT_TRUE(req.isOk()) << req.status().toString();
  EXPECT_EQ((*req)["agent"], "cli");
  EXPECT_EQ((*req)["command"], "aider --yes-always --message");
  EXPECT_EQ((*req)["cli"]["env"], nlohmann::json::array({"ANTHROPIC_API_KEY"}));
  flags.agent = "claude";
  EXPECT_EQ((*buildJobRequest(flags, "/"))["agent"], "claude");
}

TEST(CliJobRequestTest, GatesPushAndAllowHosts) {
  RunFlags f;
  f.repo = "https://example.com/r.git";
  f.task = {"do", "it"};
  f.approvals = {"commit", "push"};
  f.push = true;
  f.allowHosts = {"pypi.org"};
  auto req = buildJobRequest(f, "/here");
  ASSERT_TRUE(req.isOk()) << req.status().toString();
  EXPECT_EQ((*req)["approvals"], nlohmann::json({"commit", "push"}));
  EXPECT_EQ((*req)["push"], true);
  EXPECT_EQ((*req)["sandbox"]["allowHosts"], nlohmann::json({"pypi.org"}));
  f.approvals = {"deploy"};
  EXPECT_EQ(buildJobRequest(f, "/here").status().code(), Code::kInvalidArgument);
}

TEST(CliJobRequestTest, McpFlagsAreServersWithTheirCommandsSplitAsAShellWould) {
  RunFlags f;
  f.repo = "https://example.com/r.git";
  f.task = {"t"};
  f.mcp = {"fs=mcp-server-filesystem /workspace", R"(py=python3 "my server.py" --name 'a b' c\ d)"};
  auto req = buildJobRequest(f, "/");
  ASSERT_TRUE(req.isOk()) << req.status().toString();
  EXPECT_EQ((*req)["mcpServers"],
            nlohmann::json::parse(R"([{"name": "fs", "command": ["mcp-server-filesystem",
            "/workspace"]}, {"name": "py", "command": ["python3", "my server.py", "--name", "a b",
            "c d"]}])"));
  for (const char* bad : {"no-equals", "=cmd", "x=", "x=  ", "x='open"}) {
    f.mcp = {bad};
    auto r = buildJobRequest(f, "/");
    ASSERT_FALSE(r.isOk()) << bad;
    EXPECT_NE(r.status().message().find("--mcp"), std::string::npos) << r.status().message();
  }
  EXPECT_EQ(*splitWords(R"(a "b \" c" '\' d)"),
            (std::vector<std::string>{"a", "b \" c", "\\", "d"}));
}

TEST(CliJobRequestTest, RejectsEmptyTaskOrRepo) {
  RunFlags flags;
  flags.repo = "/r";
  EXPECT_EQ(buildJobRequest(flags, "/").status().code(), Code::kInvalidArgument);
  flags.repo = "";
  flags.task = {"x"};
  EXPECT_EQ(buildJobRequest(flags, "/").status().code(), Code::kInvalidArgument);
}

TEST(CliJobRequestTest, RemoteUrlsPassThrough) {
  for (std::string url : {"https://github.com/a/b.git", "git@github.com:a/b.git",
                          "file:///srv/repo", "ssh://host/repo", "host:repo.git"}) {
    EXPECT_EQ(normalizeRepoArg(url, "/cwd"), url);
  }
  EXPECT_EQ(normalizeRepoArg("/abs/./repo", "/cwd"), "/abs/repo");
  EXPECT_EQ(normalizeRepoArg("../repo", "/cwd/sub"), "/cwd/repo");
}

}  // namespace
}  // namespace kiln::cli
