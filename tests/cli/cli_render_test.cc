#include <gtest/gtest.h>

#include "cli/render.h"

namespace kiln::cli {
namespace {

RenderStyle plain(const std::string& jobId = "job-1") {
  RenderStyle s;
  s.jobId = jobId;
  return s;
}

TEST(CliRenderTest, StepShowsNumberToolCommandThoughtAndPreview) {
  json step = {{"stepNumber", 3},
               {"phase", "acting"},
               {"plannerThought", "look around\nfirst"},
               {"toolCalled", "bash"},
               {"toolArguments", {{"command", "ls -la"}}},
               {"toolOutput", "a\nb\nc\nd\ne\n"},
               {"usd", 0}};
  EXPECT_EQ(renderStep(step, plain()),
            "[step 3] bash ls -la\n"
            "  » look around first\n"
            "  │ a\n"
            "  │ b\n"
            "  │ c\n"
            "  │ … 2 more lines\n");
}

TEST(CliRenderTest, StepWithCostAndNoOutput) {
  json step = {{"stepNumber", 1},
               {"toolCalled", "write_file"},
               {"toolArguments", {{"path", "AGENT_TASK.md"}}},
               {"usd", 0.0125}};
  EXPECT_EQ(renderStep(step, plain()), "[step 1] write_file path=AGENT_TASK.md ($0.0125)\n");
}

TEST(CliRenderTest, InstructionsStepNamesItsFilesNotTheirText) {
  json step = {{"stepNumber", 1},
               {"phase", "instructions"},
               {"toolArguments", {{"files", {"AGENTS.md", "src/AGENTS.md"}}}},
               {"toolOutput", "[Repository instructions]\n--- AGENTS.md ---\nRun make test.\n"}};
  EXPECT_EQ(renderStep(step, plain()), "[step 1] instructions AGENTS.md src/AGENTS.md\n");
}

TEST(CliRenderTest, RefusalIsMarkedAndItsTextShown) {
  json step = {{"stepNumber", 2},
               {"phase", "planning"},
               {"plannerThought", "I can't help with that."},
               {"refusal", true},
               {"toolOutput", ""}};
  EXPECT_EQ(renderStep(step, plain()),
            "[step 2] refused\n"
            "  » I can't help with that.\n");
}

TEST(CliRenderTest, VerifyEventSaysPassedOrTheExitCodeAndLastLine) {
  EXPECT_EQ(
      renderEvent("verify", {{"passed", true}, {"exitCode", 0}, {"outputTail", "ok\n"}}, plain()),
      "✓ verify passed\n");
  EXPECT_EQ(
      renderEvent("verify", {{"passed", false}, {"exitCode", 1}, {"outputTail", "a\n1 failed\n"}},
                  plain()),
      "✗ verify failed (exit code 1): 1 failed\n");
}

TEST(CliRenderTest, SummarizeArgsTruncatesAndFlattens) {
  EXPECT_EQ(summarizeArgs(json{{"command", "echo a\necho b"}}, 80), "echo a echo b");
  EXPECT_EQ(summarizeArgs(json{{"path", "x"}, {"n", 2}}, 80), "n=2 path=x");
  EXPECT_EQ(summarizeArgs(json{{"command", std::string(50, 'x')}}, 10), "xxxxxxxxx…");
  EXPECT_EQ(summarizeArgs(json(), 10), "");
  EXPECT_EQ(summarizeArgs(json{{"content", "# Task\nmore"}, {"path", "A.md"}}, 80),
            "content=# Task… path=A.md");
}

TEST(CliRenderTest, TruncateNeverSplitsUtf8) {
  std::string s = "ab\xC3\xA9\xC3\xA9\xC3\xA9";  // "abééé"
  std::string t = truncate(s, 4);
  EXPECT_EQ(t, "ab…");
}

TEST(CliRenderTest, StatusTerminalQuestionErrorDone) {
  EXPECT_EQ(renderEvent("status", {{"status", "RUNNING"}}, plain()), "● RUNNING\n");
  EXPECT_EQ(renderEvent("terminal", {{"stream", "stdout"}, {"data", "hi\nthere\n"}}, plain()),
            "    hi\n    there\n");
  std::string q = renderEvent("question", {{"question", "Which DB?"}, {"kind", "ask"}}, plain());
  EXPECT_NE(q.find("Which DB?"), std::string::npos);
  EXPECT_NE(q.find("kiln reply job-1 "), std::string::npos);
  std::string gate = renderEvent("question",
                                 {{"question", "Approve committing?"},
                                  {"kind", "approval"},
                                  {"action", "commit"},
                                  {"summary", "fixed add()"}},
                                 plain());
  EXPECT_NE(gate.find("approval needed: Approve committing?"), std::string::npos) << gate;
  EXPECT_NE(gate.find("fixed add()"), std::string::npos);
  EXPECT_NE(gate.find("kiln approve job-1"), std::string::npos);
  EXPECT_EQ(renderEvent("error", {{"code", "budget"}, {"message", "max steps"}}, plain()),
            "error: budget: max steps\n");
  EXPECT_EQ(renderEvent("done", {{"status", "COMPLETED"}}, plain()), "done: COMPLETED\n");
  EXPECT_EQ(
      renderEvent("done", {{"status", "FAILED"}, {"error", {{"code", "x"}, {"message", "boom"}}}},
                  plain()),
      "done: FAILED (x: boom)\n");
  EXPECT_EQ(
      renderEvent("diff", {{"diff", "diff --git a/A b/A\n+x\ndiff --git a/B b/B\n"}}, plain()),
      "  workspace changed (2 files)\n");
  EXPECT_EQ(renderEvent("diff", {{"diff", ""}}, plain()), "");
}

TEST(CliRenderTest, ColorOnlyWhenAsked) {
  RenderStyle color = plain();
  color.color = true;
  EXPECT_NE(renderEvent("status", {{"status", "FAILED"}}, color).find("\033["), std::string::npos);
  EXPECT_EQ(renderEvent("status", {{"status", "FAILED"}}, plain()).find("\033["),
            std::string::npos);
}

TEST(CliRenderTest, JobsTableAlignsColumns) {
  json jobs = json::array({{{"jobId", "j1"},
                            {"status", "RUNNING"},
                            {"steps", 4},
                            {"tokenSpendUsd", 0.5},
                            {"createdAt", 1000},
                            {"repoUrl", "/r"},
                            {"taskDesc", "do\nit"}},
                           {{"jobId", "job-22"},
                            {"status", "completed"},
                            {"steps", 12},
                            {"createdAt", 0},
                            {"repoUrl", "https://x/y"},
                            {"taskDesc", "t"}}});
  EXPECT_EQ(renderJobsTable(jobs, 1000 + 125'000),
            "ID      STATUS     STEPS  USD     AGE  REPO         TASK\n"
            "j1      RUNNING    4      0.5000  2m   /r           do it\n"
            "job-22  COMPLETED  12     0.0000  -    https://x/y  t\n");
}

TEST(CliRenderTest, JobsTableReadsApiTimestampsAndNulls) {
  json jobs = json::array({{{"jobId", "j"},
                            {"status", "QUEUED"},
                            {"steps", 0},
                            {"tokenSpendUsd", nullptr},
                            {"createdAt", "1970-01-01T00:00:01.500Z"},
                            {"repoUrl", "/r"},
                            {"taskDesc", "t"}}});
  std::string table = renderJobsTable(jobs, 1500 + 7200 * 1000);
  EXPECT_NE(table.find("  2h  "), std::string::npos) << table;
  EXPECT_EQ(parseTimeMs(json("2026-11-23T10:50:59.123Z")) % 1000, 123);
  EXPECT_EQ(parseTimeMs(json("garbage")), 0);
  EXPECT_EQ(parseTimeMs(json(42)), 42);
}

TEST(CliRenderTest, AgeAndExitCodes) {
  EXPECT_EQ(formatAge(5'400), "5s");
  EXPECT_EQ(formatAge(3 * 3600 * 1000), "3h");
  EXPECT_EQ(formatAge(49 * 3600 * 1000), "2d");
  EXPECT_EQ(exitCodeForStatus("COMPLETED"), 0);
  EXPECT_EQ(exitCodeForStatus("FAILED"), 2);
  EXPECT_EQ(exitCodeForStatus("stopped"), 3);
  EXPECT_EQ(exitCodeForStatus(""), 1);
  EXPECT_EQ(exitCodeForStatus("RUNNING"), 1);
}

}  // namespace
}  // namespace kiln::cli
