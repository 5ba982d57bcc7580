// Capabilities and identity for commands run inside a sandbox. Everything here is
// async-signal-safe (raw syscalls only): it runs in a freshly forked child of a multi-threaded
// process, right before execve.
#pragma once
#include <sys/types.h>

namespace kiln::sandbox {

// Switches to uid/gid (no supplementary groups) unless uid is 0, then empties the bounding,
// ambient, inheritable, permitted and effective sets and sets no_new_privs.
// Returns 0 or the errno of the step that failed.
int dropPrivileges(uid_t uid, gid_t gid);

}  // namespace kiln::sandbox
