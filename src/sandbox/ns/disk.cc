#include "sandbox/ns/disk.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/loop.h>
#include <sys/ioctl.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "common/subprocess.h"

namespace kiln::sandbox {
namespace {

// With less free than this the image counts as full: ext4 ENOSPCs a writer before reaching 0
// (metadata, block groups), so "exactly zero" is never observed.
constexpr uint64_t kFullSlackBytes = 1 << 20;

Result<int> attachLoop(int imageFd, std::string* device) {
  int ctl = open("/dev/loop-control", O_RDWR | O_CLOEXEC);
  if (ctl < 0) return errnoStatus("disk: open /dev/loop-control", errno);
  // Another sandbox may grab the same free device between GET_FREE and CONFIGURE: retry.
  for (int attempt = 0; attempt < 16; ++attempt) {
    int n = ioctl(ctl, LOOP_CTL_GET_FREE);
    if (n < 0) {
      close(ctl);
      return errnoStatus("disk: LOOP_CTL_GET_FREE", errno);
    }
    std::string path = "/dev/loop" + std::to_string(n);
    int fd = open(path.c_str(), O_RDWR | O_CLOEXEC);
    if (fd < 0) continue;
    loop_config cfg{};
    cfg.fd = static_cast<__u32>(imageFd);
    cfg.info.lo_flags = LO_FLAGS_AUTOCLEAR;
    if (ioctl(fd, LOOP_CONFIGURE, &cfg) == 0) {
      close(ctl);
      *device = path;
      return fd;
    }
    close(fd);
    if (errno != EBUSY) break;
  }
  int err = errno;
  close(ctl);
  return errnoStatus("disk: attach loop device", err);
}

}  // namespace

DiskImage& DiskImage::operator=(DiskImage&& o) noexcept {
  std::swap(image_, o.image_);
  std::swap(device_, o.device_);
  std::swap(loopFd_, o.loopFd_);
  return *this;
}

Result<DiskImage> DiskImage::create(const std::string& path, int sizeMb) {
  DiskImage disk;
  if (sizeMb <= 0) return disk;
  disk.image_ = path;
  int fd = open(disk.image_.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) return errnoStatus("disk: create " + disk.image_, errno);
  if (ftruncate(fd, off_t{sizeMb} << 20) != 0) {
    close(fd);
    return errnoStatus("disk: truncate", errno);
  }
  Result<ProcessOutput> mkfs = runProcess(
      {"/usr/sbin/mkfs.ext4", "-q", "-F", "-m", "0", "-O", "^has_journal", "-E",
       "nodiscard,root_owner=0:0", disk.image_});
  if (!mkfs || mkfs->exitCode != 0) {
    close(fd);
    return internalError("disk: mkfs.ext4 failed: " + (mkfs ? mkfs->err : mkfs.status().message()));
  }
  Result<int> loop = attachLoop(fd, &disk.device_);
  close(fd);
  if (!loop) return loop.status();
  disk.loopFd_ = *loop;
  return disk;
}

std::optional<LimitBreach> DiskImage::breach(pid_t rootPid) const {
  if (device_.empty() || rootPid <= 0) return std::nullopt;
  struct statvfs st;
  std::string root = "/proc/" + std::to_string(rootPid) + "/root/";
  if (statvfs(root.c_str(), &st) != 0) return std::nullopt;
  uint64_t total = uint64_t{st.f_blocks} * st.f_frsize;
  uint64_t avail = uint64_t{st.f_bavail} * st.f_frsize;
  if (avail > std::max<uint64_t>(kFullSlackBytes, total / 50)) return std::nullopt;
  return LimitBreach{"disk", "disk quota exhausted (" +
                                 std::to_string((st.f_blocks * st.f_frsize) >> 20) + " MiB)"};
}

Status DiskImage::release() {
  if (loopFd_ >= 0) close(loopFd_);
  loopFd_ = -1;
  if (!image_.empty()) unlink(image_.c_str());
  image_.clear();
  device_.clear();
  return Status::ok();
}

}  // namespace kiln::sandbox
