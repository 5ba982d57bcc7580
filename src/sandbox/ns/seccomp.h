// Seccomp for commands inside a sandbox: the policy (seccomp_policy.h) is compiled once with
// libseccomp into a BPF program; installing it is async-signal-safe, so a forked child of the
// multi-threaded runtime can load it right before execve.
#pragma once
#include <linux/filter.h>

#include <vector>

#include "common/result.h"

namespace kiln::sandbox {

Result<std::vector<sock_filter>> compileSeccompPolicy();

// Loads the program into the calling thread. Needs no_new_privs (or CAP_SYS_ADMIN).
// Returns 0 or errno. Async-signal-safe.
int installSeccomp(const std::vector<sock_filter>& program);

}  // namespace kiln::sandbox
