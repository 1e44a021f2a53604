/*
 * common.h — the hosted (libc) part of the workload suite: command line, timing, progress lines,
 * big allocations, the batch runner that implements the determinism contract, and the final
 * output. Header-only on purpose: every workload is a single translation unit, so `cc prog.c`
 * is the whole build for wasm32-wasi and native alike.
 *
 * Contract (docs/workloads.md): the checksum depends only on (program, --mem, --seed, ops done,
 * program flags); --seconds stops between fixed-size batches, and the final line reports how many
 * operations ran so `--ops N` reproduces the same state exactly.
 */
#ifndef FERRY_WORKLOADS_COMMON_H
#define FERRY_WORKLOADS_COMMON_H

#define _GNU_SOURCE 1
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core.h"
#include "dirty.h"

/* ---- time ----------------------------------------------------------------------------------- */

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static void sleep_ns(uint64_t ns)
{
    struct timespec ts = {(time_t)(ns / 1000000000ULL), (long)(ns % 1000000000ULL)};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

static uint64_t g_t0;

static double elapsed_s(void) { return (double)(now_ns() - g_t0) / 1e9; }

/* ---- options -------------------------------------------------------------------------------- */

enum opt_kind { OPT_SIZE, OPT_U64, OPT_FIXED, OPT_FLAG };

/* A program-specific option. OPT_FIXED values are decimals stored as value * scale (integer). */
typedef struct {
    const char *name; /* "--rate" */
    enum opt_kind kind;
    uint64_t scale;
    uint64_t *dst;
    const char *help;
} extra_opt_t;

typedef struct {
    const char *prog;
    uint64_t mem;           /* bytes */
    uint64_t ops;           /* valid if have_ops */
    uint64_t seconds_ns;    /* valid if have_seconds */
    uint64_t seed;
    uint64_t rate;          /* operations per second, 0 = unlimited (only programs that ask for it) */
    int have_ops, have_seconds, forever;
    int measure_dirty;      /* native Linux only: report distinct 4 KiB pages written per second */
    uint64_t progress_ns;   /* interval between progress lines */
} opts_t;

static const char *g_prog = "workload";

static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "%s: error: ", g_prog);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    fflush(stderr);
    exit(2);
}

static void usage(FILE *f, const char *about, const extra_opt_t *extra, int nextra, uint64_t default_mem,
                  uint64_t default_ops, int allow_forever)
{
    fprintf(f, "usage: %s [--mem SIZE] [--ops N | --seconds S%s] [--seed N] [options]\n", g_prog,
            allow_forever ? " | --forever" : "");
    fprintf(f, "%s\n\n", about);
    fprintf(f, "  --mem SIZE       footprint: bytes with optional K/M/G suffix, decimals allowed (3.5G); default %lluM\n",
            (unsigned long long)(default_mem >> 20));
    fprintf(f, "  --ops N          run exactly N operations (default %llu)\n", (unsigned long long)default_ops);
    fprintf(f, "  --seconds S      run until S seconds elapsed, checked between batches; prints the ops done\n");
    if (allow_forever)
        fprintf(f, "  --forever        run until killed (no final line)\n");
    fprintf(f, "  --seed N         data and operation stream seed (default 1)\n");
    fprintf(f, "  --progress S     seconds between progress lines on stderr (default 1, 0 = none)\n");
    fprintf(f, "  --measure-dirty  native Linux only: report distinct 4 KiB pages written per interval\n");
    for (int i = 0; i < nextra; i++)
        fprintf(f, "  %-16s %s\n", extra[i].name, extra[i].help);
    fprintf(f, "\nstdout gets one line at the end: ops N checksum HEX (after an optional 'result ...' line)\n");
}

/*
 * Parse the common flags plus the program's own. Errors name the flag and the bad value and exit
 * with status 2, because a silently defaulted flag would make a benchmark measure the wrong thing.
 */
static void parse_args(opts_t *o, int argc, char **argv, const char *prog, const char *about,
                       const extra_opt_t *extra, int nextra, uint64_t default_mem, uint64_t default_ops,
                       int allow_forever)
{
    g_t0 = now_ns(); /* init time reported on stderr counts from here */
    memset(o, 0, sizeof *o);
    g_prog = prog;
    o->prog = prog;
    o->mem = default_mem;
    o->ops = default_ops;
    o->seed = 1;
    o->progress_ns = 1000000000ULL;
    int explicit_ops = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (str_eq(a, "--help") || str_eq(a, "-h")) {
            usage(stdout, about, extra, nextra, default_mem, default_ops, allow_forever);
            exit(0);
        }
        if (str_eq(a, "--forever") && allow_forever) {
            o->forever = 1;
            continue;
        }
        if (str_eq(a, "--measure-dirty")) {
            o->measure_dirty = 1;
            continue;
        }
        int matched = -1;
        for (int k = 0; k < nextra; k++)
            if (str_eq(a, extra[k].name))
                matched = k;
        if (matched >= 0 && extra[matched].kind == OPT_FLAG) {
            *extra[matched].dst = 1;
            continue;
        }
        int known = matched >= 0 || str_eq(a, "--mem") || str_eq(a, "--ops") || str_eq(a, "--seconds") ||
                    str_eq(a, "--seed") || str_eq(a, "--progress");
        if (!known)
            die("unknown option '%s' (try --help)", a);
        if (!v)
            die("option %s needs a value", a);
        i++;
        if (str_eq(a, "--mem")) {
            if (parse_size(v, &o->mem) != 0)
                die("--mem: cannot read '%s' as a size (examples: 16M, 512K, 3.5G)", v);
        } else if (str_eq(a, "--ops")) {
            if (parse_u64(v, &o->ops) != 0)
                die("--ops: '%s' is not a non-negative integer", v);
            explicit_ops = 1;
        } else if (str_eq(a, "--seconds")) {
            if (parse_fixed(v, 1000000000ULL, &o->seconds_ns) != 0 || o->seconds_ns == 0)
                die("--seconds: '%s' is not a positive number of seconds", v);
            o->have_seconds = 1;
        } else if (str_eq(a, "--seed")) {
            if (parse_u64(v, &o->seed) != 0)
                die("--seed: '%s' is not a non-negative integer", v);
        } else if (str_eq(a, "--progress")) {
            if (parse_fixed(v, 1000000000ULL, &o->progress_ns) != 0)
                die("--progress: '%s' is not a number of seconds", v);
        } else {
            const extra_opt_t *e = &extra[matched];
            int bad = e->kind == OPT_SIZE    ? parse_size(v, e->dst)
                      : e->kind == OPT_U64   ? parse_u64(v, e->dst)
                                             : parse_fixed(v, e->scale, e->dst);
            if (bad)
                die("%s: cannot read '%s' (%s)", a, v, e->help);
        }
    }
    if (explicit_ops + o->have_seconds + o->forever > 1)
        die("give only one of --ops, --seconds%s", allow_forever ? ", --forever" : "");
    o->have_ops = !o->have_seconds && !o->forever;
#if !defined(__linux__) || defined(__wasm__)
    if (o->measure_dirty)
        die("--measure-dirty needs the native Linux build (userfaultfd and /proc/self/pagemap)");
#endif
    if (o->mem < (1ULL << 20))
        die("--mem %llu bytes is below the 1M minimum", (unsigned long long)o->mem);
    /* size_t is 32 bits on wasm32: refuse up front rather than wrap around in a size computation. */
    if (sizeof(size_t) < 8 && o->mem > 0xF0000000ULL)
        die("--mem %llu bytes does not fit a 32-bit address space (at most 3.75G here; use the native or wasm64 build)",
            (unsigned long long)o->mem);
}

/* ---- allocation ----------------------------------------------------------------------------- */

static uint64_t g_footprint;

/*
 * One large zeroed block. Fails with the size and what it was for: a multi-GB run that dies
 * half-way through initialisation would waste a migration experiment. calloc so the memory has a
 * defined content even before the program fills it (hashed padding must be deterministic).
 */
static void *big_alloc(uint64_t bytes, const char *what)
{
    if (bytes == 0)
        bytes = 8;
    if (bytes > (uint64_t)SIZE_MAX - 4096)
        die("cannot allocate %llu bytes for %s: larger than this build's address space", (unsigned long long)bytes,
            what);
    void *p;
#if defined(__wasm32__)
    /* wasi-libc's dlmalloc obtains memory through sbrk(intptr_t), so one request of 2 GiB or more
     * overflows and fails; blocks of 1 GiB and up therefore come straight from memory.grow, which
     * hands out zeroed, page-aligned memory just like calloc. dlmalloc copes with memory grown
     * behind its back (its next sbrk simply starts a new segment). */
    if (bytes >= (1ULL << 30)) {
        uint64_t pages = (bytes + 65535) / 65536;
        long old = (long)__builtin_wasm_memory_grow(0, (unsigned long)pages);
        p = old < 0 ? NULL : (void *)((uintptr_t)old * 65536u);
    } else
#endif
        p = calloc(1, (size_t)bytes);
    if (!p)
        die("cannot allocate %.1f MiB for %s (total so far %.1f MiB); lower --mem", (double)bytes / 1048576.0, what,
            (double)g_footprint / 1048576.0);
    /* Touch every page now: calloc and memory.grow hand out lazily-backed zero pages, so memory a
     * program fills only later (spare B-tree nodes, an output ring) would not be resident and the
     * footprint a migration sees would be smaller than --mem says. */
    for (uint64_t off = 0; off < bytes; off += 4096)
        ((volatile unsigned char *)p)[off] = 0;
    g_footprint += bytes;
    dirty_note_region(p, bytes);
    return p;
}

/* ---- the batch runner ----------------------------------------------------------------------- */

/* Run operations [first, first + count). Must be a pure function of the state and the op indices. */
typedef void (*batch_fn)(void *ctx, uint64_t first, uint64_t count);

static void init_done(const opts_t *o, const char *what)
{
    fprintf(stderr, "%s: init done in %.3fs: %s; footprint %.1f MiB\n", o->prog, elapsed_s(), what,
            (double)g_footprint / 1048576.0);
    if (o->measure_dirty)
        dirty_start(o->prog);
}

/*
 * Runs batches of `batch` operations until --ops is reached, --seconds has elapsed (checked only
 * between batches, so ops done is always a multiple of `batch` in that mode), or forever. With a
 * rate limit the batch is cut into ~1 ms slices and the runner sleeps between slices; slicing
 * only changes when operations run, never which, so the checksum is unaffected.
 */
static uint64_t run_ops(const opts_t *o, uint64_t batch, batch_fn fn, void *ctx)
{
    uint64_t start = now_ns();
    uint64_t next_progress = start + o->progress_ns;
    uint64_t done = 0;
    uint64_t slice = batch;
    if (o->rate) {
        slice = o->rate / 1000;
        if (slice < 1)
            slice = 1;
        if (slice > batch)
            slice = batch;
    }
    for (;;) {
        uint64_t n = batch;
        if (o->have_ops) {
            if (done >= o->ops)
                break;
            if (o->ops - done < n)
                n = o->ops - done;
        }
        for (uint64_t k = 0; k < n;) {
            uint64_t m = n - k < slice ? n - k : slice;
            if (o->rate) {
                /* Sleep until operation done+k is due, in steps of at most 10 ms so a late clock
                 * read never overshoots by much. */
                for (;;) {
                    uint64_t due = start + (uint64_t)((double)(done + k) * 1e9 / (double)o->rate);
                    uint64_t t = now_ns();
                    if (t >= due)
                        break;
                    uint64_t w = due - t;
                    sleep_ns(w > 10000000ULL ? 10000000ULL : w);
                }
            }
            fn(ctx, done + k, m);
            k += m;
        }
        done += n;
        uint64_t t = now_ns();
        if (o->progress_ns && t >= next_progress) {
            fprintf(stderr, "progress %s ops=%llu elapsed=%.3fs ops_per_s=%.0f\n", o->prog, (unsigned long long)done,
                    (double)(t - start) / 1e9, (double)done * 1e9 / (double)(t - start));
            next_progress = t + o->progress_ns;
        }
        if (o->measure_dirty)
            dirty_tick(t);
        if (o->have_seconds && t - start >= o->seconds_ns)
            break;
    }
    uint64_t t = now_ns();
    fprintf(stderr, "%s: ran %llu ops in %.3fs (%.0f ops/s)\n", o->prog, (unsigned long long)done,
            (double)(t - start) / 1e9, t > start ? (double)done * 1e9 / (double)(t - start) : 0.0);
    if (o->measure_dirty)
        dirty_finish(t);
    return done;
}

/* The last stdout line; the tests and migration harness parse exactly this format. */
static int finish(uint64_t ops, uint64_t checksum)
{
    printf("ops %llu checksum %016llx\n", (unsigned long long)ops, (unsigned long long)checksum);
    fflush(stdout);
    fprintf(stderr, "%s: total %.3fs\n", g_prog, elapsed_s());
    fflush(stderr);
    return 0;
}

/* Round down to a power of two (>= 1). */
static inline uint64_t floor_pow2(uint64_t x)
{
    uint64_t p = 1;
    while (p <= x / 2)
        p *= 2;
    return p;
}

#endif
