// Host file helpers: a whole file's contents, the mount table, and whole-directory-tree
// operations (ownership and removal, never following symlinks or crossing into other mounts).
#pragma once
#include <string>
#include <vector>

#include "common/result.h"

namespace kiln {

// The whole contents of the file at path; NotFound "PATH: cannot open" when it cannot be opened.
Result<std::string> readFile(const std::string& path);

// The mount points of this process's mount namespace (/proc/self/mountinfo), unescaped ("\040"
// is a space), in mount order.
std::vector<std::string> mountPoints();

// Recursively chowns dir to uid/gid (not following symlinks, staying on dir's filesystem),
// skipping entries already owned. Fails with the first entry that cannot be chowned (one removed
// meanwhile is skipped). Reentrant: safe from many threads at once.
Status chownTree(const std::string& dir, unsigned uid, unsigned gid);

// Recursively removes dir without following symlinks or crossing mount points. A missing dir is
// not an error.
Status removeTree(const std::string& dir);

}  // namespace kiln
