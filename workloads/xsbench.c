/*
 * xsbench — XSBench-like macroscopic cross-section lookups (stands in for SGXGauge's XSBench, the
 * proxy for the OpenMC Monte Carlo neutron transport kernel).
 *
 * Data, following XSBench's "unionized energy grid" method:
 *   - 68 nuclides, each with G grid points {energy, total, elastic, absorption, fission,
 *     nu-fission} (48 B), energies sorted;
 *   - the unionized grid: all 68*G energies merged and sorted (8 B each);
 *   - the index grid: for every unionized energy and every nuclide, the position of the largest
 *     nuclide grid point at or below it (68 * 4 B per unionized point) — the dominant array;
 *   - 12 materials with XSBench's nuclide counts and sampling probabilities.
 * One operation is one lookup: sample an energy and a material, binary-search the unionized grid,
 * then for each nuclide of the material interpolate its five cross sections and accumulate them
 * weighted by concentration. The tables are read-only after start; the only writes are a small
 * tally (energy bin x material) and the running checksum of results, so this is the suite's
 * read-dominated, large-random-read workload. G is sized so the footprint is ~--mem.
 */
#include "common/common.h"

#define NUC 68
#define NMAT 12
#define TALLY_BINS 1024

typedef struct {
    double energy, xs[5];
} gridpoint_t;

typedef struct {
    uint64_t g;         /* grid points per nuclide */
    uint64_t nu;        /* unionized points = NUC * g */
    gridpoint_t *nuc;   /* [NUC][g] */
    double *uenergy;    /* [nu] */
    uint32_t *uindex;   /* [nu][NUC] */
    uint32_t mat_nucs[NMAT][NUC];
    double mat_conc[NMAT][NUC];
    double tally[NMAT][TALLY_BINS];
    uint64_t lookups, opkey;
    uint64_t result_hash;
} xs_t;

/* Nuclides per material and the probability (per mille) of sampling each material, as in XSBench
 * for its 68-nuclide ("small") problem: fuel, cladding, cold/hot borated water, reflectors,
 * control rods and so on. */
static const unsigned mat_count[NMAT] = {34, 5, 4, 4, 27, 21, 21, 21, 21, 21, 9, 9};
static const unsigned mat_permille[NMAT] = {140, 52, 275, 134, 154, 64, 66, 55, 8, 15, 25, 13};

/* Merge two sorted runs a[0..na) and b[0..nb) into out. */
static void merge(const double *a, uint64_t na, const double *b, uint64_t nb, double *out)
{
    uint64_t i = 0, j = 0, k = 0;
    while (i < na && j < nb)
        out[k++] = a[i] <= b[j] ? a[i++] : b[j++];
    while (i < na)
        out[k++] = a[i++];
    while (j < nb)
        out[k++] = b[j++];
}

static void build(xs_t *x, uint64_t seed)
{
    rng_t r;
    rng_seed(&r, seed, 0x78736265ULL); /* "xsbe" */
    /* Nuclide grids: sorted energies in (0,1) from cumulative random steps, and random positive
     * cross sections (the physics does not matter, the access pattern does). */
    for (unsigned n = 0; n < NUC; n++) {
        gridpoint_t *gp = &x->nuc[n * x->g];
        double e = 0;
        for (uint64_t i = 0; i < x->g; i++) {
            e += unit_double(rng_next(&r)) + 1e-9;
            gp[i].energy = e;
            for (int k = 0; k < 5; k++)
                gp[i].xs[k] = unit_double(rng_next(&r));
        }
        double scale = 1.0 / (e + unit_double(rng_next(&r)) + 1e-9);
        for (uint64_t i = 0; i < x->g; i++)
            gp[i].energy *= scale;
    }
    /* Unionized grid: bottom-up merge of the 68 sorted runs (each already sorted, so a merge
     * sort's passes over runs cost O(N log 68) with sequential access and no comparator calls). */
    double *tmp = (double *)calloc(x->nu, 8);
    if (!tmp)
        die("cannot allocate %.1f MiB of scratch for the unionized grid; lower --mem", (double)x->nu * 8 / 1048576.0);
    for (unsigned n = 0; n < NUC; n++)
        for (uint64_t i = 0; i < x->g; i++)
            tmp[n * x->g + i] = x->nuc[n * x->g + i].energy;
    double *src = tmp, *dst = x->uenergy;
    for (uint64_t run = x->g; run < x->nu; run *= 2) {
        for (uint64_t s = 0; s < x->nu; s += 2 * run) {
            uint64_t na = x->nu - s < run ? x->nu - s : run;
            uint64_t nb = x->nu - s - na < run ? x->nu - s - na : run;
            merge(src + s, na, src + s + na, nb, dst + s);
        }
        double *t = src;
        src = dst;
        dst = t;
    }
    if (src != x->uenergy)
        memcpy(x->uenergy, src, x->nu * 8);
    free(tmp);
    /* Index grid: walk the unionized grid once with one cursor per nuclide. */
    uint64_t cursor[NUC] = {0};
    for (uint64_t u = 0; u < x->nu; u++) {
        double e = x->uenergy[u];
        uint32_t *row = &x->uindex[u * NUC];
        for (unsigned n = 0; n < NUC; n++) {
            const gridpoint_t *gp = &x->nuc[n * x->g];
            while (cursor[n] + 1 < x->g && gp[cursor[n] + 1].energy <= e)
                cursor[n]++;
            row[n] = (uint32_t)cursor[n];
        }
    }
    /* Materials: distinct nuclides per material, concentrations in (0,1]. Fuel (material 0)
     * gets nuclides 0..33 as in XSBench; the others draw theirs at random. */
    for (unsigned m = 0; m < NMAT; m++) {
        unsigned used[NUC] = {0};
        for (unsigned k = 0; k < mat_count[m]; k++) {
            unsigned nuc = k;
            if (m != 0)
                do
                    nuc = (unsigned)below(rng_next(&r), NUC);
                while (used[nuc]);
            used[nuc] = 1;
            x->mat_nucs[m][k] = nuc;
            x->mat_conc[m][k] = 1.0 - unit_double(rng_next(&r));
        }
    }
}

static void lookup(xs_t *x, uint64_t op)
{
    uint64_t h = hash2(x->opkey, op);
    double e = unit_double(h);
    unsigned p = (unsigned)(mix64(h) % 1001), m = 0, acc = mat_permille[0];
    while (m + 1 < NMAT && p >= acc)
        acc += mat_permille[++m];
    /* Binary search: the largest unionized point <= e (or 0). */
    uint64_t lo = 0, hi = x->nu;
    while (hi - lo > 1) {
        uint64_t mid = lo + (hi - lo) / 2;
        if (x->uenergy[mid] <= e)
            lo = mid;
        else
            hi = mid;
    }
    const uint32_t *row = &x->uindex[lo * NUC];
    double macro[5] = {0, 0, 0, 0, 0};
    for (unsigned k = 0; k < mat_count[m]; k++) {
        unsigned n = x->mat_nucs[m][k];
        uint64_t i = row[n];
        if (i + 1 >= x->g)
            i = x->g - 2;
        const gridpoint_t *a = &x->nuc[n * x->g + i], *b = a + 1;
        double f = (b->energy - e) / (b->energy - a->energy);
        for (int c = 0; c < 5; c++)
            macro[c] += x->mat_conc[m][k] * (b->xs[c] - f * (b->xs[c] - a->xs[c]));
    }
    unsigned bin = (unsigned)(e * TALLY_BINS);
    x->tally[m][bin < TALLY_BINS ? bin : TALLY_BINS - 1] += macro[0];
    /* XSBench's verification idea: fold which channel is largest into a running hash. */
    unsigned maxc = 0;
    for (unsigned c = 1; c < 5; c++)
        if (macro[c] > macro[maxc])
            maxc = c;
    x->result_hash = mix64(x->result_hash ^ (op * 8 + maxc));
    x->lookups++;
}

static void batch(void *ctx, uint64_t first, uint64_t count)
{
    for (uint64_t op = first; op < first + count; op++)
        lookup((xs_t *)ctx, op);
}

int main(int argc, char **argv)
{
    opts_t o;
    parse_args(&o, argc, argv, "xsbench",
               "XSBench-like unionized-grid cross-section lookups; one operation = one macroscopic lookup.", NULL, 0,
               64ULL << 20, 1000000, 0);
    xs_t *x = (xs_t *)big_alloc(sizeof(xs_t), "lookup state");
    x->opkey = mix64(o.seed ^ 0x7873ULL) + 1;
    /* bytes per grid point per nuclide: 48 (nuclide grid) + 8 (unionized energy) + 68*4 (index) */
    x->g = o.mem / (NUC * (48 + 8 + NUC * 4));
    if (x->g < 16)
        x->g = 16;
    x->nu = NUC * x->g;
    x->nuc = (gridpoint_t *)big_alloc(x->nu * sizeof(gridpoint_t), "nuclide grids");
    x->uenergy = (double *)big_alloc(x->nu * 8, "the unionized energy grid");
    x->uindex = (uint32_t *)big_alloc(x->nu * NUC * 4, "the index grid");
    build(x, o.seed);
    char what[96];
    snprintf(what, sizeof what, "%d nuclides x %llu grid points", NUC, (unsigned long long)x->g);
    init_done(&o, what);

    uint64_t ops = run_ops(&o, 4096, batch, x);

    fh_t h;
    fh_init(&h);
    uint64_t scalars[] = {x->g, x->nu, x->lookups, x->result_hash, ops};
    fh_bytes(&h, scalars, sizeof scalars);
    fh_bytes(&h, x->nuc, x->nu * sizeof(gridpoint_t));
    fh_bytes(&h, x->uenergy, x->nu * 8);
    fh_bytes(&h, x->uindex, x->nu * NUC * 4);
    fh_bytes(&h, x->mat_nucs, sizeof x->mat_nucs);
    fh_bytes(&h, x->mat_conc, sizeof x->mat_conc);
    fh_bytes(&h, x->tally, sizeof x->tally);
    printf("result xsbench gridpoints=%llu lookups=%llu verification=%016llx\n", (unsigned long long)x->g,
           (unsigned long long)x->lookups, (unsigned long long)x->result_hash);
    return finish(ops, fh_final(&h));
}
