// Warm pools over every backend: a take hands over a started sandbox with the job's workspace
// attached and its limits applied, a taken sandbox is never handed out again, the pool refills
// (its refills run at the normal priority once ready), and its counters say what happened.
#include "sandbox/pool.h"

#include <signal.h>
#include <sys/resource.h>

#include <cerrno>
#include <sstream>

#include "sandbox_fixture.h"

namespace kiln::sandbox::testing {
namespace {

class WarmPoolTest : public BackendSandboxTest {
 protected:
  std::unique_ptr<WarmPool> newPool(int size) {
    return std::make_unique<WarmPool>(*backend_, WarmPoolConfig{GetParam(), "", size},
                                      uniqueId("wp") + "_");
  }
  // Takes (and keeps, for TearDown) a sandbox for a fresh workspace holding `marker`.
  Sandbox* take(WarmPool& pool, const std::string& marker, SandboxSpec spec = {}) {
    spec.workspaceDir = newWorkspace();
    std::ofstream(spec.workspaceDir + "/marker") << marker;
    auto got = pool.take(spec);
    EXPECT_TRUE(got.has_value()) << "a miss";
    if (!got) return nullptr;
    EXPECT_TRUE(got->isOk()) << got->status().toString();
    if (!got->isOk()) return nullptr;
    sandboxes_.push_back(std::move(*got).value());
    return sandboxes_.back().get();
  }
};

TEST_P(WarmPoolTest, TakesGetTheirOwnWorkspaceAndThePoolRefills) {
  auto pool = newPool(2);
  ASSERT_TRUE(pool->start().isOk());
  ASSERT_TRUE(pool->waitFull(120'000)) << (pool->lastError() ? pool->lastError()->toString() : "");
  EXPECT_EQ(pool->stats().idle, 2);
  Sandbox* a = take(*pool, "job-a");
  Sandbox* b = take(*pool, "job-b", {.memoryMb = 256});
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  EXPECT_NE(a->id(), b->id());
  EXPECT_EQ(run(a, "cat marker; id -u; pwd"), "job-a1000\n/workspace\n");
  EXPECT_EQ(run(b, "cat marker"), "job-b");
  // The job's limits came with the take.
  const std::string mem =
      readText("/sys/fs/cgroup/memory/kiln/" + b->id() + "/memory.limit_in_bytes");
  if (!mem.empty()) EXPECT_EQ(mem, std::to_string(256ll << 20) + "\n");
  // Writes reach the job's workspace on the host, and nothing of job a is in job b.
  run(a, "echo from-a > out.txt");
  EXPECT_EQ(readText(dirs_[0] + "/out.txt"), "from-a\n");
  EXPECT_EQ(run(b, "ls"), "marker\n");
  // Both were replaced: the pool fills up again with sandboxes never handed out.
  ASSERT_TRUE(pool->waitFull(120'000));
  Sandbox* c = take(*pool, "job-c");
  ASSERT_NE(c, nullptr);
  EXPECT_NE(c->id(), a->id());
  EXPECT_NE(c->id(), b->id());
  // c was started by the filler, at a lower priority: once ready it got the normal one back.
  errno = 0;
  const int nice = getpriority(PRIO_PROCESS, 0);
  ASSERT_EQ(errno, 0);
  EXPECT_EQ(run(c, "cut -d' ' -f19 /proc/self/stat"), std::to_string(nice) + "\n");
  WarmPoolStats stats = pool->stats();
  EXPECT_EQ(stats.hits, 3u);
  EXPECT_EQ(stats.misses, 0u);
  EXPECT_EQ(stats.size, 2);
}

TEST_P(WarmPoolTest, AnEmptyPoolIsAMissAndOnlyFittingSpecsTake) {
  auto pool = newPool(1);
  ASSERT_TRUE(pool->start().isOk());
  EXPECT_TRUE(pool->fits({.memoryMb = 512, .pids = 100}));
  EXPECT_FALSE(pool->fits({.network = "allowlist"}));
  EXPECT_FALSE(pool->fits({.rootInside = true}));
  EXPECT_FALSE(pool->fits({.image = "other"}));
  EXPECT_FALSE(pool->fits({.diskMb = 64}));
  ASSERT_NE(take(*pool, "first"), nullptr);
  // Right after the take the pool may not have refilled yet: a miss is counted, not waited for.
  auto second = pool->take({.workspaceDir = newWorkspace()});
  if (!second) {
    EXPECT_EQ(pool->stats().misses, 1u);
  } else {
    ASSERT_TRUE(second->isOk());
    sandboxes_.push_back(std::move(*second).value());
  }
  // A take whose attach fails (no such workspace) destroys that sandbox and says why.
  ASSERT_TRUE(pool->waitFull(120'000));
  auto bad = pool->take({.workspaceDir = "/nonexistent/ws"});
  ASSERT_TRUE(bad.has_value());
  EXPECT_EQ(bad->status().code(), Code::kInvalidArgument);
}

// A take makes no call into the sandbox, yet an idle sandbox that died in the pool is refused at
// the take (the caller then starts a cold one), not handed to a job.
TEST_P(WarmPoolTest, AnIdleSandboxThatDiedIsRefusedAtTheTake) {
  const std::string prefix = uniqueId("wd") + "_";
  WarmPool pool(*backend_, WarmPoolConfig{GetParam(), "", 1}, prefix);
  ASSERT_TRUE(pool.start().isOk());
  ASSERT_TRUE(pool.waitFull(120'000));
  // Everything in its cgroup dies (PID 1, or runsc with its gofer and sentry).
  auto killAll = [&] {
    int found = 0;
    for (const std::string root : {"/sys/fs/cgroup/pids/kiln/", "/sys/fs/cgroup/kiln/"}) {
      std::istringstream procs(readText(root + prefix + "1/cgroup.procs"));
      for (pid_t pid; procs >> pid; ++found) kill(pid, SIGKILL);
    }
    return found;
  };
  ASSERT_GT(killAll(), 0) << "no process found in the cgroup of " << prefix << "1";
  for (int i = 0; i < 200 && killAll() > 0; ++i) usleep(50'000);  // until they are gone
  auto got = pool.take({.workspaceDir = newWorkspace()});
  ASSERT_TRUE(got.has_value()) << "a miss";
  EXPECT_FALSE(got->isOk()) << "a dead sandbox was handed out";
}

TEST_P(WarmPoolTest, DestroyingThePoolDestroysItsIdleSandboxes) {
  const std::string before = std::to_string(sandboxStateEntries(state_).size());
  {
    auto pool = newPool(2);
    ASSERT_TRUE(pool->start().isOk());
    ASSERT_TRUE(pool->waitFull(120'000));
    EXPECT_FALSE(sandboxStateEntries(state_).empty());
  }
  EXPECT_TRUE(sandboxStateEntries(state_).empty()) << before;
  EXPECT_EQ(countMountsUnder(runDirFor(state_)), 0);
}

TEST(WarmPoolConfigTest, ParsesBackendImageAndSize) {
  auto c = parseWarmPool("gvisor=4");
  ASSERT_TRUE(c.isOk());
  EXPECT_EQ(c->backend, "gvisor");
  EXPECT_EQ(c->image, "");
  EXPECT_EQ(c->size, 4);
  c = parseWarmPool("namespace:debian=12");
  ASSERT_TRUE(c.isOk());
  EXPECT_EQ(c->image, "debian");
  EXPECT_EQ(c->size, 12);
  for (const char* bad : {"gvisor", "=3", "qemu=2", "gvisor=0", "gvisor=-1", "gvisor=x",
                          "gvisor=1001", "namespace:=2", "gvisor=99999999999"}) {
    EXPECT_EQ(parseWarmPool(bad).status().code(), Code::kInvalidArgument) << bad;
  }
}

INSTANTIATE_TEST_SUITE_P(Backends, WarmPoolTest, ::testing::ValuesIn(kBackends), backendTestName);

}  // namespace
}  // namespace kiln::sandbox::testing
