// sandbox_bench: the namespace backend's lifecycle cost next to bubblewrap and plain
// fork+exec, sandboxed exec throughput, and create latency under 100 concurrent creates; then
// the backends side by side (namespace, gvisor): cold start to a ready runtime, a whole
// lifecycle, a warm-pool take, 100 concurrent takes from a full pool of 100, and
// `kiln sandbox exec -- true` as a whole process next to a whole bwrap run.
// Needs root. Usage: sandbox_bench [runs=200] [kiln binary]
// KILN_BENCH_GVISOR_RUNS (default 20): gVisor's runs (each start costs ~0.2-0.6 s);
// KILN_BENCH_BACKENDS=0: skip the side-by-side part; KILN_BENCH_PART=backends: only that part.
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <latch>
#include <optional>
#include <thread>
#include <tuple>
#include <vector>

#include "cli/http_client.h"
#include "common/files.h"
#include "runtime/client.h"
#include "sandbox/pool.h"
#include "sandbox/sandbox.h"

using namespace kiln;
using Clock = std::chrono::steady_clock;
extern char** environ;

namespace {

double msSince(Clock::time_point t) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t).count();
}

double pct(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(p / 100.0 * v.size()))];
}

int spawnWait(const std::vector<std::string>& args) {
  std::vector<char*> argv;
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  pid_t pid;
  if (posix_spawn(&pid, argv[0], nullptr, nullptr, argv.data(), environ) != 0) return -1;
  int st;
  waitpid(pid, &st, 0);
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

bool execTrue(sandbox::Sandbox& sb) {
  asio::io_context ioc;
  runtime::RuntimeClient client(ioc.get_executor(), sb.runtimeSocket(), sb.runtimeToken());
  runtime::ExecRequest req;
  req.cmd = "true";
  bool ok = false;
  asio::co_spawn(
      ioc,
      [&]() -> Task<void> {
        auto r = co_await client.exec(req, nullptr);
        ok = r.isOk() && r->exitCode == 0;
      },
      asio::detached);
  ioc.run();
  return ok;
}

bool health(sandbox::Sandbox& sb) {
  asio::io_context ioc;
  runtime::RuntimeClient client(ioc.get_executor(), sb.runtimeSocket(), sb.runtimeToken());
  bool ok = false;
  asio::co_spawn(
      ioc, [&]() -> Task<void> { ok = (co_await client.health()).isOk(); }, asio::detached);
  ioc.run();
  return ok;
}

// Where the first exec's time goes: runtime start-up (first /health answered), the first exec,
// and a second one on the now warm sandbox.
struct FirstRequest {
  std::vector<double> ready, first, second;
};

FirstRequest benchFirstRequest(sandbox::SandboxBackend& backend, const std::string& ws, int runs) {
  FirstRequest f;
  for (int i = 0; i < runs; ++i) {
    auto sb = backend.create(
        {.id = "f" + std::to_string(i), .workspaceDir = ws, .memoryMb = 512, .pids = 256});
    if (!sb) continue;
    auto t0 = Clock::now();
    health(**sb);
    f.ready.push_back(msSince(t0));
    auto t1 = Clock::now();
    execTrue(**sb);
    f.first.push_back(msSince(t1));
    auto t2 = Clock::now();
    execTrue(**sb);
    f.second.push_back(msSince(t2));
    (void)(*sb)->destroy();
  }
  return f;
}

struct Series {
  std::vector<double> total, create, exec, destroy;
};

Series benchKiln(sandbox::SandboxBackend& backend, const std::string& ws, int runs) {
  Series s;
  for (int i = 0; i < runs; ++i) {
    auto t0 = Clock::now();
    auto sb = backend.create(
        {.id = "b" + std::to_string(i), .workspaceDir = ws, .memoryMb = 512, .pids = 256});
    if (!sb) {
      std::fprintf(stderr, "create: %s\n", sb.status().toString().c_str());
      std::exit(1);
    }
    double c = msSince(t0);
    auto t1 = Clock::now();
    if (!execTrue(**sb)) std::fprintf(stderr, "exec true failed\n");
    double e = msSince(t1);
    auto t2 = Clock::now();
    (void)(*sb)->destroy();
    s.destroy.push_back(msSince(t2));
    s.create.push_back(c);
    s.exec.push_back(e);
    s.total.push_back(msSince(t0));
  }
  return s;
}

std::vector<double> benchCommand(const std::vector<std::string>& argv, int runs) {
  std::vector<double> v;
  for (int i = 0; i < runs; ++i) {
    auto t0 = Clock::now();
    if (spawnWait(argv) != 0) std::fprintf(stderr, "%s failed\n", argv[0].c_str());
    v.push_back(msSince(t0));
  }
  return v;
}

// A `kiln serve` on a fresh data dir with a warm pool per backend: `kiln sandbox exec` on that
// data dir takes its sandbox from it (src/sandbox/exec_service.h).
class ServeNode {
 public:
  ServeNode(const std::string& kiln, const std::string& data, int nsPool, int gvPool)
      : data_(data) {
    std::vector<std::string> args = {kiln,          "serve",
                                     "--listen",    "127.0.0.1:0",
                                     "--data-dir",  data,
                                     "--warm-pool", "namespace=" + std::to_string(nsPool),
                                     "--warm-pool", "gvisor=" + std::to_string(gvPool)};
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, (data + ".log").c_str(), O_WRONLY | O_CREAT, 0600);
    posix_spawn_file_actions_adddup2(&fa, 1, 2);
    if (posix_spawn(&pid_, argv[0], &fa, nullptr, argv.data(), environ) != 0) pid_ = -1;
    posix_spawn_file_actions_destroy(&fa);
    const auto deadline = Clock::now() + std::chrono::seconds(120);
    while (pid_ > 0 && Clock::now() < deadline) {
      auto server = kiln::readFile(data + "/server.json");
      auto token = kiln::readFile(data + "/admin.token");
      if (server && token && access((data + "/sandbox.sock").c_str(), F_OK) == 0) {
        auto j = nlohmann::json::parse(*server, nullptr, false);
        std::string t = *token;
        while (!t.empty() && (t.back() == '\n' || t.back() == ' ')) t.pop_back();
        if (j.is_object() && j.contains("url") && j["url"].is_string()) {
          client_.emplace(j["url"].get<std::string>(), t);
          return;
        }
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    std::fprintf(stderr, "kiln serve did not start (log: %s.log)\n", data.c_str());
    std::exit(1);
  }
  ~ServeNode() {
    if (pid_ > 0) {
      kill(pid_, SIGTERM);
      waitpid(pid_, nullptr, 0);
    }
  }
  // Until the pool of backend holds `size` idle sandboxes.
  void waitPoolFull(const std::string& backend, int size) {
    const std::string want = "kiln_warm_pool_idle{backend=\"" + backend + "\",image=\"\"} " +
                             std::to_string(size) + "\n";
    const auto deadline = Clock::now() + std::chrono::seconds(300);
    while (Clock::now() < deadline) {
      auto resp = client_->get("/metrics");
      if (resp && resp->body.find(want) != std::string::npos) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    std::fprintf(stderr, "the %s pool did not fill\n", backend.c_str());
    std::exit(1);
  }
  const std::string& data() const { return data_; }

 private:
  std::string data_;
  pid_t pid_ = -1;
  std::optional<cli::HttpClient> client_;
};

double execThroughput(sandbox::SandboxBackend& backend, const std::string& ws, int n) {
  auto sb = backend.create({.id = "tput", .workspaceDir = ws});
  if (!sb) return 0;
  auto t0 = Clock::now();
  for (int i = 0; i < n; ++i) execTrue(**sb);
  double secs = msSince(t0) / 1000;
  (void)(*sb)->destroy();
  return n / secs;
}

double cpuMs() {
  rusage self{}, children{};
  getrusage(RUSAGE_SELF, &self);
  getrusage(RUSAGE_CHILDREN, &children);
  auto ms = [](const timeval& t) { return t.tv_sec * 1e3 + t.tv_usec / 1e3; };
  return ms(self.ru_utime) + ms(self.ru_stime) + ms(children.ru_utime) + ms(children.ru_stime);
}

struct Concurrent {
  std::vector<double> latency;  // of each create, from the common start
  double wallMs = 0;            // until the last create returned
  double cpuMsPerSandbox = 0;   // create + destroy, this process and the reaped sandboxes
};

// n creates started at once; each thread stays alive until all are done (a sandbox's PID 1
// dies with the thread that created it).
Concurrent concurrentCreates(sandbox::SandboxBackend& backend, const std::string& ws, int n) {
  Concurrent c;
  c.latency.resize(n);
  std::vector<std::unique_ptr<sandbox::Sandbox>> boxes(n);
  std::latch start(n + 1), created(n + 1);
  std::vector<std::thread> threads;
  Clock::time_point t0;
  for (int i = 0; i < n; ++i) {
    threads.emplace_back([&, i] {
      start.arrive_and_wait();
      auto sb = backend.create({.id = "c" + std::to_string(i), .workspaceDir = ws});
      c.latency[i] = msSince(t0);
      if (sb) boxes[i] = std::move(sb).value();
      created.arrive_and_wait();
    });
  }
  double cpu0 = cpuMs();
  t0 = Clock::now();
  start.arrive_and_wait();
  created.arrive_and_wait();
  c.wallMs = msSince(t0);
  for (auto& t : threads) t.join();
  int failed = std::count(boxes.begin(), boxes.end(), nullptr);
  if (failed) std::fprintf(stderr, "%d concurrent creates failed\n", failed);
  for (auto& b : boxes) {
    if (b) (void)b->destroy();
  }
  c.cpuMsPerSandbox = (cpuMs() - cpu0) / n;
  return c;
}

// n runs of fn started at once, one thread each; the latency of each from the common start.
template <typename Fn>
std::vector<double> concurrently(int n, Fn fn) {
  std::vector<double> latency(n);
  std::latch start(n + 1);
  std::vector<std::thread> threads;
  Clock::time_point t0;
  for (int i = 0; i < n; ++i) {
    threads.emplace_back([&, i] {
      start.arrive_and_wait();
      fn(i);
      latency[i] = msSince(t0);
    });
  }
  t0 = Clock::now();
  start.arrive_and_wait();
  for (auto& t : threads) t.join();
  return latency;
}

// One backend's side of the comparison.
struct BackendFigures {
  std::vector<double> ready, lifecycle, take, concurrentTakes, cliExec;
  double fillMs = 0;  // filling the pool of 100
  // CPU time of this process (the host side of a take: chown, cgroup writes, mounts, the HTTP
  // client) per take, alone and in the burst of 100; the burst's wall time.
  double takeCpuMs = 0, burstTakeCpuMs = 0, burstWallMs = 0;
};

sandbox::SandboxSpec jobSpec(const std::string& id, const std::string& ws) {
  return {.id = id, .workspaceDir = ws, .memoryMb = 512, .pids = 256};
}

BackendFigures benchBackend(sandbox::SandboxBackend& backend, const std::string& name,
                            const std::string& kiln, const std::string& state,
                            const std::string& ws, int runs) {
  BackendFigures f;
  const std::string tag = name.substr(0, 1);
  for (int i = 0; i < runs; ++i) {
    // Cold start: create until the runtime answers /health.
    auto t0 = Clock::now();
    auto sb = backend.create(jobSpec(tag + "r" + std::to_string(i), ws));
    if (!sb) {
      std::fprintf(stderr, "%s create: %s\n", name.c_str(), sb.status().toString().c_str());
      std::exit(1);
    }
    health(**sb);
    f.ready.push_back(msSince(t0));
    (void)(*sb)->destroy();
    // A whole lifecycle.
    t0 = Clock::now();
    sb = backend.create(jobSpec(tag + "l" + std::to_string(i), ws));
    if (sb && !execTrue(**sb)) std::fprintf(stderr, "%s: exec true failed\n", name.c_str());
    if (sb) (void)(*sb)->destroy();
    f.lifecycle.push_back(msSince(t0));
  }
  {
    // Single takes: each from a full pool, timed until the job's sandbox is handed over
    // (workspace attached, limits applied).
    sandbox::WarmPool pool(backend, {name, "", 4}, tag + "p");
    if (!pool.start()) std::exit(1);
    for (int i = 0; i < runs; ++i) {
      pool.waitFull(120'000);
      const double cpu0 = cpuMs();
      auto t0 = Clock::now();
      auto got = pool.take(jobSpec("", ws));
      f.take.push_back(msSince(t0));
      f.takeCpuMs += (cpuMs() - cpu0) / runs;
      if (!got || !got->isOk()) {
        std::fprintf(stderr, "%s: take failed\n", name.c_str());
        std::exit(1);
      }
      if (!execTrue(***got)) std::fprintf(stderr, "%s: exec after take failed\n", name.c_str());
      (void)(**got)->destroy();
    }
  }
  {
    // 100 takes at once from a full pool of 100, each its own workspace.
    sandbox::WarmPool pool(backend, {name, "", 100}, tag + "q");
    auto t0 = Clock::now();
    if (!pool.start() || !pool.waitFull(600'000)) {
      std::fprintf(stderr, "%s: the pool of 100 did not fill\n", name.c_str());
      std::exit(1);
    }
    f.fillMs = msSince(t0);
    std::vector<std::string> dirs(100);
    for (int i = 0; i < 100; ++i) {
      dirs[i] = ws + "-" + tag + std::to_string(i);
      std::filesystem::create_directories(dirs[i]);
    }
    std::vector<std::unique_ptr<sandbox::Sandbox>> taken(100);
    const double cpu0 = cpuMs();
    f.concurrentTakes = concurrently(100, [&](int i) {
      auto got = pool.take(jobSpec("", dirs[i]));
      if (got && got->isOk()) taken[i] = std::move(*got).value();
    });
    f.burstTakeCpuMs = (cpuMs() - cpu0) / 100;
    f.burstWallMs = *std::max_element(f.concurrentTakes.begin(), f.concurrentTakes.end());
    int failed = std::count(taken.begin(), taken.end(), nullptr);
    if (failed)
      std::fprintf(stderr, "%s: %d of 100 concurrent takes failed\n", name.c_str(), failed);
    for (auto& sb : taken) {
      if (sb) (void)sb->destroy();
    }
    for (const auto& d : dirs) std::filesystem::remove_all(d);
  }
  f.cliExec = benchCommand({kiln, "sandbox", "exec", "--backend", name, "--standalone",
                            "--state-dir", state, "--", "true"},
                           std::max(5, runs / 2));
  return f;
}

void row(const char* name, const std::vector<double>& v, double baseP50) {
  std::printf("%-34s %9.2f %9.2f %9.2f", name, pct(v, 50), pct(v, 99), pct(v, 100));
  if (baseP50 > 0) std::printf("   %6.2fx", pct(v, 50) / baseP50);
  std::printf("\n");
}

}  // namespace

int main(int argc, char** argv) {
  int runs = argc > 1 ? std::atoi(argv[1]) : 200;
  std::string kiln = argc > 2 ? argv[2] : KILN_BINARY;
  // Dirs of this run only: a second bench at once (or a leftover of a killed one) shares nothing.
  char stateTmpl[] = "/tmp/kbench-XXXXXX";
  if (!mkdtemp(stateTmpl)) {
    std::perror("sandbox_bench: mkdtemp");
    return 1;
  }
  std::string state = stateTmpl, ws = state + "-ws";
  std::filesystem::create_directories(ws);
  // KILN_BENCH_USERNS=1: the same as root with a user namespace per sandbox.
  const char* userNs = std::getenv("KILN_BENCH_USERNS");
  auto backend = sandbox::newNamespaceBackend(
      {state, kiln, nullptr, "", userNs != nullptr && std::string(userNs) == "1"});
  if (!backend) {
    std::fprintf(stderr, "%s\n", backend.status().toString().c_str());
    return 1;
  }
  benchKiln(**backend, ws, 10);  // warm-up: page cache, shared layers
  if (runs == 0) {               // only the concurrent creates, e.g. under perf
    auto conc = concurrentCreates(**backend, ws, 100);
    std::printf("100 concurrent creates: p50 %.2f ms, p99 %.2f ms, %.2f ms CPU each\n",
                pct(conc.latency, 50), pct(conc.latency, 99), conc.cpuMsPerSandbox);
    return 0;
  }
  std::vector<std::string> bwrap = {"/usr/bin/bwrap",
                                    "--unshare-all",
                                    "--die-with-parent",
                                    "--ro-bind",
                                    "/usr",
                                    "/usr",
                                    "--symlink",
                                    "usr/bin",
                                    "/bin",
                                    "--symlink",
                                    "usr/lib",
                                    "/lib",
                                    "--symlink",
                                    "usr/lib64",
                                    "/lib64",
                                    "--symlink",
                                    "usr/sbin",
                                    "/sbin",
                                    "--proc",
                                    "/proc",
                                    "--dev",
                                    "/dev",
                                    "--tmpfs",
                                    "/tmp",
                                    "--bind",
                                    ws,
                                    "/workspace",
                                    "--chdir",
                                    "/workspace",
                                    "true"};
  const char* part = std::getenv("KILN_BENCH_PART");
  if (part == nullptr || std::string(part) != "backends") {
    Series k = benchKiln(**backend, ws, runs);
    benchCommand(bwrap, 10);
    auto b = benchCommand(bwrap, runs);
    auto f = benchCommand({"/bin/true"}, runs);
    FirstRequest first = benchFirstRequest(**backend, ws, std::max(20, runs / 4));
    double tput = execThroughput(**backend, ws, 1000);
    auto conc = concurrentCreates(**backend, ws, 100);
    // The same burst for whole lifecycles, kiln's beside bwrap's: what 100 at once cost on this
    // machine's cores, whatever the sandbox.
    auto kConc = concurrently(100, [&](int i) {
      auto sb = backend.value()->create(
          {.id = "l" + std::to_string(i), .workspaceDir = ws, .memoryMb = 512, .pids = 256});
      if (sb && !execTrue(**sb)) std::fprintf(stderr, "exec true failed\n");
      if (sb) (void)(*sb)->destroy();
    });
    auto bConc = concurrently(100, [&](int) { spawnWait(bwrap); });

    std::printf("\nsandbox_bench: %d runs each, %u cores\n\n", runs,
                std::thread::hardware_concurrency());
    std::printf("%-34s %9s %9s %9s   %s\n", "ms", "p50", "p99", "max", "p50 vs bwrap");
    row("kiln create+exec true+destroy", k.total, pct(b, 50));
    row("  kiln create", k.create, 0);
    row("  kiln exec true (runtime)", k.exec, 0);
    row("  kiln destroy", k.destroy, 0);
    row("  runtime ready (first /health)", first.ready, 0);
    row("  then exec true #1", first.first, 0);
    row("  then exec true #2", first.second, 0);
    row("bwrap --unshare-all ... true", b, pct(b, 50));
    row("fork+exec true", f, pct(b, 50));
    row("kiln create, 100 concurrent", conc.latency, 0);
    row("kiln lifecycle, 100 concurrent", kConc, pct(bConc, 50));
    row("bwrap ... true, 100 concurrent", bConc, pct(bConc, 50));
    std::printf("\nkiln lifecycle p50 / bwrap p50        : %.2fx\n", pct(k.total, 50) / pct(b, 50));
    std::printf("kiln lifecycle p50 / fork+exec p50    : %.1fx\n", pct(k.total, 50) / pct(f, 50));
    std::printf("100-concurrent create p99 / single p50: %.2fx\n",
                pct(conc.latency, 99) / pct(k.create, 50));
    const double kRatio = pct(kConc, 99) / pct(k.total, 50), bRatio = pct(bConc, 99) / pct(b, 50);
    std::printf(
        "100-concurrent lifecycle p99 / single p50: kiln %.1fx, bwrap %.1fx (kiln/bwrap "
        "%.2f)\n",
        kRatio, bRatio, kRatio / bRatio);
    unsigned cores = std::thread::hardware_concurrency();
    std::printf(
        "100-concurrent: all created in %.0f ms; CPU per sandbox (create+destroy) %.2f ms,\n"
        "  so 100 need >= %.0f ms on %u cores\n",
        conc.wallMs, conc.cpuMsPerSandbox, 100 * conc.cpuMsPerSandbox / cores, cores);
    std::printf("sandboxed exec throughput (sequential): %.0f exec/s\n", tput);
  }

  const char* sideBySide = std::getenv("KILN_BENCH_BACKENDS");
  if (sideBySide == nullptr || std::string(sideBySide) != "0") {
    const char* gvRunsEnv = std::getenv("KILN_BENCH_GVISOR_RUNS");
    const int gvRuns = gvRunsEnv ? std::atoi(gvRunsEnv) : 20;
    auto gvisor = sandbox::newGvisorBackend({.stateDir = state, .kilnBinary = kiln});
    if (!gvisor) {
      std::fprintf(stderr, "gvisor: %s\n", gvisor.status().toString().c_str());
      return 1;
    }
    BackendFigures nsF = benchBackend(**backend, "namespace", kiln, state, ws, runs);
    BackendFigures gvF = benchBackend(**gvisor, "gvisor", kiln, state, ws, gvRuns);
    // `kiln sandbox exec` through a `kiln serve` on the same machine: each call when the pool
    // is full again (a call faster than the refill would start cold, as without a pool).
    std::vector<double> nsNode, gvNode;
    {
      const int nsRuns = std::max(5, runs / 2), gvRuns2 = std::max(5, gvRuns / 2);
      ServeNode node(kiln, state + "-node", 4, 2);
      for (auto [backendName, series, n, size] : {std::tuple{"namespace", &nsNode, nsRuns, 4},
                                                  std::tuple{"gvisor", &gvNode, gvRuns2, 2}}) {
        const std::vector<std::string> cmd = {kiln,        "sandbox",   "exec",
                                              "--backend", backendName, "--data-dir",
                                              node.data(), "--",        "true"};
        for (int i = 0; i < n + 2; ++i) {  // the first two: warm-up
          node.waitPoolFull(backendName, size);
          auto t0 = Clock::now();
          if (spawnWait(cmd) != 0) std::fprintf(stderr, "kiln sandbox exec via serve failed\n");
          if (i >= 2) series->push_back(msSince(t0));
        }
      }
    }
    std::filesystem::remove_all(state + "-node");
    std::filesystem::remove(state + "-node.log");
    auto bwrapCli = benchCommand(bwrap, std::max(5, runs / 2));
    std::printf("\nbackends side by side (namespace: %d runs, %s: %d runs)\n\n", runs,
                (*gvisor)->name().c_str(), gvRuns);
    std::printf("%-40s %9s %9s   %9s %9s\n", "ms", "ns p50", "ns p99", "gv p50", "gv p99");
    auto both = [](const char* label, const std::vector<double>& a, const std::vector<double>& b) {
      std::printf("%-40s %9.2f %9.2f   %9.2f %9.2f\n", label, pct(a, 50), pct(a, 99), pct(b, 50),
                  pct(b, 99));
    };
    both("cold start to runtime ready", nsF.ready, gvF.ready);
    both("lifecycle (create+exec true+destroy)", nsF.lifecycle, gvF.lifecycle);
    both("warm-pool take (pool of 4)", nsF.take, gvF.take);
    both("100 concurrent takes (pool of 100)", nsF.concurrentTakes, gvF.concurrentTakes);
    both("`kiln sandbox exec -- true`, standalone", nsF.cliExec, gvF.cliExec);
    both("`kiln sandbox exec -- true`, via serve", nsNode, gvNode);
    both("bwrap ... true, process", bwrapCli, bwrapCli);
    std::printf("\n100-concurrent take p99 / single take p50: namespace %.1fx, gvisor %.1fx\n",
                pct(nsF.concurrentTakes, 99) / pct(nsF.take, 50),
                pct(gvF.concurrentTakes, 99) / pct(gvF.take, 50));
    std::printf(
        "`kiln sandbox exec -- true` p50 / bwrap p50: standalone namespace %.2fx, gvisor %.2fx; "
        "via serve namespace %.2fx, gvisor %.2fx\n",
        pct(nsF.cliExec, 50) / pct(bwrapCli, 50), pct(gvF.cliExec, 50) / pct(bwrapCli, 50),
        pct(nsNode, 50) / pct(bwrapCli, 50), pct(gvNode, 50) / pct(bwrapCli, 50));
    std::printf("filling a pool of 100: namespace %.0f ms, gvisor %.0f ms\n", nsF.fillMs,
                gvF.fillMs);
    const unsigned n = std::thread::hardware_concurrency();
    using Labeled = std::pair<const char*, const BackendFigures*>;
    for (const auto& [label, fig] : {Labeled{"namespace", &nsF}, Labeled{"gvisor", &gvF}}) {
      std::printf(
          "%s take, CPU of this process: %.3f ms alone, %.3f ms in the burst; the burst of 100 "
          "took %.1f ms,\n  >= %.1f ms of this process's CPU alone on %u cores\n",
          label, fig->takeCpuMs, fig->burstTakeCpuMs, fig->burstWallMs,
          100 * fig->burstTakeCpuMs / n, n);
    }
  }
  std::filesystem::remove_all(state);
  std::filesystem::remove_all(ws);
  return 0;
}
