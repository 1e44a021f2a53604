/* qsort of pseudo-random integers through a comparison callback (indirect calls, memory traffic). */
#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>
static int cmp(const void *a, const void *b) { int32_t x = *(const int32_t *)a, y = *(const int32_t *)b; return (x > y) - (x < y); }
int main(int argc, char **argv) {
  int n = argc > 1 ? atoi(argv[1]) : 3000000;
  int32_t *v = malloc(sizeof(int32_t) * n);
  uint32_t s = 12345;
  for (int i = 0; i < n; i++) { s = s * 1664525u + 1013904223u; v[i] = (int32_t)(s >> 1); }
  qsort(v, n, sizeof(int32_t), cmp);
  long long check = 0;
  for (int i = 0; i < n; i += 1000) check += v[i] % 1000;
  printf("%d %d %lld\n", v[0], v[n - 1], check);
  return 0;
}
