// DiskImage: the disk quota of a sandbox. With diskMb > 0, a sparse ext4 image of that size is
// attached to a loop device (autoclear) and mounted in the child over the writable layers, so a
// full disk is ENOSPC inside, never on the host. Owned by one sandbox; not thread-safe.
#pragma once
#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>

#include "common/result.h"
#include "sandbox/sandbox.h"

namespace kiln::sandbox {

class DiskImage {
 public:
  DiskImage() = default;
  DiskImage(DiskImage&& o) noexcept { *this = std::move(o); }
  DiskImage& operator=(DiskImage&& o) noexcept;
  ~DiskImage() { (void)release(); }

  // The image at path, sizeMb large; no image when sizeMb <= 0.
  static Result<DiskImage> create(const std::string& path, int sizeMb);
  // Rootless mode (no loop devices): the quota is the size of the tmpfs holding the writable
  // layers (buildMountPlan); only a full layer is reported as a breach, not an earlier one.
  static DiskImage onTmpfs(int sizeMb);

  // "/dev/loopN", or empty without an image.
  const std::string& device() const { return device_; }
  // Set once the image is (nearly) full, or was at some point: statfs of the sandbox root
  // (overlayfs reports its upper layer, i.e. the image) and the image's high-water mark.
  // rootPid is PID 1 of the sandbox as seen from the host.
  std::optional<LimitBreach> breach(pid_t rootPid) const;
  // Detaches the loop device (autoclear: it goes once the last mount is gone) and removes the
  // image file.
  Status release();

 private:
  // Bytes the sandbox made the image allocate since mkfs (deleting files does not give them
  // back: nothing discards).
  uint64_t peakUsedBytes() const;
  uint64_t reservedBytes(uint64_t blockSize) const;

  std::string image_;
  std::string device_;
  int loopFd_ = -1;
  int imageFd_ = -1;
  uint64_t baselineBytes_ = 0;  // allocated by mkfs
  int tmpfsMb_ = 0;             // onTmpfs()
};

}  // namespace kiln::sandbox
