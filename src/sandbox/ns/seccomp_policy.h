// The seccomp policy for commands inside a sandbox, as data. In the spirit of Docker's default
// profile, but written as a deny list (default allow): everything a build or a test suite needs
// keeps working, while syscalls that reach kernel attack surface or host state fail with EPERM.
// Non-native architectures (i386 via int 0x80, x32) are killed by libseccomp's arch check.
// docs/runtime.md lists the same table for operators.
#pragma once
#include <sched.h>

namespace kiln::sandbox {

struct DeniedSyscall {
  const char* name;  // resolved with seccomp_syscall_resolve_name; unknown names are skipped
  int err;           // errno returned instead of running the call
};

inline constexpr DeniedSyscall kDeniedSyscalls[] = {
    // Filesystem namespace changes.
    {"mount", 1}, {"umount", 1}, {"umount2", 1}, {"pivot_root", 1}, {"chroot", 1},
    {"fsopen", 1}, {"fsconfig", 1}, {"fsmount", 1}, {"fspick", 1}, {"move_mount", 1},
    {"open_tree", 1}, {"mount_setattr", 1}, {"open_by_handle_at", 1},
    {"name_to_handle_at", 1}, {"quotactl", 1}, {"quotactl_fd", 1},
    // Namespaces: a fresh user namespace would hand back every capability.
    {"unshare", 1}, {"setns", 1},
    // Kernel code and state.
    {"init_module", 1}, {"finit_module", 1}, {"delete_module", 1}, {"kexec_load", 1},
    {"kexec_file_load", 1}, {"bpf", 1}, {"perf_event_open", 1}, {"reboot", 1},
    {"swapon", 1}, {"swapoff", 1}, {"acct", 1}, {"syslog", 1}, {"settimeofday", 1},
    {"clock_settime", 1}, {"clock_adjtime", 1}, {"adjtimex", 1}, {"stime", 1},
    {"sethostname", 1}, {"setdomainname", 1}, {"iopl", 1}, {"ioperm", 1},
    {"create_module", 1}, {"get_kernel_syms", 1}, {"query_module", 1}, {"nfsservctl", 1},
    {"lookup_dcookie", 1}, {"vm86", 1}, {"vm86old", 1}, {"uselib", 1}, {"_sysctl", 1},
    {"userfaultfd", 1}, {"kcmp", 1}, {"process_vm_readv", 1}, {"process_vm_writev", 1},
    {"pidfd_getfd", 1}, {"fanotify_init", 1},
    // Debugging other processes and the kernel keyring.
    {"ptrace", 1}, {"keyctl", 1}, {"add_key", 1}, {"request_key", 1},
    // io_uring bypasses seccomp for the operations it performs.
    {"io_uring_setup", 1}, {"io_uring_enter", 1}, {"io_uring_register", 1},
};

// clone() flags refused (EPERM) for commands: creating namespaces.
inline constexpr unsigned long kDeniedCloneFlags[] = {
    CLONE_NEWUSER, CLONE_NEWNS, CLONE_NEWPID, CLONE_NEWNET,
    CLONE_NEWUTS,  CLONE_NEWIPC, CLONE_NEWCGROUP,
};

// clone3 passes its flags in memory seccomp cannot read: answer ENOSYS so libc falls back to
// clone(), whose flags we can check.
inline constexpr int kClone3Errno = 38;  // ENOSYS

}  // namespace kiln::sandbox
