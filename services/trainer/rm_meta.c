/* rm_meta.c - see rm_meta.h. */
#include "rm_meta.h"

#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ckpt.h"
#include "err.h"
#include "log.h"
#include "rm.h"
#include "sha256.h"

/* ---- J and the step ----------------------------------------------------------------------- */

int trainer_rm_meta_j(int P, int k, const float *r, double *J, float *dr)
{
    if (P < 1 || k < 2 || k > TRAINER_RM_META_K_MAX)
        return ERR_INVAL;
    for (size_t i = 0; i < (size_t)P * (size_t)k; i++)
        if (!isfinite(r[i]))
            return ERR_INVAL;
    double c = 2.0 / ((double)k * (double)k) / (double)P, sum = 0.0;
    for (int p = 0; p < P; p++) {
        const float *rp = r + (size_t)p * (size_t)k;
        double g[TRAINER_RM_META_K_MAX] = {0};
        for (int i = 0; i < k; i++)
            for (int j = i + 1; j < k; j++) {
                double d = (double)rp[i] - (double)rp[j];
                double s = 1.0 / (1.0 + exp(-fabs(d)));
                sum += s;
                /* d s(|d|) / d r_i = s (1 - s) sign(d); sign(0) = 0, as torch.abs. Rewards
                 * within fp32 rounding of each other count as tied: identical responses in
                 * other rows of a batch may differ in the last bit (the matrix kernels' blocking),
                 * and sign() of that noise would be a full-size gradient. */
                double tie = TRAINER_RM_META_TIE * (fabs((double)rp[i]) + fabs((double)rp[j]));
                double sg = fabs(d) <= tie ? 0.0 : d > 0 ? 1.0 : -1.0;
                double ds = s * (1.0 - s) * sg;
                g[i] += ds;
                g[j] -= ds;
            }
        for (int i = 0; dr && i < k; i++)
            dr[(size_t)p * (size_t)k + (size_t)i] = (float)(c * g[i]);
    }
    *J = c * sum;
    return ERR_OK;
}

int trainer_rm_meta_validate(const struct trainer_rm_meta_opts *o, char *err, size_t errlen)
{
#define BAD(...)                                                                                   \
    do {                                                                                           \
        err_fmt(err, errlen, __VA_ARGS__);                                                         \
        return ERR_INVAL;                                                                          \
    } while (0)
    if (!o->on)
        return ERR_OK;
    if (!(o->lr >= 0.0f) || !isfinite(o->lr))
        BAD("--meta-lr is %g, must be >= 0", (double)o->lr);
    if (o->k < 2 || o->k > TRAINER_RM_META_K_MAX)
        BAD("--meta-k is %d, must be in [2, %d]", o->k, TRAINER_RM_META_K_MAX);
    if (o->prompts < 1)
        BAD("--meta-prompts is %d, must be >= 1", o->prompts);
    if (o->batch < 1)
        BAD("--meta-batch is %d, must be >= 1", o->batch);
    if (!(o->temperature > 0.0f) || !isfinite(o->temperature))
        BAD("--meta-temperature is %g, must be > 0", (double)o->temperature);
    if (o->max_new_tokens < 1)
        BAD("--meta-max-new-tokens is %d, must be >= 1", o->max_new_tokens);
    if (o->policy_version < -1 || o->policy_version > UINT32_MAX)
        BAD("--meta-policy-version is %ld, must be -1 (the newest) or a version",
            o->policy_version);
    if (o->timeout_ms < 1)
        BAD("--meta-timeout must be > 0");
#undef BAD
    return ERR_OK;
}

int trainer_rm_meta_grad(nn_model_t *m, trainer_rm_loss_t *loss,
                         const struct trainer_rm_meta_batch *mb, float eta,
                         const struct trainer_rm_batch *b, uint64_t step_seed, float *scratch,
                         double *J, struct trainer_rm_parts *pt, char *err, size_t errlen)
{
    int rows = mb->P * mb->k;
    struct nn_batch nb = {.B = rows, .T = mb->T, .tokens = mb->tokens, .lengths = mb->lengths};
    struct nn_fwd_opts fo = {.logits = false};
    int rc = nn_model_forward(m, &nb, &fo);
    if (rc) {
        err_fmt(err, errlen, "the meta batch's forward: %s", err_str(rc));
        return rc;
    }
    size_t np = nn_model_num_params(m);
    float *saved = scratch, *dr = scratch + np;
    double j = 0.0;
    rc = trainer_rm_meta_j(mb->P, mb->k, nn_model_rewards(m), &j, dr);
    if (rc) {
        err_fmt(err, errlen, "the meta batch's rewards are not finite (lower --lr or --meta-lr)");
        return rc;
    }
    if (J)
        *J = j;
    struct nn_bwd_in in = {.dreward = dr};
    rc = nn_model_zero_grad(m);
    if (!rc)
        rc = nn_model_backward(m, &in);
    if (rc) {
        err_fmt(err, errlen, "the meta batch's backward: %s", err_str(rc));
        return rc;
    }
    float *w = nn_model_params(m);
    const float *g = nn_model_grads(m);
    memcpy(saved, w, np * sizeof(float));
    for (size_t i = 0; i < np; i++)
        w[i] += eta * g[i]; /* ascent: J is maximised */
    rc = trainer_rm_loss_run(loss, b, step_seed, pt);
    memcpy(w, saved, np * sizeof(float));
    if (rc)
        err_fmt(err, errlen, "the loss at the adapted weights: %s%s", err_str(rc),
                rc == ERR_INVAL ? " (a non-finite loss: lower --lr or --meta-lr)" : "");
    return rc;
}

int trainer_rm_meta_step(nn_model_t *m, trainer_rm_loss_t *loss, nn_adamw_t *opt, nn_adamw_t *popt,
                         const struct trainer_rm_meta_batch *mb, float eta,
                         const struct trainer_rm_batch *b, uint64_t step_seed, float lr, float clip,
                         const struct nn_adamw_opts *ao, float *scratch, double *J,
                         struct trainer_rm_parts *pt, char *err, size_t errlen)
{
    int rc = trainer_rm_meta_grad(m, loss, mb, eta, b, step_seed, scratch, J, pt, err, errlen);
    return rc ? rc : trainer_rm_apply(loss, m, opt, popt, lr, clip, ao, err, errlen);
}

/* ---- the meta set in a training ----------------------------------------------------------- */

struct trainer_rm_meta {
    struct trainer_rm_meta_opts o;
    uint32_t policy_version;
    char digest[65];
    int k, P, maxT, pad;
    size_t nprompts, skipped; /* prompts kept, prompts too long for max_len */
    int **seq;                /* [nprompts * k] */
    int *len;
    uint64_t seed;
    size_t *perm;
    long perm_pass;
    int *tokens, *lens; /* one meta batch */
    float *scratch;
    double j_sum;
    long j_n;
};

void trainer_rm_meta_destroy(trainer_rm_meta_t **tp)
{
    trainer_rm_meta_t *t = tp ? *tp : NULL;
    if (!t)
        return;
    for (size_t i = 0; t->seq && i < t->nprompts * (size_t)t->k; i++)
        free(t->seq[i]);
    free(t->seq);
    free(t->len);
    free(t->perm);
    free(t->tokens);
    free(t->lens);
    free(t->scratch);
    free(t);
    *tp = NULL;
}

/* Prompt p's k sequences into t (at slot t->nprompts); 1 when the prompt leaves no room. */
static int encode_prompt(trainer_rm_meta_t *t, const tok_t *tk, const struct trainer_rm_meta_set *s,
                         size_t p, int max_len)
{
    int *pids = NULL;
    size_t np = 0;
    char *rendered = NULL, why[256];
    unsigned flags = tok_wants_bos(tk) ? TOK_ADD_BOS : 0;
    int rc = tok_encode_prompt(tk, s->prompts[p], flags, &pids, &np, why, sizeof why);
    if (rc)
        return rc;
    size_t ne = tok_eos_id(tk) >= 0 ? 1 : 0;
    if (np < 1 || np + 1 + ne > (size_t)max_len) {
        free(pids);
        return 1;
    }
    rc = tok_render_prompt(tk, s->prompts[p], &rendered);
    size_t base = t->nprompts * (size_t)t->k;
    for (int i = 0; !rc && i < t->k; i++) {
        bool cut;
        rc = trainer_rm_encode_response(tk, pids, np, rendered,
                                        s->responses[p * (size_t)s->k + (size_t)i], max_len,
                                        &t->seq[base + (size_t)i], &t->len[base + (size_t)i], &cut);
        if (!rc && t->len[base + (size_t)i] > t->maxT)
            t->maxT = t->len[base + (size_t)i];
    }
    free(pids);
    free(rendered);
    return rc;
}

int trainer_rm_meta_new(trainer_rm_meta_t **out, const struct trainer_rm_meta_set *set,
                        const struct trainer_rm_meta_opts *o, const tok_t *tk, int max_len,
                        uint64_t seed, char *err, size_t errlen)
{
    *out = NULL;
    if (!set || !o->on) {
        err_fmt(err, errlen, "%s", set ? "a meta set without --meta" : "--meta without a meta set");
        return ERR_INVAL;
    }
    int rc = trainer_rm_meta_validate(o, err, errlen);
    if (rc)
        return rc;
    if (set->k != o->k || set->nprompts < 1) {
        err_fmt(err, errlen, "the meta set has %zu prompts of %d responses, --meta-k is %d",
                set->nprompts, set->k, o->k);
        return ERR_INVAL;
    }
    trainer_rm_meta_t *t = calloc(1, sizeof *t);
    size_t nseq = set->nprompts * (size_t)set->k;
    if (t) {
        t->seq = calloc(nseq, sizeof *t->seq);
        t->len = calloc(nseq, sizeof *t->len);
        t->perm = calloc(set->nprompts, sizeof *t->perm);
    }
    if (!t || !t->seq || !t->len || !t->perm) {
        trainer_rm_meta_destroy(&t);
        err_fmt(err, errlen, "out of memory");
        return ERR_NOMEM;
    }
    t->o = *o;
    t->k = set->k;
    t->seed = seed;
    t->perm_pass = -1;
    t->policy_version = set->policy_version;
    memcpy(t->digest, set->digest, sizeof t->digest);
    t->pad = tok_pad_id(tk) >= 0 ? tok_pad_id(tk) : 0;
    for (size_t p = 0; p < set->nprompts; p++) {
        rc = encode_prompt(t, tk, set, p, max_len);
        if (rc < 0) {
            err_fmt(err, errlen, "the meta set's prompt %zu: %s", p, err_str(rc));
            trainer_rm_meta_destroy(&t);
            return rc;
        }
        if (rc == 1)
            t->skipped++;
        else
            t->nprompts++;
    }
    if (!t->nprompts) {
        err_fmt(err, errlen, "every prompt of the meta set is too long for --max-len %d", max_len);
        trainer_rm_meta_destroy(&t);
        return ERR_INVAL;
    }
    t->P = o->batch < (int)t->nprompts ? o->batch : (int)t->nprompts;
    log_info("rm meta: %zu prompts x %d responses of policy v%u (%zu left out, too long), %d "
             "prompts a step, eta %g",
             t->nprompts, t->k, t->policy_version, t->skipped, t->P, (double)o->lr);
    *out = t;
    return ERR_OK;
}

int trainer_rm_meta_reserve(trainer_rm_meta_t *t, nn_model_t *m, char *err, size_t errlen)
{
    size_t rows = (size_t)t->P * (size_t)t->k;
    t->tokens = malloc(rows * (size_t)t->maxT * sizeof(int));
    t->lens = malloc(rows * sizeof(int));
    t->scratch = malloc((nn_model_num_params(m) + rows) * sizeof(float));
    if (!t->tokens || !t->lens || !t->scratch) {
        err_fmt(err, errlen, "out of memory");
        return ERR_NOMEM;
    }
    int rc = nn_model_reserve(m, (int)rows, t->maxT, true);
    if (rc)
        err_fmt(err, errlen, "reserving a meta batch of %zu x %d tokens: %s", rows, t->maxT,
                err_str(rc));
    return rc;
}

json_t *trainer_rm_meta_settings(const trainer_rm_meta_t *t)
{
    return json_pack("{s:f, s:i, s:i, s:s, s:I, s:I}", "lr", (double)t->o.lr, "k", t->k, "batch",
                     t->P, "digest", t->digest, "policy_version", (json_int_t)t->policy_version,
                     "prompts", (json_int_t)t->nprompts);
}

/* Pass e's order of the prompts, from (seed, e). */
static void make_perm(trainer_rm_meta_t *t, long e)
{
    trainer_rm_shuffle(t->perm, t->nprompts,
                       (t->seed ^ 0x6a09e667f3bcc909ULL) + (uint64_t)e * 0xbb67ae8584caa73bULL);
    t->perm_pass = e;
}

int trainer_rm_meta_train_step(trainer_rm_meta_t *t, trainer_rm_loss_t *loss, nn_model_t *m,
                               nn_adamw_t *opt, nn_adamw_t *popt, const struct trainer_rm_batch *b,
                               long step, uint64_t step_seed, float lr, float clip,
                               const struct nn_adamw_opts *ao, struct trainer_rm_parts *pt,
                               char *err, size_t errlen)
{
    long per_pass = (long)(t->nprompts / (size_t)t->P);
    long e = step / per_pass, j = step % per_pass;
    if (t->perm_pass != e)
        make_perm(t, e);
    int T = 1;
    for (int i = 0; i < t->P; i++) {
        size_t base = t->perm[(size_t)j * (size_t)t->P + (size_t)i] * (size_t)t->k;
        for (int q = 0; q < t->k; q++)
            T = t->len[base + (size_t)q] > T ? t->len[base + (size_t)q] : T;
    }
    for (int i = 0; i < t->P; i++) {
        size_t base = t->perm[(size_t)j * (size_t)t->P + (size_t)i] * (size_t)t->k;
        for (int q = 0; q < t->k; q++) {
            size_t row = (size_t)i * (size_t)t->k + (size_t)q;
            int n = t->len[base + (size_t)q];
            int *dst = t->tokens + row * (size_t)T;
            memcpy(dst, t->seq[base + (size_t)q], (size_t)n * sizeof(int));
            for (int x = n; x < T; x++)
                dst[x] = t->pad;
            t->lens[row] = n;
        }
    }
    struct trainer_rm_meta_batch mb = {
        .P = t->P, .k = t->k, .T = T, .tokens = t->tokens, .lengths = t->lens};
    double J = 0.0;
    int rc = trainer_rm_meta_step(m, loss, opt, popt, &mb, t->o.lr, b, step_seed, lr, clip, ao,
                                  t->scratch, &J, pt, err, errlen);
    if (rc)
        return rc;
    t->j_sum += J;
    t->j_n++;
    if (step == 0 || (step + 1) % 50 == 0) {
        log_info("rm meta: step %ld: J %.5f (mean of %ld steps)", step + 1,
                 t->j_sum / (double)t->j_n, t->j_n);
        t->j_sum = 0.0;
        t->j_n = 0;
    }
    return ERR_OK;
}

/* ---- the meta set from the sampler -------------------------------------------------------- */

void trainer_rm_meta_set_digest(struct trainer_rm_meta_set *s)
{
    struct sha256 h;
    sha256_init(&h);
    char head[64];
    int n = snprintf(head, sizeof head, "v%u k%d n%zu", s->policy_version, s->k, s->nprompts);
    sha256_update(&h, head, (size_t)n + 1);
    for (size_t p = 0; p < s->nprompts; p++) {
        sha256_update(&h, s->prompts[p], strlen(s->prompts[p]) + 1);
        for (int i = 0; i < s->k; i++) {
            const char *r = s->responses[p * (size_t)s->k + (size_t)i];
            sha256_update(&h, r, strlen(r) + 1);
        }
    }
    uint8_t d[SHA256_DIGEST_LEN];
    sha256_final(&h, d);
    sha256_hex(d, s->digest);
}

void trainer_rm_meta_set_free(struct trainer_rm_meta_set *s)
{
    for (size_t p = 0; s->prompts && p < s->nprompts; p++)
        free(s->prompts[p]);
    for (size_t i = 0; s->responses && i < s->nprompts * (size_t)s->k; i++)
        free(s->responses[i]);
    free(s->prompts);
    free(s->responses);
    memset(s, 0, sizeof *s);
}

struct keyed {
    char key[65]; /* sha256 of the text */
    const char *text;
};

static int by_key(const void *a, const void *b)
{
    return strcmp(((const struct keyed *)a)->key, ((const struct keyed *)b)->key);
}

/* The distinct prompts of d's training pairs, ordered by the sha256 of their text: *out
 * malloc'd (borrowing d's strings), *n of them. */
static int meta_prompts(const struct trainer_rm_data *d, struct keyed **out, size_t *n)
{
    struct keyed *ks = calloc(d->n ? d->n : 1, sizeof *ks);
    if (!ks)
        return ERR_NOMEM;
    size_t m = 0;
    for (size_t i = 0; i < d->n; i++) {
        if (d->pairs[i].heldout)
            continue;
        uint8_t h[SHA256_DIGEST_LEN];
        sha256(d->pairs[i].prompt, strlen(d->pairs[i].prompt), h);
        sha256_hex(h, ks[m].key);
        ks[m++].text = d->pairs[i].prompt;
    }
    qsort(ks, m, sizeof *ks, by_key);
    size_t u = 0;
    for (size_t i = 0; i < m; i++)
        if (!u || strcmp(ks[u - 1].key, ks[i].key) != 0)
            ks[u++] = ks[i];
    *out = ks;
    *n = u;
    return ERR_OK;
}

/* One request of the collection: prompts [first, first + n) of the set. */
struct meta_req {
    char id[128];
    size_t first, n;
    bool done;
};

struct collect {
    struct trainer_rm_meta_set *set;
    struct meta_req *reqs;
    size_t nreqs, pending;
    int rc;
    char *err;
    size_t errlen;
};

static void on_reply(void *ctx, const Oaif__V1__Reply *rep)
{
    struct collect *c = ctx;
    struct meta_req *q = NULL;
    for (size_t i = 0; i < c->nreqs && !q; i++)
        if (!c->reqs[i].done && !strcmp(c->reqs[i].id, rep->id))
            q = &c->reqs[i];
    if (!q)
        return;
    q->done = true;
    c->pending--;
    if (c->rc)
        return;
    if (rep->outcome != OAIF__V1__OUTCOME__OUTCOME_OK) {
        err_fmt(c->err, c->errlen, "sample request %s failed: %s", rep->id,
                rep->error ? rep->error : "(no reason)");
        c->rc = ERR_REMOTE;
        return;
    }
    Oaif__V1__SampleReply *sr =
        oaif__v1__sample_reply__unpack(NULL, rep->payload.len, rep->payload.data);
    struct trainer_rm_meta_set *s = c->set;
    if (!sr || sr->n_pairs != q->n) {
        err_fmt(c->err, c->errlen, "sample request %s: the reply is not a SampleReply of %zu pairs",
                rep->id, q->n);
        c->rc = ERR_PROTO;
    }
    for (size_t i = 0; !c->rc && i < q->n; i++) {
        const Oaif__V1__Pair *p = sr->pairs[i];
        if (p->n_responses != (size_t)s->k) {
            err_fmt(c->err, c->errlen, "sample request %s: pair %zu has %zu responses, not %d",
                    rep->id, i, p->n_responses, s->k);
            c->rc = ERR_PROTO;
            break;
        }
        for (int r = 0; r < s->k; r++) {
            const char *text = p->responses[r]->text ? p->responses[r]->text : "";
            char **slot = &s->responses[(q->first + i) * (size_t)s->k + (size_t)r];
            *slot = strdup(text);
            if (!*slot) {
                err_fmt(c->err, c->errlen, "out of memory");
                c->rc = ERR_NOMEM;
                break;
            }
        }
    }
    if (sr)
        oaif__v1__sample_reply__free_unpacked(sr, NULL);
}

/* Request q's payload into *buf (malloc'd); its id from the payload's sha256. */
static int pack_request(const struct trainer_rm_meta_opts *o, const struct trainer_rm_meta_set *s,
                        const struct keyed *ks, size_t ri, struct meta_req *q, uint8_t **buf,
                        size_t *len)
{
    Oaif__V1__Prompt ps[TRAINER_RM_META_PER_REQUEST], *pp[TRAINER_RM_META_PER_REQUEST];
    char ids[TRAINER_RM_META_PER_REQUEST][40];
    for (size_t i = 0; i < q->n; i++) {
        oaif__v1__prompt__init(&ps[i]);
        snprintf(ids[i], sizeof ids[i], "meta-%.24s", ks[q->first + i].key);
        ps[i].id = ids[i];
        ps[i].text = s->prompts[q->first + i];
        pp[i] = &ps[i];
    }
    Oaif__V1__SamplingParams sp = OAIF__V1__SAMPLING_PARAMS__INIT;
    sp.temperature = o->temperature;
    sp.top_p = 1.0f;
    sp.max_new_tokens = (uint32_t)o->max_new_tokens;
    sp.n = (uint32_t)o->k;
    sp.seed = o->seed * 1000003ULL + ri;
    Oaif__V1__SampleRequest req = OAIF__V1__SAMPLE_REQUEST__INIT;
    req.prompts = pp;
    req.n_prompts = q->n;
    req.sampling = &sp;
    req.policy_version = s->policy_version;
    req.pin_version = 1;
    req.run = "rm-meta";
    *len = oaif__v1__sample_request__get_packed_size(&req);
    *buf = malloc(*len ? *len : 1);
    if (!*buf)
        return ERR_NOMEM;
    oaif__v1__sample_request__pack(&req, *buf);
    uint8_t h[SHA256_DIGEST_LEN];
    char hex[65];
    sha256(*buf, *len, h);
    sha256_hex(h, hex);
    snprintf(q->id, sizeof q->id, "rm-meta-v%u-%.32s", s->policy_version, hex);
    return ERR_OK;
}

/* Submits every request and waits for their replies. */
static int sample_all(bus_client_t *cl, const struct trainer_rm_meta_opts *o, struct collect *c,
                      const struct keyed *ks)
{
    for (size_t i = 0; i < c->nreqs; i++) {
        uint8_t *buf = NULL;
        size_t len = 0;
        int rc = pack_request(o, c->set, ks, i, &c->reqs[i], &buf, &len);
        if (!rc)
            rc = bus_client_submit(cl, "sample", c->reqs[i].id, buf, len, 0, 0);
        free(buf);
        if (rc && rc != ERR_EXISTS) {
            err_fmt(c->err, c->errlen, "submitting sample request %s: %s", c->reqs[i].id,
                    err_str(rc));
            return rc;
        }
    }
    c->pending = c->nreqs;
    uint64_t deadline = bus_now_ms() + (uint64_t)o->timeout_ms;
    while (c->pending && !c->rc) {
        uint64_t now = bus_now_ms();
        if (now >= deadline) {
            err_fmt(c->err, c->errlen,
                    "the sampler answered %zu of %zu meta-set requests within %.1f s (is a "
                    "sampler serving policy v%u? --meta-timeout)",
                    c->nreqs - c->pending, c->nreqs, (double)o->timeout_ms / 1000.0,
                    c->set->policy_version);
            return ERR_TIMEOUT;
        }
        uint64_t left = deadline - now;
        int rc = bus_client_poll(cl, left > 1000 ? 1000 : (int)left, on_reply, c);
        if (rc < 0) {
            err_fmt(c->err, c->errlen, "waiting for the sampler: %s", err_str(rc));
            return rc;
        }
    }
    return c->rc;
}

int trainer_rm_meta_collect(bus_client_t *cl, const struct trainer_rm_meta_opts *o,
                            const struct trainer_rm_data *d, int timeout_ms,
                            struct trainer_rm_meta_set *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    int rc = trainer_rm_meta_validate(o, err, errlen);
    if (rc)
        return rc;
    Oaif__V1__Checkpoint *ck = NULL;
    rc = ckpt_find_policy(cl, o->policy_version, timeout_ms, &ck);
    if (rc == ERR_NOTFOUND) {
        if (o->policy_version < 0)
            err_fmt(err, errlen,
                    "the meta set: the ledger has no policy checkpoint (publish the "
                    "SFT model first: oaif sft)");
        else
            err_fmt(err, errlen,
                    "--meta-policy-version %ld: the ledger has no policy "
                    "checkpoint of that version",
                    o->policy_version);
        return rc;
    }
    if (rc) {
        err_fmt(err, errlen, "the meta set: looking the policy up in the ledger: %s", err_str(rc));
        return rc;
    }
    out->policy_version = ck->version;
    oaif__v1__checkpoint__free_unpacked(ck, NULL);
    struct keyed *ks = NULL;
    size_t nk = 0;
    rc = meta_prompts(d, &ks, &nk);
    if (rc) {
        err_fmt(err, errlen, "out of memory");
        return rc;
    }
    if (!nk) {
        free(ks);
        err_fmt(err, errlen,
                "the meta set: the preference set has no training pair to take "
                "prompts from");
        return ERR_NOTFOUND;
    }
    out->k = o->k;
    out->nprompts = nk < (size_t)o->prompts ? nk : (size_t)o->prompts;
    out->prompts = calloc(out->nprompts, sizeof *out->prompts);
    out->responses = calloc(out->nprompts * (size_t)o->k, sizeof *out->responses);
    size_t nreqs = (out->nprompts + TRAINER_RM_META_PER_REQUEST - 1) / TRAINER_RM_META_PER_REQUEST;
    struct collect c = {.set = out,
                        .reqs = calloc(nreqs, sizeof *c.reqs),
                        .nreqs = nreqs,
                        .err = err,
                        .errlen = errlen};
    rc = out->prompts && out->responses && c.reqs ? ERR_OK : ERR_NOMEM;
    for (size_t p = 0; !rc && p < out->nprompts; p++)
        if (!(out->prompts[p] = strdup(ks[p].text)))
            rc = ERR_NOMEM;
    if (rc)
        err_fmt(err, errlen, "out of memory");
    for (size_t i = 0; !rc && i < nreqs; i++) {
        c.reqs[i].first = i * TRAINER_RM_META_PER_REQUEST;
        c.reqs[i].n = out->nprompts - c.reqs[i].first < TRAINER_RM_META_PER_REQUEST
                          ? out->nprompts - c.reqs[i].first
                          : TRAINER_RM_META_PER_REQUEST;
    }
    if (!rc) {
        log_info("rm meta: sampling %zu prompts x %d responses from policy v%u (%zu requests)",
                 out->nprompts, o->k, out->policy_version, nreqs);
        rc = sample_all(cl, o, &c, ks);
    }
    free(c.reqs);
    free(ks);
    if (rc) {
        trainer_rm_meta_set_free(out);
        return rc;
    }
    trainer_rm_meta_set_digest(out);
    return ERR_OK;
}
