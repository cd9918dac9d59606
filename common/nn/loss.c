/* loss.c - SFT cross-entropy, the DPO family, Bradley-Terry and the contrastive losses (SimCSE,
 * SwAV with Sinkhorn-Knopp), with gradients (fp64 inside). */
#include "loss.h"

#include <math.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"

/* log s(x) without overflow */
static double log_sigmoid(double x)
{
    return x >= 0.0 ? -log1p(exp(-x)) : x - log1p(exp(x));
}

static double sigmoid(double x)
{
    if (x >= 0.0)
        return 1.0 / (1.0 + exp(-x));
    double e = exp(x);
    return e / (1.0 + e);
}

int nn_loss_sft(int B, const float *logp, const int *ntok, double denom, float *dlogp, double *loss)
{
    if (B < 1 || !logp || !ntok)
        return ERR_INVAL;
    double s = 0.0;
    long n = 0;
    for (int b = 0; b < B; b++) {
        if (ntok[b] < 0)
            return ERR_INVAL;
        s += logp[b];
        n += ntok[b];
    }
    if (n == 0)
        return ERR_INVAL;
    double d = denom > 0 ? denom : (double)n;
    if (loss)
        *loss = -s / d;
    if (dlogp)
        for (int b = 0; b < B; b++)
            dlogp[b] = (float)(-1.0 / d);
    return ERR_OK;
}

/* The loss of one pair as a function of z = beta h (and h for IPO), with d loss / d h. */
static double pref_one(const struct nn_pref_opts *o, double h, double t, double *dh)
{
    double b = o->beta, z = b * h, e = o->eps;
    switch (o->kind) {
    case NN_PREF_DPO:
        *dh = -b * sigmoid(-z);
        return -log_sigmoid(z);
    case NN_PREF_IPO: {
        double d = h - 1.0 / (2.0 * b);
        *dh = 2.0 * d;
        return d * d;
    }
    case NN_PREF_SLIC:
        *dh = 1.0 - z > 0.0 ? -b : 0.0;
        return fmax(0.0, 1.0 - z);
    case NN_PREF_CDPO:
        t = 1.0 - e;
        break; /* the soft-target form with t = 1 - e */
    case NN_PREF_ROBUST:
        /* d/dz: [-(1-e) s(-z) - e s(z)] / (1 - 2e) */
        *dh = b * (-(1.0 - e) * sigmoid(-z) - e * sigmoid(z)) / (1.0 - 2.0 * e);
        return (-(1.0 - e) * log_sigmoid(z) + e * log_sigmoid(-z)) / (1.0 - 2.0 * e);
    case NN_PREF_SOFT:
        break;
    }
    /* -t log s(z) - (1-t) log s(-z); d/dz = -t s(-z) + (1-t) s(z) = s(z) - t */
    *dh = b * (sigmoid(z) - t);
    return -t * log_sigmoid(z) - (1.0 - t) * log_sigmoid(-z);
}

int nn_loss_pref(const struct nn_pref_opts *o, int N, const float *lp_c, const float *lp_r,
                 const float *ref_c, const float *ref_r, const float *target, float *dlp_c,
                 float *dlp_r, struct nn_pref_stats *st)
{
    if (!o || N < 1 || !lp_c || !lp_r || !ref_c || !ref_r || !(o->beta > 0.0f))
        return ERR_INVAL;
    if ((int)o->kind < NN_PREF_DPO || o->kind > NN_PREF_SOFT)
        return ERR_INVAL;
    if ((o->kind == NN_PREF_CDPO || o->kind == NN_PREF_ROBUST) &&
        !(o->eps >= 0.0f && o->eps < 0.5f))
        return ERR_INVAL;
    if (o->kind == NN_PREF_SOFT) {
        if (!target)
            return ERR_INVAL;
        for (int i = 0; i < N; i++)
            if (!(target[i] >= 0.0f && target[i] <= 1.0f))
                return ERR_INVAL;
    }
    double loss = 0.0, rc = 0.0, rr = 0.0, acc = 0.0;
    for (int i = 0; i < N; i++) {
        double hc = (double)lp_c[i] - ref_c[i], hr = (double)lp_r[i] - ref_r[i], dh;
        double t = target ? target[i] : 1.0;
        loss += pref_one(o, hc - hr, t, &dh);
        if (dlp_c)
            dlp_c[i] = (float)(dh / N);
        if (dlp_r)
            dlp_r[i] = (float)(-dh / N);
        rc += o->beta * hc;
        rr += o->beta * hr;
        acc += hc > hr ? 1.0 : 0.0;
    }
    if (st) {
        st->loss = loss / N;
        st->reward_chosen = rc / N;
        st->reward_rejected = rr / N;
        st->margin = (rc - rr) / N;
        st->accuracy = acc / N;
    }
    return ERR_OK;
}

int nn_loss_rm(const struct nn_rm_opts *o, int N, const float *r_c, const float *r_r,
               const float *margin, const float *target, float *dr_c, float *dr_r,
               struct nn_rm_stats *st)
{
    if (!o || N < 1 || !r_c || !r_r || !(o->label_smoothing >= 0.0f && o->label_smoothing <= 1.0f))
        return ERR_INVAL;
    if (target)
        for (int i = 0; i < N; i++)
            if (!(target[i] >= 0.0f && target[i] <= 1.0f))
                return ERR_INVAL;
    double loss = 0.0, acc = 0.0, sc = 0.0, sr = 0.0;
    for (int i = 0; i < N; i++) {
        double d = (double)r_c[i] - r_r[i] - (margin ? margin[i] : 0.0);
        double t = target ? target[i] : 1.0 - o->label_smoothing;
        double s = r_c[i] + (double)r_r[i];
        loss += -t * log_sigmoid(d) - (1.0 - t) * log_sigmoid(-d) + o->center * s * s;
        double dd = sigmoid(d) - t, ds = 2.0 * o->center * s;
        if (dr_c)
            dr_c[i] = (float)((dd + ds) / N);
        if (dr_r)
            dr_r[i] = (float)((-dd + ds) / N);
        acc += r_c[i] > r_r[i] ? 1.0 : 0.0;
        sc += r_c[i];
        sr += r_r[i];
    }
    if (st) {
        st->loss = loss / N;
        st->accuracy = acc / N;
        st->reward_chosen = sc / N;
        st->reward_rejected = sr / N;
        st->margin = (sc - sr) / N;
    }
    return ERR_OK;
}

/* --- contrastive --- */

static bool cl_mode_ok(enum nn_cl_mode mode)
{
    return mode == NN_CL_RESPONSES || mode == NN_CL_DIFFERENCES;
}

int nn_cl_instances(enum nn_cl_mode mode, int B, int D, const float *hc, const float *hr, float *x)
{
    if (!cl_mode_ok(mode) || B < 1 || D < 1 || !hc || !hr || !x)
        return ERR_INVAL;
    size_t n = (size_t)B * D;
    if (mode == NN_CL_RESPONSES) {
        memmove(x, hc, n * sizeof *x); /* in place: a no-op */
        memmove(x + n, hr, n * sizeof *x);
        return ERR_OK;
    }
    for (size_t i = 0; i < n; i++) {
        float c = hc[i], r = hr[i]; /* both read before either is written: in place is safe */
        x[i] = c - r;
        x[n + i] = r - c;
    }
    return ERR_OK;
}

int nn_cl_instances_backward(enum nn_cl_mode mode, int B, int D, const float *dx, float *dhc,
                             float *dhr)
{
    if (!cl_mode_ok(mode) || B < 1 || D < 1 || !dx || !dhc || !dhr)
        return ERR_INVAL;
    size_t n = (size_t)B * D;
    if (mode == NN_CL_RESPONSES) {
        memmove(dhc, dx, n * sizeof *dx);
        memmove(dhr, dx + n, n * sizeof *dx);
        return ERR_OK;
    }
    for (size_t i = 0; i < n; i++) {
        /* x_i = hc - hr and x_{B+i} = hr - hc both depend on hc and hr */
        float g = dx[i] - dx[n + i];
        dhc[i] = g;
        dhr[i] = -g;
    }
    return ERR_OK;
}

/* The scratch of one call, carved from one block: the fp64 arrays first (alignment), then fp32. */
struct cl_work {
    double *u, *u2;  /* [n, D] the normalised instances of each view */
    double *r, *r2;  /* [n] their norms, unclamped */
    double *m;       /* SimCSE [n, n] d loss / d similarity; SwAV [2, n, K] scores, then their
                        gradients */
    double *t;       /* [D] the gradient on one u */
    double *dC;      /* [K, D] the prototypes' gradient, summed in fp64 */
    float *x, *x2;   /* [n, D] the instances of NN_CL_DIFFERENCES */
    float *gx, *gx2; /* [n, D] their gradients */
    float *q;        /* [2, n, K] SwAV's codes */
};

/* Counts of doubles and floats in the scratch, false if a count would not fit in a size_t. */
static bool cl_counts(int n, int D, int K, size_t *nd, size_t *nf)
{
    if (n < 1 || D < 1 || K < 0)
        return false;
    const size_t lim = SIZE_MAX / 64; /* every product below, and their sum in bytes, fit */
    size_t nD = (size_t)n * D, nn = (size_t)n * n, nK = (size_t)n * K, KD = (size_t)K * D;
    if (nD > lim / 8 || nn > lim / 8 || nK > lim / 8 || KD > lim / 8)
        return false;
    *nd = 2 * nD + 2 * (size_t)n + (nn > 2 * nK ? nn : 2 * nK) + (size_t)D + KD;
    *nf = 4 * nD + 2 * nK;
    return true;
}

size_t nn_cl_work_size(int n, int D, int K)
{
    size_t nd, nf;
    if (!cl_counts(n, D, K, &nd, &nf))
        return 0;
    return nd * sizeof(double) + nf * sizeof(float);
}

/* Point w into `mem` (nn_cl_work_size(n, D, K) bytes), in the order cl_counts counts. */
static void cl_carve(struct cl_work *w, void *mem, int n, int D, int K)
{
    size_t nD = (size_t)n * D, nn = (size_t)n * n, nK = (size_t)n * K;
    double *d = mem;
    w->u = d;
    w->u2 = w->u + nD;
    w->r = w->u2 + nD;
    w->r2 = w->r + n;
    w->m = w->r2 + n;
    w->t = w->m + (nn > 2 * nK ? nn : 2 * nK);
    w->dC = w->t + D;
    float *f = (float *)(w->dC + (size_t)K * D);
    w->x = f;
    w->x2 = w->x + nD;
    w->gx = w->x2 + nD;
    w->gx2 = w->gx + nD;
    w->q = w->gx2 + nD;
}

/* u_i = x_i / max(|x_i|, eps) in fp64, r_i = |x_i|. */
static void cl_normalize(int n, int D, const float *x, double *u, double *r)
{
    for (int i = 0; i < n; i++) {
        const float *xi = x + (size_t)i * D;
        double *ui = u + (size_t)i * D, s = 0.0;
        for (int d = 0; d < D; d++)
            s += (double)xi[d] * xi[d];
        r[i] = sqrt(s);
        double inv = 1.0 / fmax(r[i], NN_CL_NORM_EPS);
        for (int d = 0; d < D; d++)
            ui[d] = xi[d] * inv;
    }
}

/* log sum_j exp(s a_j) of a [n], n >= 1, without overflow. */
static double log_sum_exp(int n, const double *a, double s)
{
    double mx = s * a[0];
    for (int j = 1; j < n; j++)
        mx = fmax(mx, s * a[j]);
    double z = exp(s * a[0] - mx); /* the first term, so that z > 0 */
    for (int j = 1; j < n; j++)
        z += exp(s * a[j] - mx);
    return mx + log(z);
}

/* dx = d loss / d x from t = d loss / d u for u = x / max(r, eps): (t - u (u . t)) / r above
 * the clamp, t / eps below it (the denominator is then a constant). */
static void cl_normalize_backward(int D, const double *u, double r, const double *t, float *dx)
{
    if (r > NN_CL_NORM_EPS) {
        double ut = 0.0;
        for (int d = 0; d < D; d++)
            ut += u[d] * t[d];
        for (int d = 0; d < D; d++)
            dx[d] = (float)((t[d] - u[d] * ut) / r);
    } else {
        for (int d = 0; d < D; d++)
            dx[d] = (float)(t[d] / NN_CL_NORM_EPS);
    }
}

static double dot(int D, const double *a, const double *b)
{
    double s = 0.0;
    for (int d = 0; d < D; d++)
        s += a[d] * b[d];
    return s;
}

/* The instances of both views and where their gradients go, by mode: the rows of h themselves,
 * or the differences built in the scratch. */
static void cl_inputs(enum nn_cl_mode mode, int n, int D, const float *h, const float *h2,
                      float *dh, float *dh2, struct cl_work *w, const float **x, const float **x2,
                      float **gx, float **gx2)
{
    if (mode == NN_CL_RESPONSES) {
        *x = h, *x2 = h2, *gx = dh, *gx2 = dh2;
        return;
    }
    size_t half = (size_t)(n / 2) * D;
    nn_cl_instances(mode, n / 2, D, h, h + half, w->x);
    nn_cl_instances(mode, n / 2, D, h2, h2 + half, w->x2);
    *x = w->x, *x2 = w->x2, *gx = dh ? w->gx : NULL, *gx2 = dh2 ? w->gx2 : NULL;
}

static void cl_outputs(enum nn_cl_mode mode, int n, int D, float *dh, float *dh2,
                       const struct cl_work *w)
{
    if (mode == NN_CL_RESPONSES)
        return; /* written in place */
    size_t half = (size_t)(n / 2) * D;
    if (dh)
        nn_cl_instances_backward(mode, n / 2, D, w->gx, dh, dh + half);
    if (dh2)
        nn_cl_instances_backward(mode, n / 2, D, w->gx2, dh2, dh2 + half);
}

/* Shared checks of both losses; *mem: the caller's scratch or a fresh one (*owned). */
static int cl_begin(enum nn_cl_mode mode, int n, int D, int K, const float *h, const float *h2,
                    void *work, struct cl_work *w, void **owned)
{
    *owned = NULL;
    if (!cl_mode_ok(mode) || n < 1 || D < 1 || !h || !h2)
        return ERR_INVAL;
    if (mode == NN_CL_DIFFERENCES && n % 2)
        return ERR_INVAL;
    size_t bytes = nn_cl_work_size(n, D, K);
    if (!bytes || (uintptr_t)work % _Alignof(double))
        return ERR_INVAL;
    if (!work) {
        work = *owned = malloc(bytes);
        if (!work)
            return ERR_NOMEM;
    }
    cl_carve(w, work, n, D, K);
    return ERR_OK;
}

int nn_loss_simcse(const struct nn_simcse_opts *o, int n, int D, const float *h, const float *h2,
                   float *dh, float *dh2, double *loss, void *work)
{
    if (!o || !(o->temperature > 0.0f))
        return ERR_INVAL;
    struct cl_work w;
    void *owned;
    int rc = cl_begin(o->mode, n, D, 0, h, h2, work, &w, &owned);
    if (rc)
        return rc;
    const float *x, *x2;
    float *gx, *gx2;
    cl_inputs(o->mode, n, D, h, h2, dh, dh2, &w, &x, &x2, &gx, &gx2);
    cl_normalize(n, D, x, w.u, w.r);
    cl_normalize(n, D, x2, w.u2, w.r2);

    /* Row i: s_ij = u_i . u2_j / tau; l_i = logsumexp_j s_ij - s_ii; and
     * d loss / d s_ij = (softmax_j(s_i)_j - [i == j]) / n, kept in m. */
    const double tau = o->temperature;
    double sum = 0.0;
    for (int i = 0; i < n; i++) {
        double *g = w.m + (size_t)i * n;
        for (int j = 0; j < n; j++)
            g[j] = dot(D, w.u + (size_t)i * D, w.u2 + (size_t)j * D) / tau;
        double lse = log_sum_exp(n, g, 1.0);
        sum += lse - g[i];
        for (int j = 0; j < n; j++)
            g[j] = (exp(g[j] - lse) - (i == j ? 1.0 : 0.0)) / n;
    }
    if (loss)
        *loss = sum / n;

    /* d loss / d u_i = sum_j g_ij u2_j / tau and d loss / d u2_j = sum_i g_ij u_i / tau. */
    for (int i = 0; gx && i < n; i++) {
        memset(w.t, 0, (size_t)D * sizeof *w.t);
        for (int j = 0; j < n; j++) {
            double c = w.m[(size_t)i * n + j] / tau;
            const double *v = w.u2 + (size_t)j * D;
            for (int d = 0; d < D; d++)
                w.t[d] += c * v[d];
        }
        cl_normalize_backward(D, w.u + (size_t)i * D, w.r[i], w.t, gx + (size_t)i * D);
    }
    for (int j = 0; gx2 && j < n; j++) {
        memset(w.t, 0, (size_t)D * sizeof *w.t);
        for (int i = 0; i < n; i++) {
            double c = w.m[(size_t)i * n + j] / tau;
            const double *v = w.u + (size_t)i * D;
            for (int d = 0; d < D; d++)
                w.t[d] += c * v[d];
        }
        cl_normalize_backward(D, w.u2 + (size_t)j * D, w.r2[j], w.t, gx2 + (size_t)j * D);
    }
    cl_outputs(o->mode, n, D, dh, dh2, &w);
    free(owned);
    return ERR_OK;
}

int nn_sinkhorn(int N, int K, float epsilon, int iterations, const float *scores, float *q)
{
    if (N < 1 || K < 1 || iterations < 1 || !(epsilon > 0.0f) || !scores || !q)
        return ERR_INVAL;
    size_t NK = (size_t)N * K;
    double mx = -INFINITY, total = 0.0;
    for (size_t i = 0; i < NK; i++)
        mx = fmax(mx, scores[i]);
    for (size_t i = 0; i < NK; i++) {
        q[i] = (float)exp(((double)scores[i] - mx) / epsilon); /* in place: read, then written */
        total += q[i];
    }
    for (size_t i = 0; i < NK; i++)
        q[i] = (float)(q[i] / total); /* total >= 1: the max's entry is exp(0) */
    for (int it = 0; it < iterations; it++) {
        for (int k = 0; k < K; k++) { /* each prototype's column to total 1/K */
            double s = 0.0;
            for (int i = 0; i < N; i++)
                s += q[(size_t)i * K + k];
            if (s > 0.0)
                for (int i = 0; i < N; i++)
                    q[(size_t)i * K + k] = (float)(q[(size_t)i * K + k] / (s * K));
        }
        for (int i = 0; i < N; i++) { /* each sample's row to total 1/N */
            float *row = q + (size_t)i * K;
            double s = 0.0;
            for (int k = 0; k < K; k++)
                s += row[k];
            if (s > 0.0)
                for (int k = 0; k < K; k++)
                    row[k] = (float)(row[k] / (s * N));
        }
    }
    for (size_t i = 0; i < NK; i++)
        q[i] *= (float)N;
    return ERR_OK;
}

int nn_swav_normalize(int K, int D, float *C)
{
    if (K < 1 || D < 1 || !C)
        return ERR_INVAL;
    for (int k = 0; k < K; k++) {
        float *c = C + (size_t)k * D;
        double s = 0.0;
        for (int d = 0; d < D; d++)
            s += (double)c[d] * c[d];
        double inv = 1.0 / fmax(sqrt(s), NN_CL_NORM_EPS);
        for (int d = 0; d < D; d++)
            c[d] = (float)(c[d] * inv);
    }
    return ERR_OK;
}

/* One side of the swapped prediction on row p [K] (scores) against target codes t [K]:
 * returns -t . log softmax(p / tau) and overwrites p with its gradient, times `scale`:
 * (softmax(p / tau) sum(t) - t) / tau. */
static double swav_row(int K, double tau, const float *t, double scale, double *p)
{
    double st = 0.0, l = 0.0, lse = log_sum_exp(K, p, 1.0 / tau);
    for (int k = 0; k < K; k++) {
        l -= t[k] * (p[k] / tau - lse);
        st += t[k];
    }
    for (int k = 0; k < K; k++)
        p[k] = scale * (exp(p[k] / tau - lse) * st - t[k]) / tau;
    return l;
}

int nn_loss_swav(const struct nn_swav_opts *o, int n, int D, const float *h, const float *h2,
                 const float *C, const float *codes, float *dh, float *dh2, float *dC, double *loss,
                 void *work)
{
    if (!o || !C || o->K < 1 || !(o->temperature > 0.0f) || !(o->epsilon > 0.0f) ||
        o->iterations < 1)
        return ERR_INVAL;
    const int K = o->K;
    struct cl_work w;
    void *owned;
    int rc = cl_begin(o->mode, n, D, K, h, h2, work, &w, &owned);
    if (rc)
        return rc;
    const float *x, *x2;
    float *gx, *gx2;
    cl_inputs(o->mode, n, D, h, h2, dh, dh2, &w, &x, &x2, &gx, &gx2);
    cl_normalize(n, D, x, w.u, w.r);
    cl_normalize(n, D, x2, w.u2, w.r2);

    /* scores p = u C^T, p2 = u2 C^T [n, K] */
    size_t nK = (size_t)n * K;
    double *p = w.m, *p2 = w.m + nK;
    for (int i = 0; i < n; i++)
        for (int k = 0; k < K; k++) {
            const float *c = C + (size_t)k * D;
            const double *a = w.u + (size_t)i * D, *b = w.u2 + (size_t)i * D;
            double s = 0.0, s2 = 0.0;
            for (int d = 0; d < D; d++) {
                s += a[d] * c[d];
                s2 += b[d] * c[d];
            }
            p[(size_t)i * K + k] = s;
            p2[(size_t)i * K + k] = s2;
        }
    /* the codes: targets, computed from the scores but not differentiated through */
    const float *q = codes, *q2 = codes ? codes + nK : NULL;
    if (!codes) {
        for (size_t i = 0; i < 2 * nK; i++)
            w.q[i] = (float)w.m[i];
        nn_sinkhorn(n, K, o->epsilon, o->iterations, w.q, w.q);
        nn_sinkhorn(n, K, o->epsilon, o->iterations, w.q + nK, w.q + nK);
        q = w.q, q2 = w.q + nK;
    }
    /* loss = 1/(2n) sum_i [-q_i . log softmax(p2_i / tau) - q2_i . log softmax(p_i / tau)];
     * p and p2 become d loss / d p, d p2 */
    const double tau = o->temperature, scale = 0.5 / n;
    double sum = 0.0;
    for (int i = 0; i < n; i++) {
        sum += swav_row(K, tau, q + (size_t)i * K, scale, p2 + (size_t)i * K);
        sum += swav_row(K, tau, q2 + (size_t)i * K, scale, p + (size_t)i * K);
    }
    if (loss)
        *loss = scale * sum;

    /* d loss / d C_k = sum_i dp_ik u_i + dp2_ik u2_i; d loss / d u_i = sum_k dp_ik C_k */
    if (dC) {
        memset(w.dC, 0, (size_t)K * D * sizeof *w.dC);
        for (int i = 0; i < n; i++)
            for (int k = 0; k < K; k++) {
                double g = p[(size_t)i * K + k], g2 = p2[(size_t)i * K + k];
                const double *a = w.u + (size_t)i * D, *b = w.u2 + (size_t)i * D;
                double *dc = w.dC + (size_t)k * D;
                for (int d = 0; d < D; d++)
                    dc[d] += g * a[d] + g2 * b[d];
            }
        for (size_t i = 0; i < (size_t)K * D; i++)
            dC[i] = (float)w.dC[i];
    }
    for (int v = 0; v < 2; v++) {
        float *gv = v ? gx2 : gx;
        const double *g = v ? p2 : p, *u = v ? w.u2 : w.u, *r = v ? w.r2 : w.r;
        for (int i = 0; gv && i < n; i++) {
            memset(w.t, 0, (size_t)D * sizeof *w.t);
            for (int k = 0; k < K; k++) {
                double c = g[(size_t)i * K + k];
                const float *ck = C + (size_t)k * D;
                for (int d = 0; d < D; d++)
                    w.t[d] += c * ck[d];
            }
            cl_normalize_backward(D, u + (size_t)i * D, r[i], w.t, gv + (size_t)i * D);
        }
    }
    cl_outputs(o->mode, n, D, dh, dh2, &w);
    free(owned);
    return ERR_OK;
}
