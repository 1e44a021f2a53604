/*
 * zipf.h — Zipf-distributed ranks in [0, n), P(rank k) ∝ 1/(k+1)^theta, by the closed-form
 * method of Gray et al. ("Quickly generating billion-record synthetic databases", SIGMOD 1994),
 * the generator YCSB uses for its zipfian key choice. One uniform in, one rank out, no tables,
 * so the sampler costs nothing in memory and a rank depends only on the operation's own random
 * value. All arithmetic goes through detmath.h, so ranks are identical on every build.
 */
#ifndef FERRY_WORKLOADS_ZIPF_H
#define FERRY_WORKLOADS_ZIPF_H

#include "core.h"
#include "detmath.h"

typedef struct {
    uint64_t n;
    double theta, alpha, zetan, eta, half_pow_theta;
} zipf_t;

/* zeta(n, theta) = sum_{i=1..n} i^-theta: exact sum of the first terms, then the Euler-Maclaurin
 * tail (integral + endpoint and derivative corrections), so set-up is O(1) even for 10^9 keys. */
static double zipf_zeta(uint64_t n, double theta)
{
    const uint64_t m = 4096;
    double sum = 0;
    uint64_t lim = n < m ? n : m;
    for (uint64_t i = 1; i <= lim; i++)
        sum += det_pow((double)i, -theta);
    if (n <= m)
        return sum;
    double a = (double)m, b = (double)n;
    double fa = det_pow(a, -theta), fb = det_pow(b, -theta);
    double integral = (det_pow(b, 1.0 - theta) - det_pow(a, 1.0 - theta)) / (1.0 - theta);
    double dfa = -theta * fa / a, dfb = -theta * fb / b;
    return sum + integral + (fb - fa) / 2.0 + (dfb - dfa) / 12.0;
}

static void zipf_init(zipf_t *z, uint64_t n, double theta)
{
    z->n = n;
    z->theta = theta;
    z->alpha = 1.0 / (1.0 - theta);
    z->zetan = zipf_zeta(n, theta);
    double zeta2 = 1.0 + det_pow(2.0, -theta);
    z->eta = (1.0 - det_pow(2.0 / (double)n, 1.0 - theta)) / (1.0 - zeta2 / z->zetan);
    z->half_pow_theta = det_pow(0.5, theta);
}

/* Rank for one 64-bit uniform random value; rank 0 is the most popular. */
static inline uint64_t zipf_rank(const zipf_t *z, uint64_t r)
{
    double u = unit_double(r);
    double uz = u * z->zetan;
    if (uz < 1.0)
        return 0;
    if (uz < 1.0 + z->half_pow_theta)
        return 1;
    double x = (double)z->n * det_pow(z->eta * u - z->eta + 1.0, z->alpha);
    uint64_t k = (uint64_t)x;
    return k < z->n ? k : z->n - 1;
}

#endif
