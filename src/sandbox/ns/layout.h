// Host-side directory layout of the namespace backend. Shared, created once per backend:
//   <state>/.skel     lower layer of every rootfs: mount points + usr-merge symlinks
//   <state>/.etcmask  upper lower-layer over host /etc: whiteouts hiding secrets, our passwd
// Per sandbox (<state>/<id>/, paths kept short for the 107-byte unix socket limit):
//   rt.sock  the runtime's listening socket     rt.log  the runtime's stderr
//   rw/      mount point (inside the sandbox's mount namespace only) of a tmpfs, or of the
//            disk-quota image, holding the writable layers (r: rootfs, u: /usr, e: /etc;
//            *w: overlay workdirs) and m/, the mount point of the new root. Nothing of a
//            sandbox's writes lands on the host filesystem, so destroy has almost nothing to
//            delete (each rmdir on a `discard` ext4 costs milliseconds).
#pragma once
#include <string>

#include "common/result.h"

namespace kiln::sandbox {

inline constexpr unsigned kAgentUid = 1000;
inline constexpr unsigned kAgentGid = 1000;

// Creates the shared skeleton and /etc mask under stateDir (idempotent).
Status prepareSharedLayers(const std::string& stateDir);

struct SandboxPaths {
  std::string dir, socket, log, rw, newRoot, skel, etcMask;
  static SandboxPaths of(const std::string& stateDir, const std::string& id);
};

// Recursively removes dir without following symlinks or crossing mount points.
Status removeTree(const std::string& dir);
// Recursively chowns dir to uid/gid (not following symlinks), skipping entries already owned.
Status chownTree(const std::string& dir, unsigned uid, unsigned gid);

}  // namespace kiln::sandbox
