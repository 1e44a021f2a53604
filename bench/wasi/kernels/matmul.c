/* Dense double-precision matrix multiply (loads, stores, floating point). */
#include <stdio.h>
#include <stdlib.h>
int main(int argc, char **argv) {
  int n = argc > 1 ? atoi(argv[1]) : 300, reps = argc > 2 ? atoi(argv[2]) : 4;
  double *a = malloc(sizeof(double) * n * n), *b = malloc(sizeof(double) * n * n), *c = malloc(sizeof(double) * n * n);
  for (int i = 0; i < n * n; i++) { a[i] = (i % 17) * 0.25; b[i] = (i % 13) * 0.5; }
  double sum = 0;
  for (int r = 0; r < reps; r++) {
    for (int i = 0; i < n; i++)
      for (int j = 0; j < n; j++) c[i * n + j] = 0;
    for (int i = 0; i < n; i++)
      for (int k = 0; k < n; k++) {
        double x = a[i * n + k];
        for (int j = 0; j < n; j++) c[i * n + j] += x * b[k * n + j];
      }
    sum += c[(r * 7) % (n * n)];
  }
  printf("%.3f\n", sum);
  return 0;
}
