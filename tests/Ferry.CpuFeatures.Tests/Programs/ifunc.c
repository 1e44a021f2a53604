/* An IFUNC-dispatched function: the resolver picks the AVX2 version at load time. */
#include <immintrin.h>
#include <stdio.h>

static long add_generic(const int *a, int n)
{
    long s = 0;
    for (int i = 0; i < n; i++)
        s += a[i];
    return s;
}

__attribute__((target("avx2"))) static long add_avx2(const int *a, int n)
{
    __m256i acc = _mm256_setzero_si256();
    int i = 0;
    for (; i + 8 <= n; i += 8)
        acc = _mm256_add_epi32(acc, _mm256_loadu_si256((const __m256i *)(a + i)));
    acc = _mm256_hadd_epi32(acc, acc);
    acc = _mm256_hadd_epi32(acc, acc);
    long s = _mm256_extract_epi32(acc, 0) + _mm256_extract_epi32(acc, 4);
    for (; i < n; i++)
        s += a[i];
    return s;
}

static long (*resolve_add(void))(const int *, int)
{
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") ? add_avx2 : add_generic;
}

long add(const int *a, int n) __attribute__((ifunc("resolve_add")));

int main(int argc, char **argv)
{
    (void)argv;
    int a[100];
    for (int i = 0; i < 100; i++)
        a[i] = i * argc;
    printf("%ld\n", add(a, 100));
    return 0;
}
