/* Ferry: no-op ownership shims for wasm32-wasi builds (WASI has no file modes or owners). */
#include <sys/types.h>
int fchmod(int fd, mode_t mode) { (void)fd; (void)mode; return 0; }
uid_t geteuid(void) { return 0; }
int fchown(int fd, uid_t owner, gid_t group) { (void)fd; (void)owner; (void)group; return 0; }
int chmod(const char *path, mode_t mode) { (void)path; (void)mode; return 0; }
