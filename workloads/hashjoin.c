/*
 * hashjoin — an equi-join of two generated tables with a chained hash table (stands in for
 * SGXGauge's HashJoin).
 *
 * R (build side) has nr rows of {key, payload} with unique keys; S (probe side) has 2*nr rows
 * whose keys are foreign keys into R (90%) or keys that match nothing (10%). The operation stream
 * repeats the join forever, one row per operation: a round is nr build operations (insert R[i]
 * into the table) followed by 2*nr probe operations (look S[j] up, append each match to the output
 * ring). Each round hashes with a different salt, so every round really rebuilds the table at
 * different bucket positions. Memory: R 16 B/row, chain links 4 B/row, buckets 4 B/row (next power
 * of two), S 32 B/row of R, output ring 8 B/row of R.
 */
#include "common/common.h"

typedef struct {
    uint64_t key, payload;
} row_t;

typedef struct {
    row_t *r, *s;
    uint32_t *head, *next; /* head[bucket] and next[row] are row index + 1; 0 ends a chain */
    uint64_t *out;         /* output ring of joined (R payload ^ S payload) values */
    uint64_t nr, ns, nbuckets, nout;
    uint64_t round, salt, out_pos, matches, probes;
    uint64_t opkey;
} hj_t;

static inline uint64_t bucket_of(const hj_t *j, uint64_t key) { return mix64(key ^ j->salt) & (j->nbuckets - 1); }

/* Operation index within the endless sequence of rounds. */
static void step(hj_t *j, uint64_t op)
{
    uint64_t per_round = j->nr + j->ns;
    uint64_t round = op / per_round, i = op % per_round;
    if (i == 0) {
        /* New round: fresh salt, empty table. Clearing is part of the first operation. */
        j->round = round;
        j->salt = hash2(j->opkey, round);
        memset(j->head, 0, j->nbuckets * 4);
    }
    if (i < j->nr) {
        uint64_t b = bucket_of(j, j->r[i].key);
        j->next[i] = j->head[b];
        j->head[b] = (uint32_t)(i + 1);
        return;
    }
    const row_t *srow = &j->s[i - j->nr];
    j->probes++;
    for (uint32_t e = j->head[bucket_of(j, srow->key)]; e; e = j->next[e - 1]) {
        const row_t *rrow = &j->r[e - 1];
        if (rrow->key == srow->key) {
            j->out[j->out_pos % j->nout] = rrow->payload ^ srow->payload ^ round;
            j->out_pos++;
            j->matches++;
        }
    }
}

static void batch(void *ctx, uint64_t first, uint64_t count)
{
    for (uint64_t op = first; op < first + count; op++)
        step((hj_t *)ctx, op);
}

int main(int argc, char **argv)
{
    opts_t o;
    parse_args(&o, argc, argv, "hashjoin",
               "Hash join R (build) with S = 2|R| (probe, 90% matching foreign keys), repeated in rounds; one row per "
               "operation.",
               NULL, 0, 64ULL << 20, 1000000, 0);
    hj_t j;
    memset(&j, 0, sizeof j);
    uint64_t key = mix64(o.seed ^ 0x686a6f696eULL); /* "hjoin" */
    j.opkey = key + 1;
    /* Per R row: 16 (R) + 4 (next) + ~6 (buckets, power of two) + 32 (S) + 8 (output) = ~66 bytes. */
    j.nr = o.mem / 66;
    if (j.nr > 0x7FFFFFFFULL)
        j.nr = 0x7FFFFFFFULL;
    j.ns = 2 * j.nr;
    j.nbuckets = floor_pow2(j.nr + j.nr / 2);
    j.nout = j.nr;
    j.r = (row_t *)big_alloc(j.nr * sizeof(row_t), "table R");
    j.s = (row_t *)big_alloc(j.ns * sizeof(row_t), "table S");
    j.next = (uint32_t *)big_alloc(j.nr * 4, "hash chains");
    j.head = (uint32_t *)big_alloc(j.nbuckets * 4, "hash buckets");
    j.out = (uint64_t *)big_alloc(j.nout * 8, "the output ring");
    /* R keys are mix64 of the row index: mix64 is a bijection, so keys are unique; S's
     * non-matching keys are mix64 of indices >= nr, which no R row has. */
    for (uint64_t i = 0; i < j.nr; i++) {
        j.r[i].key = mix64(key + i);
        j.r[i].payload = hash2(key + 2, i);
    }
    for (uint64_t i = 0; i < j.ns; i++) {
        uint64_t h = hash2(key + 3, i);
        uint64_t target = (h % 10 == 0) ? j.nr + below(mix64(h), 1ULL << 40) : below(mix64(h), j.nr);
        j.s[i].key = mix64(key + target);
        j.s[i].payload = hash2(key + 4, i);
    }
    char what[128];
    snprintf(what, sizeof what, "|R|=%llu |S|=%llu buckets=%llu", (unsigned long long)j.nr,
             (unsigned long long)j.ns, (unsigned long long)j.nbuckets);
    init_done(&o, what);

    uint64_t ops = run_ops(&o, 8192, batch, &j);

    fh_t h;
    fh_init(&h);
    uint64_t scalars[] = {j.nr, j.ns, j.nbuckets, j.nout, j.round, j.salt, j.out_pos, j.matches, j.probes, ops};
    fh_bytes(&h, scalars, sizeof scalars);
    fh_bytes(&h, j.r, j.nr * sizeof(row_t));
    fh_bytes(&h, j.s, j.ns * sizeof(row_t));
    fh_bytes(&h, j.next, j.nr * 4);
    fh_bytes(&h, j.head, j.nbuckets * 4);
    fh_bytes(&h, j.out, j.nout * 8);
    printf("result hashjoin rounds=%llu probes=%llu matches=%llu\n", (unsigned long long)(j.round + (ops > 0)),
           (unsigned long long)j.probes, (unsigned long long)j.matches);
    return finish(ops, fh_final(&h));
}
