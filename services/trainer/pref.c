/* pref.c - see pref.h. */
#include "pref.h"

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
    float *ref_c = malloc((size_t)micro * sizeof *ref_c);
    float *ref_r = malloc((size_t)micro * sizeof *ref_r);
    float *tgt = malloc((size_t)micro * sizeof *tgt);
    int rc = lp && dlp && ntok && ref_c && ref_r && tgt ? ERR_OK : ERR_NOMEM;
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
        for (int i = 0; !rc && i < k; i++) {
            ref_c[i] = pairs[s + i].ref_chosen;
            ref_r[i] = pairs[s + i].ref_rejected;
            tgt[i] = pairs[s + i].target;
        }
        struct nn_pref_stats ps = {0};
        if (!rc)
            rc = nn_loss_pref(&o->loss, k, lp, lp + k, ref_c, ref_r,
                              o->loss.kind == NN_PREF_SOFT ? tgt : NULL, dlp, dlp + k, &ps);
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
                acc.kl += ((double)(lp[i] - ref_c[i]) + (double)(lp[k + i] - ref_r[i])) / n;
                acc.len_chosen += (double)ntok[i] / n;
                acc.len_rejected += (double)ntok[k + i] / n;
            }
        }
        free_rows(&r);
    }
    if (!rc) {
        size_t np = nn_model_num_params(policy);
        float *g = nn_model_grads(policy);
        acc.grad_norm = o->clip > 0 ? nn_grad_clip(g, np, o->clip) : nn_grad_norm(g, np);
        rc = nn_adamw_step(opt, nn_model_params(policy), g, np, o->lr, &o->adamw);
    }
    if (!rc && st)
        *st = acc;
    free(lp);
    free(dlp);
    free(ntok);
    free(ref_c);
    free(ref_r);
    free(tgt);
    return rc;
}
