/* evalstats.c - see evalstats.h. */
#include "evalstats.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"

/* ---- random numbers and percentiles -------------------------------------------------------- */

/* splitmix64: a small, well-mixed stream; every bootstrap draws from its own seed. */
static uint64_t splitmix64(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* A uniform index in [0, n): the top bits scaled, so the bias is below 2^-32 for any n we see. */
static size_t draw_index(uint64_t *s, size_t n)
{
    return (size_t)((double)(splitmix64(s) >> 11) * 0x1.0p-53 * (double)n) % n;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The q-quantile of sorted v[0..n) with linear interpolation between order statistics (R's type
 * 7, numpy's default). */
static double quantile_sorted(const double *v, size_t n, double q)
{
    double h = (double)(n - 1) * q;
    size_t i = (size_t)floor(h);
    if (i + 1 >= n)
        return v[n - 1];
    return v[i] + (h - (double)i) * (v[i + 1] - v[i]);
}

/* The 95% percentile interval of the mean of x[0..n) over `resamples` bootstrap draws. */
static int bootstrap_mean(const double *x, size_t n, unsigned resamples, uint64_t seed, double *lo,
                          double *hi)
{
    double *means = malloc(resamples * sizeof *means);
    if (!means)
        return ERR_NOMEM;
    uint64_t s = seed ^ 0x6a09e667f3bcc909ULL;
    for (unsigned b = 0; b < resamples; b++) {
        double sum = 0;
        for (size_t i = 0; i < n; i++)
            sum += x[draw_index(&s, n)];
        means[b] = sum / (double)n;
    }
    qsort(means, resamples, sizeof *means, cmp_double);
    *lo = quantile_sorted(means, resamples, 0.025);
    *hi = quantile_sorted(means, resamples, 0.975);
    free(means);
    return ERR_OK;
}

/* ---- means ------------------------------------------------------------------------------------
 */

int evalstats_mean_ci(const double *x, size_t n, unsigned resamples, uint64_t seed,
                      struct evalstats_mean *out)
{
    memset(out, 0, sizeof *out);
    if (n == 0)
        return ERR_INVAL;
    double sum = 0;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(x[i]))
            return ERR_INVAL;
        sum += x[i];
    }
    double mean = sum / (double)n, ss = 0;
    for (size_t i = 0; i < n; i++)
        ss += (x[i] - mean) * (x[i] - mean);
    out->n = n;
    out->mean = mean;
    out->sd = n > 1 ? sqrt(ss / (double)(n - 1)) : 0;
    out->se = out->sd / sqrt((double)n);
    out->lo = out->hi = mean;
    if (resamples == 0 || n == 1)
        return ERR_OK;
    return bootstrap_mean(x, n, resamples, seed, &out->lo, &out->hi);
}

int evalstats_win_rate(const double *outcome, size_t n, unsigned resamples, uint64_t seed,
                       struct evalstats_winrate *out)
{
    memset(out, 0, sizeof *out);
    for (size_t i = 0; i < n; i++) {
        if (!(outcome[i] >= 0 && outcome[i] <= 1)) /* NaN fails too */
            return ERR_INVAL;
        if (outcome[i] > 0.5)
            out->wins++;
        else if (outcome[i] < 0.5)
            out->losses++;
        else
            out->ties++;
    }
    return evalstats_mean_ci(outcome, n, resamples, seed, &out->rate);
}

/* ---- the length-controlled win rate ------------------------------------------------------- */

static double sigmoid(double z)
{
    return z >= 0 ? 1 / (1 + exp(-z)) : exp(z) / (1 + exp(z));
}

int evalstats_lc_win_rate(const double *outcome, const double *len_policy, const double *len_base,
                          size_t n, struct evalstats_lc *out)
{
    memset(out, 0, sizeof *out);
    if (n == 0)
        return ERR_INVAL;
    double *f = malloc(n * sizeof *f); /* the feature tanh(dlen / sd) */
    if (!f)
        return ERR_NOMEM;
    double sum = 0;
    for (size_t i = 0; i < n; i++) {
        if (!(outcome[i] >= 0 && outcome[i] <= 1) || !isfinite(len_policy[i]) ||
            !isfinite(len_base[i])) {
            free(f);
            return ERR_INVAL;
        }
        f[i] = len_policy[i] - len_base[i];
        sum += f[i];
    }
    double mean = sum / (double)n, ss = 0;
    for (size_t i = 0; i < n; i++)
        ss += (f[i] - mean) * (f[i] - mean);
    double sd = n > 1 ? sqrt(ss / (double)(n - 1)) : 0;
    /* alpaca_eval divides by the sd without centering: dlen = 0 must stay the reading point */
    for (size_t i = 0; i < n; i++)
        f[i] = sd > 0 ? tanh(f[i] / sd) : 0;
    const double lam = EVALSTATS_LC_RIDGE;
    double th = 0, ph = 0;
    int it = 0;
    /* Newton on L = sum CE(y_i, sigma(th + ph f_i)) + lam/2 (th^2 + ph^2): convex, the Hessian
     * positive definite (lam > 0). A separable set moves th by about 1 a step: 200 is ample. */
    for (; it < 200; it++) {
        double g0 = lam * th, g1 = lam * ph, h00 = lam, h01 = 0, h11 = lam;
        for (size_t i = 0; i < n; i++) {
            double p = sigmoid(th + ph * f[i]), r = p - outcome[i], w = p * (1 - p);
            g0 += r;
            g1 += r * f[i];
            h00 += w;
            h01 += w * f[i];
            h11 += w * f[i] * f[i];
        }
        double det = h00 * h11 - h01 * h01;
        double d0 = (h11 * g0 - h01 * g1) / det, d1 = (h00 * g1 - h01 * g0) / det;
        th -= d0;
        ph -= d1;
        if (fabs(d0) < 1e-10 && fabs(d1) < 1e-10) {
            it++;
            break;
        }
    }
    free(f);
    out->lc = sigmoid(th);
    out->theta = th;
    out->phi = ph;
    out->sd_dlen = sd;
    out->iterations = it;
    return ERR_OK;
}

/* ---- KL ----------------------------------------------------------------------------------- */

int evalstats_kl(const double *logp, const double *ref_logp, size_t n, unsigned resamples,
                 uint64_t seed, struct evalstats_mean *out)
{
    memset(out, 0, sizeof *out);
    if (n == 0)
        return ERR_INVAL;
    double *d = malloc(n * sizeof *d);
    if (!d)
        return ERR_NOMEM;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(logp[i]) || !isfinite(ref_logp[i]) || logp[i] > 0 || ref_logp[i] > 0) {
            free(d);
            return ERR_INVAL;
        }
        d[i] = logp[i] - ref_logp[i];
    }
    int rc = evalstats_mean_ci(d, n, resamples, seed, out);
    free(d);
    return rc;
}

/* ---- Student's t ---------------------------------------------------------------------------- */

/* The continued fraction of the incomplete beta function (modified Lentz), for x < (a+1)/(a+b+2),
 * where it converges quickly. */
static double beta_cf(double a, double b, double x)
{
    const double tiny = 1e-300;
    double c = 1, d = 1 - (a + b) * x / (a + 1);
    d = fabs(d) < tiny ? tiny : d;
    d = 1 / d;
    double h = d;
    for (int m = 1; m <= 500; m++) {
        double m2 = 2.0 * m;
        double aa = m * (b - m) * x / ((a + m2 - 1) * (a + m2));
        d = 1 + aa * d;
        d = fabs(d) < tiny ? tiny : d;
        c = 1 + aa / c;
        c = fabs(c) < tiny ? tiny : c;
        d = 1 / d;
        h *= d * c;
        aa = -(a + m) * (a + b + m) * x / ((a + m2) * (a + m2 + 1));
        d = 1 + aa * d;
        d = fabs(d) < tiny ? tiny : d;
        c = 1 + aa / c;
        c = fabs(c) < tiny ? tiny : c;
        d = 1 / d;
        double del = d * c;
        h *= del;
        if (fabs(del - 1) < 1e-15)
            break;
    }
    return h;
}

/* The regularized incomplete beta function I_x(a, b). */
static double inc_beta(double a, double b, double x)
{
    if (x <= 0)
        return 0;
    if (x >= 1)
        return 1;
    double lbt = lgamma(a + b) - lgamma(a) - lgamma(b) + a * log(x) + b * log1p(-x);
    if (x < (a + 1) / (a + b + 2))
        return exp(lbt) * beta_cf(a, b, x) / a;
    return 1 - exp(lbt) * beta_cf(b, a, 1 - x) / b;
}

double evalstats_t_p(double t, double df)
{
    if (!isfinite(t))
        return 0;
    return inc_beta(df / 2, 0.5, df / (df + t * t));
}

double evalstats_t_quantile(double q, double df)
{
    if (q == 0.5)
        return 0;
    double tail = 2 * (q > 0.5 ? 1 - q : q); /* two-sided p of the quantile's |t| */
    double lo = 0, hi = 1;
    while (evalstats_t_p(hi, df) > tail && hi < 1e12)
        hi *= 2;
    for (int i = 0; i < 200; i++) { /* p falls as |t| grows */
        double mid = (lo + hi) / 2;
        if (evalstats_t_p(mid, df) > tail)
            lo = mid;
        else
            hi = mid;
    }
    double t = (lo + hi) / 2;
    return q > 0.5 ? t : -t;
}

/* ---- paired comparisons --------------------------------------------------------------------- */

int evalstats_paired(const double *a, const double *b, size_t n, unsigned resamples, uint64_t seed,
                     struct evalstats_paired *out)
{
    memset(out, 0, sizeof *out);
    if (n == 0)
        return ERR_INVAL;
    double *d = malloc(n * sizeof *d);
    if (!d)
        return ERR_NOMEM;
    for (size_t i = 0; i < n; i++)
        d[i] = b[i] - a[i]; /* a NaN or infinity is caught by evalstats_mean_ci */
    struct evalstats_mean m;
    int rc = evalstats_mean_ci(d, n, n > 1 ? resamples : 0, seed, &m);
    free(d);
    if (rc)
        return rc;
    out->n = n;
    out->mean = m.mean;
    out->sd = m.sd;
    out->se = m.se;
    out->df = (double)n - 1;
    out->p = 1;
    out->t_lo = out->t_hi = out->boot_lo = out->boot_hi = m.mean;
    if (n < 2)
        return ERR_OK;
    out->boot_lo = m.lo;
    out->boot_hi = m.hi;
    if (m.se > 0) {
        out->t = m.mean / m.se;
        out->p = evalstats_t_p(out->t, out->df);
        double tq = evalstats_t_quantile(0.975, out->df);
        out->t_lo = m.mean - tq * m.se;
        out->t_hi = m.mean + tq * m.se;
    } else if (m.mean != 0) { /* every seed moved by exactly the same amount */
        out->t = m.mean > 0 ? INFINITY : -INFINITY;
        out->p = 0;
    }
    out->finding = (out->t_lo > 0 || out->t_hi < 0) && (out->boot_lo > 0 || out->boot_hi < 0);
    return ERR_OK;
}
