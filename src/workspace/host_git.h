// How kiln runs git on the host (repo.cc, cache.cc): never prompting, never through a transport
// that runs commands (ext::, fd::), without the system config; and the one line of git's stderr
// worth showing a user.
#pragma once
#include <string>

#include "common/subprocess.h"

namespace kiln::workspace {

ProcessOptions hostGitOptions(int timeoutMs);

// Whether ref is a commit id (7 to 40 lowercase hex digits) rather than a branch or tag name.
bool isCommitSha(const std::string& ref);

// git prints "fatal: ..." last: that line (without the prefix), else the first line of `err`.
std::string gitErrorLine(std::string err);

}  // namespace kiln::workspace
