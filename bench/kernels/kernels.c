// Compute kernels for engine benchmarks: integer, floating-point and memory-bound work, no imports.
// Built with: clang --target=wasm32 -O2 -mbulk-memory -nostdlib -Wl,--no-entry -Wl,--export-dynamic -o kernels.wasm kernels.c
#include <stdint.h>

#define EXPORT __attribute__((visibility("default")))

static uint8_t heap[64 << 20];

// Integer: a 64-bit mixing hash over a counter, plus a 32-bit FNV-1a over bytes.
EXPORT uint64_t int_hash(uint32_t n) {
    uint64_t h = 0x9E3779B97F4A7C15ull;
    uint32_t f = 2166136261u;
    for (uint32_t i = 0; i < n; i++) {
        uint64_t x = h ^ i;
        x ^= x >> 33; x *= 0xff51afd7ed558ccdull;
        x ^= x >> 33; x *= 0xc4ceb9fe1a85ec53ull;
        x ^= x >> 33;
        h = x + (h << 7) + (h >> 3);
        f = (f ^ (uint8_t)x) * 16777619u;
    }
    return h ^ f;
}

// Floating point: n-body (5 bodies), steps of a symplectic integrator; returns the energy * 1e9.
typedef struct { double x, y, z, vx, vy, vz, m; } body;

static double sqrt_(double x) { return __builtin_sqrt(x); }

EXPORT int64_t nbody(uint32_t steps) {
    const double PI = 3.141592653589793, SM = 4 * PI * PI, DPY = 365.24;
    body b[5] = {
        {0, 0, 0, 0, 0, 0, SM},
        {4.84143144246472090e+00, -1.16032004402742839e+00, -1.03622044471123109e-01, 1.66007664274403694e-03 * DPY, 7.69901118419740425e-03 * DPY, -6.90460016972063023e-05 * DPY, 9.54791938424326609e-04 * SM},
        {8.34336671824457987e+00, 4.12479856412430479e+00, -4.03523417114321381e-01, -2.76742510726862411e-03 * DPY, 4.99852801234917238e-03 * DPY, 2.30417297573763929e-05 * DPY, 2.85885980666130812e-04 * SM},
        {1.28943695621391310e+01, -1.51111514016986312e+01, -2.23307578892655734e-01, 2.96460137564761618e-03 * DPY, 2.37847173959480950e-03 * DPY, -2.96589568540237556e-05 * DPY, 4.36624404335156298e-05 * SM},
        {1.53796971148509165e+01, -2.59193146099879641e+01, 1.79258772950371181e-01, 2.68067772490389322e-03 * DPY, 1.62824170038242295e-03 * DPY, -9.51592254519715870e-05 * DPY, 5.15138902046611451e-05 * SM},
    };
    for (uint32_t s = 0; s < steps; s++) {
        for (int i = 0; i < 5; i++) {
            for (int j = i + 1; j < 5; j++) {
                double dx = b[i].x - b[j].x, dy = b[i].y - b[j].y, dz = b[i].z - b[j].z;
                double d2 = dx * dx + dy * dy + dz * dz;
                double mag = 0.01 / (d2 * sqrt_(d2));
                b[i].vx -= dx * b[j].m * mag; b[i].vy -= dy * b[j].m * mag; b[i].vz -= dz * b[j].m * mag;
                b[j].vx += dx * b[i].m * mag; b[j].vy += dy * b[i].m * mag; b[j].vz += dz * b[i].m * mag;
            }
        }
        for (int i = 0; i < 5; i++) { b[i].x += 0.01 * b[i].vx; b[i].y += 0.01 * b[i].vy; b[i].z += 0.01 * b[i].vz; }
    }
    double e = 0;
    for (int i = 0; i < 5; i++) {
        e += 0.5 * b[i].m * (b[i].vx * b[i].vx + b[i].vy * b[i].vy + b[i].vz * b[i].vz);
        for (int j = i + 1; j < 5; j++) {
            double dx = b[i].x - b[j].x, dy = b[i].y - b[j].y, dz = b[i].z - b[j].z;
            e -= b[i].m * b[j].m / sqrt_(dx * dx + dy * dy + dz * dz);
        }
    }
    return (int64_t)(e * 1e9);
}

// Memory-bound: fill a 32 MiB array with a PRNG, quicksort it, then checksum with a strided walk.
static void qs(uint32_t *a, int lo, int hi) {
    while (lo < hi) {
        uint32_t p = a[(lo + hi) >> 1];
        int i = lo, j = hi;
        while (i <= j) {
            while (a[i] < p) i++;
            while (a[j] > p) j--;
            if (i <= j) { uint32_t t = a[i]; a[i] = a[j]; a[j] = t; i++; j--; }
        }
        if (j - lo < hi - i) { qs(a, lo, j); lo = i; } else { qs(a, i, hi); hi = j; }
    }
}

EXPORT uint32_t mem_sort(uint32_t n) {
    uint32_t *a = (uint32_t *)heap;
    if (n > sizeof(heap) / 4) n = sizeof(heap) / 4;
    uint32_t x = 123456789;
    for (uint32_t i = 0; i < n; i++) { x ^= x << 13; x ^= x >> 17; x ^= x << 5; a[i] = x; }
    qs(a, 0, (int)n - 1);
    uint32_t h = 0;
    for (uint32_t s = 0; s < 16; s++)
        for (uint32_t i = s; i < n; i += 16) h = h * 31 + a[i];
    return h;
}
