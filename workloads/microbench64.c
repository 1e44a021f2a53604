/*
 * microbench64 — the microbenchmark as a freestanding wasm64 (memory64) module, so footprints
 * above 4 GiB can be measured once the engine supports memory64. No libc: it imports only the
 * `ferry` host ABI documented in docs/workloads.md (arg_count, arg_get, write, clock_ns,
 * sleep_ns, exit) and exports `_start` and `memory`.
 *
 * It shares its state transitions, checksum and argument syntax with microbench.c
 * (common/microcore.h, common/core.h), so for the same --mem/--ops/--seed all builds print the
 * same final line. Flags: --mem SIZE --ops N | --seconds S | --forever, --seed N, --rate PAGES/S,
 * --progress S.
 */
#include "common/microcore.h"

#define IMPORT(name) __attribute__((import_module("ferry"), import_name(name)))
IMPORT("arg_count") int32_t ferry_arg_count(void);
IMPORT("arg_get") int64_t ferry_arg_get(int32_t index, uint64_t buf, int64_t buf_len);
IMPORT("write") int64_t ferry_write(int32_t fd, uint64_t ptr, int64_t len);
IMPORT("clock_ns") int64_t ferry_clock_ns(void);
IMPORT("sleep_ns") void ferry_sleep_ns(int64_t ns);
IMPORT("exit") __attribute__((noreturn)) void ferry_exit(int32_t code);

extern unsigned char __heap_base; /* provided by wasm-ld: first byte after data and stack */

/* Division with the divisor hidden from the optimiser. Dividing a u64 by a constant is normally
 * turned into a multiply-high by a magic number, which wasm lacks and LLVM lowers to a __multi3
 * call that nothing here provides; an opaque divisor keeps it a plain i64.div_u. */
static inline uint64_t udiv(uint64_t a, uint64_t b)
{
    __asm__("" : "+r"(b));
    return a / b;
}

/* ---- a tiny line buffer for output (no stdio) ---- */
typedef struct {
    char buf[256];
    int n;
} line_t;

static void put_str(line_t *l, const char *s)
{
    while (*s && l->n < (int)sizeof l->buf)
        l->buf[l->n++] = *s++;
}

static void put_u64(line_t *l, uint64_t v)
{
    char tmp[24];
    int k = 0;
    do {
        uint64_t q = udiv(v, 10);
        tmp[k++] = (char)('0' + (v - q * 10));
        v = q;
    } while (v);
    while (k && l->n < (int)sizeof l->buf)
        l->buf[l->n++] = tmp[--k];
}

static void put_hex16(line_t *l, uint64_t v)
{
    for (int i = 15; i >= 0 && l->n < (int)sizeof l->buf; i--)
        l->buf[l->n++] = "0123456789abcdef"[(v >> (4 * i)) & 15];
}

/* Milliseconds as S.mmm, enough for progress lines. */
static void put_secs(line_t *l, uint64_t ns)
{
    uint64_t ms = udiv(ns, 1000000);
    uint64_t s = udiv(ms, 1000);
    uint64_t frac = ms - s * 1000;
    put_u64(l, s);
    put_str(l, ".");
    put_u64(l, udiv(frac, 100));
    put_u64(l, udiv(frac, 10) - udiv(frac, 100) * 10);
    put_u64(l, frac - udiv(frac, 10) * 10);
    put_str(l, "s");
}

static void emit(int fd, line_t *l)
{
    put_str(l, "\n");
    ferry_write(fd, (uint64_t)(uintptr_t)l->buf, l->n);
    l->n = 0;
}

__attribute__((noreturn)) static void fail(const char *msg, const char *arg)
{
    line_t l;
    l.n = 0; /* not a {0} initialiser: that would become a call to memset, which no host provides */
    put_str(&l, "microbench64: error: ");
    put_str(&l, msg);
    if (arg) {
        put_str(&l, " '");
        put_str(&l, arg);
        put_str(&l, "'");
    }
    emit(2, &l);
    ferry_exit(2);
}

static char g_args[4096]; /* all arguments, NUL-separated */

void _start(void)
{
    uint64_t mem = 64ULL << 20, ops = 1000000, seed = 1, rate = 0, seconds_ns = 0, progress_ns = 1000000000ULL;
    int have_seconds = 0, forever = 0, explicit_ops = 0;

    int32_t argc = ferry_arg_count();
    int used = 0;
    const char *argv[64];
    if (argc > 64)
        fail("too many arguments", 0);
    for (int32_t i = 0; i < argc; i++) {
        int64_t room = (int64_t)sizeof g_args - used - 1;
        int64_t len = ferry_arg_get(i, (uint64_t)(uintptr_t)(g_args + used), room);
        if (len < 0 || len > room)
            fail("arguments too long", 0);
        g_args[used + len] = 0;
        argv[i] = g_args + used;
        used += (int)len + 1;
    }
    for (int32_t i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (str_eq(a, "--forever")) {
            forever = 1;
            continue;
        }
        if (!(str_eq(a, "--mem") || str_eq(a, "--ops") || str_eq(a, "--seconds") || str_eq(a, "--seed") ||
              str_eq(a, "--rate") || str_eq(a, "--progress")))
            fail("unknown option", a);
        if (i + 1 >= argc)
            fail("option needs a value:", a);
        const char *v = argv[++i];
        int bad;
        if (str_eq(a, "--mem"))
            bad = parse_size(v, &mem);
        else if (str_eq(a, "--ops"))
            bad = parse_u64(v, &ops), explicit_ops = 1;
        else if (str_eq(a, "--seconds"))
            bad = parse_fixed(v, 1000000000ULL, &seconds_ns) || seconds_ns == 0, have_seconds = 1;
        else if (str_eq(a, "--seed"))
            bad = parse_u64(v, &seed);
        else if (str_eq(a, "--rate"))
            bad = parse_u64(v, &rate);
        else
            bad = parse_fixed(v, 1000000000ULL, &progress_ns);
        if (bad)
            fail("cannot read the value of", a);
    }
    if (explicit_ops + have_seconds + forever > 1)
        fail("give only one of --ops, --seconds, --forever", 0);
    if (mem < (1ULL << 20))
        fail("--mem is below the 1M minimum", 0);

    /* The region starts at the first 4 KiB boundary past the heap base; grow linear memory to
     * cover it. memory.grow hands out zeroed pages, like calloc in the hosted build. */
    uint64_t pages = mem / PAGE_SIZE_4K;
    uint64_t base = ((uint64_t)(uintptr_t)&__heap_base + PAGE_SIZE_4K - 1) & ~(uint64_t)(PAGE_SIZE_4K - 1);
    uint64_t need = base + pages * PAGE_SIZE_4K;
    uint64_t have = (uint64_t)__builtin_wasm_memory_size(0) * 65536;
    if (need > have) {
        uint64_t grow = (need - have + 65535) / 65536;
        if ((int64_t)__builtin_wasm_memory_grow(0, grow) < 0)
            fail("memory.grow refused the requested --mem (engine limit?)", 0);
    }
    uint64_t *region = (uint64_t *)(uintptr_t)base;
    int64_t t0 = ferry_clock_ns();
    mb_init(region, pages, seed);

    line_t l;
    l.n = 0; /* not a {0} initialiser: that would become a call to memset, which no host provides */
    put_str(&l, "microbench64: init done in ");
    put_secs(&l, (uint64_t)(ferry_clock_ns() - t0));
    put_str(&l, ": ");
    put_u64(&l, pages);
    put_str(&l, " pages, rate ");
    put_u64(&l, rate);
    put_str(&l, "/s");
    emit(2, &l);

    /* The same runner contract as common.h's run_ops: batches of 256, time checked between batches,
     * rate-limited runs sliced to ~1 ms and paced by sleeping at most 10 ms at a time. */
    const uint64_t batch = 256;
    uint64_t slice = batch;
    if (rate) {
        slice = rate / 1000 ? rate / 1000 : 1;
        if (slice > batch)
            slice = batch;
    }
    uint64_t start = (uint64_t)ferry_clock_ns(), next_progress = start + progress_ns, done = 0;
    for (;;) {
        uint64_t n = batch;
        if (!have_seconds && !forever) {
            if (done >= ops)
                break;
            if (ops - done < n)
                n = ops - done;
        }
        for (uint64_t k = 0; k < n;) {
            uint64_t m = n - k < slice ? n - k : slice;
            if (rate) {
                for (;;) {
                    /* integer schedule: op j is due at start + j * 1e9 / rate */
                    uint64_t j = done + k;
                    uint64_t due = start + j / rate * 1000000000ULL + j % rate * 1000000000ULL / rate;
                    uint64_t t = (uint64_t)ferry_clock_ns();
                    if (t >= due)
                        break;
                    uint64_t w = due - t;
                    ferry_sleep_ns((int64_t)(w > 10000000ULL ? 10000000ULL : w));
                }
            }
            mb_ops(region, pages, seed, done + k, m);
            k += m;
        }
        done += n;
        uint64_t t = (uint64_t)ferry_clock_ns();
        if (progress_ns && t >= next_progress) {
            put_str(&l, "progress microbench64 ops=");
            put_u64(&l, done);
            put_str(&l, " elapsed=");
            put_secs(&l, t - start);
            emit(2, &l);
            next_progress = t + progress_ns;
        }
        if (have_seconds && t - start >= seconds_ns)
            break;
    }
    put_str(&l, "ops ");
    put_u64(&l, done);
    put_str(&l, " checksum ");
    put_hex16(&l, mb_checksum(region, pages, done));
    emit(1, &l);
    ferry_exit(0);
}
