/*
 * core.h — the freestanding part of the workload suite's common code.
 *
 * Everything here uses only <stdint.h>/<stddef.h> and no libc calls, because it is shared by the
 * hosted programs (native gcc and wasm32-wasi) and by the libc-free wasm64 microbenchmark. That
 * sharing is the point: the same PRNG, checksum and size parser on every build is what makes a
 * checksum from one build comparable with a checksum from another.
 *
 * Determinism rules followed throughout: every value that reaches live state is derived from
 * (seed, operation index, previous state) with integer arithmetic or IEEE-exact +,-,*,/,sqrt; no
 * pointers or size_t-sized fields are ever stored in hashed state (wasm32 and x86-64 differ there).
 */
#ifndef FERRY_WORKLOADS_CORE_H
#define FERRY_WORKLOADS_CORE_H

#include <stddef.h>
#include <stdint.h>

#define PAGE_SIZE_4K 4096u

static inline uint64_t rotl64(uint64_t x, int r) { return (x << r) | (x >> (64 - r)); }

/* The splitmix64 output function. It is a bijection on 64-bit values (xor-shifts and odd
 * multipliers are invertible), which the programs use to make distinct keys from distinct indices. */
static inline uint64_t mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* A stateless random value for (stream key, index): lets an operation's randomness depend only on
 * its index, so how operations are grouped into batches can never change the result. */
static inline uint64_t hash2(uint64_t key, uint64_t index)
{
    return mix64(key ^ mix64(index + 0x9e3779b97f4a7c15ULL));
}

/* High 64 bits of a 64x64 product, built from 32-bit halves: __int128 would need compiler-rt,
 * which the -nostdlib wasm64 build does not link. */
static inline uint64_t mulhi64(uint64_t a, uint64_t b)
{
    uint64_t al = (uint32_t)a, ah = a >> 32, bl = (uint32_t)b, bh = b >> 32;
    uint64_t ll = al * bl, lh = al * bh, hl = ah * bl, hh = ah * bh;
    uint64_t mid = (ll >> 32) + (uint32_t)lh + (uint32_t)hl;
    return hh + (lh >> 32) + (hl >> 32) + (mid >> 32);
}

/* Map a uniform 64-bit value onto [0, n) by multiply-high (no division, bias < n / 2^64). */
static inline uint64_t below(uint64_t r, uint64_t n) { return mulhi64(r, n); }

/* A uniform double in [0, 1) from the top 53 bits: exact, so identical on every IEEE target. */
static inline double unit_double(uint64_t r) { return (double)(r >> 11) * (1.0 / 9007199254740992.0); }

/* xoshiro256** (Blackman & Vigna), seeded through splitmix64 as its authors recommend. Used where a
 * program consumes a sequential stream (data generation); per-operation randomness uses hash2. */
typedef struct {
    uint64_t s[4];
} rng_t;

static inline void rng_seed(rng_t *g, uint64_t seed, uint64_t stream)
{
    uint64_t x = seed ^ mix64(stream + 0x632be59bd9b4e019ULL);
    for (int i = 0; i < 4; i++) {
        x += 0x9e3779b97f4a7c15ULL;
        g->s[i] = mix64(x);
    }
}

static inline uint64_t rng_next(rng_t *g)
{
    uint64_t *s = g->s;
    uint64_t result = rotl64(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl64(s[3], 45);
    return result;
}

/*
 * ferryhash64: the checksum over live state. Four independent lanes so a multi-GB region hashes
 * at memory speed (the exit checksum must not dominate a run); each lane's round has the shape of
 * xxHash64's (add a multiple of the word, rotate, multiply), with our own constants. Words are fed
 * in a fixed order and the result does not depend on how the input is split across calls, so a
 * program can hash its state field by field.
 */
typedef struct {
    uint64_t lane[4];
    uint64_t count; /* words absorbed so far */
} fh_t;

#define FH_P1 0x9e3779b97f4a7c15ULL
#define FH_P2 0xc2b2ae3d27d4eb4fULL

static inline void fh_init(fh_t *h)
{
    h->lane[0] = 0x243f6a8885a308d3ULL;
    h->lane[1] = 0x13198a2e03707344ULL;
    h->lane[2] = 0xa4093822299f31d0ULL;
    h->lane[3] = 0x082efa98ec4e6c89ULL;
    h->count = 0;
}

static inline uint64_t fh_round(uint64_t acc, uint64_t w) { return rotl64(acc + w * FH_P2, 31) * FH_P1; }

static inline void fh_u64(fh_t *h, uint64_t w)
{
    unsigned i = (unsigned)(h->count & 3);
    h->lane[i] = fh_round(h->lane[i], w);
    h->count++;
}

static inline uint64_t load_le64(const unsigned char *p)
{
    uint64_t v;
    __builtin_memcpy(&v, p, 8); /* both targets are little-endian; memcpy keeps it alignment-safe */
    return v;
}

/* Absorb n bytes: whole words, then the tail zero-padded into one word, then the length, so two
 * byte strings differing only in trailing zero bytes still hash differently. */
static inline void fh_bytes(fh_t *h, const void *data, uint64_t n)
{
    const unsigned char *p = (const unsigned char *)data;
    uint64_t words = n / 8;
    while (words && (h->count & 3)) {
        fh_u64(h, load_le64(p));
        p += 8;
        words--;
    }
    uint64_t a = h->lane[0], b = h->lane[1], c = h->lane[2], d = h->lane[3];
    uint64_t quads = words / 4;
    for (uint64_t i = 0; i < quads; i++, p += 32) {
        a = fh_round(a, load_le64(p));
        b = fh_round(b, load_le64(p + 8));
        c = fh_round(c, load_le64(p + 16));
        d = fh_round(d, load_le64(p + 24));
    }
    h->lane[0] = a;
    h->lane[1] = b;
    h->lane[2] = c;
    h->lane[3] = d;
    h->count += quads * 4;
    for (words -= quads * 4; words; words--, p += 8)
        fh_u64(h, load_le64(p));
    uint64_t tail = n & 7;
    if (tail) {
        uint64_t w = 0;
        for (uint64_t i = 0; i < tail; i++)
            w |= (uint64_t)p[i] << (8 * i);
        fh_u64(h, w);
    }
    fh_u64(h, n);
}

static inline uint64_t fh_final(const fh_t *h)
{
    uint64_t r = rotl64(h->lane[0], 1) + rotl64(h->lane[1], 7) + rotl64(h->lane[2], 12) + rotl64(h->lane[3], 18);
    return mix64(r ^ h->count);
}

/*
 * Parse a non-negative decimal with an optional fraction, "3.5", into value * scale / divisor
 * using integers only (no strtod, so the wasm64 build needs no libc and the result is exact).
 * Returns the number of characters consumed, 0 if there were no digits, -1 on overflow.
 * At most 9 fraction digits are honoured; more are rejected as unusable precision.
 */
static inline int parse_decimal(const char *s, uint64_t scale, uint64_t *out)
{
    uint64_t ip = 0, frac = 0, fdiv = 1;
    int i = 0, digits = 0;
    while (s[i] >= '0' && s[i] <= '9') {
        if (ip > (UINT64_MAX - 9) / 10)
            return -1;
        ip = ip * 10 + (uint64_t)(s[i] - '0');
        i++;
        digits++;
    }
    if (s[i] == '.') {
        i++;
        while (s[i] >= '0' && s[i] <= '9') {
            if (fdiv >= 1000000000ULL)
                return -1;
            frac = frac * 10 + (uint64_t)(s[i] - '0');
            fdiv *= 10;
            i++;
            digits++;
        }
    }
    if (!digits)
        return 0;
    /* Overflow test by bit lengths, conservatively: the exact test (ip > UINT64_MAX / scale) is
     * recognised by LLVM as a 128-bit multiply, which the libc-free wasm64 build cannot link. */
    if (ip && scale && (64 - __builtin_clzll(ip)) + (64 - __builtin_clzll(scale)) > 64)
        return -1;
    uint64_t whole = ip * scale;
    /* frac/fdiv < 1 and scale <= 2^40 in practice, so frac * (scale / fdiv) stays in range when
     * computed as below (scale is a power of two or of ten). */
    uint64_t part = (scale / fdiv) * frac + ((scale % fdiv) * frac) / fdiv;
    if (whole > UINT64_MAX - part)
        return -1;
    *out = whole + part;
    return i;
}

/* "--mem" syntax: decimal number with optional K/M/G/T suffix (binary units), e.g. 16M, 3.5G,
 * 65536. Returns 0 on success, -1 if malformed. */
static inline int parse_size(const char *s, uint64_t *out)
{
    uint64_t probe;
    int n = parse_decimal(s, 1, &probe);
    if (n <= 0)
        return -1;
    uint64_t unit = 1;
    switch (s[n]) {
    case 0: unit = 1; break;
    case 'k': case 'K': unit = 1ULL << 10; n++; break;
    case 'm': case 'M': unit = 1ULL << 20; n++; break;
    case 'g': case 'G': unit = 1ULL << 30; n++; break;
    case 't': case 'T': unit = 1ULL << 40; n++; break;
    default: return -1;
    }
    if (s[n] == 'i' && s[n + 1] == 'B')
        n += 2; /* accept "MiB" spellings too */
    else if (s[n] == 'B')
        n++;
    if (s[n] != 0)
        return -1;
    return parse_decimal(s, unit, out) > 0 ? 0 : -1;
}

/* Plain unsigned integer, all characters digits. */
static inline int parse_u64(const char *s, uint64_t *out)
{
    uint64_t v = 0;
    int i = 0;
    if (!s[0])
        return -1;
    for (; s[i]; i++) {
        if (s[i] < '0' || s[i] > '9' || v > (UINT64_MAX - 9) / 10)
            return -1;
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    *out = v;
    return 0;
}

/* Decimal to a fixed-point integer (e.g. seconds to nanoseconds with scale 1e9). */
static inline int parse_fixed(const char *s, uint64_t scale, uint64_t *out)
{
    int n = parse_decimal(s, scale, out);
    return (n > 0 && s[n] == 0) ? 0 : -1;
}

static inline int str_eq(const char *a, const char *b)
{
    while (*a && *a == *b) {
        a++;
        b++;
    }
    return *a == *b;
}

#endif
