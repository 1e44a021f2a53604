/* A shared library built twice: plain, and for glibc-hwcaps/x86-64-v3 with AVX2 (the loader picks one). */
#ifdef __AVX2__
#include <immintrin.h>
#endif

long scale_sum(const int *a, int n)
{
    long s = 0;
    int i = 0;
#ifdef __AVX2__
    __m256i acc = _mm256_setzero_si256();
    for (; i + 8 <= n; i += 8)
        acc = _mm256_add_epi32(acc, _mm256_loadu_si256((const __m256i *)(a + i)));
    int lanes[8];
    _mm256_storeu_si256((__m256i *)lanes, acc);
    for (int k = 0; k < 8; k++)
        s += lanes[k];
#endif
    for (; i < n; i++)
        s += a[i];
    return s;
}
