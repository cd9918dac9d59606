/* sampler.c - see sampler.h. */
#include "sampler.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>

#include "bus.h"
#include "checkpoint.h"
#include "ckpt.h"
#include "err.h"
#include "log.h"
#include "model.h"
#include "sample.h"
#include "sampler_remote.h"
#include "tokenizer.h"
#include "utf8.h"

#define TEMPERATURE_MAX ((float)SAMPLER_TEMPERATURE_MAX)
#define TOP_K_MAX       ((unsigned)SAMPLER_TOP_K_MAX)
#define STOP_MAX        16          /* stop strings per request */
#define STOP_LEN_MAX    256         /* bytes per stop string */
#define SCORE_BYTES     (64u << 20) /* activations of one scoring forward */

/* One loaded policy version. */
struct policy {
    uint32_t version;
    nn_model_t *model;
    tok_t *tok;
    int eos;       /* -1: none */
    unsigned refs; /* runs using it now */
    uint64_t used; /* LRU clock of the last use */
    struct policy *next;
};

struct sampler {
    struct sampler_config cfg; /* the logic's fields, its strings our copies; the rest zero */
    pthread_mutex_t mu;        /* the list and the clock */
    struct policy *policies;
    uint64_t clock;
    sampler_remote_t *remote;
    tok_t *tmpl; /* remote: renders the template */
};

/* The effective parameters of one request. */
struct params {
    unsigned n;
    float temperature, top_p;
    unsigned top_k, max_new;
    uint64_t seed;
    const char *const *stop;
    size_t nstop;
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* ---- life cycle --------------------------------------------------------------------------- */

static int check_config(const struct sampler_config *c, char *why, size_t whylen)
{
#define BAD(...)                                                                                   \
    do {                                                                                           \
        snprintf(why, whylen, __VA_ARGS__);                                                        \
        return ERR_INVAL;                                                                          \
    } while (0)
    if (c->backend != SAMPLER_BACKEND_BUILTIN && c->backend != SAMPLER_BACKEND_REMOTE)
        BAD("sampler.backend: unknown backend %d", (int)c->backend);
    if (c->backend == SAMPLER_BACKEND_BUILTIN && (!c->checkpoint_dir || !*c->checkpoint_dir))
        BAD("sampler.checkpoint_dir: required by the builtin backend");
    if (c->max_loaded < 1)
        BAD("sampler.max_loaded: must be at least 1");
    if (c->max_prompts < 1 || c->max_n < 1 || c->max_responses < 1 || c->max_new_tokens_limit < 1)
        BAD("sampler limits: max_prompts, max_responses_per_prompt, max_responses and "
            "max_new_tokens_limit must be at least 1");
    if (c->n < 1 || c->n > c->max_n)
        BAD("sampler.responses_per_prompt: %d is out of range [1, %d]", c->n, c->max_n);
    if (!(c->temperature > 0.0f && c->temperature <= TEMPERATURE_MAX))
        BAD("sampler.temperature: %g is out of range (0, %g] (greedy is top_k 1)",
            (double)c->temperature, (double)TEMPERATURE_MAX);
    if (!(c->top_p > 0.0f && c->top_p <= 1.0f))
        BAD("sampler.top_p: %g is out of range (0, 1]", (double)c->top_p);
    if (c->top_k < 0 || (unsigned)c->top_k > TOP_K_MAX)
        BAD("sampler.top_k: %d is out of range [0, %u]", c->top_k, TOP_K_MAX);
    if (c->max_new_tokens < 1 || c->max_new_tokens > c->max_new_tokens_limit)
        BAD("sampler.max_new_tokens: %d is out of range [1, %d]", c->max_new_tokens,
            c->max_new_tokens_limit);
    if (c->backend == SAMPLER_BACKEND_REMOTE && c->remote.version < 0)
        BAD("sampler.remote.version: %d is negative", c->remote.version);
    if (c->prompt_template && *c->prompt_template) {
        const char *p = strstr(c->prompt_template, "{prompt}");
        if (!p || strstr(p + 1, "{prompt}"))
            BAD("sampler.template: must contain {prompt} exactly once");
    }
#undef BAD
    return ERR_OK;
}

/* A copy of what the logic reads; the service's fields (bus, metrics, ...) stay zero. */
static int copy_config(struct sampler_config *dst, const struct sampler_config *src)
{
    memset(dst, 0, sizeof *dst);
    dst->backend = src->backend;
    dst->max_loaded = src->max_loaded;
    dst->n = src->n;
    dst->temperature = src->temperature;
    dst->top_p = src->top_p;
    dst->top_k = src->top_k;
    dst->max_new_tokens = src->max_new_tokens;
    dst->seed = src->seed;
    dst->max_prompts = src->max_prompts;
    dst->max_n = src->max_n;
    dst->max_responses = src->max_responses;
    dst->max_new_tokens_limit = src->max_new_tokens_limit;
    dst->remote = src->remote;
    struct {
        char **to;
        const char *from;
    } strs[] = {
        {&dst->checkpoint_dir, src->checkpoint_dir},
        {&dst->prompt_template, src->prompt_template},
        {&dst->remote.base_url, src->remote.base_url},
        {&dst->remote.model, src->remote.model},
        {&dst->remote.api_key, src->remote.api_key},
        {&dst->remote.api_key_env, src->remote.api_key_env},
    };
    int rc = ERR_OK;
    for (size_t i = 0; i < sizeof strs / sizeof strs[0]; i++) {
        *strs[i].to = NULL;
        if (strs[i].from && !(*strs[i].to = strdup(strs[i].from)))
            rc = ERR_NOMEM;
    }
    return rc;
}

/* Frees what copy_config() allocated (the API key wiped first). */
static void free_config(struct sampler_config *c)
{
    free(c->checkpoint_dir);
    free(c->prompt_template);
    free(c->remote.base_url);
    free(c->remote.model);
    if (c->remote.api_key) {
        memset(c->remote.api_key, 0, strlen(c->remote.api_key));
        free(c->remote.api_key);
    }
    free(c->remote.api_key_env);
    memset(c, 0, sizeof *c);
}

int sampler_new(sampler_t **out, const struct sampler_config *cfg, char *why, size_t whylen)
{
    *out = NULL;
    int rc = check_config(cfg, why, whylen);
    if (rc)
        return rc;
    sampler_t *s = calloc(1, sizeof *s);
    if (!s)
        return ERR_NOMEM;
    if (pthread_mutex_init(&s->mu, NULL)) {
        free(s);
        return ERR_NOMEM;
    }
    rc = copy_config(&s->cfg, cfg);
    if (rc) {
        snprintf(why, whylen, "out of memory");
        sampler_destroy(&s);
        return rc;
    }
    if (cfg->backend == SAMPLER_BACKEND_REMOTE) {
        rc = sampler_remote_new(&s->remote, &s->cfg.remote, why, whylen);
        if (!rc) {
            s->tmpl = tok_new_byte();
            rc = s->tmpl ? ERR_OK : ERR_NOMEM;
        }
        if (!rc && cfg->prompt_template && *cfg->prompt_template)
            rc = tok_set_template(s->tmpl, cfg->prompt_template);
        if (rc) {
            if (rc == ERR_NOMEM)
                snprintf(why, whylen, "out of memory");
            sampler_destroy(&s);
            return rc;
        }
    }
    *out = s;
    return ERR_OK;
}

static void policy_free(struct policy *p)
{
    if (!p)
        return;
    nn_model_destroy(&p->model);
    tok_destroy(&p->tok);
    free(p);
}

void sampler_destroy(sampler_t **ps)
{
    if (!ps || !*ps)
        return;
    sampler_t *s = *ps;
    while (s->policies) {
        struct policy *p = s->policies;
        s->policies = p->next;
        policy_free(p);
    }
    sampler_remote_destroy(&s->remote);
    tok_destroy(&s->tmpl);
    pthread_mutex_destroy(&s->mu);
    free_config(&s->cfg);
    free(s);
    *ps = NULL;
}

enum sampler_backend sampler_backend(const sampler_t *s)
{
    return s->cfg.backend;
}

/* ---- the store of loaded versions (callers hold s->mu) ------------------------------------ */

static struct policy *find_locked(sampler_t *s, uint32_t version)
{
    for (struct policy *p = s->policies; p; p = p->next)
        if (p->version == version)
            return p;
    return NULL;
}

static struct policy *newest_locked(sampler_t *s)
{
    struct policy *best = NULL;
    for (struct policy *p = s->policies; p; p = p->next)
        if (!best || p->version > best->version)
            best = p;
    return best;
}

/* Evict the least recently used versions beyond max_loaded, sparing the newest and those in
 * use. */
static void evict_locked(sampler_t *s)
{
    for (;;) {
        size_t n = 0;
        for (struct policy *p = s->policies; p; p = p->next)
            n++;
        if (n <= (size_t)s->cfg.max_loaded)
            return;
        struct policy *newest = newest_locked(s), *victim = NULL;
        for (struct policy *p = s->policies; p; p = p->next)
            if (p != newest && p->refs == 0 && (!victim || p->used < victim->used))
                victim = p;
        if (!victim)
            return; /* everything else is in use: evicted when released */
        struct policy **pp = &s->policies;
        while (*pp != victim)
            pp = &(*pp)->next;
        *pp = victim->next;
        log_info("policy version %u unloaded (least recently used of %zu)", victim->version, n);
        policy_free(victim);
    }
}

int64_t sampler_newest(sampler_t *s)
{
    if (s->cfg.backend == SAMPLER_BACKEND_REMOTE)
        return s->cfg.remote.version;
    pthread_mutex_lock(&s->mu);
    struct policy *p = newest_locked(s);
    int64_t v = p ? (int64_t)p->version : -1;
    pthread_mutex_unlock(&s->mu);
    return v;
}

bool sampler_has(sampler_t *s, uint32_t version)
{
    if (s->cfg.backend == SAMPLER_BACKEND_REMOTE)
        return version == (uint32_t)s->cfg.remote.version;
    pthread_mutex_lock(&s->mu);
    bool has = find_locked(s, version) != NULL;
    pthread_mutex_unlock(&s->mu);
    return has;
}

size_t sampler_loaded(sampler_t *s, uint32_t *versions, size_t cap)
{
    pthread_mutex_lock(&s->mu);
    size_t n = 0;
    for (struct policy *p = s->policies; p; p = p->next)
        n++;
    /* most recently used first: repeated selection (n is small) */
    uint64_t below = UINT64_MAX;
    for (size_t k = 0; k < n && k < cap; k++) {
        struct policy *best = NULL;
        for (struct policy *p = s->policies; p; p = p->next)
            if (p->used < below && (!best || p->used > best->used))
                best = p;
        if (!best)
            break;
        versions[k] = best->version;
        below = best->used;
    }
    pthread_mutex_unlock(&s->mu);
    return n;
}

static struct policy *acquire(sampler_t *s, bool pinned, uint32_t version)
{
    pthread_mutex_lock(&s->mu);
    struct policy *p = pinned ? find_locked(s, version) : newest_locked(s);
    if (p) {
        p->refs++;
        p->used = ++s->clock;
    }
    pthread_mutex_unlock(&s->mu);
    return p;
}

static void release(sampler_t *s, struct policy *p)
{
    pthread_mutex_lock(&s->mu);
    p->refs--;
    evict_locked(s);
    pthread_mutex_unlock(&s->mu);
}

/* ---- loading ------------------------------------------------------------------------------ */

static bool file_exists(const char *path)
{
    struct stat st;
    errno = 0;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

int sampler_load(sampler_t *s, uint32_t version, const char *dir, const char *sha256, char *why,
                 size_t whylen)
{
    if (s->cfg.backend != SAMPLER_BACKEND_BUILTIN) {
        snprintf(why, whylen, "version %u: the remote backend loads no checkpoints", version);
        return ERR_INVAL;
    }
    pthread_mutex_lock(&s->mu);
    struct policy *have = find_locked(s, version);
    if (have)
        have->used = ++s->clock;
    pthread_mutex_unlock(&s->mu);
    if (have)
        return ERR_OK;

    char path[PATH_MAX], file[PATH_MAX + 32], err[512];
    int rc;
    if (dir && *dir) {
        if ((size_t)snprintf(path, sizeof path, "%s", dir) >= sizeof path) {
            snprintf(why, whylen, "version %u: the checkpoint path is too long", version);
            return ERR_TOOBIG;
        }
    } else {
        Oaif__V1__CheckpointKind kind = version == 0
                                            ? OAIF__V1__CHECKPOINT_KIND__CHECKPOINT_KIND_SFT
                                            : OAIF__V1__CHECKPOINT_KIND__CHECKPOINT_KIND_POLICY;
        rc = ckpt_dir(path, sizeof path, s->cfg.checkpoint_dir, kind, version);
        if (rc) {
            snprintf(why, whylen, "version %u: the checkpoint path is too long", version);
            return rc;
        }
    }
    snprintf(file, sizeof file, "%s/%s", path, NN_CKPT_WEIGHTS);
    if (!file_exists(file)) {
        snprintf(why, whylen, "version %u: %s: %s", version, file,
                 errno ? strerror(errno) : "not a regular file");
        return ERR_NOTFOUND;
    }
    if (sha256 && *sha256) {
        char hex[65];
        rc = ckpt_file_sha256(file, hex, err, sizeof err);
        if (rc) {
            snprintf(why, whylen, "version %u: %s", version, err);
            return rc;
        }
        if (strcasecmp(hex, sha256) != 0) {
            snprintf(why, whylen,
                     "version %u: %s has sha256 %.16s..., the ledger's record says %.16s... "
                     "(corrupt or replaced)",
                     version, file, hex, sha256);
            return ERR_INVAL;
        }
    }
    struct policy *p = calloc(1, sizeof *p);
    if (!p)
        return ERR_NOMEM;
    p->version = version;
    rc = nn_checkpoint_load(&p->model, path, err, sizeof err);
    if (rc) {
        snprintf(why, whylen, "version %u: %s", version, err);
        goto out_free;
    }
    const struct nn_config *mc = nn_model_config(p->model);
    snprintf(file, sizeof file, "%s/tokenizer.json", path);
    if (file_exists(file)) {
        rc = tok_load(&p->tok, file, err, sizeof err);
        if (rc) {
            snprintf(why, whylen, "version %u: %s", version, err);
            goto out_free;
        }
    } else if (!strcmp(mc->tokenizer, "bpe")) {
        snprintf(why, whylen, "version %u: %s/config.json names a bpe tokenizer, but %s is missing",
                 version, path, file);
        rc = ERR_NOTFOUND;
        goto out_free;
    } else {
        p->tok = tok_new_byte();
        if (!p->tok) {
            rc = ERR_NOMEM;
            goto out_free;
        }
    }
    if (tok_vocab_size(p->tok) > mc->vocab_size) {
        snprintf(why, whylen, "version %u: the tokenizer has %d tokens, the model's vocabulary %d",
                 version, tok_vocab_size(p->tok), mc->vocab_size);
        rc = ERR_INVAL;
        goto out_free;
    }
    if (s->cfg.prompt_template && *s->cfg.prompt_template) {
        rc = tok_set_template(p->tok, s->cfg.prompt_template);
        if (rc) {
            snprintf(why, whylen, "sampler.template: %s", err_str(rc));
            goto out_free;
        }
    }
    p->eos = mc->eos_token_id >= 0 ? mc->eos_token_id : tok_eos_id(p->tok);
    if (p->eos >= mc->vocab_size)
        p->eos = -1;

    pthread_mutex_lock(&s->mu);
    have = find_locked(s, version);
    if (have) { /* another thread loaded it meanwhile */
        have->used = ++s->clock;
        pthread_mutex_unlock(&s->mu);
        policy_free(p);
        return ERR_OK;
    }
    p->used = ++s->clock;
    p->next = s->policies;
    s->policies = p;
    evict_locked(s);
    pthread_mutex_unlock(&s->mu);
    return ERR_OK;
out_free:
    policy_free(p);
    return rc;
}

/* ---- requests ----------------------------------------------------------------------------- */

static uint64_t mix64(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

static uint64_t hash_str(const char *s)
{
    uint64_t h = 0xcbf29ce484222325ULL; /* FNV-1a */
    for (; s && *s; s++)
        h = (h ^ (unsigned char)*s) * 0x100000001b3ULL;
    return h;
}

bool sampler_error_permanent(int rc)
{
    return rc == ERR_INVAL || rc == ERR_NOTFOUND || rc == ERR_REMOTE || rc == ERR_TOOBIG;
}

int sampler_pair_id(char *out, size_t outlen, const char *request_id, size_t index)
{
    int n = snprintf(out, outlen, "%s/%zu", request_id ? request_id : "", index);
    return n < 0 || (size_t)n >= outlen ? ERR_TOOBIG : ERR_OK;
}

/* Check the request's fields that need no policy; fill the effective parameters. */
static int resolve(const sampler_t *s, const Oaif__V1__SampleRequest *req, const char *request_id,
                   struct params *p, char *why, size_t whylen)
{
    const struct sampler_config *c = &s->cfg;
#define BAD(...)                                                                                   \
    do {                                                                                           \
        snprintf(why, whylen, __VA_ARGS__);                                                        \
        return ERR_INVAL;                                                                          \
    } while (0)
    if (req->n_prompts == 0)
        BAD("prompts: the request has none");
    /* check_config made these positive (top_k non-negative) */
    unsigned max_prompts = (unsigned)c->max_prompts, max_n = (unsigned)c->max_n;
    unsigned max_responses = (unsigned)c->max_responses, max_new = (unsigned)c->max_new_tokens;
    unsigned max_new_limit = (unsigned)c->max_new_tokens_limit;
    if (req->n_prompts > max_prompts)
        BAD("prompts: %zu prompts, over the limit of %u per request", req->n_prompts, max_prompts);
    for (size_t i = 0; i < req->n_prompts; i++)
        if (!req->prompts[i] || !req->prompts[i]->text || !req->prompts[i]->text[0])
            BAD("prompts[%zu].text: empty", i);
    const Oaif__V1__SamplingParams *sp = req->sampling;
    Oaif__V1__SamplingParams zero = OAIF__V1__SAMPLING_PARAMS__INIT;
    if (!sp)
        sp = &zero;
    p->n = sp->n ? sp->n : (unsigned)c->n;
    if (req->n_score) { /* scoring given tokens: one response per prompt, nothing sampled */
        if (req->n_score != req->n_prompts)
            BAD("score: %zu responses for %zu prompts (one each)", req->n_score, req->n_prompts);
        if (sp->n > 1)
            BAD("sampling.n: %u with score (one response per prompt is scored)", sp->n);
        p->n = 1;
    }
    if (p->n > max_n)
        BAD("sampling.n: %u is out of range [1, %u] (0: the default, %d)", sp->n, max_n, c->n);
    if ((uint64_t)req->n_prompts * p->n > max_responses)
        BAD("sampling.n: %zu prompts x %u responses = %llu, over the limit of %u responses per "
            "request",
            req->n_prompts, p->n, (unsigned long long)req->n_prompts * p->n, max_responses);
    if (!isfinite(sp->temperature) || sp->temperature < 0.0f || sp->temperature > TEMPERATURE_MAX)
        BAD("sampling.temperature: %g is out of range [0, %g] (0: the default, %g; greedy is "
            "top_k 1)",
            (double)sp->temperature, (double)TEMPERATURE_MAX, (double)c->temperature);
    p->temperature = sp->temperature > 0.0f ? sp->temperature : c->temperature;
    if (!isfinite(sp->top_p) || sp->top_p < 0.0f || sp->top_p > 1.0f)
        BAD("sampling.top_p: %g is out of range [0, 1] (0: the default, %g)", (double)sp->top_p,
            (double)c->top_p);
    p->top_p = sp->top_p > 0.0f ? sp->top_p : c->top_p;
    if (sp->top_k > TOP_K_MAX)
        BAD("sampling.top_k: %u is out of range [0, %u]", sp->top_k, TOP_K_MAX);
    p->top_k = sp->top_k ? sp->top_k : (unsigned)c->top_k;
    if (sp->max_new_tokens > max_new_limit)
        BAD("sampling.max_new_tokens: %u is out of range [1, %u] (0: the default, %u)",
            sp->max_new_tokens, max_new_limit, max_new);
    p->max_new = sp->max_new_tokens ? sp->max_new_tokens : max_new;
    for (size_t i = 0; i < req->n_score; i++) { /* the longest response to score sets the room */
        size_t nt = req->score[i] ? req->score[i]->n_token_ids : 0;
        if (nt > max_new_limit)
            BAD("score[%zu].token_ids: %zu tokens, over the limit of %u", i, nt, max_new_limit);
        p->max_new = i == 0 || nt > p->max_new ? (unsigned)(nt ? nt : 1) : p->max_new;
    }
    if (sp->n_stop > STOP_MAX)
        BAD("sampling.stop: %zu strings, at most %d", sp->n_stop, STOP_MAX);
    for (size_t i = 0; i < sp->n_stop; i++) {
        size_t l = sp->stop[i] ? strlen(sp->stop[i]) : 0;
        if (l == 0)
            BAD("sampling.stop[%zu]: empty", i);
        if (l > STOP_LEN_MAX)
            BAD("sampling.stop[%zu]: %zu bytes, at most %d", i, l, STOP_LEN_MAX);
    }
    p->stop = (const char *const *)sp->stop;
    p->nstop = sp->n_stop;
    p->seed = sp->seed ? sp->seed : mix64(c->seed ^ hash_str(request_id));
#undef BAD
    return ERR_OK;
}

/* Earliest end of text before any stop string, or len when none occurs. */
static size_t cut_at_stop(const char *text, size_t len, const struct params *p)
{
    size_t cut = len;
    for (size_t s = 0; s < p->nstop; s++) {
        size_t sl = strlen(p->stop[s]);
        for (size_t i = 0; i + sl <= len && i < cut; i++)
            if (text[i] == p->stop[s][0] && !memcmp(text + i, p->stop[s], sl)) {
                cut = i;
                break;
            }
    }
    return cut;
}

static struct sampler_result *result_new(size_t P, unsigned n)
{
    struct sampler_result *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    size_t R = P * n;
    r->n_prompts = P;
    r->n = n;
    r->responses = calloc(R, sizeof *r->responses);
    r->pair_store = calloc(P, sizeof *r->pair_store);
    r->pair_ptrs = calloc(P, sizeof(Oaif__V1__Pair *));
    r->resp_store = calloc(R, sizeof *r->resp_store);
    r->resp_ptrs = calloc(R, sizeof(Oaif__V1__Response *));
    r->rec_store = calloc(P, sizeof *r->rec_store);
    r->records = calloc(P, sizeof(Oaif__V1__Record *));
    r->pair_ids = calloc(P, sizeof *r->pair_ids);
    if (!r->responses || !r->pair_store || !r->pair_ptrs || !r->resp_store || !r->resp_ptrs ||
        !r->rec_store || !r->records || !r->pair_ids) {
        sampler_result_free(&r);
        return NULL;
    }
    return r;
}

void sampler_result_free(struct sampler_result **pr)
{
    if (!pr || !*pr)
        return;
    struct sampler_result *r = *pr;
    size_t R = r->n_prompts * r->n;
    for (size_t i = 0; r->responses && i < R; i++) {
        free(r->responses[i].text);
        free(r->responses[i].token_ids);
    }
    for (size_t i = 0; r->rec_store && i < r->n_prompts; i++)
        free(r->rec_store[i].data.data);
    for (size_t i = 0; r->pair_ids && i < r->n_prompts; i++)
        free(r->pair_ids[i]);
    free(r->responses);
    free(r->pair_store);
    free(r->pair_ptrs);
    free(r->resp_store);
    free(r->resp_ptrs);
    free(r->rec_store);
    free(r->records);
    free(r->pair_ids);
    free(r->packed);
    free(r);
    *pr = NULL;
}

/* Fill the reply, the pairs and the records from r->responses, and pack. */
static int result_build(struct sampler_result *r, const char *request_id,
                        const Oaif__V1__SampleRequest *req, const struct params *p)
{
    Oaif__V1__SamplingParams *sp = &r->sampling;
    oaif__v1__sampling_params__init(sp);
    sp->temperature = p->temperature;
    sp->top_p = p->top_p;
    sp->top_k = p->top_k;
    sp->max_new_tokens = p->max_new;
    sp->seed = p->seed;
    sp->n = p->n;
    sp->stop = (char **)p->stop;
    sp->n_stop = p->nstop;
    uint64_t now = bus_now_ms();
    for (size_t i = 0; i < r->n_prompts; i++) {
        char id[512];
        if (sampler_pair_id(id, sizeof id, request_id, i))
            return ERR_TOOBIG;
        r->pair_ids[i] = strdup(id);
        if (!r->pair_ids[i])
            return ERR_NOMEM;
        Oaif__V1__Pair *pair = &r->pair_store[i];
        oaif__v1__pair__init(pair);
        pair->id = r->pair_ids[i];
        pair->prompt_id = req->prompts[i]->id;
        pair->prompt = req->prompts[i]->text;
        pair->policy_version = r->version;
        pair->sampling = sp;
        pair->created_ms = now;
        pair->run = req->run;
        pair->n_responses = r->n;
        pair->responses = r->resp_ptrs + i * r->n;
        for (unsigned j = 0; j < r->n; j++) {
            size_t k = i * r->n + j;
            const struct sampler_response *src = &r->responses[k];
            Oaif__V1__Response *d = &r->resp_store[k];
            oaif__v1__response__init(d);
            d->text = src->text;
            d->num_tokens = src->num_tokens;
            d->logprob = src->logprob;
            d->logprob_known = src->has_logprob;
            d->finish = src->finish;
            d->policy_version = r->version;
            d->token_ids = src->token_ids;
            d->n_token_ids = src->token_ids ? src->num_tokens : 0;
            r->resp_ptrs[k] = d;
        }
        r->pair_ptrs[i] = pair;
        size_t len = oaif__v1__pair__get_packed_size(pair);
        uint8_t *buf = malloc(len ? len : 1);
        if (!buf)
            return ERR_NOMEM;
        oaif__v1__pair__pack(pair, buf);
        Oaif__V1__Record *rec = &r->rec_store[i];
        oaif__v1__record__init(rec);
        rec->kind = OAIF__V1__RECORD_KIND__RECORD_KIND_PAIR;
        rec->id = r->pair_ids[i];
        rec->data.data = buf;
        rec->data.len = len;
        r->records[i] = rec;
    }
    r->n_records = r->n_prompts;
    oaif__v1__sample_reply__init(&r->reply);
    r->reply.n_pairs = r->n_prompts;
    r->reply.pairs = r->pair_ptrs;
    r->reply.policy_version = r->version;
    r->packed_len = oaif__v1__sample_reply__get_packed_size(&r->reply);
    r->packed = malloc(r->packed_len ? r->packed_len : 1);
    if (!r->packed)
        return ERR_NOMEM;
    oaif__v1__sample_reply__pack(&r->reply, r->packed);
    return ERR_OK;
}

/* ---- the built-in engine ------------------------------------------------------------------ */

static const char *token_bytes(void *ctx, int id, size_t *len)
{
    return tok_token_bytes(ctx, id, len);
}

/* Sum of log p(response token | prefix) for each row of a score request (given tokens; sampled
 * rows take theirs from nn_sample_logp): teacher-forced forwards over chunks of rows. Rows are
 * prompt (plen[b]) + generated (ntok[b]) tokens; a row that reached the context end has one
 * token more than the model has positions: its last token is predicted by the last position, so
 * the forward runs over the first Tmax tokens. */
static int score_rows(nn_model_t *m, int B, const int *const *prompts, const int *plen,
                      const int *gen, int N, const int *ntok, double *logp)
{
    const struct nn_config *c = nn_model_config(m);
    int V = c->vocab_size, Tmax = c->max_position_embeddings, T = 1;
    for (int b = 0; b < B; b++) {
        int L = plen[b] + ntok[b];
        T = L > T ? L : T;
    }
    T = T < Tmax ? T : Tmax;
    /* rows per forward: activations within SCORE_BYTES (a rough per-token size of model.c's) */
    size_t per_tok = 4 * ((size_t)(4 * c->num_hidden_layers + 4) * c->hidden_size +
                          (size_t)c->num_hidden_layers *
                              (3 * (size_t)c->intermediate_size + c->num_attention_heads) +
                          (size_t)V);
    size_t rows = SCORE_BYTES / (per_tok * (size_t)T);
    int R = rows < 1 ? 1 : rows > (size_t)B ? B : (int)rows;
    int *tokens = malloc((size_t)R * T * sizeof(int));
    int *lengths = malloc((size_t)R * sizeof(int));
    int rc = tokens && lengths ? ERR_OK : ERR_NOMEM;
    if (!rc)
        rc = nn_model_reserve(m, R, T, false);
    for (int b0 = 0; !rc && b0 < B; b0 += R) {
        int bc = B - b0 < R ? B - b0 : R;
        for (int r = 0; r < bc; r++) {
            int b = b0 + r, L = plen[b] + ntok[b];
            int *row = tokens + (size_t)r * T;
            memcpy(row, prompts[b], (size_t)plen[b] * sizeof(int));
            int g = L < T ? ntok[b] : T - plen[b];
            memcpy(row + plen[b], gen + (size_t)b * N, (size_t)g * sizeof(int));
            for (int t = plen[b] + g; t < T; t++)
                row[t] = 0;
            lengths[r] = plen[b] + g;
        }
        struct nn_batch batch = {.B = bc, .T = T, .tokens = tokens, .lengths = lengths};
        rc = nn_model_forward(m, &batch, NULL);
        if (rc)
            break;
        const float *logits = nn_model_logits(m);
        for (int r = 0; r < bc; r++) {
            int b = b0 + r;
            double sum = 0.0;
            for (int k = 0; k < ntok[b]; k++) {
                int t = plen[b] + k; /* index of the token; predicted at position t - 1 */
                const float *x = logits + ((size_t)r * T + (size_t)(t - 1)) * V;
                float mx = x[0];
                for (int v = 1; v < V; v++)
                    mx = x[v] > mx ? x[v] : mx;
                double z = 0.0;
                for (int v = 0; v < V; v++)
                    z += exp((double)(x[v] - mx));
                sum += (double)(x[gen[(size_t)b * N + k]] - mx) - log(z);
            }
            logp[b] = sum;
        }
    }
    free(tokens);
    free(lengths);
    return rc;
}

/* The responses of a scoring request as generated rows: gen[b * N ..] their token_ids (each in
 * [0, V)), ntok their counts, finished by EOS. ERR_INVAL with why naming a bad token. */
static int given_tokens(const Oaif__V1__SampleRequest *req, int V, int N, int *gen, int *ntok,
                        int *fin, char *why, size_t whylen)
{
    for (size_t b = 0; b < req->n_score; b++) {
        const Oaif__V1__Response *r = req->score[b];
        size_t nt = r ? r->n_token_ids : 0;
        for (size_t k = 0; k < nt && (int)k < N; k++) {
            if (r->token_ids[k] < 0 || r->token_ids[k] >= V) {
                snprintf(why, whylen, "score[%zu].token_ids[%zu]: %d is out of range [0, %d)", b, k,
                         r->token_ids[k], V);
                return ERR_INVAL;
            }
            gen[b * (size_t)N + k] = r->token_ids[k];
        }
        ntok[b] = (int)nt < N ? (int)nt : N;
        fin[b] = NN_FINISH_EOS;
    }
    return ERR_OK;
}

static int run_builtin(struct policy *pol, const Oaif__V1__SampleRequest *req,
                       const struct params *p, struct sampler_result *r, char *why, size_t whylen)
{
    const struct nn_config *mc = nn_model_config(pol->model);
    size_t P = req->n_prompts;
    int B = (int)(P * p->n), N = (int)p->max_new, Tmax = mc->max_position_embeddings;
    if (p->top_k > (unsigned)mc->vocab_size) {
        snprintf(why, whylen, "sampling.top_k: %u is out of range [0, %d] (the vocabulary)",
                 p->top_k, mc->vocab_size);
        return ERR_INVAL;
    }
    int **ids = calloc(P, sizeof *ids);
    int *plen_p = calloc(P, sizeof *plen_p);
    const int **rows = calloc((size_t)B, sizeof *rows);
    int *plen = calloc((size_t)B, sizeof *plen);
    int *gen = malloc((size_t)B * N * sizeof *gen);
    int *ntok = calloc((size_t)B, sizeof *ntok);
    int *fin = calloc((size_t)B, sizeof *fin);
    double *logp = calloc((size_t)B, sizeof *logp);
    int rc = ERR_OK;
    if (!ids || !plen_p || !rows || !plen || !gen || !ntok || !fin || !logp) {
        rc = ERR_NOMEM;
        snprintf(why, whylen, "out of memory");
        goto out;
    }
    unsigned flags = tok_wants_bos(pol->tok) ? TOK_ADD_BOS : 0;
    for (size_t i = 0; i < P; i++) {
        char err[256];
        size_t n = 0;
        rc =
            tok_encode_prompt(pol->tok, req->prompts[i]->text, flags, &ids[i], &n, err, sizeof err);
        if (rc) {
            snprintf(why, whylen, "prompts[%zu].text: %s", i, err);
            rc = rc == ERR_NOMEM ? rc : ERR_INVAL;
            goto out;
        }
        if (n < 1 || n >= (size_t)Tmax) {
            snprintf(why, whylen,
                     "prompts[%zu].text: %zu tokens with the template; version %u's context "
                     "holds %d positions (at most %d for the prompt)",
                     i, n, pol->version, Tmax, Tmax - 1);
            rc = ERR_INVAL;
            goto out;
        }
        plen_p[i] = (int)n;
    }
    for (int b = 0; b < B; b++) {
        rows[b] = ids[b / (int)p->n];
        plen[b] = plen_p[b / (int)p->n];
    }
    struct nn_sample_opts so = {
        .temperature = p->temperature,
        .top_k = (int)p->top_k,
        .top_p = p->top_p,
        .seed = p->seed,
        .max_new_tokens = N,
        .eos_token_id = pol->eos,
        .stop = p->stop,
        .nstop = (int)p->nstop,
        .token_bytes = token_bytes,
        .token_ctx = pol->tok,
    };
    double t0 = now_s();
    if (req->n_score) /* the given tokens instead of sampled ones */
        rc = given_tokens(req, mc->vocab_size, N, gen, ntok, fin, why, whylen);
    else /* the log-probs from the decoder's own logits: no second forward */
        rc = nn_sample_logp(pol->model, B, rows, plen, &so, gen, ntok, fin, logp);
    if (rc && req->n_score)
        goto out; /* why says which token */
    if (rc) {
        snprintf(why, whylen, "version %u: generation failed (%s)", pol->version, err_str(rc));
        goto out;
    }
    double t1 = now_s();
    if (req->n_score)
        rc = score_rows(pol->model, B, rows, plen, gen, N, ntok, logp);
    if (rc) {
        snprintf(why, whylen, "version %u: scoring the responses failed (%s)", pol->version,
                 err_str(rc));
        goto out;
    }
    r->gen_seconds = t1 - t0;
    r->score_seconds = now_s() - t1;
    for (int b = 0; b < B; b++) {
        struct sampler_response *o = &r->responses[b];
        char *text = NULL;
        size_t len = 0;
        rc = tok_decode(pol->tok, gen + (size_t)b * N, (size_t)ntok[b], TOK_SKIP_SPECIAL, &text,
                        &len);
        if (rc) {
            snprintf(why, whylen, "version %u: decoding a response failed (%s)", pol->version,
                     err_str(rc));
            goto out;
        }
        if (fin[b] == NN_FINISH_STOP)
            len = cut_at_stop(text, len, p);
        o->text = utf8_clean(text, len);
        free(text);
        o->token_ids = malloc((size_t)(ntok[b] ? ntok[b] : 1) * sizeof(int));
        if (!o->text || !o->token_ids) {
            rc = ERR_NOMEM;
            snprintf(why, whylen, "out of memory");
            goto out;
        }
        memcpy(o->token_ids, gen + (size_t)b * N, (size_t)ntok[b] * sizeof(int));
        o->num_tokens = (uint32_t)ntok[b];
        o->logprob = logp[b];
        o->has_logprob = true;
        o->finish = fin[b] == NN_FINISH_EOS    ? OAIF__V1__FINISH_REASON__FINISH_REASON_EOS
                    : fin[b] == NN_FINISH_STOP ? OAIF__V1__FINISH_REASON__FINISH_REASON_STOP
                                               : OAIF__V1__FINISH_REASON__FINISH_REASON_LENGTH;
        r->tokens += (uint64_t)ntok[b];
    }
out:
    for (size_t i = 0; ids && i < P; i++)
        free(ids[i]);
    free(ids);
    free(plen_p);
    free(rows);
    free(plen);
    free(gen);
    free(ntok);
    free(fin);
    free(logp);
    return rc;
}

/* ---- the remote backend ------------------------------------------------------------------- */

static int run_remote(sampler_t *s, const Oaif__V1__SampleRequest *req, const struct params *p,
                      int64_t deadline_ms, struct sampler_result *r, char *why, size_t whylen)
{
    size_t P = req->n_prompts, R = P * p->n;
    if (req->n_score) {
        snprintf(why, whylen,
                 "score: the remote backend samples only (scoring given tokens needs "
                 "the built-in engine)");
        return ERR_INVAL;
    }
    char **rendered = calloc(P, sizeof *rendered);
    struct sampler_remote_call *calls = calloc(R, sizeof *calls);
    int rc = rendered && calls ? ERR_OK : ERR_NOMEM;
    for (size_t i = 0; !rc && i < P; i++)
        rc = tok_render_prompt(s->tmpl, req->prompts[i]->text, &rendered[i]);
    if (rc) {
        snprintf(why, whylen, "out of memory");
        goto out;
    }
    for (size_t k = 0; k < R; k++)
        calls[k] = (struct sampler_remote_call){
            .prompt = rendered[k / p->n],
            .max_tokens = p->max_new,
            .temperature = p->temperature,
            .top_p = p->top_p,
            .top_k = p->top_k,
            .seed = mix64(p->seed ^ mix64(k + 1)), /* response k's own stream */
            .stop = p->stop,
            .nstop = p->nstop,
        };
    double t0 = now_s();
    rc = sampler_remote_run(s->remote, calls, R, deadline_ms, r->responses, why, whylen);
    r->gen_seconds = now_s() - t0;
    for (size_t k = 0; !rc && k < R; k++)
        r->tokens += r->responses[k].num_tokens;
out:
    for (size_t i = 0; rendered && i < P; i++)
        free(rendered[i]);
    free(rendered);
    free(calls);
    return rc;
}

/* ---- sampler_run -------------------------------------------------------------------------- */

int sampler_run(sampler_t *s, const char *request_id, const Oaif__V1__SampleRequest *req,
                int64_t deadline_ms, struct sampler_result **out, char *why, size_t whylen)
{
    *out = NULL;
    struct params p;
    int rc = resolve(s, req, request_id, &p, why, whylen);
    if (rc)
        return rc;
    if (!request_id || !*request_id || strlen(request_id) > 400) {
        snprintf(why, whylen, "request id: missing or over 400 bytes");
        return ERR_INVAL;
    }
    struct sampler_result *r = result_new(req->n_prompts, p.n);
    if (!r) {
        snprintf(why, whylen, "out of memory");
        return ERR_NOMEM;
    }
    if (s->cfg.backend == SAMPLER_BACKEND_REMOTE) {
        uint32_t served = (uint32_t)s->cfg.remote.version; /* >= 0: check_config */
        if (req->pin_version && req->policy_version != served) {
            snprintf(why, whylen,
                     "policy_version: the remote backend serves version %u, not version %u", served,
                     req->policy_version);
            rc = ERR_NOTFOUND;
        } else {
            r->version = served;
            rc = run_remote(s, req, &p, deadline_ms, r, why, whylen);
        }
    } else {
        struct policy *pol = acquire(s, req->pin_version, req->policy_version);
        if (!pol && req->pin_version) {
            snprintf(why, whylen, "policy_version: version %u is not loaded", req->policy_version);
            rc = ERR_NOTFOUND;
        } else if (!pol) {
            snprintf(why, whylen, "policy_version: no policy version is loaded yet");
            rc = ERR_AGAIN;
        } else {
            r->version = pol->version;
            rc = run_builtin(pol, req, &p, r, why, whylen);
            release(s, pol);
        }
    }
    if (!rc) {
        rc = result_build(r, request_id, req, &p);
        if (rc)
            snprintf(why, whylen, "packing the reply: %s", err_str(rc));
    }
    if (rc) {
        sampler_result_free(&r);
        return rc;
    }
    *out = r;
    return ERR_OK;
}
