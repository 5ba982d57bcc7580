#include "sandbox/ns/layout.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <algorithm>
#include <climits>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <mutex>
#include <optional>

namespace kiln::sandbox {
namespace {

// Files of the host /etc that must not be visible inside (whited out in the mask layer).
constexpr const char* kEtcSecrets[] = {
    "shadow",
    "shadow-",
    "gshadow",
    "gshadow-",
    "sudoers",
    "security/opasswd",
    "ssh/ssh_host_rsa_key",
    "ssh/ssh_host_ecdsa_key",
    "ssh/ssh_host_ed25519_key",
    "ssh/ssh_host_dsa_key",
    "ssl/private",
    "machine-id",
    "kiln",
};

constexpr const char* kSkelDirs[] = {"usr",       "etc",  "proc", "dev", "tmp",
                                     "workspace", "home", "root", "var", "var/tmp",
                                     "run",       "mnt",  "opt",  "srv", "home/agent"};

Status mkdirIfMissing(const std::string& path, mode_t mode) {
  if (mkdir(path.c_str(), mode) != 0 && errno != EEXIST) return errnoStatus("mkdir " + path, errno);
  return Status::ok();
}

Status writeText(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::trunc);
  out << text;
  return out ? Status::ok() : errnoStatus("write " + path, errno);
}

Status chownIfNeeded(const std::string& path, unsigned uid, unsigned gid) {
  struct stat st;
  if (lstat(path.c_str(), &st) != 0) return errnoStatus("stat " + path, errno);
  if ((st.st_uid != uid || st.st_gid != gid) && lchown(path.c_str(), uid, gid) != 0) {
    return errnoStatus("chown " + path, errno);
  }
  return Status::ok();
}

// ids: the host ids of root and of the agent inside; nullopt in rootless mode, where our own
// files are the agent's (the one mapped id) and nothing can be chowned.
Status prepareSkeleton(const std::string& skel, std::optional<SandboxIds> ids) {
  RETURN_IF_ERROR(mkdirIfMissing(skel, 0755));
  for (const char* d : kSkelDirs) RETURN_IF_ERROR(mkdirIfMissing(skel + "/" + d, 0755));
  chmod((skel + "/tmp").c_str(), 01777);
  chmod((skel + "/var/tmp").c_str(), 01777);
  chmod((skel + "/root").c_str(), 0700);
  if (ids) {
    // Each dir to its owner, touched only when it differs: running sandboxes of another backend
    // over this state dir see these dirs through their overlays.
    RETURN_IF_ERROR(chownIfNeeded(skel, ids->root, ids->rootGid));
    for (const std::string d : kSkelDirs) {
      const bool agent = d == "home/agent";
      RETURN_IF_ERROR(chownIfNeeded(skel + "/" + d, agent ? ids->agent : ids->root,
                                    agent ? ids->agentGid : ids->rootGid));
    }
  }
  // Debian is usr-merged: /bin, /lib... are symlinks into /usr.
  for (const char* link : {"bin", "sbin", "lib", "lib32", "lib64", "libx32"}) {
    char target[64];
    ssize_t n = readlink((std::string("/") + link).c_str(), target, sizeof target - 1);
    if (n <= 0) continue;
    target[n] = 0;
    std::string path = skel + "/" + link;
    if (symlink(target, path.c_str()) != 0 && errno != EEXIST) {
      return errnoStatus("symlink " + path, errno);
    }
  }
  return Status::ok();
}

Status prepareEtcMask(const std::string& mask) {
  RETURN_IF_ERROR(mkdirIfMissing(mask, 0755));
  for (const char* sub : {"ssh", "ssl", "security"}) {
    RETURN_IF_ERROR(mkdirIfMissing(mask + "/" + sub, 0755));
  }
  for (const char* secret : kEtcSecrets) {
    std::string path = mask + "/" + secret;
    // An overlayfs whiteout: a 0/0 character device hides the lower file.
    if (mknod(path.c_str(), S_IFCHR | 0000, makedev(0, 0)) != 0 && errno != EEXIST) {
      return errnoStatus("mknod " + path, errno);
    }
  }
  RETURN_IF_ERROR(writeText(mask + "/passwd",
                            "root:x:0:0:root:/root:/bin/sh\n"
                            "agent:x:1000:1000:agent:/home/agent:/bin/bash\n"
                            "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"));
  RETURN_IF_ERROR(writeText(mask + "/group", "root:x:0:\nagent:x:1000:\nnogroup:x:65534:\n"));
  RETURN_IF_ERROR(writeText(mask + "/hostname", "kiln\n"));
  return writeText(mask + "/hosts", "127.0.0.1 localhost kiln\n::1 localhost\n");
}

// The run dir sits in a world-writable place (/dev/shm) on some hosts: it must be ours.
Status prepareRunDir(const std::string& dir) {
  RETURN_IF_ERROR(mkdirIfMissing(dir, 0700));
  struct stat st;
  if (lstat(dir.c_str(), &st) != 0) return errnoStatus("stat " + dir, errno);
  if (!S_ISDIR(st.st_mode) || st.st_uid != geteuid() || (st.st_mode & 077) != 0) {
    return Status(Code::kPermissionDenied,
                  "run dir " + dir + " is not a private directory of ours");
  }
  return Status::ok();
}

}  // namespace

std::vector<std::string> runtimeJailArgs(const std::string& workdir, bool rootInside) {
  return {"--workspace",
          workdir,
          "--home",
          rootInside ? "/root" : "/home/agent",
          "--jail",
          "--uid",
          rootInside ? "0" : std::to_string(kAgentUid),
          "--gid",
          rootInside ? "0" : std::to_string(kAgentGid)};
}

std::string runDirFor(const std::string& stateDir) {
  char real[PATH_MAX];
  std::string key = realpath(stateDir.c_str(), real) ? real : stateDir;
  uint64_t h = 14695981039346656037ull;  // FNV-1a: stable across builds and restarts
  for (unsigned char c : key) h = (h ^ c) * 1099511628211ull;
  struct statfs fs;
  // /run is root's: rootless mode uses /dev/shm.
  bool runIsTmpfs =
      statfs("/run", &fs) == 0 && fs.f_type == TMPFS_MAGIC && access("/run", W_OK) == 0;
  char name[40];
  std::snprintf(name, sizeof name, "/kiln-%016llx", static_cast<unsigned long long>(h));
  return std::string(runIsTmpfs ? "/run" : "/dev/shm") + name;
}

Result<int> createSandboxLog(const std::string& runDir, const std::string& log,
                             const std::string& id) {
  for (int attempt = 0;; ++attempt) {
    int fd = open(log.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_APPEND | O_CLOEXEC, 0600);
    if (fd >= 0) return fd;
    if (errno == EEXIST) return conflict("sandbox: " + id + " already exists");
    if (errno != ENOENT || attempt == 3) return errnoStatus("sandbox: create " + log, errno);
    RETURN_IF_ERROR(prepareRunDir(runDir));
  }
}

std::string layersDirFor(const std::string& stateDir, const SandboxIds& ids) {
  return ids.root == 0 || geteuid() != 0 ? stateDir : runDirFor(stateDir) + ".u";
}

Status prepareSharedLayers(const std::string& stateDir, const SandboxIds& ids) {
  static std::mutex mu;
  std::lock_guard lock(mu);
  RETURN_IF_ERROR(mkdirIfMissing(stateDir, 0711));
  const std::string layers = layersDirFor(stateDir, ids);
  if (layers != stateDir) {
    // Traversable by the sandboxes' mapped ids; holds nothing secret (layout.h).
    RETURN_IF_ERROR(mkdirIfMissing(layers, 0711));
    chmod(layers.c_str(), 0711);
  }
  const bool rootless = geteuid() != 0;
  RETURN_IF_ERROR(
      prepareSkeleton(layers + "/.skel", rootless ? std::nullopt : std::optional<SandboxIds>(ids)));
  RETURN_IF_ERROR(mkdirIfMissing(layers + "/.mnt", 0700));
  RETURN_IF_ERROR(prepareRunDir(runDirFor(stateDir)));
  return prepareEtcMask(layers + "/.etcmask");
}

namespace {

Status removeIfThere(const std::string& path, bool dir) {
  if ((dir ? rmdir(path.c_str()) : unlink(path.c_str())) == 0 || errno == ENOENT) {
    return Status::ok();
  }
  return errnoStatus("sandbox: remove " + path, errno);
}

// <id>.gv: only its known entries, and the slot (where a workspace may be mounted) after its
// mounts are detached, by rmdir: a workspace on the same filesystem as the run dir would
// otherwise be walked into.
Status removeBundleDir(const std::string& dir) {
  const std::string slot = dir + "/slot";
  std::vector<std::string> mounted;
  for (const std::string& m : mountPoints()) {
    if (m == slot || m.rfind(slot + "/", 0) == 0) mounted.push_back(m);
  }
  std::sort(mounted.rbegin(), mounted.rend());
  for (const std::string& m : mounted) umount2(m.c_str(), MNT_DETACH);
  RETURN_IF_ERROR(removeIfThere(slot + "/w", true));
  RETURN_IF_ERROR(removeIfThere(slot, true));
  RETURN_IF_ERROR(removeTree(dir + "/state"));
  RETURN_IF_ERROR(removeIfThere(dir + "/rt/rt.sock", false));
  RETURN_IF_ERROR(removeIfThere(dir + "/rt", true));
  RETURN_IF_ERROR(removeIfThere(dir + "/config.json", false));
  return removeIfThere(dir, true);
}

}  // namespace

std::string runtimeBinaryFor(const std::string& kilnBinary) {
  std::string dir = kilnBinary.substr(0, kilnBinary.rfind('/') + 1);
  std::string runtime = dir + "kiln-runtime";
  return access(runtime.c_str(), X_OK) == 0 ? runtime : kilnBinary;
}

Status removeSandboxFiles(const SandboxPaths& paths) {
  Status st;
  if (access(paths.net.c_str(), F_OK) == 0) st = removeTree(paths.net);
  if (access(paths.gv.c_str(), F_OK) == 0) {
    Status gv = removeBundleDir(paths.gv);
    if (st.isOk()) st = gv;
  }
  for (const std::string* f : {&paths.socket, &paths.image, &paths.log}) {
    if (unlink(f->c_str()) != 0 && errno != ENOENT && st.isOk()) {
      st = errnoStatus("sandbox: remove " + *f, errno);
    }
  }
  return st;
}

SandboxPaths SandboxPaths::of(const std::string& stateDir, const std::string& runDir,
                              const std::string& layersDir, const std::string& id) {
  SandboxPaths p;
  p.socket = runDir + "/" + id + ".sock";
  p.log = runDir + "/" + id + ".log";
  p.net = runDir + "/" + id + ".net";
  p.gv = runDir + "/" + id + ".gv";
  p.image = stateDir + "/" + id + ".img";
  p.rw = layersDir + "/.mnt";
  p.newRoot = p.rw + "/m";
  p.skel = layersDir + "/.skel";
  p.etcMask = layersDir + "/.etcmask";
  return p;
}

}  // namespace kiln::sandbox
