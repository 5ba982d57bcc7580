#include "workspace/cache.h"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <optional>
#include <regex>
#include <set>
#include <string_view>

#include "common/files.h"
#include "common/ids.h"
#include "common/subprocess.h"
#include "workspace/host_git.h"

namespace kiln::workspace {
namespace fs = std::filesystem;
namespace {

// The sandbox's agent user: base checkouts are owned by it up front, so the sandbox's chown of
// /workspace finds nothing to change (a chown through the overlay would copy every file up).
constexpr unsigned kAgentUid = 1000;

std::string trimmed(const std::string& s) { return s.substr(0, s.find('\n')); }

// Runs git (repos kiln owns, so any owner is safe); the output, or Unprocessable with git's reason.
Result<std::string> git(const std::vector<std::string>& args, const std::string& what,
                        int timeoutMs = 60'000) {
  std::vector<std::string> argv = {"git", "-c", "safe.directory=*"};
  argv.insert(argv.end(), args.begin(), args.end());
  auto out = runProcess(argv, hostGitOptions(timeoutMs));
  if (!out.isOk()) return out.status();
  if (out->timedOut) return Status(Code::kUnprocessable, what + ": timed out");
  if (out->exitCode != 0) return Status(Code::kUnprocessable, what + ": " + gitErrorLine(out->err));
  return out->out;
}

// An exclusive flock held for the object's lifetime. Its holder may unlink the lock file (as
// collect() does with a dropped mirror's): whoever then wakes holding the unlinked inode sees
// that the path no longer names it and locks the path anew, so two holders never coexist.
class FileLock {
 public:
  enum class Mode { kWait, kTry };
  explicit FileLock(const std::string& path, Mode mode = Mode::kWait) {
    const int op = LOCK_EX | (mode == Mode::kTry ? LOCK_NB : 0);
    for (;;) {
      fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
      if (fd_ < 0) return;
      int rc;
      while ((rc = ::flock(fd_, op)) != 0 && errno == EINTR) {
      }
      struct stat held, named;
      if (rc != 0 || ::fstat(fd_, &held) != 0) {  // busy (kTry), or a real failure
        ::close(fd_);
        fd_ = -1;
        return;
      }
      if (::stat(path.c_str(), &named) == 0 && held.st_dev == named.st_dev &&
          held.st_ino == named.st_ino) {
        return;
      }
      ::close(fd_);  // unlinked while we waited: lock whatever the path names now
      fd_ = -1;
    }
  }
  ~FileLock() {
    if (fd_ >= 0) ::close(fd_);
  }
  FileLock(const FileLock&) = delete;
  bool ok() const { return fd_ >= 0; }

 private:
  int fd_ = -1;
};

// A mirror's last use is its directory's mtime, set each time a job uses the mirror. Not synced
// (a journal commit per job): a use a crash loses belongs to a job whose workspace, kept within
// the retention period, still holds the mirror's checkout, and so the mirror.
Status markMirrorUsed(const std::string& mirror) {
  const int fd = ::open(mirror.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return errnoStatus("open " + mirror, errno);
  const int rc = ::futimens(fd, nullptr);
  const int err = errno;
  ::close(fd);
  if (rc != 0) return errnoStatus("mark " + mirror + " used", err);
  return Status::ok();
}

// Milliseconds since the Unix epoch of the mirror's last use, or nullopt if it is gone.
std::optional<int64_t> mirrorLastUseMs(const std::string& mirror) {
  struct stat st;
  if (::stat(mirror.c_str(), &st) != 0) return std::nullopt;
  return int64_t{st.st_mtim.tv_sec} * 1000 + st.st_mtim.tv_nsec / 1'000'000;
}

// The key of the mirror a base checkout (repos/checkouts/<key>-<commit>) was cloned from.
std::string mirrorKeyOf(const std::string& checkout) {
  const std::string name = fs::path(checkout).filename().string();
  return name.substr(0, name.find('-'));
}


std::string readFile(const std::string& path) { return kiln::readFile(path).valueOr(""); }

}  // namespace

bool isMountPoint(const std::string& path) {
  std::error_code ec;
  fs::path p = fs::weakly_canonical(path, ec);
  if (ec) return false;
  for (const auto& m : mountPoints())
    if (m == p.string()) return true;
  return false;
}

RepoCache::RepoCache(std::string reposDir, unsigned owner)
    : dir_(std::move(reposDir)), owner_(owner) {}

std::string RepoCache::keyFor(const std::string& url) { return sha256Hex(url); }

Result<BaseCheckout> RepoCache::baseCheckout(
    const std::string& url, const std::string& ref,
    const std::function<Status(const BaseCheckout&)>& claim) {
  if (!ref.empty() && ref[0] == '-') return invalidArgument("ref must not start with '-'");
  const std::string key = keyFor(url);
  std::error_code ec;
  fs::create_directories(dir_ + "/checkouts", ec);
  if (ec) return internalError("create " + dir_ + "/checkouts: " + ec.message());
  FileLock lock(dir_ + "/" + key + ".lock");
  if (!lock.ok()) return internalError("lock " + dir_ + "/" + key + ".lock");

  const std::string mirror = dir_ + "/" + key + ".git";
  bool fetched = false;
  if (!fs::exists(mirror + "/HEAD")) {
    const std::string tmp = mirror + ".tmp";
    fs::remove_all(tmp, ec);
    // --no-hardlinks: for a local repo, the mirror must not share files with the user's
    // repository (checkouts hard-link the mirror's objects and are chowned to the agent).
    RETURN_IF_ERROR(git({"clone", "-q", "--mirror", "--no-hardlinks", "--", url, tmp},
                        "git clone " + url, 15 * 60'000)
                        .status());
    fs::rename(tmp, mirror, ec);
    if (ec) return internalError("rename " + tmp + ": " + ec.message());
    fetched = true;
  }
  RETURN_IF_ERROR(markMirrorUsed(mirror));
  auto resolve = [&](const std::string& rev) {
    return git({"-C", mirror, "rev-parse", "-q", "--verify", rev + "^{commit}"}, "resolve " + rev);
  };
  // Branches move: fetch them every time. A commit only when the mirror lacks it.
  if (!fetched && (!isCommitSha(ref) || !resolve(ref).isOk())) {
    RETURN_IF_ERROR(
        git({"-C", mirror, "fetch", "-q", "--prune", "origin"}, "git fetch " + url, 15 * 60'000)
            .status());
  }

  BaseCheckout base;
  if (ref.empty()) {
    auto head = git({"-C", mirror, "symbolic-ref", "-q", "--short", "HEAD"}, "default branch");
    if (head.isOk()) base.branch = trimmed(*head);
    auto c = resolve("HEAD");
    if (!c.isOk()) {
      return Status(Code::kUnprocessable, "repository " + url + " has no commits");
    }
    base.commit = trimmed(*c);
  } else if (auto b = resolve("refs/heads/" + ref); !isCommitSha(ref) && b.isOk()) {
    base.branch = ref;
    base.commit = trimmed(*b);
  } else {
    auto c = resolve(ref);
    if (!c.isOk()) return Status(Code::kUnprocessable, "ref '" + ref + "' not found in " + url);
    base.commit = trimmed(*c);
  }

  const std::string name =
      key + "-" + base.commit + (owner_ == kAgentUid ? "" : "-u" + std::to_string(owner_));
  base.dir = dir_ + "/checkouts/" + name;
  auto claimed = [&]() -> Result<BaseCheckout> {
    if (claim) RETURN_IF_ERROR(claim(base));
    return base;
  };
  if (fs::exists(base.dir)) return claimed();
  const std::string tmp = dir_ + "/checkouts/.tmp-" + name;
  fs::remove_all(tmp, ec);
  // --local hard-links the mirror's objects: no copy, and no alternates (a host path the sandbox
  // could not see).
  RETURN_IF_ERROR(git({"clone", "-q", "--local", "--no-checkout", "--", mirror, tmp},
                      "clone from the cache", 15 * 60'000)
                      .status());
  RETURN_IF_ERROR(
      git({"-C", tmp, "-c", "advice.detachedHead=false", "checkout", "-q", "--detach", base.commit},
          "checkout " + base.commit, 15 * 60'000)
          .status());
  RETURN_IF_ERROR(git({"-C", tmp, "remote", "set-url", "origin", url}, "set origin").status());
  RETURN_IF_ERROR(chownTree(tmp, owner_, owner_));
  // The index records each file's owner and ctime, which the chown just changed: refresh it here
  // once, or every job's first `git status` would re-read the whole tree and copy the index up.
  RETURN_IF_ERROR(
      git({"-C", tmp, "update-index", "-q", "--refresh"}, "refresh the index", 15 * 60'000)
          .status());
  if (::lchown((tmp + "/.git/index").c_str(), owner_, owner_) != 0) {
    return internalError("chown " + tmp + "/.git/index");
  }
  fs::rename(tmp, base.dir, ec);
  if (ec) return internalError("rename " + tmp + ": " + ec.message());
  return claimed();
}

Workspaces::Workspaces(std::string workspacesDir, std::string reposDir, unsigned agentUid)
    : wsDir_(std::move(workspacesDir)), reposDir_(std::move(reposDir)), agentUid_(agentUid) {}

void Workspaces::release(const std::string& jobId) const {
  const std::string m = mountDir(jobId);
  for (int i = 0; i < 16 && isMountPoint(m); ++i) {
    if (::umount2(m.c_str(), MNT_DETACH) != 0) break;
  }
}

namespace {
std::mutex gUsesMu;
std::map<std::string, int> gUses;  // GUARDED_BY(gUsesMu): mount dir -> runs using it
}  // namespace

void Workspaces::beginUse(const std::string& jobId) const {
  std::lock_guard lock(gUsesMu);
  ++gUses[mountDir(jobId)];
}

void Workspaces::endUse(const std::string& jobId) const {
  std::lock_guard lock(gUsesMu);
  auto it = gUses.find(mountDir(jobId));
  if (it != gUses.end() && --it->second > 0) return;
  if (it != gUses.end()) gUses.erase(it);
  // Under the lock, so a run starting now sees the workspace mounted (and counted) or unmounted.
  release(jobId);
}

int Workspaces::releaseAll() const {
  std::error_code ec;
  const std::string prefix = fs::weakly_canonical(wsDir_ + "/.layers", ec).string() + "/";
  if (ec) return 0;
  int n = 0;
  for (const auto& m : mountPoints())
    if (m.rfind(prefix, 0) == 0) n += ::umount2(m.c_str(), MNT_DETACH) == 0;
  return n;
}

namespace {

// The base checkouts the workspaces under `layersDir` sit on, as canonical paths.
std::set<std::string> checkoutsInUse(const std::string& layersDir) {
  std::set<std::string> inUse;
  std::error_code ec;
  for (auto it = fs::directory_iterator(layersDir, ec); !ec && it != fs::directory_iterator();
       it.increment(ec)) {
    std::error_code pathEc;
    std::string base = trimmed(readFile(it->path().string() + "/base"));
    if (!base.empty()) inUse.insert(fs::weakly_canonical(base, pathEc).string());
  }
  return inUse;
}

// Drops the checkouts no workspace under layersDir sits on. Each goes under its repo's lock,
// taken without waiting (busy: in use), after checking again that no workspace claimed it since
// (a create elsewhere claims its checkout under that lock: RepoCache::baseCheckout).
int collectCheckouts(const std::string& reposDir, const std::string& layersDir,
                     const std::set<std::string>& inUse) {
  int n = 0;
  std::error_code ec;
  for (auto it = fs::directory_iterator(reposDir + "/checkouts", ec);
       !ec && it != fs::directory_iterator(); it.increment(ec)) {
    const std::string name = it->path().filename().string();
    std::error_code rmEc;
    if (name.rfind(".tmp-", 0) == 0) {
      // Being built (its repo's lock is held), or left half-built by a crash: then it goes.
      FileLock lock(reposDir + "/" + mirrorKeyOf(name.substr(5)) + ".lock", FileLock::Mode::kTry);
      if (lock.ok()) fs::remove_all(it->path(), rmEc);
      continue;
    }
    if (name.empty() || name[0] == '.') continue;
    const std::string canonical = fs::weakly_canonical(it->path(), rmEc).string();
    if (inUse.count(canonical)) continue;
    FileLock lock(reposDir + "/" + mirrorKeyOf(name) + ".lock", FileLock::Mode::kTry);
    if (!lock.ok() || checkoutsInUse(layersDir).count(canonical)) continue;
    if (fs::remove_all(it->path(), rmEc) > 0 && !rmEc) ++n;
  }
  return n;
}

bool hasCheckoutOf(const std::string& reposDir, const std::string& key) {
  std::error_code ec;
  for (auto it = fs::directory_iterator(reposDir + "/checkouts", ec);
       !ec && it != fs::directory_iterator(); it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (name.rfind(key + "-", 0) == 0) return true;
  }
  return ec && ec != std::errc::no_such_file_or_directory;  // unsure: as if there were one
}

// Drops the mirror of `key` (and its lock) if no checkout comes from it and no job used it since
// `unusedSinceMs`; also what an interrupted clone or removal left. Skips a mirror in use: its
// lock is busy. True if a mirror went.
bool collectMirror(const std::string& reposDir, const std::string& key, int64_t unusedSinceMs) {
  const std::string lockPath = reposDir + "/" + key + ".lock";
  const std::string mirror = reposDir + "/" + key + ".git";
  // The lock baseCheckout() holds while it clones, fetches or builds a checkout from the mirror.
  FileLock lock(lockPath, FileLock::Mode::kTry);
  if (!lock.ok()) return false;
  // Re-checked under the lock: another node may have built a checkout or used the mirror since.
  if (hasCheckoutOf(reposDir, key)) return false;
  if (auto used = mirrorLastUseMs(mirror); used && *used >= unusedSinceMs) return false;
  // Renamed first to the name a clone clears before it starts, so a crash mid-removal leaves no
  // half-deleted mirror in place.
  const std::string doomed = mirror + ".tmp";
  std::error_code ec;
  fs::remove_all(doomed, ec);
  const bool existed = fs::exists(mirror, ec);
  if (existed) {
    fs::rename(mirror, doomed, ec);
    if (ec) return false;
    fs::remove_all(doomed, ec);
  }
  ::unlink(lockPath.c_str());
  return existed;
}

int collectMirrors(const std::string& reposDir, const std::set<std::string>& inUse,
                   int64_t unusedSinceMs) {
  std::set<std::string> used;
  for (const auto& c : inUse) used.insert(mirrorKeyOf(c));
  std::set<std::string> keys;  // of mirrors, their locks, and clones a crash left unfinished
  std::error_code ec;
  for (auto it = fs::directory_iterator(reposDir, ec); !ec && it != fs::directory_iterator();
       it.increment(ec)) {
    const std::string name = it->path().filename().string();
    for (std::string_view suffix : {".git", ".git.tmp", ".lock"}) {
      if (name.size() > suffix.size() && name.ends_with(suffix)) {
        keys.insert(name.substr(0, name.size() - suffix.size()));
      }
    }
  }
  int n = 0;
  for (const auto& key : keys) {
    if (!used.count(key)) n += collectMirror(reposDir, key, unusedSinceMs);
  }
  return n;
}

}  // namespace

Workspaces::Collected Workspaces::collect(const std::function<bool(const std::string& jobId)>& keep,
                                          int64_t mirrorsUnusedSinceMs) const {
  Collected out;
  std::error_code ec;
  std::set<std::string> ids;
  for (const std::string& d : {wsDir_, wsDir_ + "/.layers"}) {
    for (auto it = fs::directory_iterator(d, ec); !ec && it != fs::directory_iterator();
         it.increment(ec)) {
      std::string name = it->path().filename().string();
      if (!name.empty() && name[0] != '.') ids.insert(name);
    }
    ec.clear();
  }
  for (const auto& id : ids) {
    if (keep(id)) continue;
    if (drop(id).isOk()) ++out.workspaces;
  }
  if (reposDir_.empty()) return out;
  const std::set<std::string> inUse = checkoutsInUse(wsDir_ + "/.layers");
  out.checkouts = collectCheckouts(reposDir_, wsDir_ + "/.layers", inUse);
  out.mirrors = collectMirrors(reposDir_, inUse, mirrorsUnusedSinceMs);
  return out;
}

Status Workspaces::mountLayers(const std::string& jobId, const std::string& lower) const {
  const std::string l = layersDir(jobId), m = mountDir(jobId);
  for (const std::string& p : {l, lower}) {
    if (p.find_first_of(",:\\") != std::string::npos) {
      return invalidArgument("overlay: path has ',', ':' or '\\': " + p);
    }
  }
  std::error_code ec;
  fs::create_directories(m, ec);
  const std::string opts = "lowerdir=" + lower + ",upperdir=" + l + "/u,workdir=" + l + "/w";
  if (::mount("overlay", m.c_str(), "overlay", 0, opts.c_str()) != 0) {
    return internalError("mount overlay on " + m + ": " + strerror(errno));
  }
  return Status::ok();
}

Status Workspaces::drop(const std::string& jobId) const {
  release(jobId);
  if (isMountPoint(mountDir(jobId))) {
    return internalError("workspace of " + jobId + " is still mounted at " + mountDir(jobId));
  }
  std::error_code ec;
  fs::remove_all(layersDir(jobId), ec);
  fs::remove(dir(jobId), ec);  // the symlink (or an empty dir)
  fs::remove_all(dir(jobId), ec);
  return Status::ok();
}

bool Workspaces::reattach(const std::string& jobId) const {
  const std::string d = dir(jobId), l = layersDir(jobId), m = mountDir(jobId);
  std::error_code ec;
  if (fs::exists(l + "/u", ec)) {
    // Removing workspaces/<jobId> discards the workspace, as it does for a plain clone.
    if (!fs::is_symlink(d, ec)) return false;
    if (isMountPoint(m)) return fs::exists(m + "/.git", ec);  // left over: reuse, never stack
    const std::string lower = trimmed(readFile(l + "/base"));
    if (::geteuid() != 0 || lower.empty() || !fs::exists(lower + "/.git", ec)) return false;
    return mountLayers(jobId, lower).isOk();
  }
  return !fs::is_symlink(d, ec) && fs::exists(d + "/.git", ec);
}

Result<PreparedWorkspace> Workspaces::mountOverlay(const std::string& jobId,
                                                   const BaseCheckout& base) const {
  const std::string d = dir(jobId), l = layersDir(jobId), m = mountDir(jobId);
  std::error_code ec;
  fs::create_directories(l + "/u", ec);
  fs::create_directories(l + "/w", ec);
  if (ec) return internalError("create " + l + ": " + ec.message());
  // The upper dir's root is the workspace root: owned by the agent like the base checkout.
  if (::chown((l + "/u").c_str(), agentUid_, agentUid_) != 0) return internalError("chown " + l);
  RETURN_IF_ERROR(mountLayers(jobId, base.dir));
  fs::create_symlink(".layers/" + jobId + "/m", d, ec);
  if (ec) return internalError("symlink " + d + ": " + ec.message());
  if (!base.branch.empty()) {
    // On the branch the ref named, as a clone would be; only HEAD and one ref file are copied up.
    auto st = git({"-C", m, "update-ref", "refs/heads/" + base.branch, base.commit}, "branch");
    if (st.isOk()) {
      st = git({"-C", m, "symbolic-ref", "HEAD", "refs/heads/" + base.branch}, "branch");
    }
    if (!st.isOk()) return st.status();
  }
  return PreparedWorkspace{d, base.commit};
}

Result<PreparedWorkspace> Workspaces::create(const std::string& jobId, const std::string& url,
                                             const std::string& ref) const {
  const std::string d = dir(jobId);
  RETURN_IF_ERROR(drop(jobId));
  std::error_code ec;
  fs::create_directories(wsDir_, ec);
  if (url.empty()) return initEmptyWorkspace(d);
  if (reposDir_.empty() || ::geteuid() != 0) return cloneWorkspace(url, ref, d);
  // The workspace's claim on its base checkout, written under the repo lock (collect()).
  const std::string layers = layersDir(jobId);
  auto claim = [&layers](const BaseCheckout& b) -> Status {
    std::error_code ec;
    fs::create_directories(layers, ec);
    std::ofstream out(layers + "/base");
    out << b.dir << "\n";
    return out ? Status::ok() : internalError("write " + layers + "/base");
  };
  auto base = RepoCache(reposDir_, agentUid_).baseCheckout(url, ref, claim);
  if (!base.isOk()) {
    if (base.status().code() == Code::kUnprocessable) return base.status();
    spdlog::warn("workspace {}: repo cache failed, cloning instead: {}", jobId,
                 base.status().toString());
  } else {
    auto ws = mountOverlay(jobId, *base);
    if (ws.isOk()) return ws;
    spdlog::warn("workspace {}: overlay unavailable, cloning instead: {}", jobId,
                 ws.status().toString());
  }
  // The cache or the overlay failed on this host: a plain clone still works.
  RETURN_IF_ERROR(drop(jobId));
  return cloneWorkspace(url, ref, d);
}

}  // namespace kiln::workspace
