/*
 * graph.h — a generated directed graph with power-law degrees, in CSR form, for BFS and PageRank.
 *
 * Why not R-MAT (Graph500's generator): it draws one random number per recursion level per edge,
 * ~24 per edge at these sizes, which makes a multi-GB graph take minutes to generate. This
 * generator costs one hash per edge and writes the CSR arrays in a single sequential pass:
 *   - out-degree of vertex v: d = floor(dmin / sqrt(u)), u uniform in (0,1] — a Pareto tail with
 *     P(d > x) ~ x^-2, capped at dmax (sqrt is IEEE-exact, so this is identical on every build);
 *   - each edge's target: perm(floor(nv * u^3)) — the density of u^3 makes target t's expected
 *     in-degree fall off as t^(-2/3), i.e. a Zipf-like in-degree with a power-law tail (exponent
 *     ~2.5, in the range reported for web and social graphs);
 *   - perm is a keyed bijection of [0, nv) so the hubs are scattered over the vertex array, as
 *     in a real graph, instead of all sitting in its first pages.
 * Degrees are drawn first (one pass over the offsets), so the edge array is allocated exactly.
 */
#ifndef FERRY_WORKLOADS_GRAPH_H
#define FERRY_WORKLOADS_GRAPH_H

#include <math.h>

#include "common.h"

typedef struct {
    uint64_t nv, ne;
    uint64_t *off; /* nv + 1 offsets into dst */
    uint32_t *dst; /* ne targets */
    uint64_t key;  /* generator key (also used by perm) */
    unsigned bits;
} graph_t;

#define GRAPH_DMIN 8
#define GRAPH_DMAX 4096

/* A bijection of [0, 2^bits): odd multiplies and xor-shifts are each invertible modulo 2^bits. */
static inline uint64_t perm_pow2(uint64_t x, unsigned bits, uint64_t key)
{
    uint64_t mask = bits >= 64 ? ~0ULL : (1ULL << bits) - 1;
    unsigned sh = bits / 2 + 1;
    for (int round = 0; round < 3; round++) {
        x = (x * ((key >> (round * 8)) | 1) + (key >> 17)) & mask;
        x ^= x >> sh;
        x = (x * 0x9e3779b97f4a7c15ULL) & mask;
        x ^= x >> (sh > 2 ? sh - 1 : 1);
    }
    return x;
}

/* Restrict the power-of-two bijection to [0, nv) by cycle walking: following the permutation's
 * cycle from x < nv must return below nv, and on average it takes < 2 steps. */
static inline uint32_t graph_perm(const graph_t *g, uint64_t x)
{
    do
        x = perm_pow2(x, g->bits, g->key);
    while (x >= g->nv);
    return (uint32_t)x;
}

static uint64_t graph_degree(uint64_t key, uint64_t v)
{
    double u = (double)((hash2(key, v) >> 11) + 1) * (1.0 / 9007199254740992.0); /* (0, 1] */
    double d = (double)GRAPH_DMIN / sqrt(u);
    return d >= (double)GRAPH_DMAX ? GRAPH_DMAX : (uint64_t)d;
}

/* Expected edges per vertex for sizing: E[min(dmin/sqrt(u), dmax)] ~ 2*dmin. */
#define GRAPH_AVG_DEGREE 16

static void graph_generate(graph_t *g, uint64_t nv, uint64_t seed)
{
    if (nv < 2)
        nv = 2;
    if (nv > 0xFFFFFFF0ULL)
        die("graph of %llu vertices does not fit 32-bit vertex ids", (unsigned long long)nv);
    g->nv = nv;
    g->key = mix64(seed ^ 0x6772617068ULL); /* "graph" */
    g->bits = 1;
    while ((1ULL << g->bits) < nv)
        g->bits++;
    g->off = (uint64_t *)big_alloc((nv + 1) * 8, "graph offsets");
    uint64_t ne = 0;
    for (uint64_t v = 0; v < nv; v++) {
        g->off[v] = ne;
        ne += graph_degree(g->key, v);
    }
    g->off[nv] = ne;
    g->ne = ne;
    g->dst = (uint32_t *)big_alloc(ne * 4, "graph edges");
    uint64_t ekey = g->key + 1;
    for (uint64_t e = 0; e < ne; e++) {
        double u = unit_double(hash2(ekey, e));
        uint64_t t = (uint64_t)((double)nv * (u * u * u));
        g->dst[e] = graph_perm(g, t < nv ? t : nv - 1);
    }
}

static void graph_hash(fh_t *h, const graph_t *g)
{
    fh_u64(h, g->nv);
    fh_u64(h, g->ne);
    fh_bytes(h, g->off, (g->nv + 1) * 8);
    fh_bytes(h, g->dst, g->ne * 4);
}

#endif
