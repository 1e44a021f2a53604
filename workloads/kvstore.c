/*
 * kvstore — a memcached-like in-memory key-value store serving a generated get/set stream
 * (stands in for SGXGauge's Memcached).
 *
 * Items live in a slab of fixed 128-byte slots {key, value length, version, value bytes}; an
 * open-addressing index (linear probing, load <= 2/3) maps keys to slots, as memcached's hash
 * table maps keys to items. All keys are loaded at start. Each operation picks a key by Zipf
 * popularity (theta 0.99, YCSB's default; the popular keys are scattered over the slab) and is
 * a set with probability --write-ratio (default 0.1) or a get otherwise:
 *   get: find the item, fold its value into a response digest (reads ~2 cache lines);
 *   set: find the item, write a new value of 16..104 bytes and bump its version.
 * Memory per key: 128 B slot + ~6 B index.
 */
#include "common/common.h"
#include "common/zipf.h"

#define VALUE_MAX 104

typedef struct {
    uint64_t key;
    uint32_t vlen, version;
    uint64_t extra;             /* flags/CAS word of a memcached item; written with each set */
    unsigned char value[VALUE_MAX];
} item_t;
_Static_assert(sizeof(item_t) == 128, "item layout must be the same on every target");

typedef struct {
    item_t *items;
    uint32_t *index; /* slot + 1, 0 = empty */
    uint64_t nkeys, index_mask, write_ppm;
    uint64_t gets, sets, hits, digest;
    uint64_t keykey, opkey;
    zipf_t zipf;
} kv_t;

static inline uint64_t key_for(const kv_t *kv, uint64_t i) { return mix64(kv->keykey + i); }

static void fill_value(item_t *it, uint64_t h)
{
    it->vlen = 16 + (uint32_t)(h % (VALUE_MAX - 16 + 1));
    uint64_t x = h;
    for (uint32_t b = 0; b < VALUE_MAX; b += 8) {
        x = mix64(x + b);
        memcpy(it->value + b, &x, 8); /* the tail past vlen is written too: no stale bytes */
    }
}

static uint32_t find(const kv_t *kv, uint64_t key)
{
    for (uint64_t pos = mix64(key) & kv->index_mask;; pos = (pos + 1) & kv->index_mask) {
        uint32_t e = kv->index[pos];
        if (e == 0)
            return 0;
        if (kv->items[e - 1].key == key)
            return e;
    }
}

static void batch(void *ctx, uint64_t first, uint64_t count)
{
    kv_t *kv = (kv_t *)ctx;
    for (uint64_t op = first; op < first + count; op++) {
        uint64_t h = hash2(kv->opkey, op);
        uint64_t rank = zipf_rank(&kv->zipf, h);
        /* Rank -> key number by hashing, as YCSB's "scrambled zipfian" does, so the hot keys are
         * spread over the slab instead of occupying its first pages. */
        uint64_t i = below(mix64(rank ^ kv->keykey), kv->nkeys);
        uint32_t e = find(kv, key_for(kv, i));
        if (!e)
            die("internal error: key %llu missing", (unsigned long long)i);
        item_t *it = &kv->items[e - 1];
        uint64_t r = mix64(h + 1);
        if (r % 1000000 < kv->write_ppm) {
            fill_value(it, r ^ op);
            it->version++;
            it->extra = op;
            kv->sets++;
        } else {
            fh_t d;
            fh_init(&d);
            fh_bytes(&d, it->value, it->vlen);
            kv->digest = mix64(kv->digest ^ fh_final(&d));
            kv->gets++;
        }
        kv->hits++;
    }
}

int main(int argc, char **argv)
{
    opts_t o;
    uint64_t write_ppm = 100000;
    extra_opt_t extra[] = {
        {"--write-ratio", OPT_FIXED, 1000000, &write_ppm, "fraction of operations that are sets, 0..1 (default 0.1)"},
    };
    parse_args(&o, argc, argv, "kvstore",
               "memcached-like store: zipf(0.99) keys, gets and sets in the ratio given by --write-ratio.", extra, 1,
               64ULL << 20, 1000000, 0);
    if (write_ppm > 1000000)
        die("--write-ratio must be between 0 and 1");
    kv_t kv;
    memset(&kv, 0, sizeof kv);
    kv.write_ppm = write_ppm;
    kv.keykey = mix64(o.seed ^ 0x6b7673746f7265ULL); /* "kvstore" */
    kv.opkey = kv.keykey + 1;
    /* slots: 128 B each; index: a power of two >= 1.5x keys, 4 B per entry (~6 B per key) */
    kv.nkeys = o.mem / 134;
    if (kv.nkeys > 0x7FFFFFFFULL)
        kv.nkeys = 0x7FFFFFFFULL;
    uint64_t isize = floor_pow2(kv.nkeys + kv.nkeys / 2);
    if (isize < kv.nkeys + kv.nkeys / 2)
        isize *= 2;
    /* keep the footprint near --mem: shrink the key count if the index rounded up */
    while (kv.nkeys * 128 + isize * 4 > o.mem && kv.nkeys > 1024)
        kv.nkeys -= kv.nkeys / 64;
    kv.index_mask = isize - 1;
    kv.items = (item_t *)big_alloc(kv.nkeys * sizeof(item_t), "the item slab");
    kv.index = (uint32_t *)big_alloc(isize * 4, "the hash index");
    for (uint64_t i = 0; i < kv.nkeys; i++) {
        item_t *it = &kv.items[i];
        it->key = key_for(&kv, i);
        fill_value(it, hash2(kv.keykey + 2, i));
        uint64_t pos = mix64(it->key) & kv.index_mask;
        while (kv.index[pos])
            pos = (pos + 1) & kv.index_mask;
        kv.index[pos] = (uint32_t)(i + 1);
    }
    zipf_init(&kv.zipf, kv.nkeys, 0.99);
    char what[128];
    snprintf(what, sizeof what, "%llu keys, index %llu slots, write ratio %.6f", (unsigned long long)kv.nkeys,
             (unsigned long long)isize, (double)write_ppm / 1e6);
    init_done(&o, what);

    uint64_t ops = run_ops(&o, 8192, batch, &kv);

    fh_t h;
    fh_init(&h);
    uint64_t scalars[] = {kv.nkeys, isize, kv.write_ppm, kv.gets, kv.sets, kv.hits, kv.digest, ops};
    fh_bytes(&h, scalars, sizeof scalars);
    fh_bytes(&h, kv.items, kv.nkeys * sizeof(item_t));
    fh_bytes(&h, kv.index, isize * 4);
    printf("result kvstore keys=%llu gets=%llu sets=%llu\n", (unsigned long long)kv.nkeys,
           (unsigned long long)kv.gets, (unsigned long long)kv.sets);
    return finish(ops, fh_final(&h));
}
