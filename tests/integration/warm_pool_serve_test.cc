// `kiln serve` with warm pools and a choice of sandbox backend: it refuses what it cannot run or
// fill, saying why; it reports its pools in /metrics; and a kill -9 with full pools leaves no
// runsc process, mount, cgroup or file of the old pools once the next kiln has started; and
// `kiln sandbox exec` on its data dir takes its sandbox from it.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <set>
#include <thread>

#include "sandbox/ns/layout.h"
#include "sandbox/sandbox_fixture.h"
#include "support/http_client.h"
#include "support/kiln_process.h"
#include "support/temp_dir.h"

namespace kiln::testing {
namespace {

using sandbox::testing::countCgroups;
using sandbox::testing::countMountsUnder;
using sandbox::testing::haveRunsc;
using sandbox::testing::readText;

std::string serveFails(const std::string& data, const std::string& args,
                       const std::string& env = "") {
  std::string out;
  int rc = shell(env + " timeout 120 " + std::string(KILN_BINARY) +
                     " serve --listen 127.0.0.1:0 --data-dir " + data + " " + args + " 2>&1",
                 &out);
  EXPECT_NE(rc, 0) << out;
  EXPECT_NE(rc, 124) << "serve did not refuse, it ran: " << out;
  return out;
}

TEST(ServeWarmPoolTest, RefusesWhatItCannotRunOrFillSayingWhy) {
  if (geteuid() != 0) GTEST_SKIP() << "sandboxes need root";
  TempDir data;
  std::string out = serveFails(data.path(), "--warm-pool namespace:no-such-image=1");
  EXPECT_NE(out.find("warm pool namespace:no-such-image=1 cannot be filled"), std::string::npos)
      << out;
  out = serveFails(data.path(), "--warm-pool qemu=1");
  EXPECT_NE(out.find("unknown backend \"qemu\""), std::string::npos) << out;
  out = serveFails(data.path(), "--warm-pool gvisor=0");
  EXPECT_NE(out.find("N must be 1..1000"), std::string::npos) << out;
  out = serveFails(data.path(), "--sandbox-backend microvm");
  EXPECT_NE(out.find("--sandbox-backend must be namespace or gvisor"), std::string::npos) << out;
  // A machine without runsc: the backend is named as unavailable, with the reason.
  out = serveFails(data.path(), "--sandbox-backend gvisor", "KILN_RUNSC=/nonexistent/runsc");
  EXPECT_NE(out.find("cannot run on this node"), std::string::npos) << out;
  EXPECT_NE(out.find("/nonexistent/runsc"), std::string::npos) << out;
  out = serveFails(data.path(), "--warm-pool gvisor=1", "KILN_RUNSC=/nonexistent/runsc");
  EXPECT_NE(out.find("warm pool gvisor=1"), std::string::npos) << out;
}

// The runsc processes (runsc, gofer, sentry) whose cgroup is one of a kiln pool's (kiln/w...).
std::set<std::string> pooledRunscCgroups() {
  std::set<std::string> ids;
  for (const auto& e : std::filesystem::directory_iterator("/proc")) {
    std::string name = e.path().filename();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    if (readText(e.path() / "cmdline").rfind("runsc", 0) != 0) continue;
    std::string cg = readText(e.path() / "cgroup");
    size_t at = cg.find("/kiln/w");
    if (at != std::string::npos) ids.insert(cg.substr(at + 6, cg.find('\n', at) - at - 6));
  }
  return ids;
}

// The sandbox ids with files in a run dir (<id>.log, <id>.gv, ...).
std::set<std::string> sandboxIdsIn(const std::string& runDir) {
  std::set<std::string> ids;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(runDir, ec)) {
    std::string name = e.path().filename();
    if (name[0] != '.') ids.insert(name.substr(0, name.find('.')));
  }
  return ids;
}

bool poolsFull(KilnProcess& kiln, const std::string& backend, int n) {
  HttpClient http("127.0.0.1", kiln.port());
  http.setBearer(kiln.token());
  auto r = http.get("/metrics");
  return r.isOk() && r->body.find("kiln_warm_pool_idle{backend=\"" + backend + "\",image=\"\"} " +
                                  std::to_string(n)) != std::string::npos;
}

void waitFull(KilnProcess& kiln, int n) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  while (!(poolsFull(kiln, "namespace", n) && poolsFull(kiln, "gvisor", n))) {
    ASSERT_LT(std::chrono::steady_clock::now(), deadline) << "pools did not fill:\n" << kiln.log();
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}

TEST(ServeWarmPoolTest, KillNineWithFullPoolsLeavesNothingOnceTheNextKilnStarts) {
  if (geteuid() != 0) GTEST_SKIP() << "sandboxes need root";
  if (!haveRunsc()) GTEST_SKIP() << "gvisor: runsc is not installed";
  TempDir data;
  const std::string runDir = sandbox::runDirFor(data.path() + "/sandboxes");
  KilnProcess kiln(data.path(), {"--warm-pool", "gvisor=2", "--warm-pool", "namespace=2"});
  ASSERT_NO_FATAL_FAILURE(waitFull(kiln, 2));
  HttpClient http("127.0.0.1", kiln.port());
  http.setBearer(kiln.token());
  auto metrics = http.get("/metrics");
  ASSERT_TRUE(metrics.isOk());
  for (const char* line : {"kiln_warm_pool_size{backend=\"gvisor\",image=\"\"} 2",
                           "kiln_warm_pool_size{backend=\"namespace\",image=\"\"} 2",
                           "kiln_warm_pool_hits_total{backend=\"gvisor\",image=\"\"} 0",
                           "kiln_warm_pool_misses_total{backend=\"namespace\",image=\"\"} 0"}) {
    EXPECT_NE(metrics->body.find(line), std::string::npos) << line << "\n" << metrics->body;
  }
  const std::set<std::string> before = sandboxIdsIn(runDir);
  ASSERT_EQ(before.size(), 4u);
  ASSERT_EQ(pooledRunscCgroups().size(), 2u);  // the gVisor pool's
  ASSERT_GE(countMountsUnder(runDir), 2);      // their workspace slots

  kiln.kill(SIGKILL);
  kiln.restart();
  ASSERT_NO_FATAL_FAILURE(waitFull(kiln, 2));  // refilled, with new sandboxes
  for (const std::string& id : before) {
    EXPECT_EQ(pooledRunscCgroups().count(id), 0u) << id;
    EXPECT_EQ(countCgroups(id), 0) << id;
    EXPECT_EQ(countMountsUnder(runDir + "/" + id), 0) << id;
    EXPECT_EQ(sandboxIdsIn(runDir).count(id), 0u) << id;
  }
  EXPECT_EQ(pooledRunscCgroups().size(), 2u);

  // A graceful stop takes its idle sandboxes with it.
  const std::set<std::string> second = sandboxIdsIn(runDir);
  kiln.kill(SIGTERM);
  EXPECT_TRUE(sandboxIdsIn(runDir).empty());
  EXPECT_EQ(countMountsUnder(runDir), 0);
  for (const std::string& id : second) EXPECT_EQ(countCgroups(id), 0) << id;
}

// Hits of a pool so far, from /metrics (-1 when not there).
int poolHits(KilnProcess& kiln, const std::string& backend) {
  HttpClient http("127.0.0.1", kiln.port());
  http.setBearer(kiln.token());
  auto r = http.get("/metrics");
  if (!r.isOk()) return -1;
  const std::string key = "kiln_warm_pool_hits_total{backend=\"" + backend + "\",image=\"\"} ";
  size_t at = r->body.find(key);
  return at == std::string::npos ? -1 : std::atoi(r->body.c_str() + at + key.size());
}

size_t entriesIn(const std::string& dir) {
  std::error_code ec;
  size_t n = 0;
  for (auto it = std::filesystem::directory_iterator(dir, ec);
       !ec && it != std::filesystem::directory_iterator(); it.increment(ec)) {
    ++n;
  }
  return n;
}

// Until dir holds `n` entries, or fails the test.
void waitEntries(const std::string& dir, size_t n, const std::string& what) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (entriesIn(dir) != n) {
    ASSERT_LT(std::chrono::steady_clock::now(), deadline) << what;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

TEST(ServeWarmPoolTest, SandboxExecTakesItsSandboxFromTheServeOnItsDataDir) {
  if (geteuid() != 0) GTEST_SKIP() << "sandboxes need root";
  TempDir data;
  const bool gvisor = haveRunsc();
  std::vector<std::string> args = {"--warm-pool", "namespace=1"};
  if (gvisor) args.insert(args.end(), {"--warm-pool", "gvisor=1"});
  KilnProcess kiln(data.path(), args);
  const std::string cli = std::string(KILN_BINARY) + " sandbox exec --data-dir " + data.path();
  const std::string temps = data.path() + "/exec-workspaces";
  auto waitPool = [&](const std::string& backend) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
    while (!poolsFull(kiln, backend, 1)) {
      ASSERT_LT(std::chrono::steady_clock::now(), deadline) << "pool did not fill:\n" << kiln.log();
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  };
  ASSERT_NO_FATAL_FAILURE(waitPool("namespace"));
  // Output, exit code and the contract's /workspace, from the serve's pool (a hit).
  std::string out;
  int rc = shell(cli + " -- sh -c 'echo out; pwd; id -u; exit 7' 2>&1", &out);
  EXPECT_EQ(rc, 7) << out;
  EXPECT_EQ(out, "out\n/workspace\n1000\n");
  EXPECT_EQ(poolHits(kiln, "namespace"), 1);
  // Its fresh workspace was the serve's, and goes with the sandbox.
  ASSERT_NO_FATAL_FAILURE(waitEntries(temps, 0, "the exec's workspace was not removed"));
  // A workspace of the caller's.
  TempDir ws;
  ASSERT_NO_FATAL_FAILURE(waitPool("namespace"));
  out.clear();
  rc = shell(cli + " --workspace " + ws.path() + " -- sh -c 'echo x > f' 2>&1", &out);
  EXPECT_EQ(rc, 0) << out;
  EXPECT_EQ(readText(ws.path() + "/f"), "x\n");
  EXPECT_EQ(poolHits(kiln, "namespace"), 2);
  // --standalone (or a backend option of its own) never asks the serve.
  out.clear();
  rc = shell(cli + " --standalone -- true 2>&1", &out);
  EXPECT_EQ(rc, 0) << out;
  EXPECT_EQ(poolHits(kiln, "namespace"), 2);
  // A CLI killed while its command runs: the serve destroys the sandbox it held.
  ASSERT_NO_FATAL_FAILURE(waitPool("namespace"));
  out.clear();
  rc = shell(cli + " -- sleep 600 >/dev/null 2>&1 & echo $! > " + data.path() + "/cli.pid", &out);
  ASSERT_EQ(rc, 0);
  ASSERT_NO_FATAL_FAILURE(waitEntries(temps, 1, "the CLI got no sandbox"));
  const std::string pidText = readText(data.path() + "/cli.pid");
  ASSERT_GT(std::atoi(pidText.c_str()), 0) << pidText;
  ASSERT_EQ(::kill(std::atoi(pidText.c_str()), SIGKILL), 0);
  ASSERT_NO_FATAL_FAILURE(waitEntries(temps, 0, "the killed CLI's sandbox was not destroyed"));
  EXPECT_EQ(poolHits(kiln, "namespace"), 3);
  if (gvisor) {
    ASSERT_NO_FATAL_FAILURE(waitPool("gvisor"));
    out.clear();
  rc = shell(cli + " --backend gvisor -- sh -c 'pwd; exit 3' 2>&1", &out);
    EXPECT_EQ(rc, 3) << out;
    EXPECT_EQ(out, "/workspace\n");
    EXPECT_EQ(poolHits(kiln, "gvisor"), 1);
  }
  // Bad input on the socket gets an error, not a crash: the serve still serves.
  out.clear();
  rc = shell(cli + " --image no-such-image -- true 2>&1", &out);
  EXPECT_NE(rc, 0);
  EXPECT_NE(out.find("no-such-image"), std::string::npos) << out;
  ASSERT_NO_FATAL_FAILURE(waitPool("namespace"));
  EXPECT_EQ(shell(cli + " -- true"), 0);
  EXPECT_EQ(poolHits(kiln, "namespace"), 4);
}

}  // namespace
}  // namespace kiln::testing
