// workspace_bench: preparing a job's workspace of a large repo from the repo cache (an overlay
// over a shared base checkout) next to the plain clone it replaces, in the same run.
// Needs root (mount). Usage: workspace_bench [files=4000] [kib-per-file=16] [jobs=5]
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "workspace/cache.h"
#include "workspace/repo.h"

using namespace kiln;
using Clock = std::chrono::steady_clock;
namespace fs = std::filesystem;

namespace {

double msSince(Clock::time_point t) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t).count();
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

void makeRepo(const std::string& dir, int files, int kib) {
  fs::create_directories(dir);
  std::mt19937 rng(42);
  std::string buf(static_cast<size_t>(kib) * 1024, '\0');
  for (int i = 0; i < files; ++i) {
    for (auto& c : buf) c = static_cast<char>('a' + rng() % 26);
    std::string sub = dir + "/d" + std::to_string(i % 64);
    fs::create_directories(sub);
    std::ofstream(sub + "/f" + std::to_string(i) + ".txt") << buf;
  }
  std::string cmd = "cd '" + dir +
                    "' && git init -q -b main . && git add -A && "
                    "git -c user.name=b -c user.email=b@b commit -qm big";
  if (std::system(cmd.c_str()) != 0) std::abort();
}

}  // namespace

int main(int argc, char** argv) {
  if (geteuid() != 0) {
    std::fprintf(stderr, "workspace_bench needs root (overlay mounts)\n");
    return 1;
  }
  int files = argc > 1 ? std::atoi(argv[1]) : 4000;
  int kib = argc > 2 ? std::atoi(argv[2]) : 16;
  int jobs = argc > 3 ? std::atoi(argv[3]) : 5;
  std::string root = fs::temp_directory_path() / "kiln-wsbench-XXXXXX";
  if (!mkdtemp(root.data())) return 1;
  makeRepo(root + "/src", files, kib);
  std::printf("repo: %d files x %d KiB (%.0f MiB)\n", files, kib, files * kib / 1024.0);

  std::vector<double> clone;
  for (int i = 0; i < jobs; ++i) {
    auto t = Clock::now();
    auto ws = workspace::cloneWorkspace(root + "/src", "", root + "/clone" + std::to_string(i));
    if (!ws.isOk()) return std::fprintf(stderr, "%s\n", ws.status().toString().c_str()), 1;
    clone.push_back(msSince(t));
  }
  workspace::Workspaces wss(root + "/workspaces", root + "/repos");
  auto t0 = Clock::now();
  auto first = wss.create("job0", root + "/src", "");
  if (!first.isOk()) return std::fprintf(stderr, "%s\n", first.status().toString().c_str()), 1;
  double firstMs = msSince(t0);
  std::vector<double> cached;
  for (int i = 1; i <= jobs; ++i) {
    auto t = Clock::now();
    auto ws = wss.create("job" + std::to_string(i), root + "/src", "");
    if (!ws.isOk()) return std::fprintf(stderr, "%s\n", ws.status().toString().c_str()), 1;
    cached.push_back(msSince(t));
  }
  double c = median(clone), o = median(cached);
  std::printf("plain clone (before)        median %8.1f ms\n", c);
  std::printf("cache: first job of a repo         %8.1f ms (mirror + base checkout + mount)\n",
              firstMs);
  std::printf("cache: next jobs (fetch+mount) median %8.1f ms  ratio clone/cached %.1fx\n", o,
              o > 0 ? c / o : 0);
  for (int i = 0; i <= jobs; ++i) wss.release("job" + std::to_string(i));
  fs::remove_all(root);
  return 0;
}
