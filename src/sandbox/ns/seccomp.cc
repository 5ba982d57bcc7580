#include "sandbox/ns/seccomp.h"

#include <errno.h>
#include <seccomp.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <memory>

#include "sandbox/ns/seccomp_policy.h"

namespace kiln::sandbox {
namespace {

struct CtxRelease {
  void operator()(scmp_filter_ctx ctx) const { seccomp_release(ctx); }
};

Status addRules(scmp_filter_ctx ctx) {
  for (const auto& d : kDeniedSyscalls) {
    int nr = seccomp_syscall_resolve_name(d.name);
    if (nr == __NR_SCMP_ERROR) continue;
    int rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(d.err), nr, 0);
    // Pseudo-syscalls that do not exist on this architecture are not an error.
    if (rc != 0 && rc != -EDOM) return errnoStatus(std::string("seccomp: rule ") + d.name, -rc);
  }
  for (unsigned long flag : kDeniedCloneFlags) {
    int rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(clone), 1,
                              SCMP_A0(SCMP_CMP_MASKED_EQ, flag, flag));
    if (rc != 0) return errnoStatus("seccomp: rule clone", -rc);
  }
  int rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(kClone3Errno), SCMP_SYS(clone3), 0);
  if (rc != 0 && rc != -EDOM) return errnoStatus("seccomp: rule clone3", -rc);
  return Status::ok();
}

}  // namespace

Result<std::vector<sock_filter>> compileSeccompPolicy() {
  std::unique_ptr<void, CtxRelease> ctx(seccomp_init(SCMP_ACT_ALLOW));
  if (!ctx) return internalError("seccomp: init failed");
  RETURN_IF_ERROR(addRules(ctx.get()));
  // Export raw BPF through a memfd so the child only needs prctl().
  int fd = memfd_create("kiln-seccomp", MFD_CLOEXEC);
  if (fd < 0) return errnoStatus("seccomp: memfd_create", errno);
  int rc = seccomp_export_bpf(ctx.get(), fd);
  if (rc != 0) {
    close(fd);
    return errnoStatus("seccomp: export", -rc);
  }
  off_t size = lseek(fd, 0, SEEK_END);
  std::vector<sock_filter> prog(size / sizeof(sock_filter));
  ssize_t n = pread(fd, prog.data(), prog.size() * sizeof(sock_filter), 0);
  close(fd);
  if (n != static_cast<ssize_t>(prog.size() * sizeof(sock_filter))) {
    return internalError("seccomp: short read of exported program");
  }
  return prog;
}

int installSeccomp(const std::vector<sock_filter>& program) {
  sock_fprog fprog{static_cast<unsigned short>(program.size()),
                   const_cast<sock_filter*>(program.data())};
  if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &fprog, 0, 0) != 0) return errno;
  return 0;
}

}  // namespace kiln::sandbox
