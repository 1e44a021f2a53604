/* Needs POPCNT and BMI2 (built with -O2 -mpopcnt -mbmi2): what `cpu minimize` should find. */
#include <stdio.h>

int main(int argc, char **argv)
{
    unsigned long x = (unsigned long)(argc * 0x9E3779B97F4A7C15UL) ^ (unsigned long)argv[0][0];
    printf("%d %lu\n", __builtin_popcountl(x), (unsigned long)__builtin_ia32_pdep_di(x, 0xff00ff));
    return 0;
}
