// The repo cache and overlay workspaces (src/workspace/cache.h), with real git and real overlayfs
// mounts on the host.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>

#include "support/temp_dir.h"
#include "workspace/cache.h"

namespace kiln::workspace {
namespace {
namespace fs = std::filesystem;
using kiln::testing::shell;
using kiln::testing::TempDir;

// Mounts under `dir` (other processes on the host may mount elsewhere meanwhile).
int mountCount(const std::string& dir) {
  std::ifstream in("/proc/self/mountinfo");
  std::string line;
  int n = 0;
  while (std::getline(in, line)) n += line.find(" " + dir + "/") != std::string::npos;
  return n;
}

std::string readAll(const std::string& path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

uintmax_t treeBytes(const std::string& dir) {
  uintmax_t n = 0;
  for (auto& e : fs::recursive_directory_iterator(dir)) {
    if (e.is_regular_file() && !e.is_symlink()) n += e.file_size();
  }
  return n;
}

std::string git(const std::string& dir, const std::string& args) {
  std::string out;
  int rc = shell(
      "git -c safe.directory='*' -c user.name=t -c user.email=t@t -C '" + dir + "' " + args, &out);
  EXPECT_EQ(rc, 0) << "git " << args << ": " << out;
  while (!out.empty() && out.back() == '\n') out.pop_back();
  return out;
}

int64_t nowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

constexpr int64_t kHourMs = 3'600'000;

// Sets the mtime (and atime) of `path` to `ms` since the epoch.
void setMtimeMs(const std::string& path, int64_t ms) {
  struct timespec ts[2];
  ts[0].tv_sec = ms / 1000;
  ts[0].tv_nsec = (ms % 1000) * 1'000'000;
  ts[1] = ts[0];
  ASSERT_EQ(utimensat(AT_FDCWD, path.c_str(), ts, 0), 0) << path << ": " << strerror(errno);
}

class WorkspaceCacheTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "overlay workspaces need root (mount)";
    mountsBefore_ = mountCount(tmp_.path());
    repo_ = tmp_.file("src");
    kiln::testing::makeSampleRepo(repo_);
    // A 4 MiB file: what must never be copied per job.
    ASSERT_EQ(shell("head -c 4194304 /dev/urandom > '" + repo_ + "/big.bin'"), 0);
    git(repo_, "add big.bin");
    git(repo_, "commit -qm big");
  }
  void TearDown() override {
    for (const auto& id : jobs_) ws_.release(id);
    if (geteuid() == 0) {
      EXPECT_EQ(mountCount(tmp_.path()), mountsBefore_) << "a workspace mount leaked";
    }
  }
  Result<PreparedWorkspace> make(const std::string& jobId, const std::string& ref = "") {
    jobs_.push_back(jobId);
    return ws_.create(jobId, repo_, ref);
  }
  std::string mirror() const {
    return tmp_.file("repos") + "/" + RepoCache::keyFor(repo_) + ".git";
  }
  std::string mirrorLock() const {
    return tmp_.file("repos") + "/" + RepoCache::keyFor(repo_) + ".lock";
  }
  // Marks the mirror last used `hours` ago, as a node would see it after that long idle.
  void ageMirror(int64_t hours) { setMtimeMs(mirror(), nowMs() - hours * kHourMs); }
  std::string baseOf(const std::string& jobId) {
    std::string b = readAll(ws_.layersDir(jobId) + "/base");
    return b.substr(0, b.find('\n'));
  }

  TempDir tmp_;
  std::string repo_;
  Workspaces ws_{tmp_.file("workspaces"), tmp_.file("repos")};
  std::vector<std::string> jobs_;
  int mountsBefore_ = 0;
};

TEST_F(WorkspaceCacheTest, TwoJobsShareOneBaseCheckoutWithoutCopying) {
  auto a = make("job-a");
  auto b = make("job-b");
  ASSERT_TRUE(a.isOk()) << a.status().toString();
  ASSERT_TRUE(b.isOk()) << b.status().toString();
  EXPECT_EQ(a->baseCommit, b->baseCommit);
  EXPECT_EQ(a->baseCommit, git(repo_, "rev-parse HEAD"));
  EXPECT_TRUE(isMountPoint(a->dir));
  EXPECT_TRUE(isMountPoint(b->dir));
  ASSERT_EQ(baseOf("job-a"), baseOf("job-b"));
  const std::string base = baseOf("job-a");

  struct stat sa, sb, sl;
  ASSERT_EQ(stat((a->dir + "/big.bin").c_str(), &sa), 0);
  ASSERT_EQ(stat((b->dir + "/big.bin").c_str(), &sb), 0);
  ASSERT_EQ(stat((base + "/big.bin").c_str(), &sl), 0);
  EXPECT_EQ(sa.st_ino, sl.st_ino);
  EXPECT_EQ(sb.st_ino, sl.st_ino);
  EXPECT_EQ(sa.st_size, 4194304);
  // Nothing copied up: the upper dirs hold only HEAD and the branch ref.
  EXPECT_LT(treeBytes(ws_.layersDir("job-a") + "/u"), 4096u);
  EXPECT_LT(treeBytes(ws_.layersDir("job-b") + "/u"), 4096u);
  EXPECT_FALSE(fs::exists(ws_.layersDir("job-a") + "/u/big.bin"));
  // Owned by the sandbox's agent already, so the sandbox's chown changes nothing.
  EXPECT_EQ(sa.st_uid, 1000u);
  struct stat root;
  ASSERT_EQ(stat(a->dir.c_str(), &root), 0);
  EXPECT_EQ(root.st_uid, 1000u);
  // The base checkout's objects are hard links into the mirror, not copies, and no alternates.
  bool linked = false;
  for (auto& e : fs::recursive_directory_iterator(base + "/.git/objects")) {
    struct stat so;
    if (e.is_regular_file() && stat(e.path().c_str(), &so) == 0 && so.st_nlink >= 2) linked = true;
  }
  EXPECT_TRUE(linked);
  EXPECT_FALSE(fs::exists(base + "/.git/objects/info/alternates"));
  // The user's repository shares nothing with the cache, and its owner is untouched.
  for (auto& e : fs::recursive_directory_iterator(repo_ + "/.git/objects")) {
    struct stat so;
    if (!e.is_regular_file() || stat(e.path().c_str(), &so) != 0) continue;
    EXPECT_EQ(so.st_nlink, 1u) << e.path();
    EXPECT_EQ(so.st_uid, 0u) << e.path();
  }
  // Checked out on the default branch, origin pointing at the repository itself.
  EXPECT_EQ(git(a->dir, "symbolic-ref --short HEAD"), "main");
  EXPECT_EQ(git(a->dir, "remote get-url origin"), repo_);
}

TEST_F(WorkspaceCacheTest, AWriteStaysInItsOwnWorkspaceAndGitWorks) {
  auto a = make("job-a");
  auto b = make("job-b");
  ASSERT_TRUE(a.isOk() && b.isOk());
  const std::string base = baseOf("job-a");
  const std::string original = readAll(base + "/hello.py");
  { std::ofstream(a->dir + "/hello.py") << "print('changed')\n"; }
  { std::ofstream(a->dir + "/new.txt") << "new\n"; }
  EXPECT_EQ(readAll(a->dir + "/hello.py"), "print('changed')\n");
  EXPECT_EQ(readAll(b->dir + "/hello.py"), original);
  EXPECT_EQ(readAll(base + "/hello.py"), original);
  EXPECT_FALSE(fs::exists(b->dir + "/new.txt"));
  EXPECT_FALSE(fs::exists(base + "/new.txt"));

  EXPECT_EQ(git(a->dir, "status --porcelain"), " M hello.py\n?? new.txt");
  EXPECT_EQ(git(b->dir, "status --porcelain"), "");
  EXPECT_NE(git(a->dir, "diff").find("+print('changed')"), std::string::npos);
  git(a->dir, "add -A");
  git(a->dir, "commit -qm change");
  EXPECT_EQ(git(a->dir, "status --porcelain"), "");
  EXPECT_EQ(git(a->dir, "rev-parse HEAD~1"), a->baseCommit);
  EXPECT_EQ(git(b->dir, "rev-parse HEAD"), b->baseCommit);
  EXPECT_EQ(git(base, "rev-parse HEAD"), a->baseCommit);
  EXPECT_EQ(git(repo_, "rev-parse HEAD"), a->baseCommit);
}

TEST_F(WorkspaceCacheTest, ALaterJobGetsCommitsPushedSince) {
  auto a = make("job-a");
  ASSERT_TRUE(a.isOk());
  { std::ofstream(repo_ + "/later.txt") << "later\n"; }
  git(repo_, "add later.txt");
  git(repo_, "commit -qm later");
  const std::string head = git(repo_, "rev-parse HEAD");
  auto b = make("job-b");
  ASSERT_TRUE(b.isOk()) << b.status().toString();
  EXPECT_EQ(b->baseCommit, head);
  EXPECT_TRUE(fs::exists(b->dir + "/later.txt"));
  EXPECT_FALSE(fs::exists(a->dir + "/later.txt"));
  // Asking for the commit by sha (a resume's rebuild) reuses that base checkout.
  auto c = make("job-c", head);
  ASSERT_TRUE(c.isOk()) << c.status().toString();
  EXPECT_EQ(c->baseCommit, head);
  EXPECT_EQ(baseOf("job-c"), baseOf("job-b"));
  // And a branch by name.
  git(repo_, "branch feature HEAD~1");
  auto d = make("job-d", "feature");
  ASSERT_TRUE(d.isOk()) << d.status().toString();
  EXPECT_EQ(d->baseCommit, a->baseCommit);
  EXPECT_EQ(git(d->dir, "symbolic-ref --short HEAD"), "feature");
  EXPECT_EQ(make("job-e", "no-such-branch").status().code(), Code::kUnprocessable);
}

TEST_F(WorkspaceCacheTest, ReleaseUnmountsAndReattachRemountsWithoutStacking) {
  auto a = make("job-a");
  ASSERT_TRUE(a.isOk());
  { std::ofstream(a->dir + "/work.txt") << "progress\n"; }
  const int mounted = mountCount(tmp_.path());
  EXPECT_EQ(mounted, mountsBefore_ + 1);
  ws_.release("job-a");
  EXPECT_FALSE(isMountPoint(a->dir));
  EXPECT_EQ(mountCount(tmp_.path()), mountsBefore_);
  EXPECT_FALSE(fs::exists(a->dir + "/work.txt"));

  ASSERT_TRUE(ws_.reattach("job-a"));
  EXPECT_TRUE(isMountPoint(a->dir));
  EXPECT_EQ(readAll(a->dir + "/work.txt"), "progress\n");
  // A mount left over from a crash is reused, not stacked.
  ASSERT_TRUE(ws_.reattach("job-a"));
  EXPECT_EQ(mountCount(tmp_.path()), mounted);
  // Recreating drops the old layers.
  auto again = make("job-a");
  ASSERT_TRUE(again.isOk());
  EXPECT_FALSE(fs::exists(a->dir + "/work.txt"));
  EXPECT_EQ(mountCount(tmp_.path()), mounted);
  ws_.release("job-a");
  EXPECT_EQ(mountCount(tmp_.path()), mountsBefore_);
  // A node starting after a crash drops every mount it finds; the layers stay.
  ASSERT_TRUE(ws_.reattach("job-a"));
  ASSERT_TRUE(make("job-b").isOk());
  EXPECT_EQ(ws_.releaseAll(), 2);
  EXPECT_EQ(mountCount(tmp_.path()), mountsBefore_);
  ASSERT_TRUE(ws_.reattach("job-a"));
  ws_.release("job-a");
  // A job's next run can start while the previous one ends: the last one to end unmounts.
  ws_.beginUse("job-a");
  ASSERT_TRUE(ws_.reattach("job-a"));
  ws_.beginUse("job-a");
  ASSERT_TRUE(ws_.reattach("job-a"));
  ws_.endUse("job-a");
  EXPECT_TRUE(isMountPoint(a->dir));
  EXPECT_TRUE(fs::exists(a->dir + "/hello.py"));
  ws_.endUse("job-a");
  EXPECT_FALSE(isMountPoint(a->dir));
  // Nothing to reattach for an unknown job, nor once workspaces/<jobId> was removed.
  EXPECT_FALSE(ws_.reattach("job-unknown"));
  fs::remove_all(a->dir);
  EXPECT_FALSE(ws_.reattach("job-a"));
  EXPECT_EQ(mountCount(tmp_.path()), mountsBefore_);
}

TEST_F(WorkspaceCacheTest, ConcurrentJobsOnOneRepoPrepareSafely) {
  constexpr int kJobs = 6;
  for (int i = 0; i < kJobs; ++i) jobs_.push_back("job-" + std::to_string(i));
  std::vector<Result<PreparedWorkspace>> results(kJobs, Status(Code::kInternal, "not run"));
  std::vector<std::thread> threads;
  for (int i = 0; i < kJobs; ++i) {
    threads.emplace_back([&, i] { results[i] = ws_.create(jobs_[i], repo_, ""); });
  }
  for (auto& t : threads) t.join();
  const std::string head = git(repo_, "rev-parse HEAD");
  for (int i = 0; i < kJobs; ++i) {
    ASSERT_TRUE(results[i].isOk()) << results[i].status().toString();
    EXPECT_EQ(results[i]->baseCommit, head);
    EXPECT_TRUE(fs::exists(results[i]->dir + "/big.bin"));
  }
  int checkouts = 0;
  for (auto& e : fs::directory_iterator(tmp_.file("repos/checkouts"))) {
    EXPECT_EQ(e.path().filename().string().rfind(".tmp", 0), std::string::npos);
    ++checkouts;
  }
  EXPECT_EQ(checkouts, 1);
}

TEST_F(WorkspaceCacheTest, WithoutACacheAJobGetsAPlainClone) {
  Workspaces plain(tmp_.file("plain"), "");
  auto a = plain.create("job-a", repo_, "");
  ASSERT_TRUE(a.isOk()) << a.status().toString();
  EXPECT_FALSE(isMountPoint(a->dir));
  EXPECT_TRUE(fs::exists(a->dir + "/big.bin"));
  EXPECT_TRUE(plain.reattach("job-a"));
  EXPECT_FALSE(fs::exists(tmp_.file("repos")));
}

TEST_F(WorkspaceCacheTest, CollectDropsUnkeptWorkspacesAndTheCheckoutsOnlyTheyUsed) {
  ASSERT_TRUE(make("job-old").isOk());
  const std::string oldBase = baseOf("job-old");
  git(repo_, "commit -q --allow-empty -m newer");
  ASSERT_TRUE(make("job-live").isOk());
  ASSERT_TRUE(make("job-shares").isOk());
  const std::string liveBase = baseOf("job-live");
  ASSERT_NE(oldBase, liveBase);
  ASSERT_EQ(baseOf("job-shares"), liveBase);
  ws_.release("job-old");
  ws_.release("job-shares");
  std::ofstream(ws_.layersDir("job-shares") + "/u/mine.txt") << "x";

  auto gone =
      ws_.collect([](const std::string& id) { return id == "job-live"; }, nowMs() - kHourMs);
  EXPECT_EQ(gone.workspaces, 2);
  EXPECT_EQ(gone.checkouts, 1);  // only job-old's: job-live still sits on the other one
  EXPECT_FALSE(fs::exists(ws_.dir("job-old")));
  EXPECT_FALSE(fs::exists(ws_.layersDir("job-shares")));
  EXPECT_FALSE(fs::exists(oldBase));
  EXPECT_TRUE(fs::exists(liveBase + "/big.bin"));
  EXPECT_TRUE(fs::exists(ws_.dir("job-live") + "/big.bin"));
  // The mirror stays: a next job of the repo is still cheap.
  EXPECT_TRUE(fs::exists(tmp_.file("repos") + "/" + RepoCache::keyFor(repo_) + ".git"));
  EXPECT_EQ(gone.mirrors, 0);
  EXPECT_EQ(ws_.collect([](const std::string&) { return true; }, nowMs() - kHourMs).workspaces, 0);
}

const auto kKeepNone = [](const std::string&) { return false; };

TEST_F(WorkspaceCacheTest, CollectDropsAMirrorIdlePastTheWindowThatNothingComesFrom) {
  ASSERT_TRUE(make("job-a").isOk());
  ws_.release("job-a");
  ageMirror(48);
  auto gone = ws_.collect(kKeepNone, nowMs() - 24 * kHourMs);
  EXPECT_EQ(gone.workspaces, 1);
  EXPECT_EQ(gone.checkouts, 1);
  EXPECT_EQ(gone.mirrors, 1);
  EXPECT_FALSE(fs::exists(mirror()));
  EXPECT_FALSE(fs::exists(mirror() + ".tmp"));
  EXPECT_FALSE(fs::exists(mirrorLock()));
  EXPECT_TRUE(fs::is_empty(tmp_.file("repos/checkouts")));
  EXPECT_EQ(ws_.collect(kKeepNone, nowMs()).mirrors, 0);
}

TEST_F(WorkspaceCacheTest, CollectKeepsAMirrorAJobUsedWithinTheWindow) {
  ASSERT_TRUE(make("job-a").isOk());
  ws_.release("job-a");
  // Idle long ago, then used again by a job whose commit the mirror already has (no clone, and
  // no fetch for a commit it has): that use counts too.
  ageMirror(48);
  ASSERT_TRUE(make("job-b", git(repo_, "rev-parse HEAD")).isOk());
  ws_.release("job-b");
  auto gone = ws_.collect(kKeepNone, nowMs() - 24 * kHourMs);
  EXPECT_EQ(gone.workspaces, 2);
  EXPECT_EQ(gone.checkouts, 1);
  EXPECT_EQ(gone.mirrors, 0);
  EXPECT_TRUE(fs::exists(mirror() + "/HEAD"));
}

TEST_F(WorkspaceCacheTest, CollectKeepsAnIdleMirrorWhoseCheckoutAKeptWorkspaceSitsOn) {
  ASSERT_TRUE(make("job-live").isOk());
  ws_.release("job-live");
  const std::string base = baseOf("job-live");
  ageMirror(48);
  auto gone =
      ws_.collect([](const std::string& id) { return id == "job-live"; }, nowMs() - 24 * kHourMs);
  EXPECT_EQ(gone.workspaces, 0);
  EXPECT_EQ(gone.checkouts, 0);
  EXPECT_EQ(gone.mirrors, 0);
  EXPECT_TRUE(fs::exists(mirror() + "/HEAD"));
  EXPECT_TRUE(fs::exists(base + "/big.bin"));
  ASSERT_TRUE(ws_.reattach("job-live"));
  EXPECT_TRUE(fs::exists(ws_.dir("job-live") + "/big.bin"));
}

TEST_F(WorkspaceCacheTest, CollectLeavesAMirrorWhoseLockIsHeld) {
  ASSERT_TRUE(make("job-a").isOk());
  ws_.release("job-a");
  ageMirror(48);
  // Another node fetching the mirror holds its lock (flock: per open file, so this conflicts
  // with collect's own open in this process).
  const int fd = ::open(mirrorLock().c_str(), O_RDWR | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::flock(fd, LOCK_EX), 0);
  EXPECT_EQ(ws_.collect(kKeepNone, nowMs() - 24 * kHourMs).mirrors, 0);
  EXPECT_TRUE(fs::exists(mirror() + "/HEAD"));
  ::close(fd);
  EXPECT_EQ(ws_.collect(kKeepNone, nowMs() - 24 * kHourMs).mirrors, 1);
  EXPECT_FALSE(fs::exists(mirror()));
}

// A checkout goes only under its repo's lock: a node preparing a workspace from it holds that
// lock until the workspace has claimed it, so collect never removes a checkout being claimed or
// built.
TEST_F(WorkspaceCacheTest, CollectLeavesACheckoutWhoseRepoLockIsHeld) {
  ASSERT_TRUE(make("job-a").isOk());
  const std::string base = baseOf("job-a");
  ws_.release("job-a");
  // And one being built (or, once nobody holds the lock, left half-built by a crash).
  const std::string building =
      tmp_.file("repos/checkouts/.tmp-" + RepoCache::keyFor(repo_) + "-0123abcd");
  fs::create_directories(building + "/sub");
  const int fd = ::open(mirrorLock().c_str(), O_RDWR | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::flock(fd, LOCK_EX), 0);
  auto gone = ws_.collect(kKeepNone, nowMs() - 24 * kHourMs);
  EXPECT_EQ(gone.workspaces, 1);
  EXPECT_EQ(gone.checkouts, 0);
  EXPECT_TRUE(fs::exists(base + "/big.bin"));
  EXPECT_TRUE(fs::exists(building));
  ::close(fd);
  EXPECT_EQ(ws_.collect(kKeepNone, nowMs() - 24 * kHourMs).checkouts, 1);
  EXPECT_FALSE(fs::exists(base));
  EXPECT_FALSE(fs::exists(building));
}

TEST_F(WorkspaceCacheTest, CreateAfterItsMirrorWasCollectedClonesItAgain) {
  ASSERT_TRUE(make("job-a").isOk());
  ws_.release("job-a");
  ageMirror(48);
  ASSERT_EQ(ws_.collect(kKeepNone, nowMs() - 24 * kHourMs).mirrors, 1);
  ASSERT_FALSE(fs::exists(mirror()));
  git(repo_, "commit -q --allow-empty -m since");
  auto b = make("job-b");
  ASSERT_TRUE(b.isOk()) << b.status().toString();
  EXPECT_TRUE(isMountPoint(b->dir));
  EXPECT_EQ(b->baseCommit, git(repo_, "rev-parse HEAD"));
  EXPECT_TRUE(fs::exists(b->dir + "/big.bin"));
  EXPECT_EQ(git(b->dir, "status --porcelain"), "");
  EXPECT_TRUE(fs::exists(mirror() + "/HEAD"));
  EXPECT_TRUE(fs::exists(mirrorLock()));
  // Freshly cloned is freshly used.
  ws_.release("job-b");
  EXPECT_EQ(ws_.collect(kKeepNone, nowMs() - 24 * kHourMs).mirrors, 0);
}

}  // namespace
}  // namespace kiln::workspace
