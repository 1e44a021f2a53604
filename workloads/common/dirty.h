/*
 * dirty.h — measure a workload's write rate as the migration system will see it: the number of
 * distinct 4 KiB pages written per interval. Native Linux builds only (--measure-dirty); on
 * wasm32 the functions are no-ops because the flag is rejected there.
 *
 * Mechanism (kernel >= 6.7, root): register every big allocation with userfaultfd in write-protect
 * mode with WP_ASYNC, so the kernel itself un-protects a page on its first write without stopping
 * the program; every interval, the PAGEMAP_SCAN ioctl on /proc/self/pagemap reports the written
 * pages and re-protects them in one call. This counts exactly what a dirty-page tracker would
 * copy, not an estimate from the algorithm. Debian's headers predate these names, so the few
 * constants and structs are defined here from the kernel's UAPI.
 */
#ifndef FERRY_WORKLOADS_DIRTY_H
#define FERRY_WORKLOADS_DIRTY_H

#include <stdint.h>
#include <stdio.h>

#if defined(__linux__) && !defined(__wasm__)
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#define DIRTY_FEATURE_WP_UNPOPULATED (1ULL << 13)
#define DIRTY_FEATURE_WP_ASYNC (1ULL << 15)
#define DIRTY_PM_SCAN_WP_MATCHING (1ULL << 0)
#define DIRTY_PM_SCAN_CHECK_WPASYNC (1ULL << 1)
#define DIRTY_PAGE_IS_WRITTEN (1ULL << 1)

struct dirty_pm_scan_arg {
    uint64_t size, flags, start, end, walk_end, vec, vec_len, max_pages, category_inverted, category_mask,
        category_anyof_mask, return_mask;
};
struct dirty_page_region {
    uint64_t start, end, categories;
};
#define DIRTY_PAGEMAP_SCAN _IOWR('f', 16, struct dirty_pm_scan_arg)

#define DIRTY_MAX_REGIONS 16
static struct {
    uint64_t start[DIRTY_MAX_REGIONS], end[DIRTY_MAX_REGIONS];
    int n;
    int uffd, pagemap, active;
    uint64_t last_t, interval_start, total_pages, intervals, peak;
    double total_secs; /* summed length of the full intervals, for a true per-second mean */
    const char *prog;
    struct dirty_page_region vec[4096];
} g_dirty = {.uffd = -1, .pagemap = -1};

/* Remember the page-aligned interior of a big allocation (glibc mmaps large blocks, so nearly all
 * of it is page aligned). */
static void dirty_note_region(void *p, uint64_t bytes)
{
    uint64_t s = ((uint64_t)(uintptr_t)p + 4095) & ~4095ULL;
    uint64_t e = ((uint64_t)(uintptr_t)p + bytes) & ~4095ULL;
    if (e > s && g_dirty.n < DIRTY_MAX_REGIONS) {
        g_dirty.start[g_dirty.n] = s;
        g_dirty.end[g_dirty.n] = e;
        g_dirty.n++;
    }
}

static uint64_t dirty_scan(void)
{
    uint64_t pages = 0;
    for (int r = 0; r < g_dirty.n; r++) {
        uint64_t pos = g_dirty.start[r];
        while (pos < g_dirty.end[r]) {
            struct dirty_pm_scan_arg a = {0};
            a.size = sizeof a;
            a.flags = DIRTY_PM_SCAN_WP_MATCHING | DIRTY_PM_SCAN_CHECK_WPASYNC;
            a.start = pos;
            a.end = g_dirty.end[r];
            a.vec = (uint64_t)(uintptr_t)g_dirty.vec;
            a.vec_len = sizeof g_dirty.vec / sizeof g_dirty.vec[0];
            a.category_mask = DIRTY_PAGE_IS_WRITTEN;
            a.return_mask = DIRTY_PAGE_IS_WRITTEN;
            long n = ioctl(g_dirty.pagemap, DIRTY_PAGEMAP_SCAN, &a);
            if (n < 0) {
                perror("measure-dirty: PAGEMAP_SCAN");
                exit(3);
            }
            for (long i = 0; i < n; i++)
                pages += (g_dirty.vec[i].end - g_dirty.vec[i].start) / 4096;
            if (a.walk_end <= pos)
                break;
            pos = a.walk_end;
        }
    }
    return pages;
}

static uint64_t dirty_clock(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

/* Called once initialisation is over: write-protect everything allocated so far. */
static void dirty_start(const char *prog)
{
    g_dirty.prog = prog;
    g_dirty.uffd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
    if (g_dirty.uffd < 0) {
        perror("measure-dirty: userfaultfd (needs root or vm.unprivileged_userfaultfd=1)");
        exit(3);
    }
    struct uffdio_api api = {.api = UFFD_API, .features = DIRTY_FEATURE_WP_ASYNC | DIRTY_FEATURE_WP_UNPOPULATED};
    if (ioctl(g_dirty.uffd, UFFDIO_API, &api) != 0) {
        perror("measure-dirty: UFFDIO_API with WP_ASYNC (kernel too old?)");
        exit(3);
    }
    g_dirty.pagemap = open("/proc/self/pagemap", O_RDONLY);
    if (g_dirty.pagemap < 0) {
        perror("measure-dirty: /proc/self/pagemap");
        exit(3);
    }
    for (int r = 0; r < g_dirty.n; r++) {
        uint64_t len = g_dirty.end[r] - g_dirty.start[r];
        /* Count 4 KiB pages, not 2 MiB THPs: that is the unit a page-granular tracker copies. */
        madvise((void *)(uintptr_t)g_dirty.start[r], len, MADV_NOHUGEPAGE);
        struct uffdio_register reg = {.range = {g_dirty.start[r], len}, .mode = UFFDIO_REGISTER_MODE_WP};
        if (ioctl(g_dirty.uffd, UFFDIO_REGISTER, &reg) != 0) {
            perror("measure-dirty: UFFDIO_REGISTER");
            exit(3);
        }
        struct uffdio_writeprotect wp = {.range = {g_dirty.start[r], len}, .mode = UFFDIO_WRITEPROTECT_MODE_WP};
        if (ioctl(g_dirty.uffd, UFFDIO_WRITEPROTECT, &wp) != 0) {
            perror("measure-dirty: UFFDIO_WRITEPROTECT");
            exit(3);
        }
    }
    g_dirty.active = 1;
    g_dirty.interval_start = g_dirty.last_t = dirty_clock();
}

static void dirty_report(uint64_t t, int final)
{
    uint64_t pages = dirty_scan();
    double dt = (double)(t - g_dirty.interval_start) / 1e9;
    if (dt <= 0)
        return;
    if (!final) {
        /* the last interval is partial and usually short: report it, keep it out of the mean */
        g_dirty.total_pages += pages;
        g_dirty.total_secs += dt;
        g_dirty.intervals++;
        if (pages / dt > (double)g_dirty.peak)
            g_dirty.peak = (uint64_t)(pages / dt);
    }
    fprintf(stderr, "dirty %s pages=%llu interval=%.3fs pages_per_s=%.0f%s\n", g_dirty.prog,
            (unsigned long long)pages, dt, (double)pages / dt, final ? " (last, partial)" : "");
    g_dirty.interval_start = t;
}

/* Between batches: close an interval every second. */
static void dirty_tick(uint64_t t)
{
    if (g_dirty.active && t - g_dirty.interval_start >= 1000000000ULL)
        dirty_report(t, 0);
}

static void dirty_finish(uint64_t t)
{
    if (!g_dirty.active)
        return;
    dirty_report(t, 1);
    if (g_dirty.intervals) {
        double rate = (double)g_dirty.total_pages / g_dirty.total_secs;
        fprintf(stderr, "dirty %s summary: %llu full intervals, mean %.0f pages/s (%.1f MiB/s), peak %llu pages/s\n",
                g_dirty.prog, (unsigned long long)g_dirty.intervals, rate, rate * 4096.0 / 1048576.0,
                (unsigned long long)g_dirty.peak);
    }
    g_dirty.active = 0;
}

#else
static void dirty_note_region(void *p, uint64_t bytes)
{
    (void)p;
    (void)bytes;
}
static void dirty_start(const char *prog)
{
    fprintf(stderr, "%s: error: --measure-dirty needs the native Linux build\n", prog);
    exit(2);
}
static void dirty_tick(uint64_t t) { (void)t; }
static void dirty_finish(uint64_t t) { (void)t; }
#endif

#endif
