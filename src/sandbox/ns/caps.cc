#include "sandbox/ns/caps.h"

#include <errno.h>
#include <grp.h>
#include <linux/capability.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace kiln::sandbox {
namespace {

int lastCap() {
  // CAP_LAST_CAP of the running kernel may exceed our headers; probe until EINVAL.
  int cap = 0;
  while (prctl(PR_CAPBSET_READ, cap, 0, 0, 0) >= 0) ++cap;
  return cap - 1;
}

bool holdsCapabilities() {
  __user_cap_header_struct hdr{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct data[2] = {};
  if (syscall(SYS_capget, &hdr, data) != 0) return true;
  return (data[0].permitted | data[1].permitted) != 0;
}

}  // namespace

int dropPrivileges(uid_t uid, gid_t gid) {
  // Rootless mode: the runtime already runs as the one id mapped inside and holds nothing to
  // drop (nor the right to drop it, or to change groups: setgroups is denied there).
  if (uid != 0 && getuid() == uid && geteuid() == uid && getgid() == gid && getegid() == gid &&
      !holdsCapabilities()) {
    if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0 && errno != EINVAL) {
      return errno;
    }
    return prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 ? errno : 0;
  }
  for (int cap = 0, last = lastCap(); cap <= last; ++cap) {
    if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0 && errno != EINVAL) return errno;
  }
  if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0 && errno != EINVAL) {
    return errno;
  }
  if (uid != 0) {
    if (setgroups(0, nullptr) != 0) return errno;
    if (setresgid(gid, gid, gid) != 0) return errno;
    if (setresuid(uid, uid, uid) != 0) return errno;
  }
  // A root command keeps uid 0 but must hold no capability at all.
  __user_cap_header_struct hdr{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct data[2] = {};
  if (syscall(SYS_capset, &hdr, data) != 0) return errno;
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) return errno;
  return 0;
}

}  // namespace kiln::sandbox
