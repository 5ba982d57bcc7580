// Host-side process runner for the few things kiln itself runs on the host (git fetches into the
// repo cache). Blocking: call it from the BlockingPool, never from an I/O thread. Uses
// posix_spawn, which is safe in a multi-threaded process.
#pragma once
#include <map>
#include <string>
#include <vector>

#include "common/result.h"

namespace kiln {

struct ProcessOptions {
  std::string cwd;
  // Extra environment entries on top of a minimal inherited set (PATH, HOME, LANG).
  std::map<std::string, std::string> env;
  int timeoutMs = 60'000;
  size_t maxOutputBytes = 1 << 20;
};

struct ProcessOutput {
  int exitCode = -1;  // 128+signal when killed by a signal
  bool timedOut = false;
  std::string out;  // stdout
  std::string err;  // stderr
};

Result<ProcessOutput> runProcess(const std::vector<std::string>& argv,
                                 const ProcessOptions& opts = {});

}  // namespace kiln
