/* Ferry: force-included when building Lua 5.4 for wasm32-wasi (programs/build).
 *
 * Lua raises errors (and coroutine yields from C) with longjmp, which wasm32-wasi without the exception-handling
 * proposal cannot do. Protected calls therefore run their body directly, and a raised error or yield ends the
 * program: the error message is printed to stderr as lua.c would ("lua: MESSAGE") and the exit status is 1.
 * Programs that never raise an error (and do not yield coroutines) behave exactly as the native build. */
#ifndef FERRY_LUA_WASI_COMPAT_H
#define FERRY_LUA_WASI_COMPAT_H
struct lua_State;
_Noreturn void ferry_lua_throw(struct lua_State *L, int status);
#define LUAI_THROW(L, c) ferry_lua_throw(L, (c)->status)
#define LUAI_TRY(L, c, a) { a }
#define luai_jmpbuf int
/* No processes or temporary names in WASI: os.execute reports "no shell" (system() in wasi-compat.c),
 * os.tmpname and io.tmpfile fail cleanly. */
#define LUA_TMPNAMBUFSIZE 32
#define lua_tmpnam(b, e) { (void)(b); e = 1; }
#endif
