// WorkspaceFs::search: a small grep over the workspace (regex or fixed string), skipping .git,
// binary and very large files, never following symlinks.
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <memory>
#include <optional>
#include <regex>

#include "runtime/workspace_fs.h"

namespace kiln::runtime {
namespace {

using nlohmann::json;

constexpr size_t kMaxFileBytes = 2 << 20;
constexpr size_t kMaxMatches = 500;
constexpr size_t kMaxLineChars = 400;
constexpr int kMaxDepth = 32;

class LineMatcher {
 public:
  LineMatcher(const std::string& pattern, bool fixed) : pattern_(pattern) {
    if (fixed) return;
    try {
      re_.emplace(pattern, std::regex::ECMAScript);
    } catch (const std::regex_error&) {
      // Not a valid regex: fall back to a fixed-string search rather than failing.
    }
  }
  bool matches(const std::string& line) const {
    return re_ ? std::regex_search(line, *re_) : line.find(pattern_) != std::string::npos;
  }

 private:
  std::string pattern_;
  std::optional<std::regex> re_;
};

struct SearchState {
  const LineMatcher& matcher;
  json matches = json::array();
  bool truncated = false;
};

bool readSmallText(int fd, std::string& out) {
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size > (off_t)kMaxFileBytes) {
    return false;
  }
  out.resize(st.st_size);
  ssize_t n = pread(fd, out.data(), out.size(), 0);
  if (n < 0) return false;
  out.resize(n);
  return out.find('\0', 0) == std::string::npos;
}

void searchOpenFile(UniqueFd fd, const std::string& path, SearchState& s) {
  std::string data;
  bool ok = readSmallText(fd.get(), data);
  fd.reset();
  if (!ok) return;
  size_t pos = 0;
  for (int64_t line = 1; pos < data.size() && !s.truncated; ++line) {
    size_t nl = data.find('\n', pos);
    if (nl == std::string::npos) nl = data.size();
    std::string text = data.substr(pos, nl - pos);
    pos = nl + 1;
    if (!s.matcher.matches(text)) continue;
    if (s.matches.size() >= kMaxMatches) {
      s.truncated = true;
      return;
    }
    if (text.size() > kMaxLineChars) text.resize(kMaxLineChars);
    s.matches.push_back({{"path", path}, {"line", line}, {"text", text}});
  }
}

void searchDir(UniqueFd fd, const std::string& prefix, int depth, SearchState& s) {
  std::unique_ptr<DIR, int (*)(DIR*)> dir(fdopendir(fd.get()), &closedir);
  if (!dir) return;
  (void)fd.release();  // the DIR owns it now
  std::vector<std::pair<std::string, unsigned char>> names;
  while (dirent* e = readdir(dir.get())) names.emplace_back(e->d_name, e->d_type);
  std::sort(names.begin(), names.end());
  for (const auto& [name, type] : names) {
    if (s.truncated) break;
    if (name == "." || name == ".." || name == ".git") continue;
    std::string path = prefix.empty() || prefix == "." ? name : prefix + "/" + name;
    if (type == DT_DIR && depth < kMaxDepth) {
      UniqueFd sub(
          openat(dirfd(dir.get()), name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
      if (sub.valid()) searchDir(std::move(sub), path, depth + 1, s);
    } else if (type == DT_REG) {
      UniqueFd f(
          openat(dirfd(dir.get()), name.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK));
      if (f.valid()) searchOpenFile(std::move(f), path, s);
    }
  }
}

}  // namespace

Result<json> WorkspaceFs::search(const json& req) const {
  auto pattern = req.find("pattern");
  if (pattern == req.end() || !pattern->is_string() || pattern->get<std::string>().empty()) {
    return invalidArgument("pattern must be a non-empty string");
  }
  std::string path = req.value("path", std::string("."));
  ASSIGN_OR_RETURN(std::string rel, relative(path));
  LineMatcher matcher(pattern->get<std::string>(), req.value("fixed", false));
  SearchState state{matcher};
  ASSIGN_OR_RETURN(UniqueFd fd, openBeneath(rel, O_RDONLY));
  struct stat st;
  if (fstat(fd.get(), &st) != 0) return errnoStatus("stat " + rel, errno);
  if (S_ISDIR(st.st_mode)) {
    searchDir(std::move(fd), rel, 0, state);
  } else {
    searchOpenFile(std::move(fd), rel, state);
  }
  return json{{"matches", std::move(state.matches)}, {"truncated", state.truncated}};
}

}  // namespace kiln::runtime
