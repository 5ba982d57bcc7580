#include "sandbox/ns/reclaim.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/loop.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <vector>

#include "sandbox/ns/layout.h"

namespace kiln::sandbox {
Result<SandboxClaim> claimSandboxId(const std::string& runDir, const SandboxPaths& paths,
                                    const std::string& id) {
  const bool valid =
      !id.empty() && id.size() <= 40 && std::all_of(id.begin(), id.end(), [](char c) {
        return isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_';
      });
  if (!valid) return invalidArgument("sandbox: id must be 1-40 of [A-Za-z0-9_-]");
  SandboxClaim claim;
  ASSIGN_OR_RETURN(int log, createSandboxLog(runDir, paths.log, id));
  claim.log.reset(log);
  ASSIGN_OR_RETURN(int lock, lockSandboxState(paths.log));
  claim.lock.reset(lock);
  return claim;
}

namespace {

bool under(const std::string& path, const std::string& dir) {
  return path.size() > dir.size() && path.compare(0, dir.size(), dir) == 0 &&
         path[dir.size()] == '/';
}

// Loop devices whose backing file is path or lies under it: detached (autoclear ones normally
// go by themselves once their last mount is gone; these are the ones that did not).
int detachLoops(const std::string& path) {
  int n = 0;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator("/sys/block", ec)) {
    std::ifstream in(e.path() / "loop" / "backing_file");
    std::string backing;
    if (!std::getline(in, backing)) continue;
    // A deleted backing file reads "<path> (deleted)".
    bool match =
        backing.rfind(path, 0) == 0 && (backing.size() == path.size() ||
                                        backing[path.size()] == '/' || backing[path.size()] == ' ');
    if (!match) continue;
    int fd = open(("/dev/" + e.path().filename().string()).c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) continue;
    n += ioctl(fd, LOOP_CLR_FD, 0) == 0;
    close(fd);
  }
  return n;
}

// Host mounts at or under dir, detached deepest first.
int detachMounts(const std::string& dir) {
  std::vector<std::string> targets;
  for (const std::string& target : mountPoints()) {
    if (target == dir || under(target, dir)) targets.push_back(target);
  }
  std::sort(targets.rbegin(), targets.rend());
  int n = 0;
  for (const auto& t : targets) n += umount2(t.c_str(), MNT_DETACH) == 0;
  return n;
}

}  // namespace

Result<int> lockSandboxState(const std::string& path) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return errnoStatus("sandbox: open " + path, errno);
  if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
    int err = errno;
    close(fd);
    if (err == EWOULDBLOCK) return conflict("sandbox: " + path + " is in use");
    return errnoStatus("sandbox: lock " + path, err);
  }
  // A reclaim running in another process may have removed the file between its creation and
  // our lock: it is then no longer ours.
  struct stat st;
  if (fstat(fd, &st) != 0 || st.st_nlink == 0) {
    close(fd);
    return conflict("sandbox: " + path + " was reclaimed while being created");
  }
  return fd;
}

namespace {

bool endsWith(const std::string& s, const std::string& suffix) {
  return s.size() > suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

struct StaleEntries {
  std::set<std::string> ids;     // from <id>.log / .sock / .img / .net
  std::set<std::string> legacy;  // <id>/ directories
};

Result<StaleEntries> listEntries(const std::string& stateDir) {
  StaleEntries out;
  DIR* d = opendir(stateDir.c_str());
  if (!d) return errnoStatus("sandbox: open " + stateDir, errno);
  while (dirent* e = readdir(d)) {
    std::string name = e->d_name;
    if (name[0] == '.') continue;
    struct stat st;
    if (fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0) continue;
    if (S_ISDIR(st.st_mode)) {
      if (endsWith(name, ".net") || endsWith(name, ".gv")) {  // egress dir, gVisor bundle
        out.ids.insert(name.substr(0, name.rfind('.')));
      } else {
        out.legacy.insert(name);
      }
      continue;
    }
    for (const char* ext : {".log", ".sock", ".img"}) {
      if (endsWith(name, ext)) out.ids.insert(name.substr(0, name.size() - strlen(ext)));
    }
  }
  closedir(d);
  return out;
}

// No create takes this long between making a sandbox's cgroups and its PID 1 joining them.
constexpr int64_t kOrphanCgroupAgeSeconds = 600;

// Reclaims one stale sandbox whose lock (if any) the caller holds.
// files: the sandbox's disk image, or its directory in the earlier layout.
Status reclaimOne(const std::string& id, const std::string& files, const CgroupLayout& cgroups,
                  ReclaimReport& report) {
  report.cgroups +=
      std::any_of(cgroups.parents.begin(), cgroups.parents.end(),
                  [&](const std::string& p) { return access((p + "/" + id).c_str(), F_OK) == 0; });
  // Processes first: they hold the mount namespace, and through it the loop devices.
  Status st = removeStaleCgroup(cgroups, id);
  report.loops += detachLoops(files);
  report.mounts += detachMounts(files);
  return st;
}

}  // namespace

Result<ReclaimReport> reclaimStaleSandboxes(const std::string& stateDir, const std::string& runDir,
                                            const CgroupLayout& cgroups) {
  ASSIGN_OR_RETURN(StaleEntries entries, listEntries(stateDir));
  ASSIGN_OR_RETURN(StaleEntries running, listEntries(runDir));
  entries.ids.insert(running.ids.begin(), running.ids.end());
  ReclaimReport report;
  Status first;
  for (const std::string& id : entries.ids) {
    SandboxPaths paths = SandboxPaths::of(stateDir, runDir, stateDir, id);
    // Without a log, the rest is debris of a create or destroy cut short.
    Result<int> lock = lockSandboxState(paths.log);
    if (!lock && lock.status().code() == Code::kConflict) continue;  // live
    Status st = reclaimOne(id, paths.image, cgroups, report);
    Status rm = removeSandboxFiles(paths);
    if (st.isOk()) st = rm;
    if (lock) close(*lock);
    if (!st && first.isOk()) first = st;
    report.sandboxes += st.isOk();
  }
  for (const std::string& id : entries.legacy) {
    std::string dir = stateDir + "/" + id;
    Result<int> lock = lockSandboxState(dir);
    if (!lock) continue;  // live, or gone meanwhile
    Status st = reclaimOne(id, dir, cgroups, report);
    if (st) st = removeTree(dir);
    close(*lock);
    if (!st && first.isOk()) first = st;
    report.sandboxes += st.isOk();
  }
  report.orphanCgroups = removeOrphanedCgroups(cgroups, kOrphanCgroupAgeSeconds);
  if (!first) return first;
  return report;
}

}  // namespace kiln::sandbox
