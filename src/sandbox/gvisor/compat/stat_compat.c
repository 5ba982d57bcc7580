// kiln-gvisor-compat.so: preloaded into every command of a gVisor sandbox. gVisor's kernel as
// packaged in Debian 12 (runsc 20221219) refuses with EINVAL the AT_NO_AUTOMOUNT flag of statx
// and fstatat, and statx masks beyond the basic stats; coreutils passes both, so `ls DIR`,
// `stat` and `cp` fail. These wrappers drop the flag (there is no automounter inside) and answer
// statx from fstatat, as glibc does on kernels without statx.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

static int stat_at(int dirfd, const char* path, struct stat* st, int flags) {
  return (int)syscall(SYS_newfstatat, dirfd, path, st, flags & ~AT_NO_AUTOMOUNT);
}

int fstatat(int dirfd, const char* path, struct stat* st, int flags) {
  return stat_at(dirfd, path, st, flags);
}

int fstatat64(int dirfd, const char* path, struct stat64* st, int flags) {
  return stat_at(dirfd, path, (struct stat*)st, flags);
}

int statx(int dirfd, const char* path, int flags, unsigned int mask, struct statx* buf) {
  (void)mask;
  struct stat st;
  if (stat_at(dirfd, path, &st, flags & (AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH)) != 0) return -1;
  memset(buf, 0, sizeof *buf);
  buf->stx_mask = STATX_BASIC_STATS;
  buf->stx_blksize = st.st_blksize;
  buf->stx_nlink = st.st_nlink;
  buf->stx_uid = st.st_uid;
  buf->stx_gid = st.st_gid;
  buf->stx_mode = st.st_mode;
  buf->stx_ino = st.st_ino;
  buf->stx_size = st.st_size;
  buf->stx_blocks = st.st_blocks;
  buf->stx_atime.tv_sec = st.st_atim.tv_sec;
  buf->stx_atime.tv_nsec = st.st_atim.tv_nsec;
  buf->stx_mtime.tv_sec = st.st_mtim.tv_sec;
  buf->stx_mtime.tv_nsec = st.st_mtim.tv_nsec;
  buf->stx_ctime.tv_sec = st.st_ctim.tv_sec;
  buf->stx_ctime.tv_nsec = st.st_ctim.tv_nsec;
  buf->stx_rdev_major = major(st.st_rdev);
  buf->stx_rdev_minor = minor(st.st_rdev);
  buf->stx_dev_major = major(st.st_dev);
  buf->stx_dev_minor = minor(st.st_dev);
  return 0;
}
