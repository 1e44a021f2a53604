/* AVX2 on the main path: main calls the AVX2 loop unconditionally (built with -O2 -mavx2). */
#include <immintrin.h>
#include <stdio.h>

__attribute__((noinline)) long sum_scaled(const int *a, int n)
{
    __m256i acc = _mm256_setzero_si256();
    int i = 0;
    for (; i + 8 <= n; i += 8)
        acc = _mm256_add_epi32(acc, _mm256_mullo_epi32(_mm256_loadu_si256((const __m256i *)(a + i)), _mm256_set1_epi32(3)));
    int lanes[8];
    _mm256_storeu_si256((__m256i *)lanes, acc);
    long s = 0;
    for (int k = 0; k < 8; k++)
        s += lanes[k];
    for (; i < n; i++)
        s += a[i] * 3;
    return s;
}

int main(int argc, char **argv)
{
    (void)argv;
    int a[256];
    for (int i = 0; i < 256; i++)
        a[i] = i + argc;
    printf("%ld\n", sum_scaled(a, 256));
    return 0;
}
