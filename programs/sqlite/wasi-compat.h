/* Ferry: force-included when building SQLite for wasm32-wasi. wasi-libc lacks POSIX advisory lock commands (it declares struct flock only) and a few
 * ownership calls that os_unix.c names in its system-call table; the build uses the "unix-none" VFS
 * (SQLITE_DEFAULT_UNIX_VFS), which never locks, so these only need to compile. */
#ifndef FERRY_WASI_COMPAT_H
#define FERRY_WASI_COMPAT_H
#include <sys/types.h>
#include <fcntl.h>
#ifndef F_RDLCK
#define F_RDLCK 0
#define F_WRLCK 1
#define F_UNLCK 2
#define F_GETLK 5
#define F_SETLK 6
#define F_SETLKW 7
#endif
int fchmod(int fd, mode_t mode);
int chmod(const char *path, mode_t mode);
uid_t geteuid(void);
int fchown(int fd, uid_t owner, gid_t group);
#endif
