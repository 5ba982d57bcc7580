// Runs a namespace sandbox on a base image (image.h): the image replaces the host as the lower
// layer of the rootfs, /usr and /etc overlays. The runtime is linked against the host's shared
// libraries, which a minimal image lacks, so it is started through the host's dynamic loader
// with the host's library dir; the kiln binary and that dir are bind-mounted read-only at
// /run/kiln-host. Commands only ever see the image's own binaries and libraries.
#pragma once
#include <memory>
#include <string>

#include "common/result.h"
#include "sandbox/ns/contain.h"
#include "sandbox/ns/layout.h"

namespace kiln::sandbox::image {

class NsImage {
 public:
  // Resolves `image` (a name under imagesDir or an absolute path) and prepares the shared
  // <stateDir>/.hostbin mount skeleton. Blocking (a few syscalls).
  static Result<NsImage> prepare(const std::string& stateDir, const std::string& imagesDir,
                                 const std::string& kilnBinary, const std::string& image);

  // Rewrites a plan made by buildMountPlan() for `paths`. Fails (internal) if the plan does
  // not have the overlays it expects, rather than silently running on the host's dirs.
  Status applyTo(ContainPlan& plan, const SandboxPaths& paths) const;

  const std::string& rootfs() const { return rootfs_; }

 private:
  std::string rootfs_;
  std::string hostDir_;  // <stateDir>/.hostbin: mount points `kiln` (file) and `lib` (dir)
  std::string kilnBinary_;
  std::string libDir_;             // the host loader's dir; empty for a static kiln binary
  std::shared_ptr<int> loaderFd_;  // O_PATH of the host loader, closed with the last copy
};

}  // namespace kiln::sandbox::image
