/* rm_loss.c - see rm_loss.h. */
#include "rm_loss.h"

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"

struct trainer_rm_loss {
    nn_model_t *m;
    struct trainer_rm_loss_opts o;
    int max_pairs, C;
    /* per view: rewards [2B], their gradient [2B], last hidden [2B, C], its gradient [2B, C] */
    float *r[2], *dr[2], *h[2], *dh[2];
    float *logp, *dlogp;     /* [2B] the LM term (rows B..2B-1 get no gradient) */
    int *ntok;               /* [2B] */
    void *work;              /* the contrastive losses' scratch */
    float *protos, *dprotos; /* SwAV [K, C] */
    size_t nprotos;
};

static void seterr(char *err, size_t errlen, const char *msg)
{
    if (err && errlen)
        snprintf(err, errlen, "%s", msg);
}

int trainer_rm_loss_views(const struct trainer_rm_loss_opts *o)
{
    return o->cl != TRAINER_RM_CL_NONE && o->cl_weight > 0.0f ? 2 : 1;
}

uint64_t trainer_rm_view_seed(uint64_t step_seed, int view)
{
    uint64_t s = step_seed ^ (0x6a09e667f3bcc909ULL * (uint64_t)(view + 1));
    return nn_rng_next(&s);
}

void trainer_rm_loss_destroy(trainer_rm_loss_t **pl)
{
    if (!pl || !*pl)
        return;
    trainer_rm_loss_t *l = *pl;
    for (int v = 0; v < 2; v++) {
        free(l->r[v]);
        free(l->dr[v]);
        free(l->h[v]);
        free(l->dh[v]);
    }
    free(l->logp);
    free(l->dlogp);
    free(l->ntok);
    free(l->work);
    free(l->protos);
    free(l->dprotos);
    free(l);
    *pl = NULL;
}

int trainer_rm_loss_new(trainer_rm_loss_t **out, nn_model_t *m,
                        const struct trainer_rm_loss_opts *o, int max_pairs, uint64_t proto_seed,
                        char *err, size_t errlen)
{
    *out = NULL;
    const struct nn_config *cfg = nn_model_config(m);
    if (!cfg->reward_head) {
        seterr(err, errlen, "the model has no reward head");
        return ERR_INVAL;
    }
    if (max_pairs < 1) {
        seterr(err, errlen, "max_pairs must be at least 1");
        return ERR_INVAL;
    }
    if (!(o->lm >= 0.0f) || !(o->cl_weight >= 0.0f) || !(o->dropout >= 0.0f && o->dropout < 1.0f) ||
        !(o->rm.label_smoothing >= 0.0f && o->rm.label_smoothing <= 1.0f) ||
        !(o->rm.center >= 0.0f)) {
        seterr(err, errlen, "a weight, the dropout or the label smoothing is out of range");
        return ERR_INVAL;
    }
    if (o->cl != TRAINER_RM_CL_NONE && o->cl != TRAINER_RM_CL_SIMCSE &&
        o->cl != TRAINER_RM_CL_SWAV) {
        seterr(err, errlen, "unknown contrastive loss");
        return ERR_INVAL;
    }
    trainer_rm_loss_t *l = calloc(1, sizeof *l);
    if (!l)
        return ERR_NOMEM;
    l->m = m;
    l->o = *o;
    l->max_pairs = max_pairs;
    l->C = cfg->hidden_size;
    size_t n = 2 * (size_t)max_pairs, nc = n * (size_t)l->C;
    int V = trainer_rm_loss_views(o);
    bool ok = true;
    for (int v = 0; v < V; v++) {
        l->r[v] = malloc(n * sizeof(float));
        l->dr[v] = malloc(n * sizeof(float));
        l->h[v] = malloc(nc * sizeof(float));
        l->dh[v] = malloc(nc * sizeof(float));
        ok = ok && l->r[v] && l->dr[v] && l->h[v] && l->dh[v];
    }
    l->logp = malloc(n * sizeof(float));
    l->dlogp = malloc(n * sizeof(float));
    l->ntok = malloc(n * sizeof(int));
    ok = ok && l->logp && l->dlogp && l->ntok;
    if (ok && V == 2) {
        bool swav = o->cl == TRAINER_RM_CL_SWAV;
        int K = swav ? o->swav.K : 0;
        if (swav && (K < 1 || !(o->swav.temperature > 0.0f) || !(o->swav.epsilon > 0.0f) ||
                     o->swav.iterations < 1)) {
            seterr(err, errlen, "SwAV needs K, temperature, epsilon and iterations above 0");
            trainer_rm_loss_destroy(&l);
            return ERR_INVAL;
        }
        if (!swav && !(o->simcse.temperature > 0.0f)) {
            seterr(err, errlen, "SimCSE needs a temperature above 0");
            trainer_rm_loss_destroy(&l);
            return ERR_INVAL;
        }
        size_t ws = nn_cl_work_size((int)n, l->C, K);
        l->work = ws ? malloc(ws) : NULL;
        ok = l->work != NULL;
        if (ok && swav) {
            l->nprotos = (size_t)K * (size_t)l->C;
            l->protos = malloc(l->nprotos * sizeof(float));
            l->dprotos = calloc(l->nprotos, sizeof(float));
            ok = l->protos && l->dprotos;
            uint64_t s = proto_seed ^ 0x3c6ef372fe94f82bULL;
            for (size_t i = 0; ok && i < l->nprotos; i++)
                l->protos[i] = nn_rng_normal(&s);
            if (ok)
                nn_swav_normalize(K, l->C, l->protos);
        }
    }
    if (!ok) {
        trainer_rm_loss_destroy(&l);
        seterr(err, errlen, "out of memory");
        return ERR_NOMEM;
    }
    *out = l;
    return ERR_OK;
}

float *trainer_rm_loss_prototypes(trainer_rm_loss_t *l, size_t *n)
{
    *n = l->nprotos;
    return l->protos;
}

float *trainer_rm_loss_prototype_grads(trainer_rm_loss_t *l, size_t *n)
{
    *n = l->nprotos;
    return l->dprotos;
}

/* Forward view v of batch b (logits when the LM term is on and v is view 0). */
static int forward(trainer_rm_loss_t *l, const struct trainer_rm_batch *b, int V, int v,
                   uint64_t step_seed)
{
    struct nn_batch nb = {.B = 2 * b->B, .T = b->T, .tokens = b->tokens, .lengths = b->lengths};
    struct nn_fwd_opts fo = {.logits = l->o.lm > 0.0f && v == 0,
                             .dropout = V == 2 ? l->o.dropout : 0.0f,
                             .dropout_seed = trainer_rm_view_seed(step_seed, v)};
    return nn_model_forward(l->m, &nb, &fo);
}

int trainer_rm_loss_run(trainer_rm_loss_t *l, const struct trainer_rm_batch *b, uint64_t step_seed,
                        struct trainer_rm_parts *out)
{
    if (!b || b->B < 1 || !b->tokens || !b->lengths || (l->o.lm > 0.0f && !b->prompt_lens))
        return ERR_INVAL;
    if (b->B > l->max_pairs)
        return ERR_TOOBIG;
    const struct trainer_rm_loss_opts *o = &l->o;
    int B = b->B, n = 2 * B, C = l->C, V = trainer_rm_loss_views(o);
    bool lm = o->lm > 0.0f;
    size_t nc = (size_t)n * (size_t)C;
    struct trainer_rm_parts p = {.views = V};
    int rc = nn_model_zero_grad(l->m);
    if (rc)
        return rc;
    if (l->dprotos)
        memset(l->dprotos, 0, l->nprotos * sizeof(float));
    for (int v = 0; v < V; v++) {
        rc = forward(l, b, V, v, step_seed);
        if (rc)
            return rc;
        memcpy(l->r[v], nn_model_rewards(l->m), (size_t)n * sizeof(float));
        if (V == 2)
            memcpy(l->h[v], nn_model_last_hidden(l->m), nc * sizeof(float));
        struct nn_rm_stats st;
        rc = nn_loss_rm(&o->rm, B, l->r[v], l->r[v] + B, b->margin, b->target, l->dr[v],
                        l->dr[v] + B, &st);
        if (rc)
            return rc;
        p.rm += st.loss / V;
        for (int i = 0; i < n; i++)
            l->dr[v][i] /= (float)V;
        if (v == 0) {
            p.accuracy = st.accuracy;
            p.reward_chosen = st.reward_chosen;
            p.reward_rejected = st.reward_rejected;
        }
        if (v == 0 && lm) {
            rc = nn_model_seq_logprobs(l->m, b->prompt_lens, l->logp, l->ntok);
            if (!rc)
                rc = nn_loss_sft(B, l->logp, l->ntok, 0.0, l->dlogp, &p.lm);
            if (rc)
                return rc;
            for (int i = 0; i < B; i++)
                l->dlogp[i] *= o->lm;
            for (int i = B; i < n; i++)
                l->dlogp[i] = 0.0f;
        }
    }
    if (V == 2) {
        if (o->cl == TRAINER_RM_CL_SIMCSE)
            rc = nn_loss_simcse(&o->simcse, n, C, l->h[0], l->h[1], l->dh[0], l->dh[1], &p.cl,
                                l->work);
        else
            rc = nn_loss_swav(&o->swav, n, C, l->h[0], l->h[1], l->protos, NULL, l->dh[0], l->dh[1],
                              l->dprotos, &p.cl, l->work);
        if (rc)
            return rc;
        for (int v = 0; v < 2; v++)
            for (size_t i = 0; i < nc; i++)
                l->dh[v][i] *= o->cl_weight;
        for (size_t i = 0; i < l->nprotos; i++)
            l->dprotos[i] *= o->cl_weight;
    }
    /* The model holds view V-1's activations: its backward first, then view 0 again. */
    int last = V - 1;
    struct nn_bwd_in bi = {.dlogp = last == 0 && lm ? l->dlogp : NULL,
                           .dreward = l->dr[last],
                           .dlast_hidden = V == 2 ? l->dh[last] : NULL};
    rc = nn_model_backward(l->m, &bi);
    if (!rc && V == 2) {
        rc = forward(l, b, V, 0, step_seed);
        if (!rc && lm) /* the backward's dlogp needs the prompt lengths of this forward */
            rc = nn_model_seq_logprobs(l->m, b->prompt_lens, l->logp, l->ntok);
        if (!rc) {
            struct nn_bwd_in b0 = {
                .dlogp = lm ? l->dlogp : NULL, .dreward = l->dr[0], .dlast_hidden = l->dh[0]};
            rc = nn_model_backward(l->m, &b0);
        }
    }
    if (rc)
        return rc;
    p.total =
        p.rm + (V == 2 ? (double)o->cl_weight * p.cl : 0.0) + (lm ? (double)o->lm * p.lm : 0.0);
    if (!isfinite(p.total))
        return ERR_INVAL;
    if (out)
        *out = p;
    return ERR_OK;
}
