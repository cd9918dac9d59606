/* pref.c - see pref.h. */
#include "pref.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"

/* Rows [0, k) are chosen responses of pairs[0..k), rows [k, 2k) the rejected ones. */
struct rows {
    int B, T;
    int *tokens;  /* [B, T] */
    int *lengths; /* [B] */
    int *plens;   /* [B] */
};

static int build_rows(const struct nn_config *cfg, const struct trainer_pair *p, int k,
                      struct rows *r)
{
    int T = 0;
    for (int i = 0; i < k; i++) {
        if (p[i].prompt_len < 1 || p[i].chosen_len < 1 || p[i].rejected_len < 1)
            return ERR_INVAL;
        int a = p[i].prompt_len + p[i].chosen_len, b = p[i].prompt_len + p[i].rejected_len;
        T = a > T ? a : T;
        T = b > T ? b : T;
    }
    if (T > cfg->max_position_embeddings)
        return ERR_INVAL;
    r->B = 2 * k;
    r->T = T;
    r->tokens = calloc((size_t)r->B * (size_t)T, sizeof *r->tokens);
    r->lengths = malloc((size_t)r->B * sizeof *r->lengths);
    r->plens = malloc((size_t)r->B * sizeof *r->plens);
    if (!r->tokens || !r->lengths || !r->plens)
        return ERR_NOMEM;
    for (int i = 0; i < k; i++) {
        for (int side = 0; side < 2; side++) {
            int row = side * k + i;
            const int *resp = side ? p[i].rejected : p[i].chosen;
            int rlen = side ? p[i].rejected_len : p[i].chosen_len;
            int *dst = r->tokens + (size_t)row * (size_t)T;
            memcpy(dst, p[i].prompt, (size_t)p[i].prompt_len * sizeof *dst);
            memcpy(dst + p[i].prompt_len, resp, (size_t)rlen * sizeof *dst);
            r->lengths[row] = p[i].prompt_len + rlen;
            r->plens[row] = p[i].prompt_len;
        }
    }
    return ERR_OK;
}

static void free_rows(struct rows *r)
{
    free(r->tokens);
    free(r->lengths);
    free(r->plens);
    memset(r, 0, sizeof *r);
}

/* Forward k pairs; logp [2k] (chosen rows then rejected rows), ntok [2k]. */
static int forward_pairs(nn_model_t *m, const struct trainer_pair *p, int k, bool train,
                         struct rows *r, float *logp, int *ntok)
{
    int rc = build_rows(nn_model_config(m), p, k, r);
    if (!rc)
        rc = nn_model_reserve(m, r->B, r->T, train);
    if (rc)
        return rc;
    struct nn_batch b = {.B = r->B, .T = r->T, .tokens = r->tokens, .lengths = r->lengths};
    struct nn_fwd_opts fo = {.logits = true};
    rc = nn_model_forward(m, &b, &fo);
    if (!rc)
        rc = nn_model_seq_logprobs(m, r->plens, logp, ntok);
    return rc;
}

/* The loss of one pair at h' = h - m / beta (the margin already taken), under the pair's label
 * treatment (pref.h, trainer_pref_loss), and d loss / d h' into *dh. ERR_INVAL from
 * nn_loss_pref or for a label_arg outside its range. */
static int pair_loss(const struct nn_pref_opts *o, const struct trainer_pair *p, double hp,
                     double *loss, double *dh)
{
    struct nn_pref_opts one = *o;
    float t = p->target, w = 1.0f; /* w: weight of the label's term; 1 - w of its flip's */
    switch (p->label) {
    case TRAINER_LABEL_AS_LOSS:
        break;
    case TRAINER_LABEL_SMOOTH:
    case TRAINER_LABEL_SOFT: {
        float a = p->label_arg;
        if (!(a >= 0.0f && a <= 1.0f))
            return ERR_INVAL;
        float prob = p->label == TRAINER_LABEL_SMOOTH ? 1.0f - a : a; /* P(chosen better) */
        if (o->kind == NN_PREF_IPO || o->kind == NN_PREF_SLIC) {
            w = prob; /* the mixture below */
        } else if (o->kind == NN_PREF_ROBUST && p->label == TRAINER_LABEL_SMOOTH) {
            one.eps = a; /* nn_loss_pref refuses e >= 0.5 */
        } else {
            one.kind = NN_PREF_SOFT;
            t = prob;
        }
        break;
    }
    default:
        return ERR_INVAL;
    }
    /* nn_loss_pref sees h' as lp_c with the other three 0: the loss depends on h alone. */
    const float zero = 0.0f, pos = (float)hp, neg = (float)-hp;
    struct nn_pref_stats a, b = {0};
    float da = 0.0f, db = 0.0f;
    int rc = nn_loss_pref(&one, 1, &pos, &zero, &zero, &zero, &t, &da, NULL, &a);
    if (!rc && w < 1.0f)
        rc = nn_loss_pref(&one, 1, &neg, &zero, &zero, &zero, &t, &db, NULL, &b);
    if (rc)
        return rc;
    /* L(h') with weight w, and the flipped label's L(-h') with 1 - w: d/dh' of the second is
     * -L'(-h') */
    *loss = w * a.loss + (1.0 - w) * b.loss;
    *dh = w * (double)da - (1.0 - w) * (double)db;
    return ERR_OK;
}

int trainer_pref_loss(const struct nn_pref_opts *o, int n, const float *lp_c, const float *lp_r,
                      const struct trainer_pair *pairs, float *dlp_c, float *dlp_r,
                      struct nn_pref_stats *st)
{
    if (!o || n < 1 || !lp_c || !lp_r || !pairs || !(o->beta > 0.0f))
        return ERR_INVAL;
    double loss = 0.0, rc_sum = 0.0, rr_sum = 0.0, acc = 0.0;
    for (int i = 0; i < n; i++) {
        const struct trainer_pair *p = &pairs[i];
        if (!isfinite(p->margin))
            return ERR_INVAL;
        double hc = (double)lp_c[i] - p->ref_chosen, hr = (double)lp_r[i] - p->ref_rejected;
        double l, dh;
        int rc = pair_loss(o, p, hc - hr - (double)p->margin / o->beta, &l, &dh);
        if (rc)
            return rc;
        loss += l;
        if (dlp_c)
            dlp_c[i] = (float)(dh / n);
        if (dlp_r)
            dlp_r[i] = (float)(-dh / n);
        rc_sum += o->beta * hc;
        rr_sum += o->beta * hr;
        acc += hc > hr ? 1.0 : 0.0;
    }
    if (st) {
        st->loss = loss / n;
        st->reward_chosen = rc_sum / n;
        st->reward_rejected = rr_sum / n;
        st->margin = (rc_sum - rr_sum) / n;
        st->accuracy = acc / n;
    }
    return ERR_OK;
}

int trainer_logprobs(nn_model_t *m, const struct trainer_pair *pairs, int n, int micro,
                     float *out_chosen, float *out_rejected)
{
    if (n < 1)
        return ERR_INVAL;
    if (micro <= 0 || micro > n)
        micro = n;
    float *logp = malloc(2 * (size_t)micro * sizeof *logp);
    if (!logp)
        return ERR_NOMEM;
    int rc = ERR_OK;
    for (int s = 0; !rc && s < n; s += micro) {
        int k = n - s < micro ? n - s : micro;
        struct rows r = {0};
        rc = forward_pairs(m, pairs + s, k, false, &r, logp, NULL);
        if (!rc) {
            memcpy(out_chosen + s, logp, (size_t)k * sizeof *logp);
            memcpy(out_rejected + s, logp + k, (size_t)k * sizeof *logp);
        }
        free_rows(&r);
    }
    free(logp);
    return rc;
}

int trainer_pref_step(nn_model_t *policy, nn_adamw_t *opt, const struct trainer_pair *pairs, int n,
                      const struct trainer_step_opts *o, struct trainer_step_stats *st)
{
    if (n < 1)
        return ERR_INVAL;
    int micro = o->micro <= 0 || o->micro > n ? n : o->micro;
    float *lp = malloc(2 * (size_t)micro * sizeof *lp);
    float *dlp = malloc(2 * (size_t)micro * sizeof *dlp);
    int *ntok = malloc(2 * (size_t)micro * sizeof *ntok);
    int rc = lp && dlp && ntok ? ERR_OK : ERR_NOMEM;
    struct trainer_step_stats acc = {0};
    if (!rc) {
        /* reserve first so the gradients exist before they are zeroed */
        rc = nn_model_reserve(policy, 2 * micro, 1, true);
    }
    if (!rc)
        rc = nn_model_zero_grad(policy);
    for (int s = 0; !rc && s < n; s += micro) {
        int k = n - s < micro ? n - s : micro;
        struct rows r = {0};
        rc = forward_pairs(policy, pairs + s, k, true, &r, lp, ntok);
        struct nn_pref_stats ps = {0};
        if (!rc)
            rc = trainer_pref_loss(&o->loss, k, lp, lp + k, pairs + s, dlp, dlp + k, &ps);
        if (!rc && o->nll > 0) {
            /* RPO: alpha * mean over the micro-batch of the chosen response's per-token NLL
             * (or, with nll_sum, of its NLL summed over its tokens). */
            for (int i = 0; i < k; i++) {
                int len = o->nll_sum ? 1 : ntok[i];
                ps.loss += (double)o->nll * -(double)lp[i] / len / k;
                dlp[i] -= o->nll / (float)len / (float)k;
            }
        }
        if (!rc) {
            /* The loss is a mean over this micro-batch; weight it to a mean over the batch. */
            double w = (double)k / n;
            for (int i = 0; i < 2 * k; i++)
                dlp[i] = (float)(dlp[i] * w);
            struct nn_bwd_in in = {.dlogp = dlp};
            rc = nn_model_backward(policy, &in);
            acc.pref.loss += w * ps.loss;
            acc.pref.reward_chosen += w * ps.reward_chosen;
            acc.pref.reward_rejected += w * ps.reward_rejected;
            acc.pref.margin += w * ps.margin;
            acc.pref.accuracy += w * ps.accuracy;
            for (int i = 0; i < k; i++) {
                const struct trainer_pair *p = &pairs[s + i];
                acc.kl +=
                    ((double)(lp[i] - p->ref_chosen) + (double)(lp[k + i] - p->ref_rejected)) / n;
                acc.len_chosen += (double)ntok[i] / n;
                acc.len_rejected += (double)ntok[k + i] / n;
            }
        }
        free_rows(&r);
    }
    if (!rc) {
        size_t np = nn_model_num_params(policy);
        float *g = nn_model_grads(policy);
        rc = nn_adamw_step_clip(opt, nn_model_params(policy), g, np, o->lr, o->clip, &o->adamw,
                                &acc.grad_norm);
    }
    if (!rc && st)
        *st = acc;
    free(lp);
    free(dlp);
    free(ntok);
    return rc;
}
