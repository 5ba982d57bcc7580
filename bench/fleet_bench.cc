// fleet_bench: the job queue of a fleet. With 1, 2 and 3 nodes on one real PostgreSQL, beside
// one node on SQLite, in the same run:
//   - claims per second: every node claims from one queue of `jobs` QUEUED jobs as fast as it
//     can (Store::claimJob, each node its own store and connections, as `kiln serve` has), until
//     the queue is empty;
//   - submit → first step: real `kiln serve` nodes (mock agent, namespace sandboxes); a job is
//     POSTed to one node and an SSE client on that node times its first `step` event, whichever
//     node runs it.
//
// Usage: fleet_bench [jobs to claim = 2000] [jobs to time = 12]   (root: jobs run in sandboxes)
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>

#include "common/ids.h"
#include "store/store.h"
#include "support/http_client.h"
#include "support/kiln_process.h"
#include "support/postgres_server.h"
#include "support/stopwatch.h"
#include "support/temp_dir.h"

namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;
using namespace kiln;
using namespace kiln::testing;
using namespace std::chrono_literals;

std::unique_ptr<store::Store> openStore(const std::string& url) {
  auto s = store::Store::open({url});
  if (!s.isOk()) {
    std::fprintf(stderr, "open %s: %s\n", url.c_str(), s.status().toString().c_str());
    std::exit(1);
  }
  return std::move(s).value();
}

// Claims per second of `nodes` claimers draining a queue of `jobs`.
double claimsPerSecond(const std::string& url, int nodes, int jobs) {
  auto setup = openStore(url);
  for (int i = 0; i < jobs; ++i) {
    store::Job j;
    j.id = newUuid();
    j.repoUrl = "file:///bench";
    j.taskDesc = "bench";
    j.createdAt = 1'000 + i;
    if (!setup->createJob(j, {{"status", {{"status", "QUEUED"}}}}).isOk()) std::exit(1);
  }
  std::vector<std::unique_ptr<store::Store>> stores;
  for (int n = 0; n < nodes; ++n) stores.push_back(openStore(url));
  std::atomic<int> claimed{0};
  auto start = Clock::now();
  std::vector<std::thread> threads;
  for (int n = 0; n < nodes; ++n) {
    threads.emplace_back([&, n] {
      const std::string me = "bench-" + std::to_string(n);
      for (;;) {
        auto c = stores[n]->claimJob(me, 10'000, 600'000);
        if (!c.isOk() || !c->has_value()) return;
        claimed++;
      }
    });
  }
  for (auto& t : threads) t.join();
  double s = secondsSince(start);
  if (claimed != jobs) std::fprintf(stderr, "claimed %d of %d\n", claimed.load(), jobs);
  return claimed / s;
}

// Median seconds from POST /jobs to the job's first `step` event, over `jobs` jobs submitted
// one at a time round-robin to the nodes.
double firstStepSeconds(std::vector<std::unique_ptr<KilnProcess>>& nodes, const std::string& repo,
                        int jobs) {
  std::vector<double> times;
  for (int i = 0; i < jobs; ++i) {
    KilnProcess& k = *nodes[i % nodes.size()];
    HttpClient c("127.0.0.1", k.port());
    c.setBearer(k.token());
    auto start = Clock::now();
    auto r =
        c.postJson("/api/v1/jobs", {{"repoUrl", repo}, {"taskDesc", "bench " + std::to_string(i)}});
    if (!r.isOk() || r->status != 201) {
      std::fprintf(stderr, "create: %s\n",
                   r.isOk() ? r->body.c_str() : r.status().toString().c_str());
      std::exit(1);
    }
    std::string id = r->json().value("jobId", "");
    auto sse = SseReader::open("127.0.0.1", k.port(), "/api/v1/jobs/" + id + "/stream",
                               {{"Authorization", "Bearer " + k.token()}});
    if (!sse.isOk() || (*sse)->readUntil("step", 120s).empty()) {
      std::fprintf(stderr, "job %s: no step\n", id.c_str());
      std::exit(1);
    }
    times.push_back(secondsSince(start));
    (*sse)->readUntil("done", 120s);  // one job at a time: the next one meets idle nodes
  }
  std::sort(times.begin(), times.end());
  return times[times.size() / 2];
}

std::vector<std::unique_ptr<KilnProcess>> startNodes(const TempDir& dir, const std::string& url,
                                                     int n, const std::string& tag) {
  std::vector<std::unique_ptr<KilnProcess>> nodes;
  for (int i = 0; i < n; ++i) {
    std::string name = tag + "-" + std::to_string(i);
    nodes.push_back(std::make_unique<KilnProcess>(
        dir.file(name), std::vector<std::string>{"--store", url, "--node-id", name},
        // A fleet's nodes hash API tokens with one key.
        std::vector<std::pair<std::string, std::string>>{
            {"KILN_TOKEN_KEY", "fleet-bench-token-key-0123456789abcdef"}}));
  }
  return nodes;
}

}  // namespace

int main(int argc, char** argv) {
  const int claimJobs = argc > 1 ? std::atoi(argv[1]) : 2000;
  const int timedJobs = argc > 2 ? std::atoi(argv[2]) : 12;
  auto* pg = PostgresServer::shared();
  if (!pg) {
    std::fprintf(stderr, "fleet_bench: PostgreSQL: %s\n",
                 PostgresServer::unavailableReason().c_str());
    return 1;
  }
  TempDir dir;
  std::printf("claims per second (%d queued jobs, each node its own store):\n", claimJobs);
  const double sqlite = claimsPerSecond("sqlite:" + dir.file("claims.db"), 1, claimJobs);
  std::printf("  sqlite      1 node : %8.0f claims/s\n", sqlite);
  for (int n = 1; n <= 3; ++n) {
    double pgRate = claimsPerSecond(pg->createDatabase(), n, claimJobs);
    std::printf("  postgres    %d node%s: %8.0f claims/s  (%.2fx sqlite)\n", n, n > 1 ? "s" : " ",
                pgRate, pgRate / sqlite);
  }
  std::fflush(stdout);

  if (geteuid() != 0) {
    std::printf("submit -> first step: skipped (needs root for namespace sandboxes)\n");
    return 0;
  }
  makeSampleRepo(dir.file("repo"));
  std::printf("submit -> first step, median of %d jobs (mock agent, real sandboxes):\n", timedJobs);
  double base = 0;
  {
    auto nodes = startNodes(dir, "sqlite:" + dir.file("e2e.db"), 1, "sqlite");
    base = firstStepSeconds(nodes, dir.file("repo"), timedJobs);
    std::printf("  sqlite      1 node : %6.3f s\n", base);
  }
  for (int n = 1; n <= 3; ++n) {
    auto nodes = startNodes(dir, pg->createDatabase(), n, "pg" + std::to_string(n));
    double t = firstStepSeconds(nodes, dir.file("repo"), timedJobs);
    std::printf("  postgres    %d node%s: %6.3f s  (%.2fx sqlite)\n", n, n > 1 ? "s" : " ", t,
                t / base);
    std::fflush(stdout);
  }
  return 0;
}
