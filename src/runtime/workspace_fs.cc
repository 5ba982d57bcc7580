#include "runtime/workspace_fs.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <climits>
#include <deque>

#include "common/json_fields.h"

namespace kiln::runtime {
namespace {

using nlohmann::json;

constexpr size_t kMaxReadBytes = 16 << 20;

Status outside(const std::string& path) {
  return Status(Code::kPermissionDenied, "path resolves outside the workspace: " + path);
}

Result<std::string> readAll(int fd) {
  std::string data;
  char buf[65536];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return errnoStatus("read", errno);
    if (n == 0) return data;
    data.append(buf, n);
    if (data.size() > kMaxReadBytes) return Status(Code::kTooLarge, "file is larger than 16 MiB");
  }
}

}  // namespace

Result<std::unique_ptr<WorkspaceFs>> WorkspaceFs::open(const std::string& root) {
  UniqueFd fd(::open(root.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (!fd.valid()) return errnoStatus("workspace " + root, errno);
  struct stat st;
  if (fstat(fd.get(), &st) != 0) return errnoStatus("workspace " + root, errno);
  std::string clean = root.size() > 1 && root.back() == '/' ? root.substr(0, root.size() - 1)
                                                            : root;
  return std::unique_ptr<WorkspaceFs>(new WorkspaceFs(clean, std::move(fd), st.st_uid, st.st_gid));
}

Result<std::string> WorkspaceFs::relative(const std::string& path) const {
  if (path.empty() || path == root_) return std::string(".");
  if (path[0] != '/') return path;
  if (path.compare(0, root_.size() + 1, root_ + "/") == 0) {
    std::string rel = path.substr(root_.size() + 1);
    return rel.empty() ? std::string(".") : rel;
  }
  return outside(path);
}

namespace {

// Kernels without openat2 (gVisor's, as packaged in Debian 12, answers ENOSYS).
std::atomic<bool> noOpenat2{false};

std::deque<std::string> components(const std::string& path) {
  std::deque<std::string> out;
  size_t start = 0;
  while (start <= path.size()) {
    size_t slash = path.find('/', start);
    if (slash == std::string::npos) slash = path.size();
    std::string part = path.substr(start, slash - start);
    if (!part.empty() && part != ".") out.push_back(std::move(part));
    start = slash + 1;
  }
  return out;
}

Status openError(const std::string& rel, int err) {
  if (err == ENOENT) return notFound("no such file or directory: " + rel);
  return errnoStatus("open " + rel, err);
}

// openat2(RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS) done one component at a time: every
// component is opened O_NOFOLLOW relative to an fd of its parent, ".." pops back to the
// parent's fd (never past the root), and symlinks are expanded here, an absolute one or one
// climbing above the root being an escape. A rename cannot race a directory out of the
// workspace: the workspace is its own mount, and renames do not cross mounts.
Result<UniqueFd> walkBeneath(int rootFd, const std::string& rel, int flags, mode_t mode) {
  std::vector<UniqueFd> dirs;  // the directories walked into, innermost last
  auto current = [&] { return dirs.empty() ? rootFd : dirs.back().get(); };
  std::deque<std::string> parts = components(rel);
  int links = 0;
  while (!parts.empty()) {
    const std::string name = std::move(parts.front());
    parts.pop_front();
    if (name == "..") {
      if (dirs.empty()) return outside(rel);
      dirs.pop_back();
      continue;
    }
    char target[PATH_MAX];
    ssize_t n = readlinkat(current(), name.c_str(), target, sizeof target - 1);
    if (n >= 0) {
      if (++links > 40) return errnoStatus("open " + rel, ELOOP);
      target[n] = 0;
      if (target[0] == '/') return outside(rel);
      std::deque<std::string> expanded = components(target);
      parts.insert(parts.begin(), expanded.begin(), expanded.end());
      continue;
    }
    if (parts.empty()) {
      UniqueFd fd(openat(current(), name.c_str(), flags | O_NOFOLLOW | O_CLOEXEC, mode));
      if (!fd.valid()) return openError(rel, errno);
      return fd;
    }
    UniqueFd fd(openat(current(), name.c_str(), O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (!fd.valid()) return openError(rel, errno);
    dirs.push_back(std::move(fd));
  }
  UniqueFd fd(openat(current(), ".", flags | O_CLOEXEC, mode));
  if (!fd.valid()) return openError(rel, errno);
  return fd;
}

}  // namespace

Result<UniqueFd> WorkspaceFs::openBeneath(const std::string& rel, int flags, mode_t mode) const {
  if (noOpenat2.load(std::memory_order_relaxed)) {
    return walkBeneath(rootFd_.get(), rel, flags, mode);
  }
  open_how how{};
  how.flags = static_cast<uint64_t>(flags | O_CLOEXEC);
  how.mode = (flags & O_CREAT) ? mode : 0;
  how.resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS;
  for (;;) {
    int fd = static_cast<int>(syscall(SYS_openat2, rootFd_.get(), rel.c_str(), &how, sizeof how));
    if (fd >= 0) return UniqueFd(fd);
    if (errno == EAGAIN || errno == EINTR) continue;  // a racing rename; retry
    if (errno == EXDEV) return outside(rel);
    if (errno == ENOSYS) {
      noOpenat2.store(true, std::memory_order_relaxed);
      return walkBeneath(rootFd_.get(), rel, flags, mode);
    }
    return openError(rel, errno);
  }
}

Status WorkspaceFs::makeParents(const std::string& rel) const {
  for (size_t pos = rel.find('/'); pos != std::string::npos; pos = rel.find('/', pos + 1)) {
    std::string dir = rel.substr(0, pos);
    size_t slash = dir.rfind('/');
    std::string parent = slash == std::string::npos ? "." : dir.substr(0, slash);
    std::string name = slash == std::string::npos ? dir : dir.substr(slash + 1);
    if (name.empty() || name == "." || name == "..") continue;
    ASSIGN_OR_RETURN(UniqueFd pfd, openBeneath(parent, O_PATH | O_DIRECTORY));
    if (mkdirat(pfd.get(), name.c_str(), 0755) == 0) {
      fchownat(pfd.get(), name.c_str(), uid_, gid_, AT_SYMLINK_NOFOLLOW);
    } else if (errno != EEXIST) {
      return errnoStatus("mkdir " + dir, errno);
    }
  }
  return Status::ok();
}

Result<json> WorkspaceFs::read(const json& req) const {
  ASSIGN_OR_RETURN(std::string rel, relative(fieldOr(req, "path", "")));
  ASSIGN_OR_RETURN(UniqueFd fd, openBeneath(rel, O_RDONLY));
  ASSIGN_OR_RETURN(std::string data, readAll(fd.get()));
  int64_t start = req.value("startLine", 1), end = req.value("endLine", INT64_MAX);
  std::string out;
  int64_t line = 0;
  size_t pos = 0;
  while (pos < data.size()) {
    size_t nl = data.find('\n', pos);
    size_t stop = nl == std::string::npos ? data.size() : nl + 1;
    ++line;
    if (line >= start && line <= end) out.append(data, pos, stop - pos);
    pos = stop;
  }
  return json{{"content", start <= 1 && end == INT64_MAX ? data : out}, {"totalLines", line}};
}

Result<json> WorkspaceFs::write(const json& req) const {
  ASSIGN_OR_RETURN(std::string rel, relative(fieldOr(req, "path", "")));
  auto content = req.find("content");
  if (content == req.end() || !content->is_string()) {
    return invalidArgument("content must be a string");
  }
  RETURN_IF_ERROR(makeParents(rel));
  ASSIGN_OR_RETURN(UniqueFd fd, openBeneath(rel, O_WRONLY | O_CREAT | O_TRUNC, 0644));
  const std::string& data = content->get_ref<const std::string&>();
  for (size_t off = 0; off < data.size();) {
    ssize_t n = ::write(fd.get(), data.data() + off, data.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return errnoStatus("write " + rel, errno);
    off += n;
  }
  fchown(fd.get(), uid_, gid_);
  return json{{"bytes", data.size()}};
}

Result<json> WorkspaceFs::list(const json& req) const {
  ASSIGN_OR_RETURN(std::string rel, relative(fieldOr(req, "path", ".")));
  ASSIGN_OR_RETURN(UniqueFd fd, openBeneath(rel, O_RDONLY | O_DIRECTORY));
  std::unique_ptr<DIR, int (*)(DIR*)> dir(fdopendir(fd.get()), &closedir);
  if (!dir) return errnoStatus("opendir " + rel, errno);
  (void)fd.release();  // the DIR owns it now
  json entries = json::array();
  while (dirent* e = readdir(dir.get())) {
    std::string name = e->d_name;
    if (name == "." || name == "..") continue;
    struct stat st;
    if (fstatat(dirfd(dir.get()), e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0) continue;
    const char* type = S_ISDIR(st.st_mode) ? "dir" : S_ISLNK(st.st_mode) ? "symlink" : "file";
    entries.push_back({{"name", name}, {"type", type}, {"size", st.st_size}});
  }
  dir.reset();
  std::sort(entries.begin(), entries.end(),
            [](const json& a, const json& b) { return a["name"] < b["name"]; });
  return json{{"entries", entries}};
}

}  // namespace kiln::runtime
