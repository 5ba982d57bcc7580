#include "common/files.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <sstream>

namespace kiln {
namespace {

int removeEntry(const char* path, const struct stat*, int flag, FTW*) {
  if (flag == FTW_DP) return rmdir(path) == 0 || errno == ENOENT ? 0 : errno;
  return unlink(path) == 0 || errno == ENOENT ? 0 : errno;
}

// Chowns the entries of directory fd (consumed) recursively, staying on device dev. Returns 0
// or the first errno. Reentrant (nftw's callbacks take no context, which forced a global lock
// on every concurrent sandbox create).
int chownChildren(int fd, dev_t dev, unsigned uid, unsigned gid) {
  DIR* d = fdopendir(fd);
  if (!d) {
    int err = errno;
    close(fd);
    return err;
  }
  int err = 0;
  while (dirent* e = readdir(d)) {
    if (std::strcmp(e->d_name, ".") == 0 || std::strcmp(e->d_name, "..") == 0) continue;
    struct stat st;
    if (fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0) continue;  // gone
    if ((st.st_uid != uid || st.st_gid != gid) &&
        fchownat(dirfd(d), e->d_name, uid, gid, AT_SYMLINK_NOFOLLOW) != 0 && errno != ENOENT &&
        err == 0) {
      err = errno;
    }
    if (!S_ISDIR(st.st_mode) || st.st_dev != dev) continue;
    int sub = openat(dirfd(d), e->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (sub >= 0) {
      int subErr = chownChildren(sub, dev, uid, gid);
      if (err == 0) err = subErr;
    }
  }
  closedir(d);
  return err;
}

std::string unescapeMountPath(const std::string& s) {
  std::string r;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 3 < s.size()) {
      r += static_cast<char>(std::stoi(s.substr(i + 1, 3), nullptr, 8));
      i += 3;
    } else {
      r += s[i];
    }
  }
  return r;
}

}  // namespace

std::vector<std::string> mountPoints() {
  std::vector<std::string> out;
  std::ifstream in("/proc/self/mountinfo");
  for (std::string line; std::getline(in, line);) {
    // id parent dev root mountpoint ...
    std::istringstream fields(line);
    std::string id, parent, devno, root, mountPoint;
    if (fields >> id >> parent >> devno >> root >> mountPoint) {
      out.push_back(unescapeMountPath(mountPoint));
    }
  }
  return out;
}

Result<std::string> readFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return notFound(path + ": cannot open");
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

Status chownTree(const std::string& dir, unsigned uid, unsigned gid) {
  int fd = open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  struct stat st;
  if (fd < 0 || fstat(fd, &st) != 0) {
    int err = errno;
    if (fd >= 0) close(fd);
    return errnoStatus("chown " + dir, err);
  }
  if ((st.st_uid != uid || st.st_gid != gid) && fchown(fd, uid, gid) != 0) {
    int err = errno;
    close(fd);
    return errnoStatus("chown " + dir, err);
  }
  int err = chownChildren(fd, st.st_dev, uid, gid);
  return err == 0 ? Status::ok() : errnoStatus("chown " + dir, err);
}

Status removeTree(const std::string& dir) {
  int rc = nftw(dir.c_str(), removeEntry, 32, FTW_PHYS | FTW_MOUNT | FTW_DEPTH);
  if (rc != 0 && errno != ENOENT) return errnoStatus("remove " + dir, rc > 0 ? rc : errno);
  return Status::ok();
}

}  // namespace kiln
