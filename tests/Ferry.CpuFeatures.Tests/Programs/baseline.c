/* Plain x86-64 baseline code: linked with -z x86-64-v3 its ISA_1_NEEDED note over-marks it. */
#include <stdio.h>

int main(int argc, char **argv)
{
    (void)argv;
    long s = 0;
    for (int i = 0; i < 1000; i++)
        s += i * argc;
    printf("%ld\n", s);
    return 0;
}
