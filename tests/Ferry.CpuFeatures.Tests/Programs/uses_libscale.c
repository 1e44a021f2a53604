/* Links against libscale.so; its RUNPATH directory also holds a glibc-hwcaps/x86-64-v3 copy. */
#include <stdio.h>

long scale_sum(const int *a, int n);

int main(int argc, char **argv)
{
    (void)argv;
    int a[64];
    for (int i = 0; i < 64; i++)
        a[i] = i + argc;
    printf("%ld\n", scale_sum(a, 64));
    return 0;
}
