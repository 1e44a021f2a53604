/* A switch compiled to a jump table; one case calls AVX2 code. Stripped, it is reached only through the table. */
#include <immintrin.h>
#include <stdio.h>
#include <stdlib.h>

int data[16];

__attribute__((target("avx2"), noinline)) static int with_avx2(int x)
{
    __m256i v = _mm256_loadu_si256((const __m256i *)data);
    v = _mm256_mullo_epi32(v, _mm256_set1_epi32(x));
    _mm256_storeu_si256((__m256i *)(data + 8), v);
    return data[11];
}

__attribute__((noinline)) static int dispatch(int op, int x)
{
    switch (op) {
    case 0: return x + 1;
    case 1: return x * 7;
    case 2: return x ^ 0x55;
    case 3: return with_avx2(x);
    case 4: return x - 9;
    case 5: return x << 3;
    case 6: return x / 3;
    case 7: return x % 11;
    case 8: return ~x;
    default: return 0;
    }
}

int main(int argc, char **argv)
{
    int op = argc > 1 ? atoi(argv[1]) : 0;
    printf("%d\n", dispatch(op, argc));
    return 0;
}
