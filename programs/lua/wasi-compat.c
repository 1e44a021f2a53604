/* Ferry: the end of a Lua error under wasm32-wasi (see wasi-compat.h). */
#include <stdio.h>
#include <stdlib.h>
#include <errno.h>
#include "lua.h"

/* wasi-libc has neither: WASI cannot start processes, and has no temporary directory. */
int system(const char *command) { return command == NULL ? 0 : -1; }
FILE *tmpfile(void) { errno = ENOTSUP; return NULL; }

_Noreturn void ferry_lua_throw(lua_State *L, int status) {
  const char *msg = status == LUA_YIELD ? "attempt to yield (coroutines that yield are not supported in this build)"
                  : lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1)
                  : "(error object is not a string)";
  fflush(stdout);
  fprintf(stderr, "lua: %s\n", msg);
  exit(1);
}
