/*
 * blockchain — proof-of-work block mining over a SHA-256 hash chain with an account ledger
 * (stands in for SGXGauge's Blockchain).
 *
 * State: an account table (balance, nonce, 16 B of key hash; 32 B each) and a ring of block slots
 * (a 128 B header + 128 transactions of 32 B = 4224 B each) holding the most recent blocks; the
 * ring is pre-filled with a generated history so the footprint is resident from the start.
 * One operation is one mining attempt: double SHA-256 of the 80-byte header with the next nonce
 * (the first 64 bytes are hashed once per block and reused, as miners do). A header whose hash has
 * DIFFICULTY leading zero bits seals the block: its transactions are applied to the accounts
 * (random read-modify-writes), the block is stored in the ring, and the next block's transactions
 * are generated and their Merkle root computed. The rate of sealed blocks, and so the write rate,
 * is set by DIFFICULTY: ~1 block per 2^12 attempts.
 * SHA-256 is implemented here (FIPS 180-4) and checked against the standard "abc" vector at start.
 */
#include "common/common.h"

#define TX_PER_BLOCK 128
#define DIFFICULTY 12 /* leading zero bits */

typedef struct {
    uint32_t from, to;
    uint64_t amount, nonce, tag;
} tx_t;

typedef struct {
    uint64_t balance, nonce;
    unsigned char keyhash[16];
} account_t;

typedef struct {
    unsigned char header[128]; /* 80-byte header (prev hash, Merkle root, height, time, nonce), zero padded */
    tx_t tx[TX_PER_BLOCK];
} block_t;
_Static_assert(sizeof(tx_t) == 32 && sizeof(account_t) == 32 && sizeof(block_t) == 4224, "layout");

/* ---- SHA-256 (FIPS 180-4) ---- */
typedef struct {
    uint32_t h[8];
} sha_state_t;

static const uint32_t K256[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2};

static const uint32_t H256[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};

static inline uint32_t ror32(uint32_t x, int r) { return (x >> r) | (x << (32 - r)); }

static void sha_block(sha_state_t *s, const unsigned char *p)
{
    uint32_t w[64];
    for (int i = 0; i < 16; i++)
        w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 | (uint32_t)p[4 * i + 2] << 8 | p[4 * i + 3];
    for (int i = 16; i < 64; i++) {
        uint32_t s0 = ror32(w[i - 15], 7) ^ ror32(w[i - 15], 18) ^ (w[i - 15] >> 3);
        uint32_t s1 = ror32(w[i - 2], 17) ^ ror32(w[i - 2], 19) ^ (w[i - 2] >> 10);
        w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    uint32_t a = s->h[0], b = s->h[1], c = s->h[2], d = s->h[3], e = s->h[4], f = s->h[5], g = s->h[6], h = s->h[7];
    for (int i = 0; i < 64; i++) {
        uint32_t t1 = h + (ror32(e, 6) ^ ror32(e, 11) ^ ror32(e, 25)) + ((e & f) ^ (~e & g)) + K256[i] + w[i];
        uint32_t t2 = (ror32(a, 2) ^ ror32(a, 13) ^ ror32(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
        h = g;
        g = f;
        f = e;
        e = d + t1;
        d = c;
        c = b;
        b = a;
        a = t1 + t2;
    }
    s->h[0] += a;
    s->h[1] += b;
    s->h[2] += c;
    s->h[3] += d;
    s->h[4] += e;
    s->h[5] += f;
    s->h[6] += g;
    s->h[7] += h;
}

/* Finish a message of total length `total` whose last `n` (< 64) bytes are in `tail`. */
static void sha_finish(sha_state_t *s, const unsigned char *tail, uint64_t n, uint64_t total, unsigned char out[32])
{
    unsigned char buf[128] = {0};
    memcpy(buf, tail, n);
    buf[n] = 0x80;
    uint64_t len = n + 1 + 8 <= 64 ? 64 : 128;
    uint64_t bits = total * 8;
    for (int i = 0; i < 8; i++)
        buf[len - 1 - i] = (unsigned char)(bits >> (8 * i));
    sha_block(s, buf);
    if (len == 128)
        sha_block(s, buf + 64);
    for (int i = 0; i < 8; i++) {
        out[4 * i] = (unsigned char)(s->h[i] >> 24);
        out[4 * i + 1] = (unsigned char)(s->h[i] >> 16);
        out[4 * i + 2] = (unsigned char)(s->h[i] >> 8);
        out[4 * i + 3] = (unsigned char)s->h[i];
    }
}

static void sha256(const void *data, uint64_t n, unsigned char out[32])
{
    sha_state_t s;
    memcpy(s.h, H256, sizeof s.h);
    const unsigned char *p = (const unsigned char *)data;
    uint64_t full = n / 64 * 64;
    for (uint64_t i = 0; i < full; i += 64)
        sha_block(&s, p + i);
    sha_finish(&s, p + full, n - full, n, out);
}

static void sha256d(const void *data, uint64_t n, unsigned char out[32])
{
    unsigned char once[32];
    sha256(data, n, once);
    sha256(once, 32, out);
}

static void sha_selftest(void)
{
    static const unsigned char want[32] = {0xba, 0x78, 0x16, 0xbf, 0x8f, 0x01, 0xcf, 0xea, 0x41, 0x41, 0x40,
                                           0xde, 0x5d, 0xae, 0x22, 0x23, 0xb0, 0x03, 0x61, 0xa3, 0x96, 0x17,
                                           0x7a, 0x9c, 0xb4, 0x10, 0xff, 0x61, 0xf2, 0x00, 0x15, 0xad};
    unsigned char got[32];
    sha256("abc", 3, got);
    if (memcmp(got, want, 32) != 0)
        die("SHA-256 self-test failed: this build computes wrong hashes");
}

/* ---- the chain ---- */
typedef struct {
    account_t *acct;
    block_t *ring;
    uint64_t nacct, nslots;
    uint64_t height;        /* blocks sealed so far, including the generated history */
    uint64_t nonce;         /* next nonce to try for the pending block */
    uint64_t applied, rejected;
    unsigned char tip[32];  /* hash of the last sealed header */
    block_t pending;
    sha_state_t midstate;   /* SHA-256 state after the pending header's first 64 bytes */
    uint64_t key;
} chain_t;

static void put64(unsigned char *p, uint64_t v) { memcpy(p, &v, 8); }

/* Header layout: [0,32) prev hash, [32,64) Merkle root, [64,72) height, [72,80) nonce. */
static void make_pending(chain_t *c)
{
    block_t *b = &c->pending;
    memset(b, 0, sizeof *b);
    for (unsigned i = 0; i < TX_PER_BLOCK; i++) {
        uint64_t h = hash2(c->key, c->height * TX_PER_BLOCK + i);
        tx_t *t = &b->tx[i];
        t->from = (uint32_t)below(h, c->nacct);
        t->to = (uint32_t)below(mix64(h), c->nacct);
        t->amount = 1 + (mix64(h + 1) & 0xFFFF);
        t->nonce = c->acct[t->from].nonce + 1;
        t->tag = mix64(h ^ t->amount);
    }
    /* Merkle root over the transactions (pairs of SHA-256d hashes, odd one paired with itself). */
    unsigned char level[TX_PER_BLOCK][32];
    for (unsigned i = 0; i < TX_PER_BLOCK; i++)
        sha256d(&b->tx[i], sizeof(tx_t), level[i]);
    for (unsigned n = TX_PER_BLOCK; n > 1; n = (n + 1) / 2)
        for (unsigned i = 0; i < n; i += 2) {
            unsigned char pair[64];
            memcpy(pair, level[i], 32);
            memcpy(pair + 32, level[i + 1 < n ? i + 1 : i], 32);
            sha256d(pair, 64, level[i / 2]);
        }
    memcpy(b->header, c->tip, 32);
    memcpy(b->header + 32, level[0], 32);
    put64(b->header + 64, c->height);
    memcpy(c->midstate.h, H256, sizeof H256);
    sha_block(&c->midstate, b->header);
    c->nonce = 0;
}

static void seal(chain_t *c, const unsigned char hash[32])
{
    block_t *b = &c->pending;
    for (unsigned i = 0; i < TX_PER_BLOCK; i++) {
        tx_t *t = &b->tx[i];
        account_t *from = &c->acct[t->from], *to = &c->acct[t->to];
        if (from->balance >= t->amount && t->nonce == from->nonce + 1) {
            from->balance -= t->amount;
            from->nonce++;
            to->balance += t->amount;
            c->applied++;
        } else {
            c->rejected++;
        }
    }
    memcpy(&c->ring[c->height % c->nslots], b, sizeof *b);
    memcpy(c->tip, hash, 32);
    c->height++;
    make_pending(c);
}

static void batch(void *ctx, uint64_t first, uint64_t count)
{
    chain_t *c = (chain_t *)ctx;
    (void)first;
    for (uint64_t k = 0; k < count; k++) {
        put64(c->pending.header + 72, c->nonce);
        sha_state_t s = c->midstate;
        unsigned char h1[32], h2[32];
        sha_finish(&s, c->pending.header + 64, 16, 80, h1);
        sha256(h1, 32, h2);
        c->nonce++;
        /* DIFFICULTY leading zero bits of the digest */
        uint32_t top = (uint32_t)h2[0] << 24 | (uint32_t)h2[1] << 16 | (uint32_t)h2[2] << 8 | h2[3];
        if ((top >> (32 - DIFFICULTY)) == 0)
            seal(c, h2);
    }
}

int main(int argc, char **argv)
{
    opts_t o;
    parse_args(&o, argc, argv, "blockchain",
               "SHA-256 proof-of-work mining with an account ledger; one operation = one nonce attempt.", NULL, 0,
               64ULL << 20, 1000000, 0);
    sha_selftest();
    chain_t *c = (chain_t *)big_alloc(sizeof(chain_t), "chain state");
    c->key = mix64(o.seed ^ 0x636861696eULL); /* "chain" */
    /* a quarter of the footprint for accounts, the rest for the block ring */
    c->nacct = o.mem / 4 / sizeof(account_t);
    c->nslots = (o.mem - c->nacct * sizeof(account_t)) / sizeof(block_t);
    if (c->nacct > 0xFFFFFFFFULL)
        c->nacct = 0xFFFFFFFFULL;
    if (c->nslots < 1)
        c->nslots = 1;
    c->acct = (account_t *)big_alloc(c->nacct * sizeof(account_t), "accounts");
    c->ring = (block_t *)big_alloc(c->nslots * sizeof(block_t), "the block ring");
    for (uint64_t i = 0; i < c->nacct; i++) {
        uint64_t h = hash2(c->key + 1, i);
        c->acct[i].balance = 1000000 + (h & 0xFFFFF);
        put64(c->acct[i].keyhash, mix64(h));
        put64(c->acct[i].keyhash + 8, mix64(h + 1));
    }
    /* Generated history fills the ring: each block links to the previous header's SHA-256d, but
     * its transactions are synthetic and its Merkle field is a cheap checksum (a real Merkle tree
     * for every history block would make start-up take minutes at GB sizes). */
    for (uint64_t b = 0; b < c->nslots; b++) {
        block_t *blk = &c->ring[b];
        for (unsigned i = 0; i < TX_PER_BLOCK; i++) {
            uint64_t h = hash2(c->key + 2, b * TX_PER_BLOCK + i);
            blk->tx[i] = (tx_t){(uint32_t)below(h, c->nacct), (uint32_t)below(mix64(h), c->nacct), h & 0xFFF, b,
                                mix64(h + 7)};
        }
        fh_t f;
        fh_init(&f);
        fh_bytes(&f, blk->tx, sizeof blk->tx);
        memcpy(blk->header, c->tip, 32);
        put64(blk->header + 32, fh_final(&f));
        put64(blk->header + 64, b);
        sha256d(blk->header, 80, c->tip);
    }
    c->height = c->nslots;
    make_pending(c);
    char what[96];
    snprintf(what, sizeof what, "%llu accounts, %llu block slots, difficulty %d bits", (unsigned long long)c->nacct,
             (unsigned long long)c->nslots, DIFFICULTY);
    init_done(&o, what);

    uint64_t ops = run_ops(&o, 1024, batch, c);

    fh_t h;
    fh_init(&h);
    uint64_t scalars[] = {c->nacct, c->nslots, c->height, c->nonce, c->applied, c->rejected, ops};
    fh_bytes(&h, scalars, sizeof scalars);
    fh_bytes(&h, c->tip, 32);
    fh_bytes(&h, &c->pending, sizeof c->pending);
    fh_bytes(&h, c->acct, c->nacct * sizeof(account_t));
    fh_bytes(&h, c->ring, c->nslots * sizeof(block_t));
    printf("result blockchain height=%llu mined=%llu applied_tx=%llu rejected_tx=%llu tip=", (unsigned long long)c->height,
           (unsigned long long)(c->height - c->nslots), (unsigned long long)c->applied,
           (unsigned long long)c->rejected);
    for (int i = 0; i < 8; i++)
        printf("%02x", c->tip[i]);
    printf("\n");
    return finish(ops, fh_final(&h));
}
