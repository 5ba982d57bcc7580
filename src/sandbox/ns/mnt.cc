#include "sandbox/ns/mnt.h"

#include <errno.h>
#include <string.h>
#include <fcntl.h>
#include <linux/mount.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

namespace kiln::sandbox {
namespace {

constexpr unsigned long kNoSuidDev = MS_NOSUID | MS_NODEV;
constexpr int kLayersTmpfsMb = 2048;

MountStep overlay(const std::string& name, const std::string& lower, const std::string& upper,
                  const std::string& work, const std::string& target, unsigned long flags,
                  bool userNs) {
  // volatile: no syncs of the upper fs. The layers die with the sandbox, and without it every
  // unmount at destroy syncs the whole host filesystem under the upper dir (tens of ms).
  // userxattr: in a user namespace the trusted.* xattrs overlayfs keeps are out of reach.
  return {name, "overlay", target, "overlay",
          "lowerdir=" + lower + ",upperdir=" + upper + ",workdir=" + work + ",volatile" +
              (userNs ? ",userxattr" : ""),
          flags};
}

}  // namespace

// The flags of the mount under path that a bind remount must repeat: in a user namespace the
// host's are locked, and a remount that would clear one (noexec, an atime mode) is refused.
unsigned long lockedFlagsOf(const std::string& path) {
  struct statvfs st;
  if (statvfs(path.c_str(), &st) != 0) return 0;
  unsigned long flags = 0;
  if (st.f_flag & ST_RDONLY) flags |= MS_RDONLY;
  if (st.f_flag & ST_NOEXEC) flags |= MS_NOEXEC;
  if (st.f_flag & ST_NOATIME) flags |= MS_NOATIME;
  if (st.f_flag & ST_NODIRATIME) flags |= MS_NODIRATIME;
  if (st.f_flag & ST_RELATIME) flags |= MS_RELATIME;
  return flags;
}

MountStep bindStep(const std::string& name, const std::string& hostDir, const std::string& target,
                   int treeFd, bool mkdirTarget) {
  if (treeFd >= 0) return {name, "", target, "", "", 0, mkdirTarget, false, treeFd};
  return {name, hostDir, target, "", "", MS_BIND, mkdirTarget};
}

MountPlan buildMountPlan(const SandboxPaths& p, const SandboxSpec& spec, int workspaceTreeFd,
                         const std::string& diskDevice, bool userNs) {
  MountPlan plan;
  const std::string& r = p.newRoot;
  const std::string& rw = p.rw;
  if (!diskDevice.empty()) {
    // The writable layers live on the sandbox's own ext4 image: that is the disk quota.
    // noinit_itable: no background zeroing of inode tables (a sparse image reads zeros
    // anyway), which would grow the image's allocation and blur its high-water mark.
    plan.mounts.push_back({"mount disk image", diskDevice, rw, "ext4", "noinit_itable",
                           kNoSuidDev});
  } else {
    // tmpfs pages are charged to the sandbox's memory cgroup. Without a disk image (rootless
    // mode: no loop devices), the tmpfs size is the disk quota.
    int sizeMb = spec.diskMb > 0 ? spec.diskMb : kLayersTmpfsMb;
    plan.mounts.push_back({"mount layers tmpfs", "tmpfs", rw, "tmpfs",
                           "mode=700,size=" + std::to_string(sizeMb) + "m", kNoSuidDev});
  }
  for (const char* d : {"/r", "/rw", "/u", "/uw", "/e", "/ew", "/m"}) {
    plan.makeDirs.push_back(rw + d);
  }
  auto& m = plan.mounts;
  m.push_back(overlay("mount rootfs", p.skel, rw + "/r", rw + "/rw", r, MS_NOSUID, userNs));
  // Writes to /usr and /etc land in the sandbox's upper dirs and never reach the host.
  m.push_back(overlay("mount /usr", "/usr", rw + "/u", rw + "/uw", r + "/usr", MS_NOSUID,
                      userNs));
  m.push_back(overlay("mount /etc", p.etcMask + ":/etc", rw + "/e", rw + "/ew", r + "/etc",
                      kNoSuidDev, userNs));
  // The workdir (e.g. /testbed) is made in the root's writable layer when it is not there.
  m.push_back(bindStep("bind /workspace", spec.workspaceDir, r + spec.workdir, workspaceTreeFd,
                       /*mkdirTarget=*/true));
  m.push_back({"remount /workspace", "", r + spec.workdir, "", "",
               MS_BIND | MS_REMOUNT | kNoSuidDev | lockedFlagsOf(spec.workspaceDir)});
  m.push_back({"mount /proc", "proc", r + "/proc", "proc", "", kNoSuidDev | MS_NOEXEC});
  int tmpMb = spec.diskMb > 0 ? spec.diskMb : 1024;
  m.push_back({"mount /tmp", "tmpfs", r + "/tmp", "tmpfs",
               "mode=1777,size=" + std::to_string(tmpMb) + "m", kNoSuidDev});
  m.push_back({"mount /dev", "tmpfs", r + "/dev", "tmpfs", "mode=755,size=1m", MS_NOSUID});
  m.push_back({"mount /dev/pts", "devpts", r + "/dev/pts", "devpts",
               "newinstance,ptmxmode=0666,mode=620", MS_NOSUID | MS_NOEXEC, true});
  m.push_back({"mount /dev/shm", "tmpfs", r + "/dev/shm", "tmpfs", "mode=1777,size=64m",
               kNoSuidDev, true});
  for (auto [name, maj, min] : {std::tuple{"null", 1u, 3u}, {"zero", 1u, 5u}, {"full", 1u, 7u},
                                {"random", 1u, 8u}, {"urandom", 1u, 9u}, {"tty", 5u, 0u}}) {
    plan.devices.push_back({r + "/dev/" + name, maj, min,
                            userNs ? std::string("/dev/") + name : std::string()});
  }
  plan.symlinks = {{"pts/ptmx", r + "/dev/ptmx"},      {"/proc/self/fd", r + "/dev/fd"},
                   {"/proc/self/fd/0", r + "/dev/stdin"}, {"/proc/self/fd/1", r + "/dev/stdout"},
                   {"/proc/self/fd/2", r + "/dev/stderr"}};
  // A root command without capabilities can still write root-owned sysctls and sysrq-trigger.
  plan.late.push_back({"bind /proc/sys", r + "/proc/sys", r + "/proc/sys", "", "", MS_BIND});
  plan.late.push_back({"remount /proc/sys", "", r + "/proc/sys", "", "",
                       MS_BIND | MS_REMOUNT | MS_RDONLY | kNoSuidDev | MS_NOEXEC});
  for (const char* masked : {"/proc/sysrq-trigger", "/proc/kcore", "/proc/keys"}) {
    plan.late.push_back({std::string("mask ") + masked, r + "/dev/null", r + masked, "", "",
                         MS_BIND, false, true});
  }
  return plan;
}

namespace {

// mkdir -p, without allocating (it runs in the cloned child): 0 or the errno.
int mkdirParents(const char* path) {
  char buf[4096];
  const size_t n = strlen(path);
  if (n == 0 || n >= sizeof buf) return ENAMETOOLONG;
  memcpy(buf, path, n + 1);
  for (size_t i = 1; i <= n; ++i) {
    if (buf[i] != '/' && buf[i] != '\0') continue;
    const char saved = buf[i];
    buf[i] = '\0';
    if (mkdir(buf, 0755) != 0 && errno != EEXIST) return errno;
    buf[i] = saved;
  }
  return 0;
}

}  // namespace

int applyMountPlan(const MountPlan& plan, const char** failed) {
  for (const MountStep& s : plan.mounts) {
    // The writable-layer dirs are made after the disk image (if any) is mounted over rw/.
    if (s.name == "mount rootfs") {
      for (const auto& d : plan.makeDirs) {
        if (mkdir(d.c_str(), 0755) != 0 && errno != EEXIST) {
          *failed = "mkdir writable layer";
          return errno;
        }
      }
    }
    if (s.mkdirTarget) {
      if (int err = mkdirParents(s.target.c_str())) {
        *failed = s.name.c_str();
        return err;
      }
    }
    if (s.treeFd >= 0) {
      if (syscall(SYS_move_mount, s.treeFd, "", AT_FDCWD, s.target.c_str(),
                  MOVE_MOUNT_F_EMPTY_PATH) != 0) {
        *failed = s.name.c_str();
        return errno;
      }
      continue;
    }
    const char* src = s.source.empty() ? nullptr : s.source.c_str();
    const char* fstype = s.fstype.empty() ? nullptr : s.fstype.c_str();
    const char* data = s.data.empty() ? nullptr : s.data.c_str();
    if (mount(src, s.target.c_str(), fstype, s.flags, data) != 0) {
      *failed = s.name.c_str();
      return errno;
    }
  }
  for (const DeviceNode& d : plan.devices) {
    if (!d.hostPath.empty()) {
      int fd = open(d.path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
      if (fd < 0 || close(fd) != 0 ||
          mount(d.hostPath.c_str(), d.path.c_str(), nullptr, MS_BIND, nullptr) != 0) {
        *failed = "bind /dev node";
        return errno;
      }
      continue;
    }
    if (mknod(d.path.c_str(), S_IFCHR | 0666, makedev(d.major, d.minor)) != 0 ||
        chmod(d.path.c_str(), 0666) != 0) {
      *failed = "mknod /dev";
      return errno;
    }
  }
  for (const SymlinkStep& l : plan.symlinks) {
    if (symlink(l.target.c_str(), l.path.c_str()) != 0) {
      *failed = "symlink /dev";
      return errno;
    }
  }
  for (const MountStep& s : plan.late) {
    if (mount(s.source.empty() ? nullptr : s.source.c_str(), s.target.c_str(), nullptr, s.flags,
              nullptr) != 0) {
      if (s.optional && errno == ENOENT) continue;
      *failed = s.name.c_str();
      return errno;
    }
  }
  return 0;
}

int pivotInto(const char* newRoot, const char** failed) {
  // pivot_root(".", ".") stacks the old root on top of the new one; detaching "." then drops
  // it without needing a directory for it inside the new root.
  if (chdir(newRoot) != 0) {
    *failed = "chdir new root";
    return errno;
  }
  if (syscall(SYS_pivot_root, ".", ".") != 0) {
    *failed = "pivot_root";
    return errno;
  }
  if (umount2(".", MNT_DETACH) != 0) {
    *failed = "detach old root";
    return errno;
  }
  if (chdir("/") != 0) {
    *failed = "chdir /";
    return errno;
  }
  return 0;
}

}  // namespace kiln::sandbox
