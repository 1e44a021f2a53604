/*
 * pagerank — PageRank by power iteration on a generated power-law graph (stands in for SGXGauge's
 * PageRank).
 *
 * Push formulation: an iteration visits every vertex v in order and adds rank[v]/outdeg(v) into
 * next[w] for each out-neighbour w, which scatters 8-byte writes over the whole next[] array;
 * after the last vertex, rank = (1-d)/V + d*next and next is cleared. One operation is one vertex
 * of one iteration (operation i handles vertex i mod V of iteration i / V), so a time-limited run
 * can stop mid-iteration and still be reproduced exactly. Every vertex has out-degree >= 8, so
 * there are no dangling vertices to redistribute. Double arithmetic in a fixed order: identical on
 * every IEEE target (built with -ffp-contract=off).
 * Memory per vertex: graph 8 B + ~16 edges * 4 B, plus rank and next 8 B each.
 */
#include "common/graph.h"

#define DAMPING 0.85

typedef struct {
    graph_t g;
    double *rank, *next;
    uint64_t iterations;
    double last_delta; /* L1 change of the last completed iteration */
} pr_t;

static void batch(void *ctx, uint64_t first, uint64_t count)
{
    pr_t *p = (pr_t *)ctx;
    uint64_t nv = p->g.nv;
    for (uint64_t op = first; op < first + count; op++) {
        uint64_t v = op % nv;
        uint64_t lo = p->g.off[v], hi = p->g.off[v + 1];
        double c = p->rank[v] / (double)(hi - lo);
        for (uint64_t e = lo; e < hi; e++)
            p->next[p->g.dst[e]] += c;
        if (v == nv - 1) {
            double base = (1.0 - DAMPING) / (double)nv, delta = 0;
            for (uint64_t w = 0; w < nv; w++) {
                double r = base + DAMPING * p->next[w];
                delta += r > p->rank[w] ? r - p->rank[w] : p->rank[w] - r;
                p->rank[w] = r;
                p->next[w] = 0;
            }
            p->last_delta = delta;
            p->iterations++;
        }
    }
}

/* A double's bits as an integer, for hashing and for printing without printf's %g. */
static uint64_t bits_of(double x)
{
    uint64_t u;
    memcpy(&u, &x, 8);
    return u;
}

int main(int argc, char **argv)
{
    opts_t o;
    parse_args(&o, argc, argv, "pagerank",
               "PageRank power iteration (push) over a generated power-law graph; one operation = one vertex of "
               "one iteration.",
               NULL, 0, 64ULL << 20, 1000000, 0);
    pr_t p;
    memset(&p, 0, sizeof p);
    uint64_t nv = o.mem / (8 + 4 * GRAPH_AVG_DEGREE + 16);
    graph_generate(&p.g, nv, o.seed);
    p.rank = (double *)big_alloc(p.g.nv * 8, "ranks");
    p.next = (double *)big_alloc(p.g.nv * 8, "next ranks");
    for (uint64_t v = 0; v < p.g.nv; v++)
        p.rank[v] = 1.0 / (double)p.g.nv;
    char what[96];
    snprintf(what, sizeof what, "%llu vertices, %llu edges", (unsigned long long)p.g.nv, (unsigned long long)p.g.ne);
    init_done(&o, what);

    uint64_t ops = run_ops(&o, 4096, batch, &p);

    fh_t h;
    fh_init(&h);
    uint64_t scalars[] = {p.iterations, bits_of(p.last_delta), ops};
    fh_bytes(&h, scalars, sizeof scalars);
    graph_hash(&h, &p.g);
    fh_bytes(&h, p.rank, p.g.nv * 8);
    fh_bytes(&h, p.next, p.g.nv * 8);
    /* The top vertex is a readable sanity check (a hub should collect far more than 1/V). */
    uint64_t top = 0;
    for (uint64_t v = 1; v < p.g.nv; v++)
        if (p.rank[v] > p.rank[top])
            top = v;
    printf("result pagerank iterations=%llu top_vertex=%llu top_rank_ppm=%llu last_delta_ppm=%llu\n",
           (unsigned long long)p.iterations, (unsigned long long)top,
           (unsigned long long)(p.rank[top] * 1e6), (unsigned long long)(p.last_delta * 1e6));
    return finish(ops, fh_final(&h));
}
