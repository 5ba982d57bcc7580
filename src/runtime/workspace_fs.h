// WorkspaceFs: the /files/* part of the runtime contract. Every path is resolved with
// openat2(RESOLVE_BENEATH) against an fd of the workspace root, so neither "..", an absolute
// path nor a symlink can reach outside it. An escape attempt is a kPermissionDenied status
// (the server answers 400 path_outside_workspace). Thread-safe (no mutable state).
#pragma once
#include <sys/types.h>

#include <nlohmann/json.hpp>
#include <string>

#include "common/result.h"
#include "common/unique_fd.h"

namespace kiln::runtime {

class WorkspaceFs {
 public:
  static Result<std::unique_ptr<WorkspaceFs>> open(const std::string& root);

  const std::string& root() const { return root_; }
  uid_t ownerUid() const { return uid_; }
  gid_t ownerGid() const { return gid_; }

  // Bodies and answers as in docs/runtime.md.
  Result<nlohmann::json> read(const nlohmann::json& req) const;
  Result<nlohmann::json> write(const nlohmann::json& req) const;
  Result<nlohmann::json> list(const nlohmann::json& req) const;
  Result<nlohmann::json> search(const nlohmann::json& req) const;

  // Maps a contract path to one relative to the root; refuses absolute paths elsewhere.
  Result<std::string> relative(const std::string& path) const;
  // openat2 beneath the root. Returns the fd or a status.
  Result<UniqueFd> openBeneath(const std::string& rel, int flags, mode_t mode = 0) const;

 private:
  WorkspaceFs(std::string root, UniqueFd fd, uid_t uid, gid_t gid)
      : root_(std::move(root)), rootFd_(std::move(fd)), uid_(uid), gid_(gid) {}
  Status makeParents(const std::string& rel) const;

  std::string root_;
  UniqueFd rootFd_;
  uid_t uid_;
  gid_t gid_;
};

}  // namespace kiln::runtime
