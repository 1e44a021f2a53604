/*
 * btree — a B+-tree index of 64-bit keys and values (stands in for SGXGauge's B-Tree).
 *
 * Initialisation inserts n0 keys in ascending order, filling leaves to 24 of 31 slots (the way an
 * index is bulk-loaded; random-order insertion of tens of millions of keys would take minutes at
 * GB sizes). The operation stream is then a mix of point lookups, in-place updates and random
 * inserts that split nodes, over a node pool kept with 20% spare nodes:
 *   55% lookup of an existing key   10% lookup of a random key (mostly a miss)
 *   25% update of an existing key   10% insert of a random new key (an update once the pool is full)
 * Nodes live in one array and refer to each other by 32-bit index, never by pointer, so the
 * pool's bytes are identical on wasm32 and native and can be hashed as they are.
 */
#include "common/common.h"

#define MAXK 31 /* keys per node */
#define FILL 24 /* keys per node after bulk load */

typedef struct {
    uint32_t nkeys;
    uint32_t leaf;
    uint32_t next;  /* leaves: the next leaf to the right (0 = none), for range scans */
    uint32_t spare; /* keeps the node at 512 bytes with no compiler padding */
    uint64_t keys[MAXK];
    union {
        uint64_t vals[MAXK];      /* leaves */
        uint32_t child[MAXK + 1]; /* internal nodes: child[i] holds keys < keys[i] <= child[i+1] */
    } u;
} node_t;
_Static_assert(sizeof(node_t) == 512, "node layout must be the same on every target");

typedef struct {
    node_t *pool;
    uint32_t cap, used, root, height;
    uint64_t n0;    /* bulk-loaded keys: key_of(i) for i < n0 */
    uint64_t ninserted, nfound, acc, seed, opkey;
} bt_t;

/* Bulk-loaded key i: strictly increasing in i, low 20 bits random, so keys are sparse and a random
 * key below n0 << 20 is usually absent. */
static uint64_t key_of(uint64_t seed, uint64_t i) { return (i << 20) | (hash2(seed, i) & 0xFFFFF); }

static uint32_t new_node(bt_t *t, int leaf)
{
    uint32_t id = t->used++;
    node_t *n = &t->pool[id];
    n->nkeys = 0;
    n->leaf = (uint32_t)leaf;
    n->next = 0;
    return id;
}

/* Index of the child to follow for key k: the number of separators <= k. */
static unsigned child_index(const node_t *n, uint64_t k)
{
    unsigned lo = 0, hi = n->nkeys;
    while (lo < hi) {
        unsigned mid = (lo + hi) / 2;
        if (n->keys[mid] <= k)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* First slot with keys[i] >= k in a leaf. */
static unsigned lower_bound(const node_t *n, uint64_t k)
{
    unsigned lo = 0, hi = n->nkeys;
    while (lo < hi) {
        unsigned mid = (lo + hi) / 2;
        if (n->keys[mid] < k)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static uint64_t *lookup(bt_t *t, uint64_t k)
{
    node_t *n = &t->pool[t->root];
    while (!n->leaf)
        n = &t->pool[n->u.child[child_index(n, k)]];
    unsigned i = lower_bound(n, k);
    return (i < n->nkeys && n->keys[i] == k) ? &n->u.vals[i] : NULL;
}

/* Split the full child ci of parent p; p has room (the descent below guarantees it). */
static void split_child(bt_t *t, uint32_t p, unsigned ci)
{
    uint32_t cid = t->pool[p].u.child[ci];
    node_t *c = &t->pool[cid];
    uint32_t rid = new_node(t, (int)c->leaf);
    node_t *r = &t->pool[rid];
    c = &t->pool[cid];
    node_t *pp = &t->pool[p];
    uint64_t sep;
    const unsigned mid = MAXK / 2;
    if (c->leaf) {
        /* leaf: right half moves, its first key is copied up */
        r->nkeys = MAXK - mid;
        memcpy(r->keys, c->keys + mid, r->nkeys * 8);
        memcpy(r->u.vals, c->u.vals + mid, r->nkeys * 8);
        c->nkeys = mid;
        r->next = c->next;
        c->next = rid;
        sep = r->keys[0];
    } else {
        /* internal: the middle key moves up, keys right of it and their children move right */
        sep = c->keys[mid];
        r->nkeys = MAXK - mid - 1;
        memcpy(r->keys, c->keys + mid + 1, r->nkeys * 8);
        memcpy(r->u.child, c->u.child + mid + 1, (r->nkeys + 1) * 4);
        c->nkeys = mid;
    }
    memmove(pp->keys + ci + 1, pp->keys + ci, (pp->nkeys - ci) * 8);
    memmove(pp->u.child + ci + 2, pp->u.child + ci + 1, (pp->nkeys - ci) * 4);
    pp->keys[ci] = sep;
    pp->u.child[ci + 1] = rid;
    pp->nkeys++;
}

/* Insert or update. Full nodes are split on the way down, so a split never has to propagate
 * back up; returns 0 when the pool has no room left for the splits this insert might need. */
static int insert(bt_t *t, uint64_t k, uint64_t v)
{
    uint64_t *slot = lookup(t, k);
    if (slot) {
        *slot = v;
        return 1;
    }
    if (t->used + t->height + 1 > t->cap)
        return 0;
    if (t->pool[t->root].nkeys == MAXK) {
        uint32_t nr = new_node(t, 0);
        t->pool[nr].u.child[0] = t->root;
        t->root = nr;
        t->height++;
        split_child(t, nr, 0);
    }
    uint32_t id = t->root;
    while (!t->pool[id].leaf) {
        unsigned ci = child_index(&t->pool[id], k);
        if (t->pool[t->pool[id].u.child[ci]].nkeys == MAXK) {
            split_child(t, id, ci);
            if (k >= t->pool[id].keys[ci])
                ci++;
        }
        id = t->pool[id].u.child[ci];
    }
    node_t *n = &t->pool[id];
    unsigned i = lower_bound(n, k);
    memmove(n->keys + i + 1, n->keys + i, (n->nkeys - i) * 8);
    memmove(n->u.vals + i + 1, n->u.vals + i, (n->nkeys - i) * 8);
    n->keys[i] = k;
    n->u.vals[i] = v;
    n->nkeys++;
    t->ninserted++;
    return 1;
}

/* Bottom-up bulk load of key_of(0..n0-1): leaves first, then each internal level from the
 * minimum key of each child, until one node remains. */
static void bulk_load(bt_t *t, uint64_t seed)
{
    uint32_t first = t->used, count = 0, prev = 0;
    for (uint64_t i = 0; i < t->n0; i += FILL) {
        uint32_t id = new_node(t, 1);
        node_t *n = &t->pool[id];
        unsigned m = (unsigned)(t->n0 - i < FILL ? t->n0 - i : FILL);
        for (unsigned j = 0; j < m; j++) {
            n->keys[j] = key_of(seed, i + j);
            n->u.vals[j] = hash2(seed + 1, i + j);
        }
        n->nkeys = m;
        if (count)
            t->pool[prev].next = id;
        prev = id;
        count++;
    }
    t->height = 1;
    while (count > 1) {
        uint32_t level_first = t->used, level_count = 0;
        for (uint32_t c = 0; c < count; c += FILL + 1) {
            uint32_t id = new_node(t, 0);
            node_t *n = &t->pool[id];
            unsigned m = count - c < FILL + 1 ? count - c : FILL + 1;
            for (unsigned j = 0; j < m; j++) {
                n->u.child[j] = first + c + j;
                if (j) {
                    /* separator = smallest key under child j: follow leftmost children down */
                    const node_t *d = &t->pool[first + c + j];
                    while (!d->leaf)
                        d = &t->pool[d->u.child[0]];
                    n->keys[j - 1] = d->keys[0];
                }
            }
            n->nkeys = m - 1;
            level_count++;
        }
        first = level_first;
        count = level_count;
        t->height++;
    }
    t->root = first;
}

/* --verify: walk the leaf chain (keys strictly increasing, count as expected) and look every
 * bulk-loaded key up from the root. Exits non-zero on any inconsistency. */
static void verify(bt_t *t)
{
    uint32_t id = t->root;
    while (!t->pool[id].leaf)
        id = t->pool[id].u.child[0];
    uint64_t count = 0, prev = 0;
    for (; id; id = t->pool[id].next) {
        const node_t *n = &t->pool[id];
        for (unsigned i = 0; i < n->nkeys; i++, count++) {
            if (count && n->keys[i] <= prev)
                die("verify: leaf keys out of order at key %llu", (unsigned long long)count);
            prev = n->keys[i];
        }
    }
    if (count != t->n0 + t->ninserted)
        die("verify: %llu keys in leaves, expected %llu", (unsigned long long)count,
            (unsigned long long)(t->n0 + t->ninserted));
    for (uint64_t i = 0; i < t->n0; i++)
        if (!lookup(t, key_of(t->seed, i)))
            die("verify: bulk-loaded key %llu not found", (unsigned long long)i);
    fprintf(stderr, "btree: verify ok (%llu keys in order, all bulk keys found)\n", (unsigned long long)count);
}

static void batch(void *ctx, uint64_t first, uint64_t count)
{
    bt_t *t = (bt_t *)ctx;
    for (uint64_t op = first; op < first + count; op++) {
        uint64_t h = hash2(t->opkey, op);
        unsigned kind = (unsigned)(h % 100);
        uint64_t r = mix64(h);
        if (kind < 55 || kind >= 90) {
            /* lookups: an existing bulk-loaded key, or any key in the key range */
            uint64_t k = kind < 55 ? key_of(t->seed, below(r, t->n0)) : below(r, t->n0 << 20);
            uint64_t *v = lookup(t, k);
            if (v) {
                t->nfound++;
                t->acc = mix64(t->acc ^ *v);
            }
        } else if (kind < 80) {
            uint64_t *v = lookup(t, key_of(t->seed, below(r, t->n0)));
            *v += op | 1;
        } else if (!insert(t, below(r, t->n0 << 20), op)) {
            /* pool full: the insert degrades to an update of an existing key */
            *lookup(t, key_of(t->seed, below(r, t->n0))) ^= op;
        }
    }
}

int main(int argc, char **argv)
{
    opts_t o;
    uint64_t check = 0;
    extra_opt_t extra[] = {{"--verify", OPT_FLAG, 0, &check, "check the tree's invariants at exit"}};
    parse_args(&o, argc, argv, "btree",
               "B+-tree index: bulk-loaded ascending inserts, then 55% lookups, 10% miss lookups, 25% updates, 10% "
               "random inserts.",
               extra, 1, 64ULL << 20, 1000000, 0);
    bt_t t;
    memset(&t, 0, sizeof t);
    t.seed = mix64(o.seed ^ 0x6274726565ULL); /* "btree" */
    t.opkey = t.seed + 1;
    uint64_t cap = o.mem / sizeof(node_t);
    if (cap > 0xFFFFFFF0ULL)
        cap = 0xFFFFFFF0ULL;
    t.cap = (uint32_t)cap;
    /* 80% of the pool for the bulk load (leaves plus ~1/24 internal nodes), 20% for splits. */
    t.n0 = (uint64_t)t.cap * 8 / 10 * FILL * FILL / (FILL + 1);
    t.pool = (node_t *)big_alloc((uint64_t)t.cap * sizeof(node_t), "the node pool");
    t.used = 1; /* node 0 is never used, so a 'next' of 0 means none */
    bulk_load(&t, t.seed);
    char what[128];
    snprintf(what, sizeof what, "%llu keys, %u of %u nodes, height %u", (unsigned long long)t.n0, t.used, t.cap,
             t.height);
    init_done(&o, what);

    uint64_t ops = run_ops(&o, 4096, batch, &t);
    if (check)
        verify(&t);

    fh_t h;
    fh_init(&h);
    uint64_t scalars[] = {t.cap, t.used, t.root, t.height, t.n0, t.ninserted, t.nfound, t.acc, ops};
    fh_bytes(&h, scalars, sizeof scalars);
    fh_bytes(&h, t.pool, (uint64_t)t.cap * sizeof(node_t));
    printf("result btree keys=%llu inserted=%llu nodes=%u height=%u found=%llu\n",
           (unsigned long long)(t.n0 + t.ninserted), (unsigned long long)t.ninserted, t.used, t.height,
           (unsigned long long)t.nfound);
    return finish(ops, fh_final(&h));
}
