// Mount namespace of a sandbox: the list of mounts that builds its root (overlay rootfs,
// overlays of /usr and /etc, the workspace bind, fresh /proc, /tmp, minimal /dev), computed on
// the host before clone, then applied in the child with raw syscalls only.
#pragma once
#include <string>
#include <vector>

#include "sandbox/ns/layout.h"
#include "sandbox/sandbox.h"

namespace kiln::sandbox {

struct MountStep {
  std::string name;  // for errors: "mount /proc"
  std::string source, target, fstype, data;
  unsigned long flags = 0;
  // Directory to create before mounting (a mount point inside a fresh tmpfs), or empty.
  bool mkdirTarget = false;
  // Skipped when the target does not exist (kernel-dependent /proc files).
  bool optional = false;
  // >= 0: instead of mount(), attach this detached mount (ContainPlan::addBindSource) there.
  int treeFd = -1;
};

// The flags of the mount under path that a bind remount must repeat (MS_RDONLY, MS_NOEXEC, the
// atime modes): in a user namespace the host's are locked.
unsigned long lockedFlagsOf(const std::string& path);

// Bind hostDir (by path, or the detached mount treeFd when >= 0) at target.
MountStep bindStep(const std::string& name, const std::string& hostDir, const std::string& target,
                   int treeFd, bool mkdirTarget = false);

struct DeviceNode {
  std::string path;
  unsigned major, minor;
  // In a user namespace (rootless mode) nodes cannot be made: the host's node at this path is
  // bind-mounted over an empty file instead.
  std::string hostPath;
};

struct SymlinkStep {
  std::string target, path;
};

struct MountPlan {
  std::vector<std::string> makeDirs;  // created first (writable layers)
  std::vector<MountStep> mounts;
  std::vector<DeviceNode> devices;
  std::vector<SymlinkStep> symlinks;
  std::vector<MountStep> late;  // after the device nodes: read-only remounts, masks
};

// diskDevice: the disk-quota image's loop device, or empty: the writable layers are then a
// tmpfs of spec.diskMb (the quota) or 2 GiB. userNs: the mounts are made from inside a user
// namespace (rootless mode): overlays keep their metadata in user.* xattrs, and device nodes
// are bind-mounted from the host.
// workspaceTreeFd: the detached bind mount of spec.workspaceDir, as the child's fd
// (ContainPlan::addBindSource), or -1: the child binds the path.
MountPlan buildMountPlan(const SandboxPaths& paths, const SandboxSpec& spec, int workspaceTreeFd,
                         const std::string& diskDevice, bool userNs);

// Child side. Each returns 0 or errno and sets *failed to the name of the failing step.
int applyMountPlan(const MountPlan& plan, const char** failed);
// pivot_root into newRoot and detach the old root.
int pivotInto(const char* newRoot, const char** failed);

}  // namespace kiln::sandbox
