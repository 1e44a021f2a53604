/* Integer hashing: 64-bit multiply/xor/shift mixing over a large loop (integer ALU throughput). */
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
static uint64_t mix(uint64_t x) { x ^= x >> 33; x *= 0xff51afd7ed558ccdULL; x ^= x >> 33; x *= 0xc4ceb9fe1a85ec53ULL; return x ^ (x >> 33); }
int main(int argc, char **argv) {
  long n = argc > 1 ? atol(argv[1]) : 200000000;
  uint64_t h = 0, fnv = 1469598103934665603ULL;
  for (long i = 0; i < n; i++) { h += mix(i ^ h); fnv = (fnv ^ (uint8_t)h) * 1099511628211ULL; }
  printf("%016llx %016llx\n", (unsigned long long)h, (unsigned long long)fnv);
  return 0;
}
