/*
 * svm — linear support vector machine training on generated data (stands in for SGXGauge's SVM).
 *
 * Solver: dual coordinate descent for the L1-loss linear SVM (Hsieh et al., ICML 2008; the
 * method behind LIBLINEAR's default solver). One operation updates one dual variable alpha_i of a
 * randomly chosen sample i:
 *     G = y_i (w . x_i) - 1;  alpha_i' = min(max(alpha_i - G / Q_ii, 0), C);
 *     w += (alpha_i' - alpha_i) y_i x_i
 * so each operation reads one 512-byte sample row and writes its alpha and, when it changes, the
 * weight vector. Data: n samples of D = 128 features uniform in [-1, 1) (exact floats), labelled
 * by a hidden hyperplane with 5% label noise. Memory per sample: 512 B features, 8 B alpha,
 * 8 B Q_ii, 1 B label.
 */
#include "common/common.h"

#define D 128
#define C_PENALTY 1.0

typedef struct {
    float *x;         /* [n][D] */
    double *alpha, *qii;
    int8_t *y;
    double w[D];
    uint64_t n, updates, opkey;
} svm_t;

static void batch(void *ctx, uint64_t first, uint64_t count)
{
    svm_t *s = (svm_t *)ctx;
    for (uint64_t op = first; op < first + count; op++) {
        uint64_t i = below(hash2(s->opkey, op), s->n);
        const float *xi = &s->x[i * D];
        double yi = s->y[i];
        double dot = 0;
        for (int k = 0; k < D; k++)
            dot += s->w[k] * (double)xi[k];
        double g = yi * dot - 1.0;
        double a = s->alpha[i];
        /* projected gradient: zero at a bound when the gradient points outward */
        double pg = (a == 0.0 && g > 0) || (a == C_PENALTY && g < 0) ? 0.0 : g;
        if (pg != 0.0) {
            double na = a - g / s->qii[i];
            na = na < 0.0 ? 0.0 : (na > C_PENALTY ? C_PENALTY : na);
            double step = (na - a) * yi;
            s->alpha[i] = na;
            for (int k = 0; k < D; k++)
                s->w[k] += step * (double)xi[k];
            s->updates++;
        }
    }
}

static uint64_t bits_of(double x)
{
    uint64_t u;
    memcpy(&u, &x, 8);
    return u;
}

int main(int argc, char **argv)
{
    opts_t o;
    parse_args(&o, argc, argv, "svm",
               "Linear SVM by dual coordinate descent on generated data; one operation = one coordinate update.", NULL,
               0, 64ULL << 20, 1000000, 0);
    svm_t *s = (svm_t *)big_alloc(sizeof(svm_t), "model state");
    s->n = o.mem / (D * 4 + 8 + 8 + 1);
    s->opkey = mix64(o.seed ^ 0x73766dULL) + 1; /* "svm" */
    s->x = (float *)big_alloc(s->n * D * 4, "features");
    s->alpha = (double *)big_alloc(s->n * 8, "dual variables");
    s->qii = (double *)big_alloc(s->n * 8, "diagonal Q_ii");
    s->y = (int8_t *)big_alloc(s->n, "labels");
    rng_t r;
    rng_seed(&r, o.seed, 0x73766d);
    double truth[D];
    for (int k = 0; k < D; k++)
        truth[k] = unit_double(rng_next(&r)) * 2.0 - 1.0;
    for (uint64_t i = 0; i < s->n; i++) {
        float *xi = &s->x[i * D];
        double dot = 0, q = 0;
        for (int k = 0; k < D; k += 2) {
            /* two features per draw: 24-bit integers scaled by 2^-23, exactly representable */
            uint64_t v = rng_next(&r);
            xi[k] = (float)((int32_t)(v & 0xFFFFFF) - 0x800000) * (1.0f / 8388608.0f);
            xi[k + 1] = (float)((int32_t)((v >> 32) & 0xFFFFFF) - 0x800000) * (1.0f / 8388608.0f);
            dot += truth[k] * (double)xi[k] + truth[k + 1] * (double)xi[k + 1];
            q += (double)xi[k] * (double)xi[k] + (double)xi[k + 1] * (double)xi[k + 1];
        }
        int label = dot >= 0 ? 1 : -1;
        if (rng_next(&r) % 100 < 5)
            label = -label;
        s->y[i] = (int8_t)label;
        s->qii[i] = q > 0 ? q : 1.0;
    }
    char what[64];
    snprintf(what, sizeof what, "%llu samples x %d features", (unsigned long long)s->n, D);
    init_done(&o, what);

    uint64_t ops = run_ops(&o, 2048, batch, s);

    uint64_t correct = 0;
    for (uint64_t i = 0; i < s->n; i++) {
        double dot = 0;
        for (int k = 0; k < D; k++)
            dot += s->w[k] * (double)s->x[i * D + k];
        correct += (dot >= 0 ? 1 : -1) == s->y[i];
    }
    fh_t h;
    fh_init(&h);
    uint64_t scalars[] = {s->n, s->updates, ops};
    fh_bytes(&h, scalars, sizeof scalars);
    for (int k = 0; k < D; k++)
        fh_u64(&h, bits_of(s->w[k]));
    fh_bytes(&h, s->x, s->n * D * 4);
    fh_bytes(&h, s->alpha, s->n * 8);
    fh_bytes(&h, s->qii, s->n * 8);
    fh_bytes(&h, s->y, s->n);
    printf("result svm samples=%llu updates=%llu train_correct=%llu\n", (unsigned long long)s->n,
           (unsigned long long)s->updates, (unsigned long long)correct);
    return finish(ops, fh_final(&h));
}
