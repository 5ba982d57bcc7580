// Several jobs' providers on one io_context with two threads, each on its own strand, sharing
// one server: the curl multi plumbing must stay on each provider's strand.
#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "llm/llm_test_util.h"
#include "support/fake_llm.h"
#include "support/temp_dir.h"

namespace kiln::llm {
namespace {

using nlohmann::json;
using namespace kiln::llm::testing;

constexpr int kJobs = 6;
constexpr int kTurns = 4;

json manyTurns() {
  json script = json::array();
  for (int i = 0; i < kJobs * kTurns; ++i) {
    script.push_back(json::parse(R"({"thought": "step", "tool_calls": [{"name": "bash",
        "arguments": {"command": "echo hi"}}], "usage": {"in": 10, "out": 2}})"));
  }
  return script;
}

Task<void> runJob(agent::Provider& provider, std::atomic<int>& ok) {
  agent::TaskInfo info;
  std::vector<agent::Message> ctx = startContext();
  for (int t = 0; t < kTurns; ++t) {
    auto turn = co_await provider.next(info, ctx);
    if (turn.isOk() && turn->calls.size() == 1 && turn->tokensIn == 10) ok++;
  }
}

TEST(LlmConcurrencyTest, ProvidersOnStrandsOfAMultiThreadedPool) {
  kiln::testing::TempDir dir;
  kiln::testing::FakeLlm server(manyTurns(), dir.path());
  asio::io_context io(2);
  std::vector<std::unique_ptr<agent::Provider>> providers;
  std::atomic<int> ok{0};
  for (int j = 0; j < kJobs; ++j) {
    auto strand = asio::make_strand(io);
    Api api = j % 2 ? Api::kAnthropic : Api::kOpenAi;
    providers.push_back(makeTestProvider(api, testConfig(api, server.url(), j % 3 != 0), strand));
    asio::co_spawn(strand, runJob(*providers.back(), ok), asio::detached);
  }
  std::thread other([&] { io.run(); });
  io.run();
  other.join();
  EXPECT_EQ(ok.load(), kJobs * kTurns);
  EXPECT_EQ(server.requests().size(), static_cast<size_t>(kJobs * kTurns));
}

}  // namespace
}  // namespace kiln::llm
