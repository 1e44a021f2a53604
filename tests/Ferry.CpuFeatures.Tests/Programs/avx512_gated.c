/* AVX-512 only behind __builtin_cpu_supports: gated, never required. */
#include <immintrin.h>
#include <stdio.h>

__attribute__((target("avx512f"), noinline)) static long sum512(const int *a, int n)
{
    __m512i s = _mm512_setzero_si512();
    for (int i = 0; i + 16 <= n; i += 16)
        s = _mm512_add_epi32(s, _mm512_loadu_si512(a + i));
    return _mm512_reduce_add_epi32(s);
}

__attribute__((noinline)) static long sum_plain(const int *a, int n)
{
    long s = 0;
    for (int i = 0; i < n; i++)
        s += a[i];
    return s;
}

int main(int argc, char **argv)
{
    (void)argv;
    int a[64];
    for (int i = 0; i < 64; i++)
        a[i] = i + argc;
    long r;
    if (__builtin_cpu_supports("avx512f"))
        r = sum512(a, 64);
    else
        r = sum_plain(a, 64);
    printf("%ld\n", r);
    return 0;
}
