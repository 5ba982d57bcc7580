// The per-node repository cache and copy-on-write job workspaces. Blocking: call from the
// BlockingPool.
//
// Layout under the data dir:
//   repos/<key>.git                   bare mirror of one repo URL (key = sha256 of the URL),
//                                     cloned once, fetched when a job asks for a branch or for
//                                     a commit it lacks; the directory's mtime is its last use
//                                     by a job (set on every use)
//   repos/<key>.lock                  flock guarding the mirror and its checkouts
//   repos/checkouts/<key>-<commit>/   read-only base checkout (detached HEAD at <commit>, origin
//                                     set to the URL): a `git clone --local` of the mirror, so its
//                                     objects are hard links, owned by the sandbox's agent uid;
//                                     built in a temp dir and renamed into place, never changed
//   workspaces/<jobId>                the job's /workspace: a symlink to .layers/<jobId>/m
//   workspaces/.layers/<jobId>/m      the overlayfs mount (lower: the base checkout), while the
//                                     job runs
//   workspaces/.layers/<jobId>/{u,w}  its upper and work dirs (the job's own changes)
//   workspaces/.layers/<jobId>/base   the path of the base checkout it sits on
// A job that ends unmounts its workspace and keeps the layers, so a resume or a follow-up on the
// same node remounts them; removing workspaces/<jobId> discards the workspace (the next run
// rebuilds it). Without root or overlayfs, workspaces/<jobId> is a plain clone instead.
#pragma once
#include <cstdint>
#include <functional>
#include <string>

#include "common/result.h"
#include "workspace/repo.h"

namespace kiln::workspace {

struct BaseCheckout {
  std::string dir;     // the read-only checkout
  std::string commit;  // full sha of its HEAD
  std::string branch;  // the branch `ref` named (or the default branch when ref was empty); empty
                       // for a tag or a commit
};

class RepoCache {
 public:
  // owner: the host uid (and gid) the base checkouts belong to: the agent's inside its sandbox
  // (1000, or another id when the sandbox maps ids: sandbox::agentHostUid). Checkouts of
  // another owner than 1000 are kept apart (<key>-<commit>-u<owner>).
  explicit RepoCache(std::string reposDir, unsigned owner = 1000);
  // The base checkout of `url` at `ref` (a branch, tag or commit; the default branch if empty),
  // creating the mirror and the checkout as needed. A branch or default-branch ref always fetches
  // first, so it resolves to the remote's newest commit, as a fresh clone would. Safe to call from
  // several threads and processes at once.
  // claim, if given, runs while the repo's lock is still held, once the checkout exists: what it
  // records (a workspace's base file) is then seen by any collect() before it may remove the
  // checkout, which it does under the same lock.
  Result<BaseCheckout> baseCheckout(
      const std::string& url, const std::string& ref,
      const std::function<Status(const BaseCheckout&)>& claim = nullptr);

  static std::string keyFor(const std::string& url);
  const std::string& dir() const { return dir_; }

 private:
  std::string dir_;
  unsigned owner_;
};

// Whether `path` is a mount point in this process's mount namespace (/proc/self/mountinfo).
bool isMountPoint(const std::string& path);

// Job workspaces under `workspacesDir`, on base checkouts from `reposDir` (no cache when empty).
class Workspaces {
 public:
  // agentUid: the host uid of the agent's files (RepoCache's owner).
  Workspaces(std::string workspacesDir, std::string reposDir, unsigned agentUid = 1000);
  std::string dir(const std::string& jobId) const { return wsDir_ + "/" + jobId; }
  std::string layersDir(const std::string& jobId) const { return wsDir_ + "/.layers/" + jobId; }
  std::string mountDir(const std::string& jobId) const { return layersDir(jobId) + "/m"; }

  // Makes a surviving workspace of `jobId` usable again: an overlay's layers are remounted on
  // their base checkout (a mount left over from a crash is reused, never stacked); a plain clone
  // is used as is. False when nothing usable survived.
  bool reattach(const std::string& jobId) const;
  // Creates a fresh workspace (dropping whatever was there) of `url` at `ref`: an overlay over the
  // cached base checkout, or a plain clone when overlays are unavailable; an empty repository
  // when `url` is empty.
  Result<PreparedWorkspace> create(const std::string& jobId, const std::string& url,
                                   const std::string& ref) const;
  // Unmounts the workspace of `jobId` if it is mounted; its layers stay for a later reattach.
  void release(const std::string& jobId) const;
  // A job run's use of its workspace, counted in this process: a node can start a job's next run
  // while the previous one is still tearing down. The run that ends last unmounts the workspace
  // (release()). Call beginUse() before reattach() or create(); endUse() blocks (unmount).
  void beginUse(const std::string& jobId) const;
  void endUse(const std::string& jobId) const;
  // Unmounts every workspace (at node start: a crashed node leaves its mounts behind, even of
  // jobs that had ended); the jobs that resume remount theirs. Returns how many.
  int releaseAll() const;
  // Drops the workspace of every job for which keep(jobId) is false, then every base checkout
  // that no remaining workspace sits on, then every mirror that no remaining checkout or
  // workspace comes from and that no job used since `mirrorsUnusedSinceMs` (ms since the Unix
  // epoch; a recently used mirror stays, it makes the repo's next job cheap). A mirror whose lock
  // is held (another node fetching it) is left alone. For node start, before this node runs
  // jobs. Returns how many of each went.
  struct Collected {
    int workspaces = 0;
    int checkouts = 0;
    int mirrors = 0;
  };
  Collected collect(const std::function<bool(const std::string& jobId)>& keep,
                    int64_t mirrorsUnusedSinceMs) const;

 private:
  Result<PreparedWorkspace> mountOverlay(const std::string& jobId, const BaseCheckout& base) const;
  // Unmounts and deletes the workspace of `jobId`, whatever its kind.
  Status drop(const std::string& jobId) const;
  Status mountLayers(const std::string& jobId, const std::string& lower) const;

  std::string wsDir_;
  std::string reposDir_;
  unsigned agentUid_;
};

}  // namespace kiln::workspace
