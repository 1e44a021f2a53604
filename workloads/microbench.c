/*
 * microbench — the migration microbenchmark: allocate --mem bytes, make every page resident, then
 * write to pseudo-random 4 KiB pages at --rate pages per second (0 = as fast as possible) for
 * --ops N writes, --seconds S, or --forever.
 *
 * It stands in for the seed paper's secure-memory microbenchmark: the dirty rate is a dial, which
 * is what a pre-copy migration's convergence depends on. Page choice and written values come from
 * hash2(seed, op index) (common/microcore.h, shared with the wasm64 build), so the rate limiter
 * decides only when a write happens, never which.
 */
#include "common/common.h"
#include "common/microcore.h"

typedef struct {
    uint64_t *region;
    uint64_t pages, seed;
} mb_t;

static void batch(void *ctx, uint64_t first, uint64_t count)
{
    mb_t *m = (mb_t *)ctx;
    mb_ops(m->region, m->pages, m->seed, first, count);
}

int main(int argc, char **argv)
{
    opts_t o;
    uint64_t rate = 0;
    extra_opt_t extra[] = {
        {"--rate", OPT_U64, 0, &rate, "pages written per second, 0 = unlimited (default 0)"},
    };
    parse_args(&o, argc, argv, "microbench",
               "Writes one 8-byte word to a pseudo-random 4 KiB page per operation, optionally rate-limited.",
               extra, 1, 64ULL << 20, 1000000, 1);
    o.rate = rate;
    mb_t m;
    m.pages = o.mem / PAGE_SIZE_4K;
    m.seed = o.seed;
    m.region = (uint64_t *)big_alloc(m.pages * PAGE_SIZE_4K, "the page region");
    mb_init(m.region, m.pages, m.seed);
    char what[96];
    snprintf(what, sizeof what, "%llu pages, rate %llu/s", (unsigned long long)m.pages, (unsigned long long)rate);
    init_done(&o, what);
    /* 256 writes per batch: the --seconds check and the rate limiter's slices stay fine-grained
     * even at low rates (the runner slices batches to ~1 ms when rate-limited). */
    uint64_t ops = run_ops(&o, 256, batch, &m);
    return finish(ops, mb_checksum(m.region, m.pages, ops));
}
