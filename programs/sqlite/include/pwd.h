/* Ferry: wasi-libc has no <pwd.h>; the sqlite3 shell only uses getpwuid() to find a home directory for
 * ~/.sqliterc, and falls back to $HOME when it returns NULL. */
#ifndef FERRY_WASI_PWD_H
#define FERRY_WASI_PWD_H
#include <sys/types.h>
struct passwd { char *pw_name; char *pw_dir; };
static inline struct passwd *getpwuid(uid_t uid) { (void)uid; return 0; }
static inline uid_t getuid(void) { return 0; }
#endif
