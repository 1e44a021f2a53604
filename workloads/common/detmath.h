/*
 * detmath.h — log, exp and pow written with +, -, *, / only.
 *
 * libm's log/exp/pow are not required to be correctly rounded, and glibc and wasi-libc (musl)
 * implement them differently, so a value computed with them could differ in the last bit between
 * the native and the wasm build and change a checksum. These versions perform the same IEEE
 * operations in the same order on every target (the build passes -ffp-contract=off so no fused
 * multiply-add is introduced), which makes them bit-identical everywhere. Accuracy is ~1e-15
 * relative, far beyond what a workload generator needs.
 */
#ifndef FERRY_WORKLOADS_DETMATH_H
#define FERRY_WORKLOADS_DETMATH_H

#include <stdint.h>
#include <string.h>

static inline uint64_t dbits(double x)
{
    uint64_t u;
    memcpy(&u, &x, 8);
    return u;
}

static inline double bitsd(uint64_t u)
{
    double x;
    memcpy(&x, &u, 8);
    return x;
}

#define DET_LN2_HI 6.93147180369123816490e-01 /* ln 2 split so k * LN2_HI is exact for |k| < 2^11 */
#define DET_LN2_LO 1.90821492927058770002e-10

/* Natural log for finite x > 0 (normal numbers): x = m * 2^e with m in [sqrt(1/2), sqrt(2)),
 * ln m = 2 atanh(s), s = (m-1)/(m+1), |s| < 0.172, by its odd power series. */
static inline double det_log(double x)
{
    uint64_t u = dbits(x);
    int e = (int)((u >> 52) & 0x7ff) - 1023;
    double m = bitsd((u & 0x000fffffffffffffULL) | 0x3ff0000000000000ULL); /* [1, 2) */
    if (m > 1.4142135623730951) {
        m *= 0.5;
        e++;
    }
    double s = (m - 1.0) / (m + 1.0);
    double s2 = s * s;
    /* Horner over 1 + s2/3 + s2^2/5 + ... + s2^10/21: the 12th term is below 2^-60 here. */
    double p = 1.0 / 23.0;
    for (int k = 21; k >= 1; k -= 2)
        p = 1.0 / (double)k + s2 * p;
    return (double)e * DET_LN2_HI + ((double)e * DET_LN2_LO + 2.0 * s * p);
}

/* e^x for |x| < 700: x = k ln2 + r with |r| <= ln2/2, e^r by Taylor series to r^17/17!. */
static inline double det_exp(double x)
{
    if (x < -700.0)
        return 0.0; /* below the normal range: callers only need "negligible" */
    if (x > 700.0)
        x = 700.0;
    double kd = x * 1.4426950408889634;
    int k = (int)(kd < 0 ? kd - 0.5 : kd + 0.5);
    double r = (x - (double)k * DET_LN2_HI) - (double)k * DET_LN2_LO;
    double p = 1.0;
    for (int n = 17; n >= 1; n--)
        p = 1.0 + r * p / (double)n;
    return p * bitsd((uint64_t)(k + 1023) << 52);
}

/* x^y for x > 0. */
static inline double det_pow(double x, double y) { return det_exp(y * det_log(x)); }

#endif
