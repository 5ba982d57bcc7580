// Repository URLs and the host-side repo fetch: the one thing kiln runs on the host rather than
// in a sandbox (the sandbox has no network by default). Blocking: call from the BlockingPool.
#pragma once
#include <string>
#include <vector>

#include "common/result.h"

namespace kiln::workspace {

// Accepts https://…, http://…, ssh://…, git@host:path, file:///abs/path and a plain local path
// (made absolute, must exist). Returns the URL git should use, or InvalidArgument with why.
Result<std::string> normalizeRepoUrl(const std::string& url);

// Local repositories are read by kiln itself, on the host: a local path (or file://) names one
// only under `allowedDirs`, and never under `dataDir` (other jobs' workspaces and the repo
// cache). `url` is normalizeRepoUrl's result; remote URLs pass unchanged. A local one comes back
// with its symlinks resolved, so that the clone later reads the directory that was checked.
// PermissionDenied with why otherwise.
Result<std::string> confineLocalRepo(const std::string& url,
                                     const std::vector<std::string>& allowedDirs,
                                     const std::string& dataDir);

// Checks that the repository answers (git ls-remote), and that `ref` exists when given.
// Unprocessable with git's reason otherwise.
Status checkReachable(const std::string& url, const std::string& ref, int timeoutMs = 20'000);

struct PreparedWorkspace {
  std::string dir;         // host directory with the checkout
  std::string baseCommit;  // the commit checked out
};

// Creates `dir` as a new git repository with one empty commit (tasks without a repo).
Result<PreparedWorkspace> initEmptyWorkspace(const std::string& dir);

// Clones `url` at `ref` (default branch if empty) into `dir`, which must not exist.
Result<PreparedWorkspace> cloneWorkspace(const std::string& url, const std::string& ref,
                                         const std::string& dir);

}  // namespace kiln::workspace
