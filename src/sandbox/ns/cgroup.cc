#include "sandbox/ns/cgroup.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <sstream>
#include <thread>

namespace kiln::sandbox {
namespace {

constexpr const char* kV1Root = "/sys/fs/cgroup";
constexpr const char* kV1Controllers[] = {"memory", "pids", "cpu"};
constexpr int kDefaultPids = 1024;
constexpr int64_t kCpuPeriodUs = 100'000;

Status writeFile(const std::string& path, const std::string& value) {
  int fd = open(path.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) return errnoStatus("cgroup: open " + path, errno);
  ssize_t n = write(fd, value.data(), value.size());
  int err = errno;
  close(fd);
  if (n != static_cast<ssize_t>(value.size())) return errnoStatus("cgroup: write " + path, err);
  return Status::ok();
}

std::string readFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Value of "key N" in a flat-keyed cgroup file (memory.events, pids.events, oom_control).
int64_t keyedValue(const std::string& text, const std::string& key) {
  std::istringstream in(text);
  std::string k;
  int64_t v;
  while (in >> k >> v) {
    if (k == key) return v;
  }
  return 0;
}

std::optional<std::string> unifiedRoot() {
  for (const char* root : {"/sys/fs/cgroup/unified", "/sys/fs/cgroup"}) {
    std::string controllers = readFile(std::string(root) + "/cgroup.controllers");
    if (controllers.find("memory") != std::string::npos &&
        controllers.find("pids") != std::string::npos) {
      return std::string(root);
    }
  }
  return std::nullopt;
}

Status makeDir(const std::string& path) {
  if (mkdir(path.c_str(), 0755) != 0 && errno != EEXIST) {
    return errnoStatus("cgroup: mkdir " + path, errno);
  }
  return Status::ok();
}

Status writeV2Limits(const std::string& dir, const SandboxSpec& spec) {
  if (spec.memoryMb > 0) {
    RETURN_IF_ERROR(writeFile(dir + "/memory.max", std::to_string(int64_t{spec.memoryMb} << 20)));
    (void)writeFile(dir + "/memory.swap.max", "0");
  }
  RETURN_IF_ERROR(writeFile(dir + "/pids.max", std::to_string(spec.pids > 0 ? spec.pids
                                                                             : kDefaultPids)));
  if (spec.cpus > 0) {
    RETURN_IF_ERROR(writeFile(dir + "/cpu.max", std::to_string(spec.cpus * kCpuPeriodUs) + " " +
                                                    std::to_string(kCpuPeriodUs)));
  }
  return Status::ok();
}

Status writeV1Limits(const std::string& controller, const std::string& dir,
                     const SandboxSpec& spec) {
  if (controller == "memory" && spec.memoryMb > 0) {
    std::string bytes = std::to_string(int64_t{spec.memoryMb} << 20);
    RETURN_IF_ERROR(writeFile(dir + "/memory.limit_in_bytes", bytes));
    // Without swap accounting the file is absent; the memory limit alone then applies.
    if (access((dir + "/memory.memsw.limit_in_bytes").c_str(), F_OK) == 0) {
      RETURN_IF_ERROR(writeFile(dir + "/memory.memsw.limit_in_bytes", bytes));
    }
  }
  if (controller == "pids") {
    RETURN_IF_ERROR(writeFile(dir + "/pids.max",
                              std::to_string(spec.pids > 0 ? spec.pids : kDefaultPids)));
  }
  if (controller == "cpu" && spec.cpus > 0) {
    RETURN_IF_ERROR(writeFile(dir + "/cpu.cfs_period_us", std::to_string(kCpuPeriodUs)));
    RETURN_IF_ERROR(writeFile(dir + "/cpu.cfs_quota_us", std::to_string(spec.cpus * kCpuPeriodUs)));
  }
  return Status::ok();
}

}  // namespace

Result<SandboxCgroup> SandboxCgroup::create(const std::string& id, const SandboxSpec& spec) {
  SandboxCgroup cg;
  if (auto root = unifiedRoot()) {
    cg.v2_ = true;
    std::string parent = *root + "/kiln";
    RETURN_IF_ERROR(makeDir(parent));
    (void)writeFile(parent + "/cgroup.subtree_control", "+memory +pids +cpu");
    cg.dirs_.push_back(parent + "/" + id);
    RETURN_IF_ERROR(makeDir(cg.dirs_[0]));
    Status st = writeV2Limits(cg.dirs_[0], spec);
    if (!st) (void)cg.remove();
    RETURN_IF_ERROR(st);
    return cg;
  }
  for (const char* controller : kV1Controllers) {
    std::string parent = std::string(kV1Root) + "/" + controller + "/kiln";
    Status st = makeDir(parent);
    std::string dir = parent + "/" + id;
    if (st) st = makeDir(dir);
    if (st) cg.dirs_.push_back(dir);
    if (st) st = writeV1Limits(controller, dir, spec);
    if (!st) {
      (void)cg.remove();
      return st;
    }
  }
  return cg;
}

std::string SandboxCgroup::dirFor(const char* controller) const {
  if (v2_) return dirs_.empty() ? "" : dirs_[0];
  for (size_t i = 0; i < dirs_.size(); ++i) {
    if (std::string(kV1Controllers[i]) == controller) return dirs_[i];
  }
  return "";
}

Status SandboxCgroup::attach(pid_t pid) const {
  for (const auto& dir : dirs_) RETURN_IF_ERROR(writeFile(dir + "/cgroup.procs", std::to_string(pid)));
  return Status::ok();
}

std::optional<LimitBreach> SandboxCgroup::breach() const {
  std::string mem = dirFor("memory"), pids = dirFor("pids");
  int64_t oomKills = v2_ ? keyedValue(readFile(mem + "/memory.events"), "oom_kill")
                         : keyedValue(readFile(mem + "/memory.oom_control"), "oom_kill");
  if (oomKills > 0) {
    return LimitBreach{"memory", "out of memory: " + std::to_string(oomKills) +
                                     " process(es) killed by the memory limit"};
  }
  if (keyedValue(readFile(pids + "/pids.events"), "max") > 0) {
    return LimitBreach{"pids", "process limit reached: fork refused"};
  }
  return std::nullopt;
}

int SandboxCgroup::processCount() const {
  std::istringstream in(readFile(dirFor("pids") + "/cgroup.procs"));
  int n = 0;
  for (std::string line; std::getline(in, line);) n += !line.empty();
  return n;
}

Status SandboxCgroup::remove() {
  Status result;
  for (const auto& dir : dirs_) {
    int err = 0;
    // Tasks of a killed pid namespace can take a moment to leave the cgroup.
    for (int attempt = 0; attempt < 200; ++attempt) {
      if (rmdir(dir.c_str()) == 0 || errno == ENOENT) {
        err = 0;
        break;
      }
      err = errno;
      if (err != EBUSY) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    if (err != 0 && result.isOk()) result = errnoStatus("cgroup: rmdir " + dir, err);
  }
  dirs_.clear();
  return result;
}

}  // namespace kiln::sandbox
