/* benchstat.h - the clock and the median the engine benchmarks (bench_nn, bench_decode) share:
 * they report medians of interleaved runs, the machine being shared. */
#ifndef BENCHSTAT_H
#define BENCHSTAT_H

#include <stdlib.h>
#include <time.h>

/* monotonic seconds */
static inline double bench_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static inline int bench_cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* the median of v[0, n), n >= 1 (sorts v) */
static inline double bench_median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, bench_cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

#endif /* BENCHSTAT_H */
