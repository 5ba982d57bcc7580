// Repository URLs and the host-side repo fetch: the one thing kiln runs on the host rather than
// in a sandbox (the sandbox has no network by default). Blocking: call from the BlockingPool.
#pragma once
#include <string>

#include "common/result.h"

namespace kiln::workspace {

// Accepts https://…, http://…, ssh://…, git@host:path, file:///abs/path and a plain local path
// (made absolute, must exist). Returns the URL git should use, or InvalidArgument with why.
Result<std::string> normalizeRepoUrl(const std::string& url);

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
