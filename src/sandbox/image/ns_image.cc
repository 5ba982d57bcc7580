#include "sandbox/image/ns_image.h"

#include <elf.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <functional>

#include "sandbox/image/image.h"

namespace kiln::sandbox::image {
namespace {

constexpr const char* kHostDirInside = "/run/kiln-host";
constexpr unsigned long kReadOnlyRemount = MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV;

// PT_INTERP of an ELF64 executable: "" for a static one.
Result<std::string> elfInterpreter(const std::string& path) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return errnoStatus("image: open " + path, errno);
  std::string interp;
  Elf64_Ehdr eh;
  bool ok = pread(fd, &eh, sizeof eh, 0) == sizeof eh && memcmp(eh.e_ident, ELFMAG, SELFMAG) == 0 &&
            eh.e_ident[EI_CLASS] == ELFCLASS64;
  for (unsigned i = 0; ok && i < eh.e_phnum; ++i) {
    Elf64_Phdr ph;
    off_t at = static_cast<off_t>(eh.e_phoff + i * eh.e_phentsize);
    if (pread(fd, &ph, sizeof ph, at) != sizeof ph) {
      ok = false;
    } else if (ph.p_type == PT_INTERP && ph.p_filesz < PATH_MAX) {
      interp.resize(ph.p_filesz);
      ok = pread(fd, interp.data(), ph.p_filesz, static_cast<off_t>(ph.p_offset)) ==
           static_cast<ssize_t>(ph.p_filesz);
      interp = interp.c_str();  // drop the terminating NUL
    }
  }
  close(fd);
  if (!ok) return invalidArgument("image: " + path + " is not a 64-bit ELF executable");
  return interp;
}

Status ensureMountPoints(const std::string& dir) {
  if (mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST) return errnoStatus("mkdir " + dir, errno);
  const std::string lib = dir + "/lib";
  if (mkdir(lib.c_str(), 0755) != 0 && errno != EEXIST) return errnoStatus("mkdir " + lib, errno);
  const std::string file = dir + "/kiln";
  int fd = open(file.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0755);
  if (fd < 0) return errnoStatus("create " + file, errno);
  close(fd);
  return Status::ok();
}

// Applies `edit` to the colon-separated lowerdir of the overlay mounted at target.
Status editLowerDir(std::vector<MountStep>& mounts, const std::string& target,
                    const std::function<bool(std::string&)>& edit) {
  for (MountStep& m : mounts) {
    if (m.target != target || m.fstype != "overlay") continue;
    size_t at = m.data.find("lowerdir=");
    if (at == std::string::npos) break;
    at += 9;
    size_t end = m.data.find(',', at);
    std::string lower = m.data.substr(at, end == std::string::npos ? end : end - at);
    if (!edit(lower)) break;
    m.data.replace(at, end == std::string::npos ? std::string::npos : end - at, lower);
    return Status::ok();
  }
  return internalError("image: the mount plan has no overlay at " + target +
                       " of the expected shape");
}

}  // namespace

Result<NsImage> NsImage::prepare(const std::string& stateDir, const std::string& imagesDir,
                                 const std::string& kilnBinary, const std::string& image) {
  NsImage out;
  ASSIGN_OR_RETURN(out.rootfs_, resolveImageRootfs(imagesDir, image));
  out.kilnBinary_ = kilnBinary;
  out.hostDir_ = stateDir + "/.hostbin";
  RETURN_IF_ERROR(ensureMountPoints(out.hostDir_).withContext("image"));
  ASSIGN_OR_RETURN(std::string interp, elfInterpreter(kilnBinary));
  if (interp.empty()) return out;  // a static kiln runs as it is
  char real[PATH_MAX];
  if (!realpath(interp.c_str(), real)) return errnoStatus("image: loader " + interp, errno);
  std::string loader = real;
  out.libDir_ = loader.substr(0, loader.rfind('/'));
  int fd = open(real, O_PATH | O_CLOEXEC);
  if (fd < 0) return errnoStatus("image: open " + loader, errno);
  out.loaderFd_ = std::shared_ptr<int>(new int(fd), [](int* p) {
    close(*p);
    delete p;
  });
  return out;
}

Status NsImage::applyTo(ContainPlan& plan, const SandboxPaths& paths) const {
  const std::string& r = plan.newRoot;
  auto& mounts = plan.mounts.mounts;
  // Root in a user namespace (a mapped id) cannot enter kiln's 0700 data dir, where images and
  // the state dir live: their dirs come in as detached mounts (ContainPlan::addBindSource).
  const bool detached = plan.userNs.parentWritesMaps;
  auto bind = [&](const char* name, const std::string& hostPath, const std::string& target,
                  bool mkdirTarget) -> Result<MountStep> {
    int tree = -1;
    if (detached) {
      ASSIGN_OR_RETURN(tree, plan.addBindSource(hostPath));
    }
    return bindStep(name, hostPath, target, tree, mkdirTarget);
  };
  std::string rootfs = rootfs_;
  if (detached) {
    // Attached inside the layers tmpfs, before the overlays that use it.
    rootfs = paths.rw + "/i";
    auto rootfsAt = std::find_if(mounts.begin(), mounts.end(),
                                 [&](const MountStep& m) { return m.target == r; });
    ASSIGN_OR_RETURN(MountStep step, bind("attach image", rootfs_, rootfs, true));
    mounts.insert(rootfsAt, step);
  }
  // Rootfs: the skeleton stays on top (mount points, /workspace, /home/agent), the image under.
  RETURN_IF_ERROR(editLowerDir(mounts, r, [&](std::string& lower) {
    if (lower != paths.skel) return false;
    lower += ":" + rootfs;
    return true;
  }));
  for (const char* dir : {"/usr", "/etc"}) {
    RETURN_IF_ERROR(editLowerDir(mounts, r + dir, [&](std::string& lower) {
      // "/usr" or "<etc mask>:/etc": the host dir is the last layer.
      const size_t at = lower.rfind(dir);
      if (at == std::string::npos || at + strlen(dir) != lower.size()) return false;
      lower.replace(at, std::string::npos, rootfs + dir);
      return true;
    }));
  }
  if (!loaderFd_) return Status::ok();
  const std::string inside = r + kHostDirInside;
  ASSIGN_OR_RETURN(MountStep hostDir, bind("bind /run/kiln-host", hostDir_, inside, true));
  mounts.push_back(hostDir);
  ASSIGN_OR_RETURN(MountStep binary, bind("bind kiln binary", kilnBinary_, inside + "/kiln", false));
  mounts.push_back(binary);
  ASSIGN_OR_RETURN(MountStep libs, bind("bind host libraries", libDir_, inside + "/lib", false));
  mounts.push_back(libs);
  for (const char* sub : {"", "/kiln", "/lib"}) {
    mounts.push_back(
        {std::string("remount /run/kiln-host") + sub, "", inside + sub, "", "", kReadOnlyRemount});
  }
  // ld.so [--library-path DIR] [--argv0 NAME] PROGRAM ARGS...
  std::vector<std::string> args = {"ld.so",
                                   "--library-path",
                                   std::string(kHostDirInside) + "/lib",
                                   "--argv0",
                                   plan.args.empty() ? "kiln" : plan.args[0],
                                   std::string(kHostDirInside) + "/kiln"};
  if (!plan.args.empty()) args.insert(args.end(), plan.args.begin() + 1, plan.args.end());
  plan.args = std::move(args);
  plan.binFd = *loaderFd_;
  return Status::ok();
}

}  // namespace kiln::sandbox::image
