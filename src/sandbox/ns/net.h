// Network namespace of a sandbox: empty but for loopback, which starts down and is brought up
// here (ioctl, async-signal-safe).
#pragma once

namespace kiln::sandbox {

// Returns 0 or errno.
int bringUpLoopback();

}  // namespace kiln::sandbox
