/* rm.c - see rm.h. */
#include "rm.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "checkpoint.h"
#include "ckpt.h"
#include "ckptfiles.h"
#include "err.h"
#include "log.h"
#include "policy.h"
#include "rm_meta.h"
#include "safetensors.h"
#include "sha256.h"
#include "tokenizer.h"

#define STATE_FORMAT 1

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* ---- options ------------------------------------------------------------------------------ */

static bool name_ok(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n < 1 || n > 64)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)s[i]) && s[i] != '.' && s[i] != '_' && s[i] != '-')
            return false;
    return true;
}

int trainer_rm_validate(const struct trainer_rm_opts *o, char *err, size_t errlen)
{
#define BAD(...)                                                                                   \
    do {                                                                                           \
        err_fmt(err, errlen, __VA_ARGS__);                                                         \
        return ERR_INVAL;                                                                          \
    } while (0)
    bool ds = o->dataset && *o->dataset, run = o->run && *o->run;
    if (ds == run)
        BAD("name the preference set: --dataset NAME (imported pairs) or --run NAME (a run's "
            "labeled pairs), one of the two");
    if (!(o->holdout >= 0.0 && o->holdout <= 0.9))
        BAD("--holdout is %g, must be in [0, 0.9]", o->holdout);
    if (!isfinite(o->margin))
        BAD("--margin is %g, must be finite", (double)o->margin);
    if (!(o->margin_scale >= 0.0f) || !isfinite(o->margin_scale))
        BAD("--margin-scale is %g, must be >= 0", (double)o->margin_scale);
    if (!(o->margin_clip >= 0.0f) || !isfinite(o->margin_clip))
        BAD("--margin-clip is %g, must be >= 0", (double)o->margin_clip);
    if (o->soft_target < TRAINER_RM_SOFT_NONE || o->soft_target > TRAINER_RM_SOFT_STRENGTH)
        BAD("--soft-target: unknown value %d", o->soft_target);
    if (!(o->loss.rm.label_smoothing >= 0.0f && o->loss.rm.label_smoothing <= 0.5f))
        BAD("--label-smoothing is %g, must be in [0, 0.5]", (double)o->loss.rm.label_smoothing);
    if (o->soft_target != TRAINER_RM_SOFT_NONE && o->loss.rm.label_smoothing > 0.0f)
        BAD("--label-smoothing and --soft-target both set a pair's target: give one");
    if (!(o->loss.rm.center >= 0.0f) || !isfinite(o->loss.rm.center))
        BAD("--center is %g, must be >= 0", (double)o->loss.rm.center);
    if (!(o->loss.lm >= 0.0f) || !isfinite(o->loss.lm))
        BAD("--lm is %g, must be >= 0", (double)o->loss.lm);
    if (o->loss.cl < TRAINER_RM_CL_NONE || o->loss.cl > TRAINER_RM_CL_SWAV)
        BAD("--contrastive: unknown value %d", (int)o->loss.cl);
    if (o->cl_on != NN_CL_RESPONSES && o->cl_on != NN_CL_DIFFERENCES)
        BAD("--contrastive-on: unknown value %d", o->cl_on);
    if (!(o->loss.cl_weight >= 0.0f) || !isfinite(o->loss.cl_weight))
        BAD("--contrastive-weight is %g, must be >= 0 (0: the paper's)", (double)o->loss.cl_weight);
    if (!(o->cl_temperature >= 0.0f) || !isfinite(o->cl_temperature))
        BAD("--contrastive-temperature is %g, must be >= 0 (0: the paper's)",
            (double)o->cl_temperature);
    if (o->loss.swav.K < 0 || o->loss.swav.K > 100000)
        BAD("--swav-prototypes is %d, must be in [0, 100000] (0: the paper's)", o->loss.swav.K);
    if (!(o->loss.swav.epsilon > 0.0f) || !isfinite(o->loss.swav.epsilon))
        BAD("--swav-epsilon is %g, must be > 0", (double)o->loss.swav.epsilon);
    if (o->loss.swav.iterations < 1 || o->loss.swav.iterations > 1000)
        BAD("--swav-iterations is %d, must be in [1, 1000]", o->loss.swav.iterations);
    if (!(o->loss.dropout >= 0.0f && o->loss.dropout < 1.0f))
        BAD("--dropout is %g, must be in [0, 1)", (double)o->loss.dropout);
    if (!o->from_scratch && (!o->init_dir || !*o->init_dir))
        BAD("--init: the SFT checkpoint to start from (or --from-scratch)");
    if (!name_ok(o->ensemble))
        BAD("--ensemble '%s': 1 to 64 letters, digits, '.', '_' or '-'",
            o->ensemble ? o->ensemble : "");
    if (o->member < 0 || o->member > 1023)
        BAD("--member is %d, must be in [0, 1023]", o->member);
    if (o->max_len < 4 || o->max_len > 1 << 20)
        BAD("--max-len is %d, must be in [4, 1048576]", o->max_len);
    if (o->epochs < 1 || o->epochs > TRAINER_RM_MAX_EPOCHS)
        BAD("--epochs is %d, must be in [1, %d]", o->epochs, TRAINER_RM_MAX_EPOCHS);
    if (o->batch < 1 || o->batch > 4096)
        BAD("--batch is %d, must be in [1, 4096]", o->batch);
    if (!(o->lr > 0.0f && o->lr < 10.0f))
        BAD("--lr is %g, must be in (0, 10)", (double)o->lr);
    if (o->schedule < NN_SCHED_CONSTANT || o->schedule > NN_SCHED_INVSQRT)
        BAD("--schedule: unknown value %d", o->schedule);
    if (!(o->min_lr_ratio >= 0.0f && o->min_lr_ratio <= 1.0f))
        BAD("--min-lr-ratio is %g, must be in [0, 1]", (double)o->min_lr_ratio);
    if (o->warmup < 0)
        BAD("--warmup is %ld, must be >= 0", o->warmup);
    if (!(o->adamw.beta1 >= 0.0f && o->adamw.beta1 < 1.0f))
        BAD("--adam-beta1 is %g, must be in [0, 1)", (double)o->adamw.beta1);
    if (!(o->adamw.beta2 >= 0.0f && o->adamw.beta2 < 1.0f))
        BAD("--adam-beta2 is %g, must be in [0, 1)", (double)o->adamw.beta2);
    if (!(o->adamw.eps > 0.0f) || !isfinite(o->adamw.eps))
        BAD("--adam-eps is %g, must be > 0", (double)o->adamw.eps);
    if (!(o->adamw.weight_decay >= 0.0f && o->adamw.weight_decay < 1.0f))
        BAD("--weight-decay is %g, must be in [0, 1)", (double)o->adamw.weight_decay);
    if (!(o->clip >= 0.0f) || !isfinite(o->clip))
        BAD("--clip is %g, must be >= 0 (0: off)", (double)o->clip);
    if (!o->checkpoint_dir || !*o->checkpoint_dir)
        BAD("--checkpoints: the checkpoint root");
    if (o->checkpoint_every < 1)
        BAD("--checkpoint-every is %d, must be >= 1", o->checkpoint_every);
    if (o->step_sleep_ms < 0)
        BAD("--step-sleep must be >= 0");
#undef BAD
    return ERR_OK;
}

uint64_t trainer_rm_seed(const struct trainer_rm_opts *o)
{
    return o->seed ? o->seed : (uint64_t)o->member + 1;
}

void trainer_rm_loss_opts_of(const struct trainer_rm_opts *o, struct trainer_rm_loss_opts *lo)
{
    *lo = o->loss;
    bool diff = o->cl_on == NN_CL_DIFFERENCES;
    lo->simcse.mode = lo->swav.mode = (enum nn_cl_mode)o->cl_on;
    lo->simcse.temperature =
        o->cl_temperature > 0.0f ? o->cl_temperature : TRAINER_RM_SIMCSE_TEMPERATURE;
    lo->swav.temperature =
        o->cl_temperature > 0.0f ? o->cl_temperature : TRAINER_RM_SWAV_TEMPERATURE;
    if (lo->swav.K == 0)
        lo->swav.K = diff ? TRAINER_RM_SWAV_K_DIFF : TRAINER_RM_SWAV_K_RESP;
    if (lo->cl_weight == 0.0f && lo->cl == TRAINER_RM_CL_SIMCSE)
        lo->cl_weight = TRAINER_RM_SIMCSE_WEIGHT;
    if (lo->cl_weight == 0.0f && lo->cl == TRAINER_RM_CL_SWAV)
        lo->cl_weight = diff ? TRAINER_RM_SWAV_WEIGHT_DIFF : TRAINER_RM_SWAV_WEIGHT_RESP;
    if (lo->cl == TRAINER_RM_CL_NONE)
        lo->cl_weight = 0.0f;
}

int trainer_rm_stem(char *out, size_t outlen, const char *ensemble, int member)
{
    int n = snprintf(out, outlen, "reward-%s-m%d", ensemble, member);
    return n < 0 || (size_t)n >= outlen ? ERR_TOOBIG : ERR_OK;
}

/* ---- sequences ---------------------------------------------------------------------------- */

struct rm_seq { /* one pair, tokenized: chosen and rejected share the prompt */
    int *c, *r;
    int lc, lr, plen;
    const struct trainer_rm_pair *p;
};

static void seqs_free(struct rm_seq *s, size_t n)
{
    for (size_t i = 0; s && i < n; i++) {
        free(s[i].c);
        free(s[i].r);
    }
    free(s);
}

int trainer_rm_encode_response(const tok_t *tk, const int *pids, size_t np, const char *rendered,
                               const char *response, int max_len, int **out, int *len, bool *cut)
{
    size_t rl = strlen(rendered), l = strlen(response);
    bool sep = rl > 0 && !isspace((unsigned char)rendered[rl - 1]) && l > 0 &&
               !isspace((unsigned char)response[0]);
    char *text = malloc(l + 2);
    if (!text)
        return ERR_NOMEM;
    snprintf(text, l + 2, "%s%s", sep ? " " : "", response);
    int *rids = NULL;
    size_t nr = 0;
    char why[256];
    int rc = tok_encode(tk, text, strlen(text), 0, &rids, &nr, why, sizeof why);
    free(text);
    if (rc)
        return rc;
    int eos = tok_eos_id(tk);
    size_t ne = eos >= 0 ? 1 : 0, room = (size_t)max_len - np - ne;
    *cut = nr > room;
    if (*cut)
        nr = room;
    *len = (int)(np + nr + ne);
    *out = malloc((size_t)*len * sizeof(int));
    if (*out) {
        memcpy(*out, pids, np * sizeof(int));
        memcpy(*out + np, rids, nr * sizeof(int));
        if (ne)
            (*out)[np + nr] = eos;
    }
    free(rids);
    return *out ? ERR_OK : ERR_NOMEM;
}

/* Tokenize pairs[i] for the i with heldout == want into *out (n of them). A pair whose prompt
 * leaves no room for a response token is left out (*too_long); *truncated counts pairs with a
 * response cut. */
static int encode_all(const tok_t *tk, const struct trainer_rm_data *d, bool want, int max_len,
                      struct rm_seq **out, size_t *n, size_t *too_long, size_t *truncated,
                      char *err, size_t errlen)
{
    *out = calloc(d->n ? d->n : 1, sizeof **out);
    *n = 0;
    if (!*out)
        return ERR_NOMEM;
    unsigned flags = tok_wants_bos(tk) ? TOK_ADD_BOS : 0;
    int ne = tok_eos_id(tk) >= 0 ? 1 : 0;
    for (size_t i = 0; i < d->n; i++) {
        const struct trainer_rm_pair *p = &d->pairs[i];
        if (p->heldout != want)
            continue;
        int *pids = NULL;
        size_t np = 0;
        char *rendered = NULL, why[256];
        int rc = tok_encode_prompt(tk, p->prompt, flags, &pids, &np, why, sizeof why);
        if (rc) {
            err_fmt(err, errlen, "pair %s: the prompt: %s", p->id, why);
            return rc;
        }
        if (np < 1 || np + 1 + (size_t)ne > (size_t)max_len) {
            (*too_long)++;
            free(pids);
            continue;
        }
        rc = tok_render_prompt(tk, p->prompt, &rendered);
        struct rm_seq *s = &(*out)[*n];
        bool cc = false, cr = false;
        if (!rc)
            rc = trainer_rm_encode_response(tk, pids, np, rendered, p->chosen, max_len, &s->c,
                                            &s->lc, &cc);
        if (!rc)
            rc = trainer_rm_encode_response(tk, pids, np, rendered, p->rejected, max_len, &s->r,
                                            &s->lr, &cr);
        free(pids);
        free(rendered);
        if (rc) {
            free(s->c);
            free(s->r);
            s->c = s->r = NULL;
            err_fmt(err, errlen, "pair %s: the responses: %s", p->id, err_str(rc));
            return rc;
        }
        s->plen = (int)np;
        s->p = p;
        *truncated += cc || cr;
        (*n)++;
    }
    return ERR_OK;
}

/* ---- the run ------------------------------------------------------------------------------ */

struct rm_run {
    const struct trainer_rm_opts *o;
    struct trainer_rm_loss_opts lo;
    uint64_t seed;
    nn_model_t *m;
    tok_t *tok;
    nn_adamw_t *opt, *popt; /* the model's, SwAV's prototypes' */
    trainer_rm_loss_t *loss;
    struct rm_seq *train, *held;
    size_t ntrain, nheld;
    int B, maxT;
    long spe, total, step;
    size_t *perm;
    long perm_epoch;
    struct rm_seq **batch; /* [B]: the pairs of the batch being filled */
    /* the current epoch so far */
    double ep_loss, ep_acc;
    long ep_n;
    /* batch buffers */
    int *tokens, *lens, *plens;
    float *margin, *target;
    /* checkpoints */
    char stem[256];
    char fingerprint[65];
    json_t *settings;
    uint32_t next_version, prev_version; /* prev: this training's last checkpoint (0: none) */
    long ckpt_step;                      /* the step of prev_version */
    struct trainer_rm_result *res;
    trainer_rm_meta_t *meta; /* MetaRM's meta set and step (rm_meta.h); NULL: off */
};

static void run_free(struct rm_run *r)
{
    trainer_rm_meta_destroy(&r->meta);
    nn_model_destroy(&r->m);
    tok_destroy(&r->tok);
    nn_adamw_destroy(&r->opt);
    nn_adamw_destroy(&r->popt);
    trainer_rm_loss_destroy(&r->loss);
    seqs_free(r->train, r->ntrain);
    seqs_free(r->held, r->nheld);
    free(r->perm);
    free(r->batch);
    free(r->tokens);
    free(r->lens);
    free(r->plens);
    free(r->margin);
    free(r->target);
    json_decref(r->settings);
}

/* The step's seed: dropout masks are a function of (seed, step) alone. */
static uint64_t step_seed(const struct rm_run *r, long step)
{
    uint64_t s = r->seed * 0x9e3779b97f4a7c15ULL + (uint64_t)step + 1;
    return nn_rng_next(&s);
}

/* The order of epoch e's training pairs: a Fisher-Yates shuffle from (seed, e). */
void trainer_rm_shuffle(size_t *perm, size_t n, uint64_t s)
{
    for (size_t i = 0; i < n; i++)
        perm[i] = i;
    for (size_t i = n; i > 1; i--) {
        size_t j = (size_t)(nn_rng_next(&s) % i);
        size_t t = perm[i - 1];
        perm[i - 1] = perm[j];
        perm[j] = t;
    }
}

static void make_perm(struct rm_run *r, long e)
{
    uint64_t s = (r->seed ^ 0xd1b54a32d192ed03ULL) + (uint64_t)e * 0x94d049bb133111ebULL;
    trainer_rm_shuffle(r->perm, r->ntrain, s);
    r->perm_epoch = e;
}

/* Fill the batch buffers with seqs[idx[0..b)]: rows 0..b-1 chosen, b..2b-1 rejected. */
static void fill_batch(struct rm_run *r, struct rm_seq *const *ps, int b,
                       struct trainer_rm_batch *out)
{
    int T = 1, pad = tok_pad_id(r->tok) >= 0 ? tok_pad_id(r->tok) : 0;
    bool any_target = false;
    for (int i = 0; i < b; i++) {
        T = ps[i]->lc > T ? ps[i]->lc : T;
        T = ps[i]->lr > T ? ps[i]->lr : T;
        any_target = any_target || ps[i]->p->has_target;
    }
    float t0 = 1.0f - r->lo.rm.label_smoothing;
    for (int i = 0; i < 2 * b; i++) {
        const struct rm_seq *s = ps[i % b];
        const int *ids = i < b ? s->c : s->r;
        int len = i < b ? s->lc : s->lr;
        int *row = r->tokens + (size_t)i * T;
        memcpy(row, ids, (size_t)len * sizeof(int));
        for (int t = len; t < T; t++)
            row[t] = pad;
        r->lens[i] = len;
        r->plens[i] = s->plen;
        if (i < b) {
            r->margin[i] = s->p->margin;
            r->target[i] = s->p->has_target ? s->p->target : t0;
        }
    }
    *out = (struct trainer_rm_batch){.B = b,
                                     .T = T,
                                     .tokens = r->tokens,
                                     .lengths = r->lens,
                                     .prompt_lens = r->plens,
                                     .margin = r->margin,
                                     .target = any_target ? r->target : NULL};
}

/* Held-out accuracy and mean -log s(r+ - r-), without dropout. */
static int evaluate(struct rm_run *r, struct trainer_rm_epoch *ep)
{
    ep->heldout_pairs = r->nheld;
    ep->heldout_loss = ep->heldout_accuracy = 0.0;
    if (!r->nheld)
        return ERR_OK;
    struct rm_seq **ps = r->batch;
    const struct nn_rm_opts plain = {0};
    double loss = 0.0, acc = 0.0;
    int rc = ERR_OK;
    for (size_t i0 = 0; !rc && i0 < r->nheld; i0 += (size_t)r->B) {
        int b = (int)(r->nheld - i0 < (size_t)r->B ? r->nheld - i0 : (size_t)r->B);
        for (int i = 0; i < b; i++)
            ps[i] = &r->held[i0 + (size_t)i];
        struct trainer_rm_batch tb;
        fill_batch(r, ps, b, &tb);
        struct nn_batch nb = {.B = 2 * b, .T = tb.T, .tokens = tb.tokens, .lengths = tb.lengths};
        struct nn_fwd_opts fo = {.logits = false};
        rc = nn_model_forward(r->m, &nb, &fo);
        struct nn_rm_stats st;
        const float *rw = rc ? NULL : nn_model_rewards(r->m);
        if (!rc)
            rc = nn_loss_rm(&plain, b, rw, rw + b, NULL, NULL, NULL, NULL, &st);
        if (!rc) {
            loss += st.loss * b;
            acc += st.accuracy * b;
        }
    }
    ep->heldout_loss = loss / (double)r->nheld;
    ep->heldout_accuracy = acc / (double)r->nheld;
    return rc;
}

/* ---- model -------------------------------------------------------------------------------- */

static void init_head(nn_model_t *m, uint64_t seed)
{
    const struct nn_tensor *t = nn_model_find_tensor(m, "score.weight");
    uint64_t s = seed ^ 0x243f6a8885a308d3ULL;
    for (size_t j = 0; t && j < t->numel; j++)
        t->data[j] = TRAINER_RM_HEAD_STD * nn_rng_normal(&s);
}

/* A fresh member: the SFT model with a reward head (or the built-in shape, random), the head
 * drawn from the seed. */
static int fresh_model(struct rm_run *r, char *err, size_t errlen)
{
    const struct trainer_rm_opts *o = r->o;
    char why[512];
    struct nn_config c;
    nn_model_t *sft = NULL;
    int rc;
    if (o->from_scratch) {
        trainer_builtin_config(&c);
    } else {
        rc = nn_checkpoint_load(&sft, o->init_dir, why, sizeof why);
        if (rc) {
            err_fmt(err, errlen, "--init %s: %s", o->init_dir, why);
            return rc;
        }
        c = *nn_model_config(sft);
    }
    c.reward_head = true;
    rc = nn_model_new(&r->m, &c, why, sizeof why);
    if (rc) {
        err_fmt(err, errlen, "the reward model: %s", why);
        nn_model_destroy(&sft);
        return rc;
    }
    if (sft) {
        for (size_t i = 0; i < nn_model_num_tensors(r->m); i++) {
            const struct nn_tensor *t = nn_model_tensor(r->m, i);
            const struct nn_tensor *s = nn_model_find_tensor(sft, t->name);
            if (s && s->numel == t->numel)
                memcpy(t->data, s->data, t->numel * sizeof(float));
        }
        nn_model_destroy(&sft);
    } else {
        nn_model_init_random(r->m, r->seed, TRAINER_BUILTIN_INIT_STD);
    }
    init_head(r->m, r->seed);
    return ERR_OK;
}

/* Norms (1-d) and embeddings are not decayed, as SFT. */
static int set_decay(nn_adamw_t *opt, const nn_model_t *m)
{
    for (size_t i = 0; i < nn_model_num_tensors(m); i++) {
        const struct nn_tensor *t = nn_model_tensor(m, i);
        bool decay = t->ndim == 2 && !strstr(t->name, "embed_tokens");
        int rc = nn_adamw_set_decay(opt, t->offset, t->numel, decay);
        if (rc)
            return rc;
    }
    return ERR_OK;
}

/* ---- settings and the fingerprint -------------------------------------------------------- */

static long warmup_of(const struct rm_run *r)
{
    return r->o->warmup < r->total ? r->o->warmup : r->total;
}

/* Everything that decides the weights, and its sha256 into r->fingerprint. */
static int make_settings(struct rm_run *r, const struct trainer_rm_data *d, char *err,
                         size_t errlen)
{
    const struct trainer_rm_opts *o = r->o;
    const struct trainer_rm_loss_opts *lo = &r->lo;
    json_t *init;
    if (o->from_scratch) {
        init = json_pack("{s:s, s:f}", "builtin", "trainer_builtin_config", "std",
                         (double)TRAINER_BUILTIN_INIT_STD);
    } else {
        char path[4200], sha[65], why[512];
        snprintf(path, sizeof path, "%s/%s", o->init_dir, NN_CKPT_WEIGHTS);
        int rc = ckpt_file_sha256(path, sha, why, sizeof why);
        if (rc) {
            err_fmt(err, errlen, "--init: %s", why);
            return access(path, F_OK) ? ERR_NOTFOUND : rc;
        }
        init = json_pack("{s:s}", "sha256", sha);
    }
    json_t *loss =
        json_pack("{s:f, s:f, s:f, s:i, s:f, s:f, s:i, s:f, s:f, s:i, s:f, s:i}", "label_smoothing",
                  (double)lo->rm.label_smoothing, "center", (double)lo->rm.center, "lm",
                  (double)lo->lm, "contrastive", (int)lo->cl, "weight", (double)lo->cl_weight,
                  "dropout", trainer_rm_loss_views(lo) == 2 ? (double)lo->dropout : 0.0, "mode",
                  (int)lo->simcse.mode, "simcse_temperature", (double)lo->simcse.temperature,
                  "swav_temperature", (double)lo->swav.temperature, "swav_k", lo->swav.K,
                  "swav_epsilon", (double)lo->swav.epsilon, "swav_iterations", lo->swav.iterations);
    json_t *optim =
        json_pack("{s:f, s:i, s:f, s:I, s:f, s:f, s:f, s:f, s:f}", "lr", (double)o->lr, "schedule",
                  o->schedule, "min_lr_ratio", (double)o->min_lr_ratio, "warmup",
                  (json_int_t)warmup_of(r), "beta1", (double)o->adamw.beta1, "beta2",
                  (double)o->adamw.beta2, "eps", (double)o->adamw.eps, "weight_decay",
                  (double)o->adamw.weight_decay, "clip", (double)o->clip);
    r->settings = json_pack(
        "{s:i, s:s, s:s, s:I, s:i, s:i, s:i, s:f, s:o, s:o, s:o}", "format", STATE_FORMAT, "data",
        d->digest, "source", o->dataset ? o->dataset : o->run, "seed", (json_int_t)r->seed,
        "epochs", o->epochs, "batch", o->batch, "max_len", o->max_len, "head_std",
        (double)TRAINER_RM_HEAD_STD, "init", init, "loss", loss, "optim", optim);
    if (r->settings && r->meta)
        json_object_set_new(r->settings, "meta", trainer_rm_meta_settings(r->meta));
    char *text = r->settings ? json_dumps(r->settings,
                                          JSON_SORT_KEYS | JSON_COMPACT | JSON_REAL_PRECISION(17))
                             : NULL;
    if (!text) {
        err_fmt(err, errlen, "out of memory");
        return ERR_NOMEM;
    }
    uint8_t h[SHA256_DIGEST_LEN];
    sha256(text, strlen(text), h);
    sha256_hex(h, r->fingerprint);
    free(text);
    return ERR_OK;
}

/* ---- checkpoints on disk ------------------------------------------------------------------ */

static int version_dir(const struct rm_run *r, uint32_t v, char *out, size_t outlen)
{
    int n = snprintf(out, outlen, "%s/%s-v%06u", r->o->checkpoint_dir, r->stem, v);
    return n < 0 || (size_t)n >= outlen ? ERR_TOOBIG : ERR_OK;
}

/* The versions of this member's directories under the root: the highest (*any) and the highest
 * whose progress file reads as JSON (*valid, with that file in *state); 0 and NULL: none. */
static void scan_disk(const struct rm_run *r, uint32_t *any, uint32_t *valid, json_t **state)
{
    *any = *valid = 0;
    *state = NULL;
    DIR *dir = opendir(r->o->checkpoint_dir);
    if (!dir)
        return;
    char prefix[300];
    snprintf(prefix, sizeof prefix, "%s-v", r->stem);
    size_t pl = strlen(prefix), n = 0, cap = 0;
    uint32_t *vs = NULL;
    struct dirent *e;
    while ((e = readdir(dir))) {
        if (strncmp(e->d_name, prefix, pl) != 0)
            continue;
        const char *d = e->d_name + pl;
        char *end;
        errno = 0;
        unsigned long v = strtoul(d, &end, 10);
        if (end == d || *end || errno || v == 0 || v > UINT32_MAX || !isdigit((unsigned char)*d))
            continue;
        if (v > *any)
            *any = (uint32_t)v;
        if (n == cap) {
            size_t nc = cap ? cap * 2 : 16;
            uint32_t *np = realloc(vs, nc * sizeof *np);
            if (!np)
                break;
            vs = np;
            cap = nc;
        }
        vs[n++] = (uint32_t)v;
    }
    closedir(dir);
    for (;;) { /* the highest with a progress file, downwards */
        uint32_t best = 0;
        size_t bi = 0;
        for (size_t i = 0; i < n; i++)
            if (vs[i] > best) {
                best = vs[i];
                bi = i;
            }
        if (!best)
            break;
        vs[bi] = 0;
        char path[4400], vd[4200];
        if (version_dir(r, best, vd, sizeof vd))
            continue;
        snprintf(path, sizeof path, "%s/%s", vd, TRAINER_RM_STATE);
        json_t *j = json_load_file(path, 0, NULL);
        if (j) {
            *valid = best;
            *state = j;
            break;
        }
    }
    free(vs);
}

/* Remove checkpoint directory v of this member (its files, then itself). A failure is a
 * warning: the checkpoints that matter are written. */
static void remove_version(const struct rm_run *r, uint32_t v)
{
    char vd[4200], path[4600];
    if (version_dir(r, v, vd, sizeof vd))
        return;
    DIR *dir = opendir(vd);
    if (!dir)
        return;
    struct dirent *e;
    while ((e = readdir(dir))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        snprintf(path, sizeof path, "%s/%s", vd, e->d_name);
        if (unlink(path) != 0)
            log_warn("rm: removing %s: %s", path, strerror(errno));
    }
    closedir(dir);
    if (rmdir(vd) != 0)
        log_warn("rm: removing %s: %s", vd, strerror(errno));
}

static json_t *epochs_json(const struct trainer_rm_result *res)
{
    json_t *a = json_array();
    for (int k = 0; a && k < res->epochs_done; k++) {
        const struct trainer_rm_epoch *e = &res->epoch[k];
        json_array_append_new(a, json_pack("{s:f, s:f, s:f, s:f, s:I}", "train_loss", e->train_loss,
                                           "train_accuracy", e->train_accuracy, "heldout_loss",
                                           e->heldout_loss, "heldout_accuracy", e->heldout_accuracy,
                                           "heldout_pairs", (json_int_t)e->heldout_pairs));
    }
    return a;
}

static int save_swav(struct rm_run *r, const char *dir, char *err, size_t errlen)
{
    size_t n;
    float *C = trainer_rm_loss_prototypes(r->loss, &n);
    if (!C)
        return ERR_OK;
    char path[4400], step[32];
    snprintf(path, sizeof path, "%s/%s", dir, TRAINER_RM_SWAV);
    snprintf(step, sizeof step, "%ld", nn_adamw_steps(r->popt));
    int64_t shape[2] = {r->lo.swav.K, nn_model_config(r->m)->hidden_size};
    st_writer_t *w = st_writer_new();
    int rc = w ? ERR_OK : ERR_NOMEM;
    if (!rc)
        rc = st_writer_add_f32(w, "prototypes", C, 2, shape);
    if (!rc)
        rc = st_writer_add_f32(w, "exp_avg", nn_adamw_m(r->popt), 2, shape);
    if (!rc)
        rc = st_writer_add_f32(w, "exp_avg_sq", nn_adamw_v(r->popt), 2, shape);
    if (!rc)
        rc = st_writer_set_metadata(w, "step", step);
    if (!rc)
        rc = st_writer_write(w, path, err, errlen);
    else
        err_fmt(err, errlen, "%s: %s", path, err_str(rc));
    st_writer_destroy(&w);
    return rc;
}

static int load_swav(struct rm_run *r, const char *dir, char *err, size_t errlen)
{
    size_t n;
    float *C = trainer_rm_loss_prototypes(r->loss, &n);
    if (!C)
        return ERR_OK;
    char path[4400];
    snprintf(path, sizeof path, "%s/%s", dir, TRAINER_RM_SWAV);
    st_file_t *f = NULL;
    int rc = st_open(&f, path, err, errlen);
    int64_t shape[2] = {r->lo.swav.K, nn_model_config(r->m)->hidden_size};
    if (!rc)
        rc = st_read_f32(f, "prototypes", C, 2, shape, err, errlen);
    if (!rc)
        rc = st_read_f32(f, "exp_avg", nn_adamw_m(r->popt), 2, shape, err, errlen);
    if (!rc)
        rc = st_read_f32(f, "exp_avg_sq", nn_adamw_v(r->popt), 2, shape, err, errlen);
    const char *step = rc ? NULL : st_metadata(f, "step");
    if (!rc && !step) {
        err_fmt(err, errlen, "%s: no \"step\" in its metadata", path);
        rc = ERR_PROTO;
    }
    if (!rc)
        nn_adamw_set_steps(r->popt, strtol(step, NULL, 10));
    st_close(&f);
    return rc;
}

/* Write checkpoint r->next_version: weights (and, unless final, the optimizer states), then the
 * progress file; then remove this training's previous checkpoint. */
static int write_checkpoint(struct rm_run *r, bool final, char *err, size_t errlen)
{
    uint32_t v = r->next_version;
    char dir[4096], path[4400], sha[65];
    int rc = version_dir(r, v, dir, sizeof dir);
    if (rc) {
        err_fmt(err, errlen, "%s: path too long", r->o->checkpoint_dir);
        return rc;
    }
    rc = trainer_make_dirs(dir, err, errlen);
    snprintf(path, sizeof path, "%s/%s", dir, TRAINER_RM_STATE);
    if (!rc && unlink(path) != 0 && errno != ENOENT) { /* no stale progress beside new weights */
        err_fmt(err, errlen, "%s: %s", path, strerror(errno));
        rc = ERR_IO;
    }
    if (!rc)
        rc = trainer_ckpt_write(dir, r->m, final ? NULL : r->opt,
                                r->o->from_scratch ? NULL : r->o->init_dir, sha, err, errlen);
    if (!rc && !final)
        rc = save_swav(r, dir, err, errlen);
    if (rc)
        return rc;
    struct trainer_rm_result *res = r->res;
    json_t *st =
        json_pack("{s:i, s:s, s:i, s:I, s:s, s:O, s:I, s:I, s:b, s:s, s:o, s:{s:f, s:f, s:I}}",
                  "format", STATE_FORMAT, "ensemble", r->o->ensemble, "member", r->o->member,
                  "version", (json_int_t)v, "fingerprint", r->fingerprint, "settings", r->settings,
                  "step", (json_int_t)r->step, "total_steps", (json_int_t)r->total, "done", final,
                  "sha256", sha, "epochs", epochs_json(res), "partial", "loss", r->ep_loss,
                  "accuracy", r->ep_acc, "n", (json_int_t)r->ep_n);
    char *text =
        st ? json_dumps(st, JSON_INDENT(2) | JSON_SORT_KEYS | JSON_REAL_PRECISION(17)) : NULL;
    json_decref(st);
    if (!text) {
        err_fmt(err, errlen, "out of memory");
        return ERR_NOMEM;
    }
    rc = trainer_write_file(path, text, strlen(text), err, errlen);
    free(text);
    if (rc)
        return rc;
    if (r->prev_version && r->prev_version != v)
        remove_version(r, r->prev_version);
    r->prev_version = v;
    r->next_version = v + 1;
    r->ckpt_step = r->step;
    res->version = v;
    snprintf(res->dir, sizeof res->dir, "%s", dir);
    memcpy(res->sha256, sha, sizeof res->sha256);
    log_info("rm %s: step %ld/%ld: checkpoint v%u%s (%s)", r->stem, r->step, r->total, v,
             final ? ", final" : "", dir);
    return ERR_OK;
}

static bool epochs_parse(json_t *a, struct trainer_rm_result *res)
{
    if (!json_is_array(a) || json_array_size(a) > TRAINER_RM_MAX_EPOCHS)
        return false;
    res->epochs_done = (int)json_array_size(a);
    for (int k = 0; k < res->epochs_done; k++) {
        struct trainer_rm_epoch *e = &res->epoch[k];
        json_int_t hp = 0;
        if (json_unpack(json_array_get(a, (size_t)k), "{s:F, s:F, s:F, s:F, s:I}", "train_loss",
                        &e->train_loss, "train_accuracy", &e->train_accuracy, "heldout_loss",
                        &e->heldout_loss, "heldout_accuracy", &e->heldout_accuracy, "heldout_pairs",
                        &hp))
            return false;
        e->heldout_pairs = (size_t)hp;
    }
    return true;
}

/* Whether `state` (version v) is this training's, and then its progress: a finished one is
 * checked (weights' sha256) and reported; an unfinished one is loaded (weights, optimizer,
 * prototypes, step). Returns 1 when resumed or finished, 0 when the state is another training's
 * or unusable (logged), or an error. */
static int try_resume(struct rm_run *r, uint32_t v, json_t *state, bool *done, char *err,
                      size_t errlen)
{
    const char *fp = NULL, *sha = NULL;
    json_int_t step = 0, total = 0, pn = 0;
    int fin = 0;
    json_t *epochs = NULL;
    double pl = 0, pa = 0;
    if (json_unpack(state, "{s:s, s:s, s:I, s:I, s:b, s:o, s:{s:F, s:F, s:I}}", "fingerprint", &fp,
                    "sha256", &sha, "step", &step, "total_steps", &total, "done", &fin, "epochs",
                    &epochs, "partial", "loss", &pl, "accuracy", &pa, "n", &pn) ||
        strcmp(fp, r->fingerprint) != 0)
        return 0;
    char dir[4096], path[4400], hex[65], why[512];
    if (version_dir(r, v, dir, sizeof dir))
        return 0;
    snprintf(path, sizeof path, "%s/%s", dir, NN_CKPT_WEIGHTS);
    if (total != r->total || step < 0 || step > total || !epochs_parse(epochs, r->res) ||
        ckpt_file_sha256(path, hex, why, sizeof why) || strcmp(hex, sha) != 0) {
        log_warn("rm %s: checkpoint v%u does not match its progress file: starting anew", r->stem,
                 v);
        r->res->epochs_done = 0;
        return 0;
    }
    *done = fin;
    r->res->version = v;
    snprintf(r->res->dir, sizeof r->res->dir, "%s", dir);
    memcpy(r->res->sha256, hex, sizeof r->res->sha256);
    r->step = (long)step;
    if (fin)
        return 1;
    nn_model_t *m = NULL;
    int rc = nn_checkpoint_load(&m, dir, why, sizeof why);
    if (!rc && !nn_model_config(m)->reward_head) {
        snprintf(why, sizeof why, "its config.json has no reward head");
        rc = ERR_INVAL;
    }
    if (rc) {
        err_fmt(err, errlen, "resuming from %s: %s", dir, why);
        return rc;
    }
    nn_model_destroy(&r->m);
    r->m = m;
    r->ep_loss = pl;
    r->ep_acc = pa;
    r->ep_n = (long)pn;
    r->prev_version = v;
    r->next_version = v + 1;
    r->ckpt_step = r->step;
    return 1;
}

/* ---- training ----------------------------------------------------------------------------- */

static int setup_training(struct rm_run *r, char *err, size_t errlen)
{
    size_t np = nn_model_num_params(r->m);
    r->opt = nn_adamw_new(np);
    r->perm = malloc((r->ntrain ? r->ntrain : 1) * sizeof *r->perm);
    r->batch = calloc((size_t)r->B, sizeof(struct rm_seq *));
    size_t rows = 2 * (size_t)r->B;
    r->tokens = malloc(rows * (size_t)r->maxT * sizeof(int));
    r->lens = malloc(rows * sizeof(int));
    r->plens = malloc(rows * sizeof(int));
    r->margin = malloc((size_t)r->B * sizeof(float));
    r->target = malloc((size_t)r->B * sizeof(float));
    if (!r->opt || !r->perm || !r->batch || !r->tokens || !r->lens || !r->plens || !r->margin ||
        !r->target) {
        err_fmt(err, errlen, "out of memory");
        return ERR_NOMEM;
    }
    int rc = set_decay(r->opt, r->m);
    if (!rc)
        rc = nn_model_reserve(r->m, (int)rows, r->maxT, true);
    if (rc) {
        err_fmt(err, errlen, "reserving a batch of %zu x %d tokens: %s", rows, r->maxT,
                err_str(rc));
        return rc;
    }
    rc = trainer_rm_loss_new(&r->loss, r->m, &r->lo, r->B, r->seed, err, errlen);
    if (rc)
        return rc;
    size_t nproto;
    if (trainer_rm_loss_prototypes(r->loss, &nproto)) {
        r->popt = nn_adamw_new(nproto);
        if (!r->popt || nn_adamw_set_decay(r->popt, 0, nproto, false)) {
            err_fmt(err, errlen, "out of memory");
            return ERR_NOMEM;
        }
    }
    return ERR_OK;
}

int trainer_rm_step(trainer_rm_loss_t *loss, nn_model_t *m, nn_adamw_t *opt, nn_adamw_t *popt,
                    const struct trainer_rm_batch *b, uint64_t step_seed, float lr, float clip,
                    const struct nn_adamw_opts *ao, struct trainer_rm_parts *pt, char *err,
                    size_t errlen)
{
    int rc = trainer_rm_loss_run(loss, b, step_seed, pt);
    if (rc) {
        err_fmt(err, errlen, "%s%s", err_str(rc),
                rc == ERR_INVAL ? " (a non-finite loss: lower --lr)" : "");
        return rc;
    }
    return trainer_rm_apply(loss, m, opt, popt, lr, clip, ao, err, errlen);
}

int trainer_rm_apply(trainer_rm_loss_t *loss, nn_model_t *m, nn_adamw_t *opt, nn_adamw_t *popt,
                     float lr, float clip, const struct nn_adamw_opts *ao, char *err, size_t errlen)
{
    size_t np = nn_model_num_params(m);
    int rc = nn_adamw_step_clip(opt, nn_model_params(m), nn_model_grads(m), np, lr, clip, ao, NULL);
    size_t nproto;
    float *C = trainer_rm_loss_prototypes(loss, &nproto);
    if (!rc && C) {
        float *dC = trainer_rm_loss_prototype_grads(loss, &nproto);
        int D = nn_model_config(m)->hidden_size;
        rc = popt ? nn_adamw_step(popt, C, dC, nproto, lr, ao) : ERR_INVAL;
        if (!rc)
            rc = nn_swav_normalize((int)(nproto / (size_t)D), D, C);
    }
    if (rc)
        err_fmt(err, errlen, "the optimizer: %s", err_str(rc));
    return rc;
}

static int train_step(struct rm_run *r, const struct nn_sched *sch, struct trainer_rm_parts *pt,
                      char *err, size_t errlen)
{
    long e = r->step / r->spe, k = r->step % r->spe;
    if (r->perm_epoch != e)
        make_perm(r, e);
    for (int i = 0; i < r->B; i++)
        r->batch[i] = &r->train[r->perm[(size_t)k * (size_t)r->B + (size_t)i]];
    struct trainer_rm_batch b;
    fill_batch(r, r->batch, r->B, &b);
    char why[512];
    float lr = nn_sched_lr(sch, r->step);
    int rc = r->meta ? trainer_rm_meta_train_step(r->meta, r->loss, r->m, r->opt, r->popt, &b,
                                                  r->step, step_seed(r, r->step), lr, r->o->clip,
                                                  &r->o->adamw, pt, why, sizeof why)
                     : trainer_rm_step(r->loss, r->m, r->opt, r->popt, &b, step_seed(r, r->step),
                                       lr, r->o->clip, &r->o->adamw, pt, why, sizeof why);
    if (rc) {
        err_fmt(err, errlen, "step %ld: %s", r->step + 1, why);
        return rc;
    }
    r->step++;
    r->ep_loss += pt->total;
    r->ep_acc += pt->accuracy;
    r->ep_n++;
    return ERR_OK;
}

static void sleep_ms(int64_t ms)
{
    struct timespec ts = {.tv_sec = (time_t)(ms / 1000), .tv_nsec = (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL); /* a signal cuts it short: the loop then sees *stop */
}

int trainer_rm_train(const struct trainer_rm_opts *o, const struct trainer_rm_data *data,
                     uint32_t min_version, volatile sig_atomic_t *stop,
                     struct trainer_rm_result *res, char *err, size_t errlen)
{
    return trainer_rm_train_meta(o, data, NULL, min_version, stop, res, err, errlen);
}

int trainer_rm_train_meta(const struct trainer_rm_opts *o, const struct trainer_rm_data *data,
                          const struct trainer_rm_meta_set *meta, uint32_t min_version,
                          volatile sig_atomic_t *stop, struct trainer_rm_result *res, char *err,
                          size_t errlen)
{
    memset(res, 0, sizeof *res);
    int rc = trainer_rm_validate(o, err, errlen);
    if (rc)
        return rc;
    double t0 = now_s();
    struct rm_run r = {.o = o, .res = res, .perm_epoch = -1};
    r.seed = res->seed = trainer_rm_seed(o);
    trainer_rm_loss_opts_of(o, &r.lo);
    json_t *state = NULL;
    if (trainer_rm_stem(r.stem, sizeof r.stem, o->ensemble, o->member)) {
        err_fmt(err, errlen, "--ensemble: too long");
        return ERR_TOOBIG;
    }
    /* The tokenizer and the sequences come first: the step count is part of the fingerprint's
     * check, and a resumed member needs them all the same. */
    rc = fresh_model(&r, err, errlen);
    if (!rc)
        rc = trainer_tokenizer(&r.tok, nn_model_config(r.m), o->from_scratch ? NULL : o->init_dir,
                               err, errlen);
    int max_len = 0;
    if (!rc) {
        int ctx = nn_model_config(r.m)->max_position_embeddings;
        max_len = o->max_len < ctx ? o->max_len : ctx;
        rc = encode_all(r.tok, data, false, max_len, &r.train, &r.ntrain, &res->too_long,
                        &res->truncated, err, errlen);
    }
    if (!rc)
        rc = encode_all(r.tok, data, true, max_len, &r.held, &r.nheld, &res->too_long,
                        &res->truncated, err, errlen);
    if (!rc && r.ntrain == 0) {
        err_fmt(err, errlen,
                "no pair to train on (%zu pairs, %zu held out, %zu with a prompt too "
                "long for --max-len %d)",
                data->n, data->counts.heldout, res->too_long, max_len);
        rc = ERR_INVAL;
    }
    if (!rc && (meta || o->meta.on))
        rc = trainer_rm_meta_new(&r.meta, meta, &o->meta, r.tok, max_len, r.seed, err, errlen);
    if (rc)
        goto out;
    res->train_pairs = r.ntrain;
    res->heldout_pairs = r.nheld;
    r.B = o->batch < (int)r.ntrain ? o->batch : (int)r.ntrain;
    r.spe = (long)(r.ntrain / (size_t)r.B);
    r.total = r.spe * o->epochs;
    res->steps = r.total;
    for (size_t i = 0; i < r.ntrain; i++) {
        r.maxT = r.train[i].lc > r.maxT ? r.train[i].lc : r.maxT;
        r.maxT = r.train[i].lr > r.maxT ? r.train[i].lr : r.maxT;
    }
    for (size_t i = 0; i < r.nheld; i++) {
        r.maxT = r.held[i].lc > r.maxT ? r.held[i].lc : r.maxT;
        r.maxT = r.held[i].lr > r.maxT ? r.held[i].lr : r.maxT;
    }
    rc = make_settings(&r, data, err, errlen);
    if (rc)
        goto out;
    /* Resume, or find it finished, or start anew above every version known. */
    uint32_t any = 0, valid = 0;
    bool done = false;
    scan_disk(&r, &any, &valid, &state);
    int got = state ? try_resume(&r, valid, state, &done, err, errlen) : 0;
    if (got < 0) {
        rc = got;
        goto out;
    }
    if (got && done) {
        res->already_done = true;
        log_info("rm %s: v%u is this training, finished: nothing to train", r.stem, valid);
        goto out;
    }
    if (!got) {
        r.step = 0;
        r.next_version = (any > min_version ? any : min_version) + 1;
    }
    res->resumed_at = r.step;
    rc = setup_training(&r, err, errlen);
    if (!rc && r.meta)
        rc = trainer_rm_meta_reserve(r.meta, r.m, err, errlen);
    if (!rc && got) {
        char why[512];
        rc = nn_checkpoint_load_optim(r.m, r.opt, res->dir, why, sizeof why);
        if (rc)
            err_fmt(err, errlen, "resuming from %s: %s", res->dir, why);
        if (!rc)
            rc = load_swav(&r, res->dir, err, errlen);
        if (!rc)
            log_info("rm %s: resuming at step %ld of %ld from %s", r.stem, r.step, r.total,
                     res->dir);
    }
    if (rc)
        goto out;
    if (!got)
        log_info("rm %s: %zu pairs to train on, %zu held out; %ld steps of %d (%d epochs), seed "
                 "%llu; v%u",
                 r.stem, r.ntrain, r.nheld, r.total, r.B, o->epochs, (unsigned long long)r.seed,
                 r.next_version);
    struct nn_sched sch = {.kind = (enum nn_sched_kind)o->schedule,
                           .lr = o->lr,
                           .min_lr = o->lr * o->min_lr_ratio,
                           .warmup = warmup_of(&r),
                           .total_steps = r.total};
    long every_log = r.total / 20 > 1 ? r.total / 20 : 1;
    while (r.step < r.total) {
        if (stop && *stop) {
            res->stopped = true;
            if (r.step > r.ckpt_step) /* else the last checkpoint is this state */
                rc = write_checkpoint(&r, false, err, errlen);
            break;
        }
        struct trainer_rm_parts pt;
        rc = train_step(&r, &sch, &pt, err, errlen);
        if (rc)
            break;
        res->steps_done++;
        if (r.step % every_log == 0)
            log_info("rm %s: step %ld/%ld loss %.4f (bt %.4f cl %.4f lm %.4f) acc %.2f margin "
                     "%+.3f",
                     r.stem, r.step, r.total, pt.total, pt.rm, pt.cl, pt.lm, pt.accuracy,
                     pt.reward_chosen - pt.reward_rejected);
        if (r.step % r.spe == 0) { /* the epoch's end */
            int e = (int)(r.step / r.spe) - 1;
            struct trainer_rm_epoch *ep = &res->epoch[e];
            rc = evaluate(&r, ep);
            if (rc) {
                err_fmt(err, errlen, "epoch %d: evaluating: %s", e + 1, err_str(rc));
                break;
            }
            ep->train_loss = r.ep_n ? r.ep_loss / (double)r.ep_n : 0.0;
            ep->train_accuracy = r.ep_n ? r.ep_acc / (double)r.ep_n : 0.0;
            r.ep_loss = r.ep_acc = 0.0;
            r.ep_n = 0;
            res->epochs_done = e + 1;
            if (ep->heldout_pairs)
                log_info("rm %s: epoch %d/%d: train loss %.4f acc %.3f; held-out accuracy %.3f, "
                         "loss %.4f on %zu pairs",
                         r.stem, e + 1, o->epochs, ep->train_loss, ep->train_accuracy,
                         ep->heldout_accuracy, ep->heldout_loss, ep->heldout_pairs);
            else
                log_info("rm %s: epoch %d/%d: train loss %.4f acc %.3f (no pair held out)", r.stem,
                         e + 1, o->epochs, ep->train_loss, ep->train_accuracy);
        }
        if (r.step == r.total || r.step % o->checkpoint_every == 0) {
            rc = write_checkpoint(&r, r.step == r.total, err, errlen);
            if (rc)
                break;
        }
        if (o->step_sleep_ms > 0 && r.step < r.total)
            sleep_ms(o->step_sleep_ms);
    }
out:
    res->seconds = now_s() - t0;
    json_decref(state);
    run_free(&r);
    return rc;
}

/* ---- the ledger --------------------------------------------------------------------------- */

int trainer_rm_ledger_version(bus_client_t *cl, const char *ensemble, int member, int timeout_ms,
                              uint32_t *version)
{
    *version = 0;
    uint64_t after = 0;
    for (;;) {
        Oaif__V1__Envelope *env = NULL;
        int rc = bus_client_scan(cl, OAIF__V1__RECORD_KIND__RECORD_KIND_CHECKPOINT, after, 1000,
                                 timeout_ms, &env);
        if (rc)
            return rc;
        Oaif__V1__Records *rs = env->records;
        for (size_t i = 0; rs && i < rs->n_records; i++) {
            Oaif__V1__Checkpoint *c = oaif__v1__checkpoint__unpack(NULL, rs->records[i]->data.len,
                                                                   rs->records[i]->data.data);
            if (c && c->kind == OAIF__V1__CHECKPOINT_KIND__CHECKPOINT_KIND_REWARD && c->ensemble &&
                !strcmp(c->ensemble, ensemble) && c->member == (uint32_t)member &&
                c->version > *version)
                *version = c->version;
            if (c)
                oaif__v1__checkpoint__free_unpacked(c, NULL);
        }
        bool more = rs && rs->more;
        after = rs ? rs->next_seq : after;
        oaif__v1__envelope__free_unpacked(env, NULL);
        if (!more)
            return ERR_OK;
    }
}

int trainer_rm_publish(bus_client_t *cl, const struct trainer_rm_opts *o,
                       const struct trainer_rm_result *res, int timeout_ms)
{
    enum { MAXM = 10 + 2 * TRAINER_RM_MAX_EPOCHS };
    Oaif__V1__Metric ms[MAXM], *mp[MAXM];
    char names[2 * TRAINER_RM_MAX_EPOCHS][40];
    size_t nm = 0;
#define ADD(n, v)                                                                                  \
    do {                                                                                           \
        oaif__v1__metric__init(&ms[nm]);                                                           \
        ms[nm].name = (char *)(n);                                                                 \
        ms[nm].value = (v);                                                                        \
        mp[nm] = &ms[nm];                                                                          \
        nm++;                                                                                      \
    } while (0)
    ADD("step", (double)res->steps);
    ADD("epochs", (double)res->epochs_done);
    ADD("seed", (double)res->seed);
    ADD("train_pairs", (double)res->train_pairs);
    ADD("heldout_pairs", (double)res->heldout_pairs);
    if (res->epochs_done > 0) {
        const struct trainer_rm_epoch *last = &res->epoch[res->epochs_done - 1];
        ADD("train_loss", last->train_loss);
        if (last->heldout_pairs) {
            ADD("heldout_accuracy", last->heldout_accuracy);
            ADD("heldout_loss", last->heldout_loss);
        }
    }
    for (int k = 0; k < res->epochs_done; k++) {
        if (!res->epoch[k].heldout_pairs)
            continue;
        char *acc = names[2 * (size_t)k], *loss = names[2 * (size_t)k + 1];
        snprintf(acc, sizeof names[0], "heldout_accuracy_e%d", k + 1);
        snprintf(loss, sizeof names[0], "heldout_loss_e%d", k + 1);
        ADD(acc, res->epoch[k].heldout_accuracy);
        ADD(loss, res->epoch[k].heldout_loss);
    }
#undef ADD
    char stem[256], id[300];
    if (trainer_rm_stem(stem, sizeof stem, o->ensemble, o->member))
        return ERR_TOOBIG;
    snprintf(id, sizeof id, "%s-v%u", stem, res->version);
    Oaif__V1__Checkpoint c = OAIF__V1__CHECKPOINT__INIT;
    c.id = id;
    c.version = res->version;
    c.kind = OAIF__V1__CHECKPOINT_KIND__CHECKPOINT_KIND_REWARD;
    c.step = (uint64_t)res->steps;
    c.path = (char *)res->dir;
    c.sha256 = (char *)res->sha256;
    c.metrics = mp;
    c.n_metrics = nm;
    c.created_ms = bus_now_ms();
    c.run = o->dataset ? o->dataset : o->run;
    c.ensemble = o->ensemble;
    c.member = (uint32_t)o->member;
    return ckpt_publish(cl, &c, timeout_ms);
}
