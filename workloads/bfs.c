/*
 * bfs — repeated breadth-first searches over a generated power-law graph (stands in for
 * SGXGauge's BFS).
 *
 * One operation expands one vertex: take the next vertex off the FIFO queue and visit its
 * out-neighbours, recording the BFS parent of each newly reached vertex. When the queue runs dry
 * the operation starts the next search from a new root (hash2(seed, search number)). Vertices are
 * marked with the number of the search that reached them instead of a visited bit, so a new search
 * needs no O(V) reset and every operation does the same kind of work.
 * Memory per vertex: graph offsets 8 B + ~16 edges * 4 B, plus stamp, parent and queue 4 B each.
 */
#include "common/graph.h"

typedef struct {
    graph_t g;
    uint32_t *stamp;  /* search number that reached the vertex (0 = never) */
    uint32_t *parent; /* BFS tree of the search that last reached the vertex */
    uint32_t *queue;
    uint64_t head, tail, search, visited, edges_seen, rootkey;
} bfs_t;

static void start_search(bfs_t *b)
{
    b->search++;
    uint32_t root = (uint32_t)below(hash2(b->rootkey, b->search), b->g.nv);
    b->head = b->tail = 0;
    b->queue[b->tail++] = root;
    b->stamp[root] = (uint32_t)b->search;
    b->parent[root] = root;
    b->visited++;
}

static void batch(void *ctx, uint64_t first, uint64_t count)
{
    bfs_t *b = (bfs_t *)ctx;
    (void)first;
    for (uint64_t k = 0; k < count; k++) {
        if (b->head == b->tail) {
            start_search(b);
            continue;
        }
        uint32_t v = b->queue[b->head++];
        uint32_t s = (uint32_t)b->search;
        for (uint64_t e = b->g.off[v]; e < b->g.off[v + 1]; e++) {
            uint32_t w = b->g.dst[e];
            if (b->stamp[w] != s) {
                b->stamp[w] = s;
                b->parent[w] = v;
                b->queue[b->tail++] = w;
                b->visited++;
            }
        }
        b->edges_seen += b->g.off[v + 1] - b->g.off[v];
    }
}

int main(int argc, char **argv)
{
    opts_t o;
    parse_args(&o, argc, argv, "bfs",
               "Repeated BFS over a generated power-law graph; one operation expands one vertex.", NULL, 0,
               64ULL << 20, 1000000, 0);
    bfs_t b;
    memset(&b, 0, sizeof b);
    b.rootkey = mix64(o.seed ^ 0x626673ULL); /* "bfs" */
    /* bytes per vertex: 8 (offset) + 4 * avg degree (edges) + 12 (stamp, parent, queue) */
    uint64_t nv = o.mem / (8 + 4 * GRAPH_AVG_DEGREE + 12);
    graph_generate(&b.g, nv, o.seed);
    b.stamp = (uint32_t *)big_alloc(b.g.nv * 4, "visit stamps");
    b.parent = (uint32_t *)big_alloc(b.g.nv * 4, "parents");
    b.queue = (uint32_t *)big_alloc(b.g.nv * 4, "the queue");
    char what[96];
    snprintf(what, sizeof what, "%llu vertices, %llu edges", (unsigned long long)b.g.nv, (unsigned long long)b.g.ne);
    init_done(&o, what);

    uint64_t ops = run_ops(&o, 4096, batch, &b);

    fh_t h;
    fh_init(&h);
    uint64_t scalars[] = {b.head, b.tail, b.search, b.visited, b.edges_seen, ops};
    fh_bytes(&h, scalars, sizeof scalars);
    graph_hash(&h, &b.g);
    fh_bytes(&h, b.stamp, b.g.nv * 4);
    fh_bytes(&h, b.parent, b.g.nv * 4);
    fh_bytes(&h, b.queue, b.g.nv * 4);
    printf("result bfs searches=%llu visited=%llu edges=%llu\n", (unsigned long long)b.search,
           (unsigned long long)b.visited, (unsigned long long)b.edges_seen);
    return finish(ops, fh_final(&h));
}
