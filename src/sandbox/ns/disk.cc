#include "sandbox/ns/disk.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/loop.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <cstring>

#include "common/subprocess.h"

namespace kiln::sandbox {
namespace {

// With less free than this the image counts as full: ext4 ENOSPCs a writer before reaching 0
// (metadata, block groups), so "exactly zero" is never observed.
constexpr uint64_t kFullSlackBytes = 1 << 20;
constexpr uint64_t kHighWaterSlackBytes = 4 << 20;

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
  std::swap(imageFd_, o.imageFd_);
  std::swap(baselineBytes_, o.baselineBytes_);
  std::swap(tmpfsMb_, o.tmpfsMb_);
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
  if (!loop) {
    close(fd);
    return loop.status();
  }
  disk.loopFd_ = *loop;
  disk.imageFd_ = fd;
  struct stat st;
  disk.baselineBytes_ = fstat(fd, &st) == 0 ? uint64_t(st.st_blocks) * 512 : 0;
  return disk;
}

DiskImage DiskImage::onTmpfs(int sizeMb) {
  DiskImage disk;
  disk.tmpfsMb_ = std::max(sizeMb, 0);
  return disk;
}

uint64_t DiskImage::peakUsedBytes() const {
  struct stat st;
  if (imageFd_ < 0 || fstat(imageFd_, &st) != 0) return 0;
  uint64_t allocated = uint64_t(st.st_blocks) * 512;
  return allocated > baselineBytes_ ? allocated - baselineBytes_ : 0;
}

uint64_t DiskImage::reservedBytes(uint64_t blockSize) const {
  // ext4 holds back reserved_clusters (min(2%, 4096)) for metadata: a writer gets ENOSPC that
  // much before the data blocks run out.
  std::string name = device_.substr(device_.rfind('/') + 1);
  std::ifstream in("/sys/fs/ext4/" + name + "/reserved_clusters");
  uint64_t clusters = 0;
  return in >> clusters ? clusters * blockSize : 0;
}

std::optional<LimitBreach> DiskImage::breach(pid_t rootPid) const {
  if ((device_.empty() && tmpfsMb_ == 0) || rootPid <= 0) return std::nullopt;
  struct statvfs st;
  std::string root = "/proc/" + std::to_string(rootPid) + "/root/";
  if (statvfs(root.c_str(), &st) != 0) return std::nullopt;
  uint64_t total = uint64_t{st.f_blocks} * st.f_frsize;
  uint64_t avail = uint64_t{st.f_bavail} * st.f_frsize;
  uint64_t slack = std::max<uint64_t>(kFullSlackBytes, total / 50);
  // Full now, or full earlier and freed since: the image is never discarded, so its allocated
  // blocks only grow and keep the high-water mark of what the sandbox wrote. That mark lags
  // the peak by what was still dirty in the page cache when the files went (a few MiB: near
  // full, ext4 forces writeback before it answers ENOSPC), hence the wider slack.
  bool fullNow = avail <= slack;
  uint64_t peakSlack = std::max<uint64_t>(kHighWaterSlackBytes, total / 50);
  bool filledBefore = !device_.empty() &&
                      peakUsedBytes() + reservedBytes(st.f_frsize) + peakSlack >= total;
  if (!fullNow && !filledBefore) return std::nullopt;
  return LimitBreach{"disk", "disk quota exhausted (" + std::to_string(total >> 20) + " MiB)"};
}

Status DiskImage::release() {
  if (loopFd_ >= 0) close(loopFd_);
  loopFd_ = -1;
  if (imageFd_ >= 0) close(imageFd_);
  imageFd_ = -1;
  if (!image_.empty()) unlink(image_.c_str());
  image_.clear();
  device_.clear();
  return Status::ok();
}

}  // namespace kiln::sandbox
