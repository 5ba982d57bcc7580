#include "sandbox/ns/cgroup.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "common/files.h"

namespace kiln::sandbox {
namespace {

constexpr const char* kV1Root = "/sys/fs/cgroup";
constexpr const char* kV1Controllers[] = {"memory", "pids", "cpu"};
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

// A cgroup file's text; empty when it (or its cgroup) is missing.
std::string readFile(const std::string& path) { return kiln::readFile(path).valueOr(""); }

// The processes in the cgroup at dir (none when it is gone).
std::vector<pid_t> processesIn(const std::string& dir) {
  std::istringstream in(readFile(dir + "/cgroup.procs"));
  std::vector<pid_t> pids;
  for (pid_t pid; in >> pid;) pids.push_back(pid);
  return pids;
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

// The CFS quota per kCpuPeriodUs for `cpus` cores: 0.5 → 50000. At least the kernel's 1 ms.
int64_t cpuQuotaUs(double cpus) {
  return std::max<int64_t>(1000, std::llround(cpus * static_cast<double>(kCpuPeriodUs)));
}

Status writeV2Limits(const std::string& dir, const SandboxSpec& spec) {
  if (spec.memoryMb > 0) {
    RETURN_IF_ERROR(writeFile(dir + "/memory.max", std::to_string(int64_t{spec.memoryMb} << 20)));
    (void)writeFile(dir + "/memory.swap.max", "0");
  }
  RETURN_IF_ERROR(
      writeFile(dir + "/pids.max", std::to_string(spec.pids > 0 ? spec.pids : kDefaultPids)));
  if (spec.cpus > 0) {
    RETURN_IF_ERROR(writeFile(dir + "/cpu.max", std::to_string(cpuQuotaUs(spec.cpus)) + " " +
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
    RETURN_IF_ERROR(
        writeFile(dir + "/pids.max", std::to_string(spec.pids > 0 ? spec.pids : kDefaultPids)));
  }
  if (controller == "cpu" && spec.cpus > 0) {
    RETURN_IF_ERROR(writeFile(dir + "/cpu.cfs_period_us", std::to_string(kCpuPeriodUs)));
    RETURN_IF_ERROR(writeFile(dir + "/cpu.cfs_quota_us", std::to_string(cpuQuotaUs(spec.cpus))));
  }
  return Status::ok();
}

}  // namespace

Result<CgroupLayout> CgroupLayout::probe() {
  CgroupLayout layout;
  (void)favorDynamicMigrations();
  if (auto root = unifiedRoot()) {
    layout.v2 = true;
    std::string parent = *root + "/kiln";
    RETURN_IF_ERROR(makeDir(parent));
    (void)writeFile(parent + "/cgroup.subtree_control", "+memory +pids +cpu");
    layout.parents.push_back(parent);
    return layout;
  }
  for (const char* controller : kV1Controllers) {
    std::string parent = std::string(kV1Root) + "/" + controller + "/kiln";
    RETURN_IF_ERROR(makeDir(parent));
    layout.parents.push_back(parent);
  }
  return layout;
}

CgroupLayout CgroupLayout::probeDelegated() {
  auto delegated = [](const std::string& dir) { return access(dir.c_str(), W_OK | X_OK) == 0; };
  CgroupLayout layout;
  if (auto root = unifiedRoot()) {
    if (delegated(*root + "/kiln")) {
      layout.v2 = true;
      layout.parents.push_back(*root + "/kiln");
    }
    return layout;
  }
  for (const char* controller : kV1Controllers) {
    std::string parent = std::string(kV1Root) + "/" + controller + "/kiln";
    if (!delegated(parent)) return CgroupLayout{};
    layout.parents.push_back(parent);
  }
  return layout;
}

std::vector<std::string> CgroupLayout::dirsOf(const std::string& id) const {
  std::vector<std::string> dirs;
  for (const auto& parent : parents) dirs.push_back(parent + "/" + id);
  return dirs;
}

bool favorDynamicMigrations() {
  std::ifstream in("/proc/self/mountinfo");
  for (std::string line; std::getline(in, line);) {
    // id parent dev root mountpoint mountopts [optional...] - fstype source superopts
    std::istringstream fields(line);
    std::string skip, mountPoint, mountOpts, word;
    fields >> skip >> skip >> skip >> skip >> mountPoint >> mountOpts;
    while (fields >> word && word != "-") {
    }
    std::string fstype, source, superOpts;
    fields >> fstype >> source >> superOpts;
    if (fstype != "cgroup2") continue;
    if (("," + superOpts + ",").find(",favordynmods,") != std::string::npos) return true;
    // A classic remount also resets the per-mount flags: pass the current ones back.
    unsigned long flags = MS_REMOUNT;
    std::istringstream opts(mountOpts);
    for (std::string o; std::getline(opts, o, ',');) {
      if (o == "ro") flags |= MS_RDONLY;
      if (o == "nosuid") flags |= MS_NOSUID;
      if (o == "nodev") flags |= MS_NODEV;
      if (o == "noexec") flags |= MS_NOEXEC;
      if (o == "noatime") flags |= MS_NOATIME;
      if (o == "nodiratime") flags |= MS_NODIRATIME;
      if (o == "strictatime") flags |= MS_STRICTATIME;
    }
    std::string data;
    std::istringstream sopts(superOpts);
    for (std::string o; std::getline(sopts, o, ',');) {
      if (o != "rw" && o != "ro") data += o + ",";
    }
    data += "favordynmods";
    return mount(nullptr, mountPoint.c_str(), nullptr, flags, data.c_str()) == 0;
  }
  return false;
}

Result<SandboxCgroup> SandboxCgroup::create(const CgroupLayout& layout, const std::string& id,
                                            const SandboxSpec& spec) {
  SandboxCgroup cg;
  cg.v2_ = layout.v2;
  for (const std::string& dir : layout.dirsOf(id)) {
    Status st = makeDir(dir);
    if (st) cg.dirs_.push_back(dir);
    if (!st) {
      (void)cg.remove();
      return st;
    }
  }
  if (Status st = cg.setLimits(spec); !st) {
    (void)cg.remove();
    return st;
  }
  return cg;
}

Status SandboxCgroup::setLimits(const SandboxSpec& spec) {
  for (size_t i = 0; i < dirs_.size(); ++i) {
    RETURN_IF_ERROR(v2_ ? writeV2Limits(dirs_[i], spec)
                        : writeV1Limits(kV1Controllers[i], dirs_[i], spec));
  }
  return Status::ok();
}

void SandboxCgroup::killAll() const {
  for (const auto& dir : dirs_) {
    for (pid_t pid : processesIn(dir)) {
      if (pid > 0) kill(pid, SIGKILL);
    }
  }
}

std::string SandboxCgroup::dirFor(const char* controller) const {
  if (v2_) return dirs_.empty() ? "" : dirs_[0];
  for (size_t i = 0; i < dirs_.size(); ++i) {
    if (std::string(kV1Controllers[i]) == controller) return dirs_[i];
  }
  return "";
}

Result<std::vector<int>> SandboxCgroup::openProcs() const {
  std::vector<int> fds;
  for (const auto& dir : dirs_) {
    int fd = open((dir + "/cgroup.procs").c_str(), O_WRONLY | O_CLOEXEC);
    if (fd < 0) {
      int err = errno;
      for (int f : fds) close(f);
      return errnoStatus("cgroup: open " + dir + "/cgroup.procs", err);
    }
    fds.push_back(fd);
  }
  return fds;
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

Status SandboxCgroup::renice(int nice) const {
  const std::string threads = dirFor("pids") + (v2_ ? "/cgroup.threads" : "/tasks");
  // Twice: a thread cloned during the first pass may have been cloned with the old niceness.
  for (int pass = 0; pass < 2; ++pass) {
    std::istringstream in(readFile(threads));
    for (pid_t tid; in >> tid;) {
      if (setpriority(PRIO_PROCESS, static_cast<id_t>(tid), nice) != 0 && errno != ESRCH) {
        return errnoStatus("cgroup: setpriority " + std::to_string(tid), errno);
      }
    }
  }
  return Status::ok();
}

int SandboxCgroup::processCount() const {
  return static_cast<int>(processesIn(dirFor("pids")).size());
}

namespace {

// Tasks of a killed pid namespace can take a moment to leave the cgroup: retry on EBUSY.
Status removeDirs(const std::vector<std::string>& dirs) {
  Status result;
  for (const auto& dir : dirs) {
    int err = 0;
    for (int attempt = 0; attempt < 400; ++attempt) {
      if (rmdir(dir.c_str()) == 0 || errno == ENOENT) {
        err = 0;
        break;
      }
      err = errno;
      if (err != EBUSY) break;
      std::this_thread::sleep_for(std::chrono::microseconds(attempt < 20 ? 250 : 5000));
    }
    if (err != 0 && result.isOk()) result = errnoStatus("cgroup: rmdir " + dir, err);
  }
  return result;
}

}  // namespace

Status SandboxCgroup::remove() {
  Status result = removeDirs(dirs_);
  dirs_.clear();
  return result;
}

int removeOrphanedCgroups(const CgroupLayout& layout, int64_t minAgeSeconds) {
  if (layout.parents.empty()) return 0;
  const time_t cutoff = time(nullptr) - minAgeSeconds;
  std::vector<std::string> orphans;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(layout.parents[0], ec)) {
    struct stat st;
    if (!e.is_directory(ec) || stat(e.path().c_str(), &st) != 0 || st.st_mtime > cutoff) continue;
    const std::string id = e.path().filename();
    const std::vector<std::string> dirs = layout.dirsOf(id);
    bool empty = std::all_of(dirs.begin(), dirs.end(),
                             [](const std::string& dir) { return processesIn(dir).empty(); });
    if (empty) orphans.push_back(id);
  }
  int n = 0;
  for (const std::string& id : orphans) n += removeDirs(layout.dirsOf(id)).isOk();
  return n;
}

Status removeStaleCgroup(const CgroupLayout& layout, const std::string& id) {
  std::vector<std::string> dirs = layout.dirsOf(id);
  for (const auto& dir : dirs) {
    for (pid_t pid : processesIn(dir)) {
      if (pid > 0) kill(pid, SIGKILL);
    }
  }
  return removeDirs(dirs);
}

}  // namespace kiln::sandbox
