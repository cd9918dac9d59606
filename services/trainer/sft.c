/* sft.c - see sft.h. */
#include "sft.h"

#include <ctype.h>
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "busclient.h"
#include "checkpoint.h"
#include "ckpt.h"
#include "ckptfiles.h"
#include "err.h"
#include "evaluate.h"
#include "loss.h"
#include "optim.h"
#include "policy.h"

#define SORT_WINDOW     16 /* batches whose sequences are grouped by length (less padding) */
#define SETTINGS_FORMAT 1

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* ---- options ------------------------------------------------------------------------------ */

int trainer_sft_validate(const struct trainer_sft_opts *o, char *err, size_t errlen)
{
    if (!o) {
        err_fmt(err, errlen, "no options");
        return ERR_INVAL;
    }
#define BAD(...)                                                                                   \
    do {                                                                                           \
        err_fmt(err, errlen, __VA_ARGS__);                                                         \
        return ERR_INVAL;                                                                          \
    } while (0)
    if (o->steps < 1 || o->steps > 100000000L)
        BAD("--steps is %ld, must be in [1, 100000000]", o->steps);
    if (o->batch < 1 || o->batch > 4096)
        BAD("--batch is %d, must be in [1, 4096]", o->batch);
    if (o->max_len < 2 || o->max_len > 1 << 20)
        BAD("--max-len is %d, must be in [2, 1048576]", o->max_len);
    if (!(o->lr > 0.0f) || !(o->lr < 10.0f))
        BAD("--lr is %g, must be in (0, 10)", (double)o->lr);
    if (!(o->min_lr_ratio >= 0.0f && o->min_lr_ratio <= 1.0f))
        BAD("--min-lr-ratio is %g, must be in [0, 1]", (double)o->min_lr_ratio);
    if (o->warmup < 0)
        BAD("--warmup is %ld, must be >= 0", o->warmup);
    if (!(o->weight_decay >= 0.0f && o->weight_decay < 1.0f))
        BAD("--weight-decay is %g, must be in [0, 1)", (double)o->weight_decay);
    if (!(o->clip >= 0.0f) || isinf(o->clip))
        BAD("--clip is %g, must be >= 0 (0: off)", (double)o->clip);
    if (o->eval_n < 0 || o->eval_n > 1000000)
        BAD("--eval is %d, must be in [0, 1000000]", o->eval_n);
    if (o->eval_every < 0)
        BAD("--eval-every is %ld, must be >= 0", o->eval_every);
    if (o->eval_n > 0 && (o->eval_max_new < 1 || o->eval_max_new > 1 << 16))
        BAD("--eval-max-new is %d, must be in [1, 65536]", o->eval_max_new);
    if (!o->data_path) {
        if (!(o->demo.wrong_share >= 0.0 && o->demo.wrong_share <= 1.0))
            BAD("--wrong-share is %g, must be in [0, 1]", o->demo.wrong_share);
        if (!(o->demo.verbose_share >= 0.0 && o->demo.verbose_share <= 1.0))
            BAD("--verbose-share is %g, must be in [0, 1]", o->demo.verbose_share);
        if (!(o->demo.habit_share >= 0.0 && o->demo.habit_share <= 1.0))
            BAD("--habit-share is %g, must be in [0, 1]", o->demo.habit_share);
        if (o->demos < 0 || o->demos > 1L << 26)
            BAD("--demos is %ld, must be in [0, %ld]", o->demos, 1L << 26);
    }
#undef BAD
    return ERR_OK;
}

/* The warm-up steps: o->warmup, capped at the run's steps. */
static long warmup_of(const struct trainer_sft_opts *o)
{
    return o->warmup < o->steps ? o->warmup : o->steps;
}

/* The built-in demonstrations to generate: o->demos, or one per sequence the steps take. */
static size_t demos_of(const struct trainer_sft_opts *o)
{
    return o->demos > 0 ? (size_t)o->demos : (size_t)o->steps * (size_t)o->batch;
}

/* ---- sequences ---------------------------------------------------------------------------- */

struct seq {
    int *ids;
    int len;  /* tokens */
    int plen; /* prompt tokens (the first response token is ids[plen]) */
};

static void seqs_free(struct seq *s, size_t n)
{
    if (!s)
        return;
    for (size_t i = 0; i < n; i++)
        free(s[i].ids);
    free(s);
}

/* Tokens of one pair: rendered prompt, separator, response, EOS; cut at max_len. */
static int encode_pair(const tok_t *tk, const char *prompt, const char *response, int max_len,
                       struct seq *s, bool *cut, char *err, size_t errlen)
{
    int *pids = NULL, *rids = NULL;
    size_t np = 0, nr = 0;
    char *rendered = NULL, *text = NULL;
    unsigned flags = tok_wants_bos(tk) ? TOK_ADD_BOS : 0;
    int rc = tok_encode_prompt(tk, prompt, flags, &pids, &np, err, errlen);
    if (rc)
        goto out;
    rc = tok_render_prompt(tk, prompt, &rendered);
    if (rc) {
        err_fmt(err, errlen, "out of memory");
        goto out;
    }
    size_t rl = strlen(rendered), l = strlen(response);
    bool sep = rl > 0 && !isspace((unsigned char)rendered[rl - 1]) && l > 0 &&
               !isspace((unsigned char)response[0]);
    text = malloc(l + 2);
    if (!text) {
        rc = ERR_NOMEM;
        err_fmt(err, errlen, "out of memory");
        goto out;
    }
    snprintf(text, l + 2, "%s%s", sep ? " " : "", response);
    rc = tok_encode(tk, text, strlen(text), 0, &rids, &nr, err, errlen);
    if (rc)
        goto out;
    int eos = tok_eos_id(tk);
    size_t total = np + nr + (eos >= 0 ? 1 : 0);
    if (np < 1 || np + 1 > (size_t)max_len) {
        err_fmt(err, errlen,
                "the prompt is %zu tokens; with max_len %d it leaves no room for a "
                "response",
                np, max_len);
        rc = ERR_INVAL;
        goto out;
    }
    *cut = total > (size_t)max_len;
    s->len = (int)(*cut ? (size_t)max_len : total);
    s->plen = (int)np;
    s->ids = malloc((size_t)s->len * sizeof(int));
    if (!s->ids) {
        rc = ERR_NOMEM;
        err_fmt(err, errlen, "out of memory");
        goto out;
    }
    memcpy(s->ids, pids, np * sizeof(int));
    size_t k = np;
    for (size_t i = 0; i < nr && k < (size_t)s->len; i++)
        s->ids[k++] = rids[i];
    if (k < (size_t)s->len)
        s->ids[k++] = eos;
out:
    free(pids);
    free(rids);
    free(rendered);
    free(text);
    return rc;
}

/* ---- progress ----------------------------------------------------------------------------- */

struct progress {
    bool on;
    bool drawn; /* a bar is on the current line */
    double last;
};

static void progress_draw(struct progress *p, long step, long steps, double loss, double tps,
                          double elapsed, bool force)
{
    if (!p->on)
        return;
    double t = now_s();
    if (!force && t - p->last < 0.25)
        return;
    p->last = t;
    const int W = 24;
    int fill = (int)((double)W * (double)step / (double)steps);
    char bar[32];
    for (int i = 0; i < W; i++)
        bar[i] = i < fill ? '#' : '.';
    bar[W] = '\0';
    double eta = step > 0 ? elapsed / (double)step * (double)(steps - step) : 0.0;
    fprintf(stderr, "\rsft [%s] step %ld/%ld  loss %.4f  %.0f tok/s  ETA %dm%02ds ", bar, step,
            steps, loss, tps, (int)eta / 60, (int)eta % 60);
    fflush(stderr);
    p->drawn = true;
}

static void progress_break(struct progress *p)
{
    if (p->on && p->drawn) {
        fputc('\n', stderr);
        p->drawn = false;
    }
}

/* ---- training ----------------------------------------------------------------------------- */

/* Load pairs and tokenize them. */
static int load_seqs(const struct trainer_sft_opts *o, const tok_t *tk, size_t want,
                     struct seq **out, size_t *n, size_t *truncated, char *err, size_t errlen)
{
    struct task_pair *pairs = NULL;
    size_t np = 0;
    int rc;
    char why[512];
    *out = NULL;
    *n = 0;
    *truncated = 0;
    if (o->data_path) {
        rc = task_jsonl_read(o->data_path, &pairs, &np, why, sizeof why);
        if (rc) {
            err_fmt(err, errlen, "%s", why);
            if (rc == ERR_IO && access(o->data_path, F_OK) != 0)
                rc = ERR_NOTFOUND;
            return rc;
        }
    } else {
        np = want;
        rc = task_demo_pairs(o->task_seed, np, &o->demo, &pairs);
        if (rc) {
            err_fmt(err, errlen, "the built-in demonstrations: %s", err_str(rc));
            return rc;
        }
    }
    struct seq *s = calloc(np, sizeof *s);
    if (!s) {
        task_pairs_free(&pairs, np);
        err_fmt(err, errlen, "out of memory");
        return ERR_NOMEM;
    }
    for (size_t i = 0; i < np; i++) {
        bool cut = false;
        rc = encode_pair(tk, pairs[i].prompt, pairs[i].response, o->max_len, &s[i], &cut, why,
                         sizeof why);
        if (rc) {
            err_fmt(err, errlen, "%s: pair %zu%s%s%s: %s",
                    o->data_path ? o->data_path : "built-in demonstrations", i + 1,
                    pairs[i].id ? " (id \"" : "", pairs[i].id ? pairs[i].id : "",
                    pairs[i].id ? "\")" : "", why);
            seqs_free(s, np);
            task_pairs_free(&pairs, np);
            return rc;
        }
        *truncated += cut;
    }
    task_pairs_free(&pairs, np);
    *out = s;
    *n = np;
    return ERR_OK;
}

struct order_item {
    size_t idx;
    int len;
    size_t pos; /* position in the stream: ties keep the shuffled order */
};

static int order_cmp(const void *a, const void *b)
{
    const struct order_item *x = a, *y = b;
    if (x->len != y->len)
        return x->len < y->len ? -1 : 1;
    return x->pos < y->pos ? -1 : x->pos > y->pos;
}

/* The sequence index of every slot of every step: epochs of shuffled pairs one after another;
 * then windows of SORT_WINDOW batches sorted by length and cut into batches, whose order within
 * the window is shuffled again. [steps * batch], malloc'd. */
static size_t *make_schedule(const struct seq *s, size_t n, long steps, int batch, uint64_t seed)
{
    size_t total = (size_t)steps * (size_t)batch;
    if (n == 0 || total == 0)
        return NULL;
    size_t *sched = calloc(total, sizeof *sched);
    size_t *perm = malloc(n * sizeof *perm);
    size_t win = (size_t)SORT_WINDOW * (size_t)batch;
    struct order_item *w = malloc(win * sizeof *w);
    size_t *bo = malloc(SORT_WINDOW * sizeof *bo);
    if (!sched || !perm || !w || !bo) {
        free(sched);
        sched = NULL;
        goto out;
    }
    uint64_t rng = seed ^ 0x5f7d3a1c9e4b2d61ULL;
    for (size_t k = 0; k < total;) {
        for (size_t i = 0; i < n; i++)
            perm[i] = i;
        for (size_t i = n; i > 1; i--) { /* Fisher-Yates */
            size_t j = (size_t)(nn_rng_next(&rng) % i);
            size_t t = perm[i - 1];
            perm[i - 1] = perm[j];
            perm[j] = t;
        }
        for (size_t i = 0; i < n && k < total; i++)
            sched[k++] = perm[i];
    }
    for (size_t w0 = 0; w0 < total; w0 += win) {
        size_t m = total - w0 < win ? total - w0 : win, nb = m / (size_t)batch;
        for (size_t i = 0; i < m; i++)
            w[i] = (struct order_item){sched[w0 + i], s[sched[w0 + i]].len, i};
        qsort(w, m, sizeof *w, order_cmp);
        for (size_t i = 0; i < nb; i++)
            bo[i] = i;
        for (size_t i = nb; i > 1; i--) {
            size_t j = (size_t)(nn_rng_next(&rng) % i);
            size_t t = bo[i - 1];
            bo[i - 1] = bo[j];
            bo[j] = t;
        }
        for (size_t bi = 0; bi < nb; bi++)
            for (int r = 0; r < batch; r++)
                sched[w0 + bi * (size_t)batch + (size_t)r] =
                    w[bo[bi] * (size_t)batch + (size_t)r].idx;
    }
out:
    free(perm);
    free(w);
    free(bo);
    return sched;
}

/* Exclude norms (1-d tensors) and the embeddings from weight decay. */
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

int trainer_sft_train(const struct trainer_sft_opts *o, nn_model_t **out,
                      struct trainer_sft_result *res, char *err, size_t errlen)
{
    *out = NULL;
    memset(res, 0, sizeof *res);
    int rc = trainer_sft_validate(o, err, errlen);
    if (rc)
        return rc;
    nn_model_t *m = NULL;
    tok_t *tk = NULL;
    struct seq *seqs = NULL;
    size_t nseq = 0;
    size_t *sched = NULL;
    nn_adamw_t *opt = NULL;
    int *tokens = NULL, *lens = NULL, *plens = NULL, *ntok = NULL;
    float *logp = NULL, *dlogp = NULL;
    double *losses = NULL;
    char why[512];
    if (o->init_dir) {
        rc = nn_checkpoint_load(&m, o->init_dir, why, sizeof why);
        if (rc) {
            err_fmt(err, errlen, "--init %s: %s", o->init_dir, why);
            goto out;
        }
    } else {
        struct nn_config c;
        trainer_builtin_config(&c);
        rc = nn_model_new(&m, &c, why, sizeof why);
        if (rc) {
            err_fmt(err, errlen, "the built-in model: %s", why);
            goto out;
        }
        nn_model_init_random(m, o->seed, TRAINER_BUILTIN_INIT_STD);
    }
    const struct nn_config *cfg = nn_model_config(m);
    rc = trainer_tokenizer(&tk, cfg, o->init_dir, err, errlen);
    if (rc)
        goto out;
    int max_len =
        o->max_len < cfg->max_position_embeddings ? o->max_len : cfg->max_position_embeddings;
    struct trainer_sft_opts eo = *o;
    eo.max_len = max_len;
    size_t want = demos_of(o);
    rc = load_seqs(&eo, tk, want, &seqs, &nseq, &res->truncated, err, errlen);
    if (rc)
        goto out;
    if (nseq == 0) {
        rc = ERR_INVAL;
        err_fmt(err, errlen, "no training pairs");
        goto out;
    }
    /* The loss's denominator: B times the mean response tokens (EOS included) of the data, so
     * that every token weighs the same in whichever length-sorted batch it lands. */
    double resp_tokens = 0;
    for (size_t i = 0; i < nseq; i++)
        resp_tokens += seqs[i].len - seqs[i].plen;
    double denom =
        o->loss_norm == TRAINER_SFT_NORM_BATCH ? 0 : o->batch * (resp_tokens / (double)nseq);
    res->pairs = nseq;
    int B = o->batch, Tb = 0;
    for (size_t i = 0; i < nseq; i++)
        Tb = seqs[i].len > Tb ? seqs[i].len : Tb;
    sched = make_schedule(seqs, nseq, o->steps, B, o->seed);
    opt = nn_adamw_new(nn_model_num_params(m));
    tokens = malloc((size_t)B * (size_t)(Tb > 0 ? Tb : 1) * sizeof(int));
    lens = malloc((size_t)B * sizeof(int));
    plens = malloc((size_t)B * sizeof(int));
    ntok = malloc((size_t)B * sizeof(int));
    logp = malloc((size_t)B * sizeof(float));
    dlogp = malloc((size_t)B * sizeof(float));
    losses = malloc((size_t)o->steps * sizeof(double));
    if (!sched || !opt || !tokens || !lens || !plens || !ntok || !logp || !dlogp || !losses) {
        rc = ERR_NOMEM;
        err_fmt(err, errlen, "out of memory");
        goto out;
    }
    rc = set_decay(opt, m);
    if (!rc)
        rc = nn_model_reserve(m, B, Tb, true);
    if (rc) {
        err_fmt(err, errlen, "reserving a batch of %d x %d tokens: %s", B, Tb, err_str(rc));
        goto out;
    }
    struct nn_sched sch = {.kind = NN_SCHED_COSINE,
                           .lr = o->lr,
                           .min_lr = o->lr * o->min_lr_ratio,
                           .warmup = warmup_of(o),
                           .total_steps = o->steps};
    struct nn_adamw_opts ao = {
        .beta1 = 0.9f, .beta2 = 0.95f, .eps = 1e-8f, .weight_decay = o->weight_decay};
    struct progress pg = {.on = !o->no_progress && (o->progress || isatty(STDERR_FILENO))};
    int pad = tok_pad_id(tk) >= 0 ? tok_pad_id(tk) : 0;
    size_t np = nn_model_num_params(m);
    double t0 = now_s(), train_s = 0.0, tok_total = 0.0, ema = 0.0;
    for (long step = 0; step < o->steps; step++) {
        double ts = now_s();
        const size_t *idx = sched + (size_t)step * B;
        int T = 0;
        for (int b = 0; b < B; b++)
            T = seqs[idx[b]].len > T ? seqs[idx[b]].len : T;
        for (int b = 0; b < B; b++) {
            const struct seq *s = &seqs[idx[b]];
            int *row = tokens + (size_t)b * T;
            if (s->ids) /* always: encode_pair made every one */
                memcpy(row, s->ids, (size_t)s->len * sizeof(int));
            for (int t = s->len; t < T; t++)
                row[t] = pad;
            lens[b] = s->len;
            plens[b] = s->plen;
            tok_total += s->len;
        }
        struct nn_batch bt = {.B = B, .T = T, .tokens = tokens, .lengths = lens};
        double loss = 0.0;
        rc = nn_model_forward(m, &bt, NULL);
        if (!rc)
            rc = nn_model_seq_logprobs(m, plens, logp, ntok);
        if (!rc)
            rc = nn_loss_sft(B, logp, ntok, denom, dlogp, &loss);
        if (!rc)
            rc = nn_model_zero_grad(m);
        if (!rc) {
            struct nn_bwd_in bi = {.dlogp = dlogp};
            rc = nn_model_backward(m, &bi);
        }
        if (rc) {
            err_fmt(err, errlen, "step %ld: %s", step + 1, err_str(rc));
            goto out;
        }
        rc = nn_adamw_step_clip(opt, nn_model_params(m), nn_model_grads(m), np,
                                nn_sched_lr(&sch, step), o->clip, &ao, NULL);
        if (rc) {
            err_fmt(err, errlen, "step %ld: the optimizer: %s", step + 1, err_str(rc));
            goto out;
        }
        if (!isfinite(loss)) {
            rc = ERR_INVAL;
            err_fmt(err, errlen, "step %ld: the loss is %g (lower the learning rate)", step + 1,
                    loss);
            goto out;
        }
        losses[step] = loss;
        if (step == 0) {
            res->first_loss = loss;
            ema = loss;
        }
        ema = 0.95 * ema + 0.05 * loss;
        train_s += now_s() - ts;
        progress_draw(&pg, step + 1, o->steps, ema, tok_total / train_s, now_s() - t0,
                      step + 1 == o->steps);
        if (o->eval_n > 0 && o->eval_every > 0 && (step + 1) % o->eval_every == 0 &&
            step + 1 < o->steps) {
            struct trainer_eval ev;
            rc = trainer_eval_task(m, tk, o->task_seed, o->eval_n, o->eval_max_new, NULL, &ev, err,
                                   errlen);
            if (rc)
                goto out;
            progress_break(&pg);
            char what[64];
            snprintf(what, sizeof what, "sft step %ld eval", step + 1);
            trainer_eval_print(stderr, what, &ev);
        }
    }
    progress_break(&pg);
    res->steps = o->steps;
    res->seconds = train_s;
    res->tokens_per_s = train_s > 0 ? tok_total / train_s : 0.0;
    long tail = o->steps / 10 > 1 ? o->steps / 10 : 1;
    double sum = 0.0;
    for (long s = o->steps - tail; s < o->steps; s++)
        sum += losses[s];
    res->final_loss = sum / (double)tail;
    if (o->eval_n > 0) {
        FILE *samples = NULL;
        if (o->eval_samples) {
            samples = fopen(o->eval_samples, "w");
            if (!samples) {
                err_fmt(err, errlen, "%s: %s", o->eval_samples, strerror(errno));
                rc = ERR_IO;
                goto out;
            }
        }
        rc = trainer_eval_task(m, tk, o->task_seed, o->eval_n, o->eval_max_new, samples, &res->eval,
                               err, errlen);
        if (samples && fclose(samples) && !rc) {
            err_fmt(err, errlen, "%s: write error", o->eval_samples);
            rc = ERR_IO;
        }
        if (rc)
            goto out;
        res->evaluated = true;
    }
    *out = m;
    m = NULL;
out:
    nn_model_destroy(&m);
    tok_destroy(&tk);
    seqs_free(seqs, nseq);
    free(sched);
    nn_adamw_destroy(&opt);
    free(tokens);
    free(lens);
    free(plens);
    free(ntok);
    free(logp);
    free(dlogp);
    free(losses);
    return rc;
}

/* ---- the checkpoint, its settings and the cache ------------------------------------------- */

static json_t *config_json(const struct nn_config *c)
{
    return json_pack("{s:i, s:i, s:i, s:i, s:i, s:i, s:i, s:f, s:f, s:b, s:i, s:i, s:i, s:s}",
                     "vocab_size", c->vocab_size, "hidden_size", c->hidden_size,
                     "intermediate_size", c->intermediate_size, "num_hidden_layers",
                     c->num_hidden_layers, "num_attention_heads", c->num_attention_heads,
                     "num_key_value_heads", c->num_key_value_heads, "max_position_embeddings",
                     c->max_position_embeddings, "rms_norm_eps", (double)c->rms_norm_eps,
                     "rope_theta", (double)c->rope_theta, "tie_word_embeddings",
                     c->tie_word_embeddings, "bos_token_id", c->bos_token_id, "eos_token_id",
                     c->eos_token_id, "pad_token_id", c->pad_token_id, "tokenizer", c->tokenizer);
}

/* Everything that decides the trained model and its reported evaluation. */
static json_t *settings_json(const struct trainer_sft_opts *o, const char *data_sha,
                             const char *init_sha)
{
    json_t *s = json_pack(
        "{s:i, s:I, s:I, s:i, s:i, s:f, s:f, s:I, s:f, s:f, s:s, s:i, s:i, s:I}", "format",
        SETTINGS_FORMAT, "seed", (json_int_t)o->seed, "steps", (json_int_t)o->steps, "batch",
        o->batch, "max_len", o->max_len, "lr", (double)o->lr, "min_lr_ratio",
        (double)o->min_lr_ratio, "warmup", (json_int_t)warmup_of(o), "weight_decay",
        (double)o->weight_decay, "clip", (double)o->clip, "loss_norm",
        o->loss_norm == TRAINER_SFT_NORM_BATCH ? "batch" : "data", "eval_n", o->eval_n,
        "eval_max_new", o->eval_n > 0 ? o->eval_max_new : 0, "task_seed", (json_int_t)o->task_seed);
    if (!s)
        return NULL;
    json_t *data =
        o->data_path
            ? json_pack("{s:s}", "sha256", data_sha)
            : json_pack("{s:s, s:I, s:f, s:f, s:f}", "builtin", "task_demo_pairs", "demos",
                        (json_int_t)demos_of(o), "wrong_share", o->demo.wrong_share,
                        "verbose_share", o->demo.verbose_share, "habit_share", o->demo.habit_share);
    json_t *init;
    if (o->init_dir) {
        init = json_pack("{s:s}", "sha256", init_sha);
    } else {
        struct nn_config c;
        trainer_builtin_config(&c);
        init = json_pack("{s:o, s:f}", "builtin", config_json(&c), "std",
                         (double)TRAINER_BUILTIN_INIT_STD);
    }
    if (!data || !init || json_object_set_new(s, "data", data) ||
        json_object_set_new(s, "init", init)) {
        json_decref(s);
        return NULL;
    }
    return s;
}

static json_t *result_json(const struct trainer_sft_result *r)
{
    json_t *j = json_pack("{s:I, s:I, s:I, s:f, s:f, s:f, s:f, s:b}", "pairs", (json_int_t)r->pairs,
                          "truncated", (json_int_t)r->truncated, "steps", (json_int_t)r->steps,
                          "first_loss", r->first_loss, "final_loss", r->final_loss, "seconds",
                          r->seconds, "tokens_per_s", r->tokens_per_s, "evaluated", r->evaluated);
    if (!j || !r->evaluated)
        return j;
    const struct trainer_eval *e = &r->eval;
    json_t *fam = json_object();
    for (int k = 0; fam && k < TASK_FAMILY_COUNT; k++)
        json_object_set_new(fam, task_family_name((enum task_family)k),
                            json_pack("[i, i]", e->fam_correct[k], e->fam_n[k]));
    json_t *ev = json_pack("{s:i, s:i, s:i, s:f, s:f, s:f, s:o}", "n", e->n, "correct", e->correct,
                           "found", e->found, "accuracy", e->accuracy, "mean_length",
                           e->mean_length, "terse_share", e->terse_share, "families", fam);
    if (!ev || json_object_set_new(j, "eval", ev)) {
        json_decref(j);
        return NULL;
    }
    return j;
}

static bool result_parse(json_t *j, struct trainer_sft_result *r)
{
    memset(r, 0, sizeof *r);
    json_int_t pairs = 0, trunc = 0, steps = 0;
    int evaluated = 0;
    if (!j || json_unpack(j, "{s:I, s:I, s:I, s:F, s:F, s:F, s:F, s:b}", "pairs", &pairs,
                          "truncated", &trunc, "steps", &steps, "first_loss", &r->first_loss,
                          "final_loss", &r->final_loss, "seconds", &r->seconds, "tokens_per_s",
                          &r->tokens_per_s, "evaluated", &evaluated))
        return false;
    r->pairs = (size_t)pairs;
    r->truncated = (size_t)trunc;
    r->steps = (long)steps;
    r->evaluated = evaluated;
    if (!evaluated)
        return true;
    struct trainer_eval *e = &r->eval;
    json_t *fam = NULL;
    if (json_unpack(j, "{s:{s:i, s:i, s:i, s:F, s:F, s:F, s:o}}", "eval", "n", &e->n, "correct",
                    &e->correct, "found", &e->found, "accuracy", &e->accuracy, "mean_length",
                    &e->mean_length, "terse_share", &e->terse_share, "families", &fam))
        return false;
    for (int k = 0; k < TASK_FAMILY_COUNT; k++) {
        json_t *f = json_object_get(fam, task_family_name((enum task_family)k));
        if (f && json_unpack(f, "[i, i]", &e->fam_correct[k], &e->fam_n[k]))
            return false;
    }
    return true;
}

/* The cache: dir/sft.json with equal settings, and weights with the recorded sha256. */
static bool cache_hit(const char *dir, json_t *settings, struct trainer_sft_outcome *out)
{
    char path[4200], hex[65], why[256];
    snprintf(path, sizeof path, "%s/%s", dir, TRAINER_SFT_SETTINGS);
    json_t *j = json_load_file(path, 0, NULL);
    if (!j)
        return false;
    bool hit = false;
    const char *sha = json_string_value(json_object_get(j, "sha256"));
    if (sha && strlen(sha) == 64 && json_equal(json_object_get(j, "settings"), settings)) {
        char cfg[4200];
        snprintf(path, sizeof path, "%s/%s", dir, NN_CKPT_WEIGHTS);
        snprintf(cfg, sizeof cfg, "%s/%s", dir, NN_CKPT_CONFIG);
        hit = access(cfg, R_OK) == 0 && !ckpt_file_sha256(path, hex, why, sizeof why) &&
              !strcmp(hex, sha) && result_parse(json_object_get(j, "result"), &out->res);
        if (hit)
            memcpy(out->sha256, hex, sizeof out->sha256);
    }
    json_decref(j);
    return hit;
}

int trainer_sft_run(const struct trainer_sft_opts *o, struct trainer_sft_outcome *out, char *err,
                    size_t errlen)
{
    memset(out, 0, sizeof *out);
    int rc = trainer_sft_validate(o, err, errlen);
    if (rc)
        return rc;
    const char *root = o->root;
    if (!root || !*root) {
        err_fmt(err, errlen, "no checkpoint root (--out)");
        return ERR_INVAL;
    }
    rc = ckpt_dir(out->dir, sizeof out->dir, root, OAIF__V1__CHECKPOINT_KIND__CHECKPOINT_KIND_SFT,
                  0);
    if (rc) {
        err_fmt(err, errlen, "%s: path too long", root);
        return rc;
    }
    char data_sha[65] = "", init_sha[65] = "", why[512], path[4200];
    if (o->data_path) {
        rc = ckpt_file_sha256(o->data_path, data_sha, why, sizeof why);
        if (rc) {
            err_fmt(err, errlen, "%s", why);
            return access(o->data_path, F_OK) ? ERR_NOTFOUND : rc;
        }
    }
    if (o->init_dir) {
        snprintf(path, sizeof path, "%s/%s", o->init_dir, NN_CKPT_WEIGHTS);
        rc = ckpt_file_sha256(path, init_sha, why, sizeof why);
        if (rc) {
            err_fmt(err, errlen, "--init: %s", why);
            return access(path, F_OK) ? ERR_NOTFOUND : rc;
        }
    }
    json_t *settings = settings_json(o, data_sha, init_sha);
    if (!settings) {
        err_fmt(err, errlen, "out of memory");
        return ERR_NOMEM;
    }
    if (!o->force && cache_hit(out->dir, settings, out)) {
        out->cached = true;
        json_decref(settings);
        return ERR_OK;
    }
    nn_model_t *m = NULL;
    json_t *doc = NULL;
    rc = trainer_sft_train(o, &m, &out->res, err, errlen);
    if (rc)
        goto out;
    rc = trainer_make_dirs(out->dir, err, errlen);
    if (rc)
        goto out;
    snprintf(path, sizeof path, "%s/%s", out->dir, TRAINER_SFT_SETTINGS);
    if (unlink(path) != 0 && errno != ENOENT) { /* no stale settings beside new weights */
        err_fmt(err, errlen, "%s: %s", path, strerror(errno));
        rc = ERR_IO;
        goto out;
    }
    rc = nn_checkpoint_save(m, out->dir, err, errlen);
    if (rc)
        goto out;
    char wpath[4200];
    snprintf(wpath, sizeof wpath, "%s/%s", out->dir, NN_CKPT_WEIGHTS);
    rc = ckpt_file_sha256(wpath, out->sha256, err, errlen);
    if (rc)
        goto out;
    doc = json_pack("{s:O, s:o, s:s}", "settings", settings, "result", result_json(&out->res),
                    "sha256", out->sha256);
    char *text =
        doc ? json_dumps(doc, JSON_INDENT(2) | JSON_SORT_KEYS | JSON_REAL_PRECISION(17)) : NULL;
    if (!text) {
        err_fmt(err, errlen, "out of memory");
        rc = ERR_NOMEM;
        goto out;
    }
    rc = trainer_write_file(path, text, strlen(text), err, errlen); /* durable, then renamed */
    free(text);
out:
    json_decref(doc);
    json_decref(settings);
    nn_model_destroy(&m);
    return rc;
}

/* ---- publishing ---------------------------------------------------------------------------- */

int trainer_sft_publish(bus_client_t *client, const struct trainer_sft_outcome *oc, int timeout_ms)
{
    const struct trainer_sft_result *r = &oc->res;
    Oaif__V1__Metric mv[3 + TASK_FAMILY_COUNT], *mp[3 + TASK_FAMILY_COUNT];
    char names[TASK_FAMILY_COUNT][40];
    size_t nm = 0;
    for (size_t i = 0; i < sizeof mv / sizeof mv[0]; i++) {
        oaif__v1__metric__init(&mv[i]);
        mp[i] = &mv[i];
    }
    mv[nm].name = "final_loss";
    mv[nm++].value = r->final_loss;
    if (r->evaluated) {
        mv[nm].name = "eval_accuracy";
        mv[nm++].value = r->eval.accuracy;
        mv[nm].name = "mean_length";
        mv[nm++].value = r->eval.mean_length;
        for (int k = 0; k < TASK_FAMILY_COUNT; k++) {
            if (!r->eval.fam_n[k])
                continue;
            snprintf(names[k], sizeof names[k], "eval_accuracy_%s",
                     task_family_name((enum task_family)k));
            mv[nm].name = names[k];
            mv[nm++].value = (double)r->eval.fam_correct[k] / r->eval.fam_n[k];
        }
    }
    Oaif__V1__Checkpoint c = OAIF__V1__CHECKPOINT__INIT;
    c.version = 0;
    c.kind = OAIF__V1__CHECKPOINT_KIND__CHECKPOINT_KIND_SFT;
    c.step = (uint64_t)r->steps;
    c.path = (char *)oc->dir;
    c.sha256 = (char *)oc->sha256;
    c.metrics = mp;
    c.n_metrics = nm;
    c.created_ms = bus_now_ms();
    return ckpt_publish(client, &c, timeout_ms);
}
