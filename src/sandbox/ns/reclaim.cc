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
#include <filesystem>
#include <fstream>
#include <sstream>
#include <vector>

#include "sandbox/ns/layout.h"

namespace kiln::sandbox {
namespace {

bool under(const std::string& path, const std::string& dir) {
  return path.size() > dir.size() && path.compare(0, dir.size(), dir) == 0 &&
         path[dir.size()] == '/';
}

// Loop devices whose backing file lies under dir: detached (autoclear ones normally go by
// themselves once their last mount is gone; these are the ones that did not).
int detachLoops(const std::string& dir) {
  int n = 0;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator("/sys/block", ec)) {
    std::ifstream in(e.path() / "loop" / "backing_file");
    std::string backing;
    if (!std::getline(in, backing) || !under(backing, dir)) continue;
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
  std::ifstream in("/proc/self/mountinfo");
  for (std::string line; std::getline(in, line);) {
    std::istringstream fields(line);
    std::string skip, target;
    fields >> skip >> skip >> skip >> skip >> target;
    if (target == dir || under(target, dir)) targets.push_back(target);
  }
  std::sort(targets.rbegin(), targets.rend());
  int n = 0;
  for (const auto& t : targets) n += umount2(t.c_str(), MNT_DETACH) == 0;
  return n;
}

}  // namespace

Result<int> lockSandboxDir(const std::string& dir) {
  int fd = open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return errnoStatus("sandbox: open " + dir, errno);
  if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
    int err = errno;
    close(fd);
    if (err == EWOULDBLOCK) return conflict("sandbox: " + dir + " is in use");
    return errnoStatus("sandbox: lock " + dir, err);
  }
  // A reclaim running in another process may have removed the directory between our mkdir and
  // the lock: it is then no longer ours.
  struct stat st;
  if (fstat(fd, &st) != 0 || st.st_nlink == 0) {
    close(fd);
    return conflict("sandbox: " + dir + " was reclaimed while being created");
  }
  return fd;
}

Result<ReclaimReport> reclaimStaleSandboxes(const std::string& stateDir,
                                           const CgroupLayout& cgroups) {
  ReclaimReport report;
  Status first;
  DIR* d = opendir(stateDir.c_str());
  if (!d) return errnoStatus("sandbox: open " + stateDir, errno);
  std::vector<std::string> ids;
  while (dirent* e = readdir(d)) {
    if (e->d_name[0] == '.') continue;
    struct stat st;
    bool isDir = e->d_type == DT_DIR ||
                 (e->d_type == DT_UNKNOWN && fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
                  S_ISDIR(st.st_mode));
    if (isDir) ids.push_back(e->d_name);
  }
  closedir(d);
  for (const std::string& id : ids) {
    std::string dir = stateDir + "/" + id;
    Result<int> lock = lockSandboxDir(dir);
    if (!lock) continue;  // a live sandbox (or gone meanwhile)
    bool hadCgroup = std::any_of(cgroups.parents.begin(), cgroups.parents.end(),
                                 [&](const std::string& p) { return access((p + "/" + id).c_str(), F_OK) == 0; });
    // Processes first: they hold the mount namespace, and through it the loop devices.
    Status st = removeStaleCgroup(cgroups, id);
    report.loops += detachLoops(dir);
    report.mounts += detachMounts(dir);
    if (st) st = removeTree(dir);
    close(*lock);
    if (!st && first.isOk()) first = st;
    report.cgroups += hadCgroup;
    report.sandboxes += st.isOk();
  }
  if (!first) return first;
  return report;
}

}  // namespace kiln::sandbox
