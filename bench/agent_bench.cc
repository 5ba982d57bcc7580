// agent_bench: kiln's orchestration overhead per agent step, and agent steps per second on one
// node, against the fake LLM server (tests/support/fake_llm_server.py, OpenAI streaming).
//
// Overhead per step = model reply received → next model request started, minus tool run time:
// what kiln adds around a step (checks, in-flight mark, workspace diff, the step transaction,
// events). kiln measures it itself (agent/step_timings.h, exported on /metrics); the bench runs
// real `kiln serve` jobs and reads it back. Side by side in the same run: a no-op orchestrator —
// the same OpenAI provider calling the same fake server back to back with no tools, no store —
// whose step rate is the ceiling kiln's step rate is compared with.
//
// Usage: agent_bench [steps per job = 200] [concurrent jobs = 4]   (root: jobs run in sandboxes)
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>

#include "llm/llm.h"
#include "support/fake_llm.h"
#include "support/http_client.h"
#include "support/kiln_process.h"
#include "support/stopwatch.h"
#include "support/temp_dir.h"

namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;
using namespace kiln;
using namespace kiln::testing;
using namespace std::chrono_literals;

// A cheap read-only step; the argument `n` makes each call distinct so the loop detector stays
// quiet, as it would for a real agent exploring.
json listTurn(int n) {
  return {{"tool_calls",
           json::array({{{"name", "list_dir"}, {"arguments", {{"path", "."}, {"n", n}}}}})},
          {"usage", {{"in", 1000}, {"out", 20}}}};
}
// A step that changes the workspace: kiln diffs it after the call.
json writeTurn(int n) {
  return {{"tool_calls",
           json::array({{{"name", "write_file"},
                         {"arguments",
                          {{"path", "f" + std::to_string(n % 5) + ".txt"},
                           {"content", "v" + std::to_string(n) + "\n"}}}}})},
          {"usage", {{"in", 1000}, {"out", 20}}}};
}

// A call of an MCP server's tool (tests/support/fake_mcp_server.py, started in the sandbox):
// kiln relays it over the sandbox's stdio channel and diffs the workspace after it.
json mcpTurn(int n) {
  return {{"tool_calls", json::array({{{"name", "mcp__py__echo"}, {"arguments", {{"x", n}}}}})},
          {"usage", {{"in", 1000}, {"out", 20}}}};
}

// The no-op orchestrator: provider.next() back to back, `steps` times. Returns steps/s.
double baselineStepsPerSecond(const TempDir& dir, int steps) {
  json script = json::array();
  for (int i = 0; i < steps; ++i) script.push_back(listTurn(i));
  FakeLlm llm(script, dir.path());
  asio::io_context ioc;
  llm::LlmConfig cfg;
  cfg.apiKey = "sk-bench";
  cfg.baseUrl = llm.url() + "/v1";
  cfg.model = "gpt-4o";
  auto provider = llm::makeOpenAiProvider(cfg, ioc.get_executor());
  double rate = 0;
  auto loop = [&]() -> Task<void> {
    agent::TaskInfo info;
    info.taskDesc = "bench";
    std::vector<agent::Message> ctx;
    agent::Message sys;
    sys.role = "user";
    sys.content = "bench";
    ctx.push_back(sys);
    auto t0 = Clock::now();
    for (int i = 0; i < steps; ++i) {
      auto turn = co_await provider->next(info, ctx);
      if (!turn.isOk()) {
        std::fprintf(stderr, "baseline: %s\n", turn.status().toString().c_str());
        co_return;
      }
      // Grow the context as an agent would: the call and a short result.
      agent::Message call;
      call.role = "assistant";
      call.toolCalls = turn->calls;
      if (!call.toolCalls.empty()) call.toolCalls[0].id = "c" + std::to_string(i);
      ctx.push_back(call);
      agent::Message result;
      result.role = "tool";
      result.toolCallId = "c" + std::to_string(i);
      result.toolName = "list_dir";
      result.content = "README.md\nhello.py\n";
      ctx.push_back(result);
    }
    rate = steps / secondsSince(t0);
  };
  asio::co_spawn(ioc, loop(), asio::detached);
  ioc.run();
  return rate;
}

struct KilnRun {
  double stepsPerSecond = 0;
  double p50us = 0, p90us = 0, p99us = 0;
  uint64_t samples = 0;
  int completed = 0;
};

double metric(const std::string& text, const std::string& name) {
  size_t p = text.find("\n" + name + " ");
  if (p == std::string::npos) return 0;
  return std::atof(text.c_str() + p + name.size() + 2);
}

// `jobs` concurrent kiln jobs of `steps` steps each (script entries from `turnOf`).
KilnRun runKiln(const TempDir& dir, const std::string& tag, int jobs, int steps,
                json (*turnOf)(int), const json& extraBody = json::object()) {
  json script = json::array();
  for (int i = 0; i < jobs * steps; ++i) script.push_back(turnOf(i));
  FakeLlm llm(script, dir.path());
  KilnProcess kiln(dir.file("data-" + tag),
                   {"--max-jobs", std::to_string(jobs)},
                   {{"OPENAI_BASE_URL", llm.url() + "/v1"}, {"OPENAI_API_KEY", "sk-bench"}});
  HttpClient client("127.0.0.1", kiln.port());
  client.setBearer(kiln.token());
  std::vector<std::string> ids;
  auto t0 = Clock::now();
  for (int j = 0; j < jobs; ++j) {
    json body = {{"repoUrl", dir.file("repo")},
                 {"taskDesc", "bench"},
                 {"agent", "openai"},
                 {"model", "gpt-4o"},
                 {"limits", {{"maxSteps", steps}}}};
    body.update(extraBody);
    auto r = client.postJson("/api/v1/jobs", body);
    if (!r.isOk() || r->status != 201) {
      std::fprintf(stderr, "create job failed\n");
      std::exit(1);
    }
    ids.push_back(r->json().value("jobId", ""));
  }
  KilnRun out;
  int stepsDone = 0;
  for (const auto& id : ids) {
    for (;;) {
      auto r = client.get("/api/v1/jobs/" + id);
      json job = r.isOk() ? r->json() : json::object();
      std::string st = job.value("status", "");
      if (st == "COMPLETED" || st == "FAILED" || st == "STOPPED") {
        // Each job ends at its step cap (budget_exceeded) after `steps` steps.
        if (job["error"].is_object() && job["error"].value("code", "") != "budget_exceeded") {
          std::fprintf(stderr, "job %s: %s\n", id.c_str(), job["error"].dump().c_str());
        }
        stepsDone += job.value("steps", 0);
        ++out.completed;
        break;
      }
      std::this_thread::sleep_for(10ms);
    }
  }
  double wall = secondsSince(t0);
  out.stepsPerSecond = stepsDone / wall;
  auto m = client.get("/metrics");
  std::string text = m.isOk() ? "\n" + m->body : "";
  out.p50us = metric(text, "kiln_agent_step_overhead_seconds{quantile=\"0.5\"}") * 1e6;
  out.p90us = metric(text, "kiln_agent_step_overhead_seconds{quantile=\"0.9\"}") * 1e6;
  out.p99us = metric(text, "kiln_agent_step_overhead_seconds{quantile=\"0.99\"}") * 1e6;
  out.samples = static_cast<uint64_t>(metric(text, "kiln_agent_step_overhead_seconds_count"));
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  int steps = argc > 1 ? std::atoi(argv[1]) : 200;
  int jobs = argc > 2 ? std::atoi(argv[2]) : 4;
  if (steps < 10 || jobs < 1) {
    std::fprintf(stderr, "usage: agent_bench [steps per job >= 10] [concurrent jobs >= 1]\n");
    return 2;
  }
  if (geteuid() != 0) {
    std::printf("agent_bench: skipped (needs root: jobs run in namespace sandboxes)\n");
    return 0;
  }
  TempDir dir;
  makeSampleRepo(dir.file("repo"));
  if (shell("cd " + dir.file("repo") + " && cp " + fakeMcpServerPath() +
            " mcp_server.py && git add -A && git -c user.name=b -c user.email=b@b commit -qm mcp") !=
      0) {
    std::fprintf(stderr, "agent_bench: could not add the MCP server to the repo\n");
    return 1;
  }
  const json py = {{"name", "py"}, {"command", {"python3", "-u", "mcp_server.py"}}};

  double baseline = baselineStepsPerSecond(dir, steps);
  KilnRun read = runKiln(dir, "read", 1, steps, listTurn);
  KilnRun write = runKiln(dir, "write", 1, steps, writeTurn);
  KilnRun many = runKiln(dir, "many", jobs, steps, listTurn);
  KilnRun mcp = runKiln(dir, "mcp", 1, steps, mcpTurn, {{"mcpServers", json::array({py})}});

  std::printf("agent_bench: %d steps per job, fake OpenAI server (streaming)\n\n", steps);
  std::printf("kiln overhead per step (reply received -> next request, minus tool time)\n");
  std::printf("%-34s %10s %10s %10s %8s\n", "", "p50 us", "p90 us", "p99 us", "steps");
  std::printf("%-34s %10.0f %10.0f %10.0f %8llu\n", "read-only steps (list_dir)", read.p50us,
              read.p90us, read.p99us, static_cast<unsigned long long>(read.samples));
  std::printf("%-34s %10.0f %10.0f %10.0f %8llu\n", "changing steps (write_file + diff)",
              write.p50us, write.p90us, write.p99us,
              static_cast<unsigned long long>(write.samples));
  std::printf("%-34s %10.0f %10.0f %10.0f %8llu\n", "MCP tool steps (stdio server)", mcp.p50us,
              mcp.p90us, mcp.p99us, static_cast<unsigned long long>(mcp.samples));
  std::printf("\nsteps per second\n");
  std::printf("%-34s %10.1f\n", "no-op orchestrator (baseline)", baseline);
  std::printf("%-34s %10.1f   (%.2fx baseline)\n", "kiln, 1 job, read-only", read.stepsPerSecond,
              read.stepsPerSecond / baseline);
  std::printf("%-34s %10.1f   (%.2fx baseline)\n", "kiln, 1 job, changing",
              write.stepsPerSecond, write.stepsPerSecond / baseline);
  std::printf("%-34s %10.1f   (%.2fx baseline, %.2fx list_dir)\n", "kiln, 1 job, MCP tool",
              mcp.stepsPerSecond, mcp.stepsPerSecond / baseline,
              mcp.stepsPerSecond / read.stepsPerSecond);
  char label[64];
  std::snprintf(label, sizeof label, "kiln, %d jobs at once, read-only", jobs);
  std::printf("%-34s %10.1f   (%.2fx baseline)\n", label, many.stepsPerSecond,
              many.stepsPerSecond / baseline);
  std::printf("\ntarget: p50 overhead < 1000 us: %s\n", read.p50us < 1000 ? "met" : "NOT met");
  return 0;
}
