/* Bytes that decode as AVX-512 sit in .text as data (never executed, only read): not a feature need. */
#include <stdio.h>

extern const unsigned char table_in_text[];
__asm__(".text\n"
        ".p2align 4\n"
        "table_in_text:\n"
        "  .byte 0x62, 0xf1, 0x7c, 0x48, 0x58, 0xc1\n" /* vaddps zmm0, zmm0, zmm1 */
        "  .byte 0x62, 0xf2, 0x7d, 0x48, 0x40, 0xc1\n" /* vpmulld zmm0, zmm0, zmm1 */
        "  .byte 0xc4, 0xe2, 0x7d, 0x58, 0xc0\n"       /* vpbroadcastd ymm0, xmm0 */
        "  .byte 0xff, 0xff, 0x0f, 0x0b, 0x00, 0x00, 0x00, 0x00\n");

int main(void)
{
    unsigned sum = 0;
    for (int i = 0; i < 25; i++)
        sum += table_in_text[i];
    printf("%u\n", sum);
    return 0;
}
