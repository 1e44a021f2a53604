/*
 * microcore.h — the microbenchmark's state transitions, shared verbatim by microbench.c (libc,
 * wasm32 + native) and microbench64.c (freestanding wasm64), so all three builds produce the same
 * checksum for the same (--mem, --ops, --seed). Freestanding: only core.h.
 *
 * The region is an array of 4 KiB pages viewed as 64-bit words. Initialisation writes one word
 * per page (enough to make every page resident, far cheaper than filling it); operation i writes
 * one word at a page and offset chosen by hash2(seed, i).
 */
#ifndef FERRY_WORKLOADS_MICROCORE_H
#define FERRY_WORKLOADS_MICROCORE_H

#include "core.h"

#define MB_WORDS_PER_PAGE (PAGE_SIZE_4K / 8)

static inline uint64_t mb_stream(uint64_t seed) { return mix64(seed ^ 0x6d6963726f62656eULL); /* "microben" */ }

static inline void mb_init(uint64_t *region, uint64_t pages, uint64_t seed)
{
    uint64_t key = mb_stream(seed);
    for (uint64_t p = 0; p < pages; p++)
        region[p * MB_WORDS_PER_PAGE] = hash2(key, p) | 1; /* |1: never zero, so the page is really written */
}

/* Operations [first, first + count): each writes 8 bytes into one pseudo-random page. */
static inline void mb_ops(uint64_t *region, uint64_t pages, uint64_t seed, uint64_t first, uint64_t count)
{
    uint64_t key = mb_stream(seed) + 1;
    for (uint64_t i = first; i < first + count; i++) {
        uint64_t h = hash2(key, i);
        /* Modulo, not below()'s multiply-high: wasm has no 64x64->128 multiply, and LLVM lowers the
         * pattern to a __multi3 call that the libc-free wasm64 build cannot link. The division is
         * hidden behind the cache miss of the write anyway. */
        uint64_t page = (h >> 9) % pages;
        uint64_t word = h & (MB_WORDS_PER_PAGE - 1);
        region[page * MB_WORDS_PER_PAGE + word] = mix64(h + i);
    }
}

/* Checksum: the whole region plus the scalar state (size and ops done). */
static inline uint64_t mb_checksum(const uint64_t *region, uint64_t pages, uint64_t ops)
{
    fh_t h;
    fh_init(&h);
    fh_u64(&h, pages);
    fh_u64(&h, ops);
    fh_bytes(&h, region, pages * PAGE_SIZE_4K);
    return fh_final(&h);
}

#endif
