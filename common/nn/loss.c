/* loss.c - SFT cross-entropy, the DPO family and Bradley-Terry, with gradients (fp64 inside). */
#include "loss.h"

#include <math.h>
#include <stddef.h>

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
