/* Ferry: wasi-libc (Debian bookworm) has no <setjmp.h>: WebAssembly 2.0 has no way to unwind the stack to a
 * saved point. Lua's ldo.c includes this header unconditionally; wasi-compat.h replaces LUAI_THROW/LUAI_TRY
 * so nothing here is ever called. */
#ifndef FERRY_WASI_SETJMP_H
#define FERRY_WASI_SETJMP_H
typedef int jmp_buf[1];
#endif
