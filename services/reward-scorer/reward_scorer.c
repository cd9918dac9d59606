/* reward_scorer.c - see reward_scorer.h. */
#include "reward_scorer.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>

#include "checkpoint.h"
#include "ckpt.h"
#include "err.h"
#include "log.h"
#include "model.h"
#include "tokenizer.h"

#define REFUSALS_KEPT 8                     /* refused versions remembered per member */
#define WHY_MAX       (2 * PATH_MAX + 1024) /* a refusal's reason */

/* One member version in memory. */
struct member_model {
    uint32_t member, version;
    nn_model_t *model;
    tok_t *tok;
    int eos;       /* -1: none */
    unsigned refs; /* runs using it now */
    bool retired;  /* replaced by a newer version: freed when the last run lets go */
};

/* A version that failed to load, not tried again until its record changes. */
struct refusal {
    uint32_t version;
    char sha[65];
};

/* What we know of one member index. */
struct slot {
    struct member_model *cur; /* the version served; NULL: none */
    bool known;               /* in the ledger's checkpoints at the last plan */
    struct refusal refused[REFUSALS_KEPT];
    unsigned nrefused; /* refused[nrefused % KEPT] is the next to overwrite */
    char *last_error;  /* the last refusal's reason (malloc'd), or NULL */
};

struct reward_scorer {
    struct reward_scorer_config cfg; /* the logic's fields, its strings our copies; rest zero */
    bool keep_features;              /* reward_scorer_keep_features */
    pthread_mutex_t mu;              /* the slots */
    struct slot *slots;              /* [REWARD_SCORER_MEMBERS_MAX] */
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* ---- life cycle --------------------------------------------------------------------------- */

static int check_config(const struct reward_scorer_config *c, char *why, size_t whylen)
{
#define BAD(...)                                                                                   \
    do {                                                                                           \
        snprintf(why, whylen, __VA_ARGS__);                                                        \
        return ERR_INVAL;                                                                          \
    } while (0)
    if (!c->ensemble || !*c->ensemble)
        BAD("reward_scorer.ensemble: required (the Checkpoint.ensemble of the members)");
    if (strlen(c->ensemble) > 200 || strchr(c->ensemble, '/'))
        BAD("reward_scorer.ensemble: '%s' must be 1 to 200 bytes without '/'", c->ensemble);
    if (c->members < 0 || c->members > REWARD_SCORER_MEMBERS_MAX)
        BAD("reward_scorer.members: %d is out of range [0, %d]", c->members,
            REWARD_SCORER_MEMBERS_MAX);
    if (!c->checkpoint_dir || !*c->checkpoint_dir)
        BAD("reward_scorer.checkpoint_dir: required");
    if (c->max_texts < 1)
        BAD("reward_scorer.max_texts: must be at least 1");
    if (c->max_tokens < 2)
        BAD("reward_scorer.max_tokens_per_text: must be at least 2");
    if (c->prompt_template && *c->prompt_template) {
        const char *p = strstr(c->prompt_template, "{prompt}");
        if (!p || strstr(p + 1, "{prompt}"))
            BAD("reward_scorer.template: must contain {prompt} exactly once");
    }
#undef BAD
    return ERR_OK;
}

int reward_scorer_new(reward_scorer_t **out, const struct reward_scorer_config *cfg, char *why,
                      size_t whylen)
{
    *out = NULL;
    int rc = check_config(cfg, why, whylen);
    if (rc)
        return rc;
    reward_scorer_t *s = calloc(1, sizeof *s);
    if (!s)
        return ERR_NOMEM;
    if (pthread_mutex_init(&s->mu, NULL)) {
        free(s);
        return ERR_NOMEM;
    }
    s->cfg.members = cfg->members;
    s->cfg.max_texts = cfg->max_texts;
    s->cfg.max_tokens = cfg->max_tokens;
    s->cfg.ensemble = strdup(cfg->ensemble);
    s->cfg.checkpoint_dir = strdup(cfg->checkpoint_dir);
    if (cfg->prompt_template && *cfg->prompt_template)
        s->cfg.prompt_template = strdup(cfg->prompt_template);
    s->slots = calloc(REWARD_SCORER_MEMBERS_MAX, sizeof *s->slots);
    if (!s->cfg.ensemble || !s->cfg.checkpoint_dir || !s->slots ||
        (cfg->prompt_template && *cfg->prompt_template && !s->cfg.prompt_template)) {
        snprintf(why, whylen, "out of memory");
        reward_scorer_destroy(&s);
        return ERR_NOMEM;
    }
    *out = s;
    return ERR_OK;
}

static void model_free(struct member_model *m)
{
    if (!m)
        return;
    nn_model_destroy(&m->model);
    tok_destroy(&m->tok);
    free(m);
}

void reward_scorer_destroy(reward_scorer_t **ps)
{
    if (!ps || !*ps)
        return;
    reward_scorer_t *s = *ps;
    for (size_t i = 0; s->slots && i < REWARD_SCORER_MEMBERS_MAX; i++) {
        model_free(s->slots[i].cur);
        free(s->slots[i].last_error);
    }
    free(s->slots);
    free(s->cfg.ensemble);
    free(s->cfg.checkpoint_dir);
    free(s->cfg.prompt_template);
    pthread_mutex_destroy(&s->mu);
    free(s);
    *ps = NULL;
}

/* ---- members ------------------------------------------------------------------------------ */

static uint32_t member_limit(const reward_scorer_t *s)
{
    return s->cfg.members > 0 ? (uint32_t)s->cfg.members : REWARD_SCORER_MEMBERS_MAX;
}

bool reward_scorer_is_member(const reward_scorer_t *s, const Oaif__V1__Checkpoint *c)
{
    return c && c->kind == OAIF__V1__CHECKPOINT_KIND__CHECKPOINT_KIND_REWARD && c->ensemble &&
           !strcmp(c->ensemble, s->cfg.ensemble) && c->member < member_limit(s);
}

static bool has_weights(const char *dir)
{
    char file[PATH_MAX + 32];
    struct stat st;
    snprintf(file, sizeof file, "%s/%s", dir, NN_CKPT_WEIGHTS);
    return stat(file, &st) == 0 && S_ISREG(st.st_mode);
}

void reward_scorer_member_dir(const reward_scorer_t *s, const Oaif__V1__Checkpoint *c, char *out,
                              size_t outlen)
{
    char own[PATH_MAX], alt[PATH_MAX];
    snprintf(own, sizeof own, "%s/reward-%s-m%u-v%06u", s->cfg.checkpoint_dir,
             c->ensemble ? c->ensemble : "", c->member, c->version);
    const char *path = c->path ? c->path : "";
    size_t pl = strlen(path);
    while (pl > 1 && path[pl - 1] == '/')
        pl--;
    const char *base = path + pl;
    while (base > path && base[-1] != '/')
        base--;
    alt[0] = '\0';
    if (base < path + pl)
        snprintf(alt, sizeof alt, "%s/%.*s", s->cfg.checkpoint_dir, (int)(path + pl - base), base);
    const char *dir = own; /* also when no candidate has weights: the load names what is missing */
    if (!has_weights(own)) {
        if (alt[0] && has_weights(alt))
            dir = alt;
        else if (*path && has_weights(path))
            dir = path;
    }
    snprintf(out, outlen, "%s", dir);
}

static bool refused_locked(const struct slot *sl, uint32_t version, const char *sha)
{
    unsigned n = sl->nrefused < REFUSALS_KEPT ? sl->nrefused : REFUSALS_KEPT;
    for (unsigned i = 0; i < n; i++)
        if (sl->refused[i].version == version && !strcasecmp(sl->refused[i].sha, sha))
            return true;
    return false;
}

static int64_t version_locked(const struct slot *sl)
{
    return sl->cur ? (int64_t)sl->cur->version : -1;
}

size_t reward_scorer_plan(reward_scorer_t *s, Oaif__V1__Checkpoint *const *cks, size_t n,
                          struct reward_member_ref *out, size_t cap)
{
    const Oaif__V1__Checkpoint **best =
        calloc(REWARD_SCORER_MEMBERS_MAX, sizeof(Oaif__V1__Checkpoint *));
    if (!best)
        return 0;
    pthread_mutex_lock(&s->mu);
    for (size_t m = 0; m < REWARD_SCORER_MEMBERS_MAX; m++)
        s->slots[m].known = false;
    for (size_t i = 0; i < n; i++) {
        const Oaif__V1__Checkpoint *c = cks[i];
        if (!reward_scorer_is_member(s, c))
            continue;
        struct slot *sl = &s->slots[c->member];
        sl->known = true;
        if (refused_locked(sl, c->version, c->sha256 ? c->sha256 : "") ||
            (int64_t)c->version <= version_locked(sl))
            continue;
        if (!best[c->member] || c->version > best[c->member]->version)
            best[c->member] = c;
    }
    pthread_mutex_unlock(&s->mu);
    size_t k = 0;
    for (uint32_t m = 0; m < REWARD_SCORER_MEMBERS_MAX; m++) {
        const Oaif__V1__Checkpoint *c = best[m];
        if (!c)
            continue;
        if (k < cap) {
            struct reward_member_ref *r = &out[k];
            r->member = m;
            r->version = c->version;
            snprintf(r->sha256, sizeof r->sha256, "%s", c->sha256 ? c->sha256 : "");
            reward_scorer_member_dir(s, c, r->dir, sizeof r->dir);
        }
        k++;
    }
    free(best);
    return k;
}

int64_t reward_scorer_member_version(reward_scorer_t *s, uint32_t member)
{
    if (member >= REWARD_SCORER_MEMBERS_MAX)
        return -1;
    pthread_mutex_lock(&s->mu);
    int64_t v = version_locked(&s->slots[member]);
    pthread_mutex_unlock(&s->mu);
    return v;
}

size_t reward_scorer_loaded(reward_scorer_t *s)
{
    size_t n = 0;
    pthread_mutex_lock(&s->mu);
    for (size_t m = 0; m < REWARD_SCORER_MEMBERS_MAX; m++)
        n += s->slots[m].cur != NULL;
    pthread_mutex_unlock(&s->mu);
    return n;
}

size_t reward_scorer_known(reward_scorer_t *s)
{
    size_t n = 0;
    pthread_mutex_lock(&s->mu);
    for (size_t m = 0; m < REWARD_SCORER_MEMBERS_MAX; m++)
        n += s->slots[m].known;
    pthread_mutex_unlock(&s->mu);
    return n;
}

/* Remember that ref failed with `why`. */
static void refuse(reward_scorer_t *s, const struct reward_member_ref *ref, const char *why)
{
    pthread_mutex_lock(&s->mu);
    struct slot *sl = &s->slots[ref->member];
    struct refusal *r = &sl->refused[sl->nrefused++ % REFUSALS_KEPT];
    r->version = ref->version;
    snprintf(r->sha, sizeof r->sha, "%s", ref->sha256);
    char *e = strdup(why);
    if (e) {
        free(sl->last_error);
        sl->last_error = e;
    }
    pthread_mutex_unlock(&s->mu);
}

static bool file_exists(const char *path)
{
    struct stat st;
    errno = 0;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* Reads ref's checkpoint into *out (sha256 checked first). */
static int read_member(const reward_scorer_t *s, const struct reward_member_ref *ref,
                       struct member_model **out, char *why, size_t whylen)
{
    char file[PATH_MAX + 32], err[512];
    const char *dir = ref->dir;
    int rc;
    snprintf(file, sizeof file, "%s/%s", dir, NN_CKPT_WEIGHTS);
    if (!ref->sha256[0]) {
        snprintf(why, whylen, "its checkpoint record has no sha256 to check %s against", file);
        return ERR_INVAL;
    }
    if (!file_exists(file)) {
        snprintf(why, whylen, "%s: %s", file, errno ? strerror(errno) : "not a regular file");
        return ERR_NOTFOUND;
    }
    char hex[65];
    rc = ckpt_file_sha256(file, hex, err, sizeof err);
    if (rc) {
        snprintf(why, whylen, "%s", err);
        return rc;
    }
    if (strcasecmp(hex, ref->sha256) != 0) {
        snprintf(why, whylen,
                 "%s has sha256 %.16s..., the ledger's record says %.16s... (corrupt or replaced)",
                 file, hex, ref->sha256);
        return ERR_INVAL;
    }
    struct member_model *m = calloc(1, sizeof *m);
    if (!m)
        return ERR_NOMEM;
    m->member = ref->member;
    m->version = ref->version;
    rc = nn_checkpoint_load(&m->model, dir, err, sizeof err);
    if (rc) {
        snprintf(why, whylen, "%s", err);
        goto out_free;
    }
    const struct nn_config *mc = nn_model_config(m->model);
    if (!mc->reward_head) {
        snprintf(why, whylen, "%s/%s has no reward head (oaif_reward_head is not true)", dir,
                 NN_CKPT_CONFIG);
        rc = ERR_INVAL;
        goto out_free;
    }
    snprintf(file, sizeof file, "%s/tokenizer.json", dir);
    if (file_exists(file)) {
        rc = tok_load(&m->tok, file, err, sizeof err);
        if (rc) {
            snprintf(why, whylen, "%s", err);
            goto out_free;
        }
    } else if (!strcmp(mc->tokenizer, "bpe")) {
        snprintf(why, whylen, "%s/%s names a bpe tokenizer, but %s is missing", dir, NN_CKPT_CONFIG,
                 file);
        rc = ERR_NOTFOUND;
        goto out_free;
    } else if (!(m->tok = tok_new_byte())) {
        rc = ERR_NOMEM;
        goto out_free;
    }
    int V = tok_vocab_size(m->tok);
    if (V > mc->vocab_size) {
        snprintf(why, whylen, "the tokenizer has %d tokens, the model's vocabulary %d", V,
                 mc->vocab_size);
        rc = ERR_INVAL;
        goto out_free;
    }
    /* config.json's special ids win, as the trainer sets them (policy.c) */
    int bos = mc->bos_token_id >= 0 && mc->bos_token_id < V ? mc->bos_token_id : tok_bos_id(m->tok);
    int eos = mc->eos_token_id >= 0 && mc->eos_token_id < V ? mc->eos_token_id : tok_eos_id(m->tok);
    int pad = mc->pad_token_id >= 0 && mc->pad_token_id < V ? mc->pad_token_id : tok_pad_id(m->tok);
    tok_set_special_ids(m->tok, bos, eos, pad);
    m->eos = tok_eos_id(m->tok);
    if (s->cfg.prompt_template) {
        rc = tok_set_template(m->tok, s->cfg.prompt_template);
        if (rc) {
            snprintf(why, whylen, "reward_scorer.template: %s", err_str(rc));
            goto out_free;
        }
    }
    *out = m;
    return ERR_OK;
out_free:
    model_free(m);
    return rc;
}

int reward_scorer_load(reward_scorer_t *s, const struct reward_member_ref *ref, char *why,
                       size_t whylen)
{
    if (ref->member >= member_limit(s)) {
        snprintf(why, whylen, "member %u: not a member index of this ensemble (limit %u)",
                 ref->member, member_limit(s));
        return ERR_INVAL;
    }
    if ((int64_t)ref->version <= reward_scorer_member_version(s, ref->member))
        return ERR_OK;
    struct member_model *m = NULL;
    char reason[WHY_MAX] = "";
    int rc = read_member(s, ref, &m, reason, sizeof reason);
    if (rc) {
        snprintf(why, whylen, "%s/m%u@v%u: %s", s->cfg.ensemble, ref->member, ref->version,
                 reason[0] ? reason : err_str(rc));
        if (rc != ERR_NOMEM)
            refuse(s, ref, why);
        return rc;
    }
    pthread_mutex_lock(&s->mu);
    struct slot *sl = &s->slots[ref->member];
    struct member_model *old = sl->cur;
    if (old && old->version >= m->version) { /* a newer one came in meanwhile */
        pthread_mutex_unlock(&s->mu);
        model_free(m);
        return ERR_OK;
    }
    sl->cur = m;
    if (old && old->refs == 0)
        model_free(old);
    else if (old)
        old->retired = true;
    pthread_mutex_unlock(&s->mu);
    return ERR_OK;
}

/* Appends "m<i> (<reason>)" for the missing member i to buf. */
static void describe_missing_locked(const reward_scorer_t *s, uint32_t m, char *buf, size_t len)
{
    const struct slot *sl = &s->slots[m];
    size_t used = strlen(buf);
    if (used >= len - 1)
        return;
    snprintf(buf + used, len - used, "%sm%u (%s)", used ? "; " : "", m,
             sl->last_error ? sl->last_error
             : sl->known    ? "not loaded yet"
                            : "no checkpoint in the ledger");
}

static bool ready_locked(const reward_scorer_t *s, char *why, size_t whylen)
{
    if (s->cfg.members > 0) {
        char missing[1024] = "";
        unsigned nmiss = 0;
        for (uint32_t m = 0; m < (uint32_t)s->cfg.members; m++)
            if (!s->slots[m].cur) {
                if (nmiss++ < 4)
                    describe_missing_locked(s, m, missing, sizeof missing);
            }
        if (nmiss == 0)
            return true;
        snprintf(why, whylen, "ensemble '%s': %u of the %d members are not loaded: %s%s",
                 s->cfg.ensemble, nmiss, s->cfg.members, missing, nmiss > 4 ? "; ..." : "");
        return false;
    }
    char missing[1024] = "";
    unsigned nmiss = 0;
    for (uint32_t m = 0; m < REWARD_SCORER_MEMBERS_MAX; m++) {
        if (s->slots[m].cur)
            return true;
        if ((s->slots[m].known || s->slots[m].last_error) && nmiss++ < 4)
            describe_missing_locked(s, m, missing, sizeof missing);
    }
    if (nmiss)
        snprintf(why, whylen, "ensemble '%s': no member is loaded: %s%s", s->cfg.ensemble, missing,
                 nmiss > 4 ? "; ..." : "");
    else
        snprintf(why, whylen,
                 "ensemble '%s': no member is loaded (the ledger has no reward checkpoint of "
                 "this ensemble)",
                 s->cfg.ensemble);
    return false;
}

bool reward_scorer_ready(reward_scorer_t *s, char *why, size_t whylen)
{
    pthread_mutex_lock(&s->mu);
    bool ok = ready_locked(s, why, whylen);
    pthread_mutex_unlock(&s->mu);
    return ok;
}

/* Takes every member to answer with (refs held) into *out (malloc'd), or says why not. */
static int acquire(reward_scorer_t *s, struct member_model ***out, size_t *n, char *why,
                   size_t whylen)
{
    *out = NULL;
    *n = 0;
    pthread_mutex_lock(&s->mu);
    if (!ready_locked(s, why, whylen)) {
        pthread_mutex_unlock(&s->mu);
        return ERR_AGAIN;
    }
    uint32_t lim = member_limit(s);
    size_t k = 0;
    for (uint32_t m = 0; m < lim; m++)
        k += s->slots[m].cur != NULL;
    struct member_model **ms = calloc(k ? k : 1, sizeof(struct member_model *));
    if (!ms) {
        pthread_mutex_unlock(&s->mu);
        snprintf(why, whylen, "out of memory");
        return ERR_NOMEM;
    }
    k = 0;
    for (uint32_t m = 0; m < lim; m++)
        if (s->slots[m].cur) {
            ms[k] = s->slots[m].cur;
            ms[k++]->refs++;
        }
    pthread_mutex_unlock(&s->mu);
    *out = ms;
    *n = k;
    return ERR_OK;
}

static void release(reward_scorer_t *s, struct member_model **ms, size_t n)
{
    pthread_mutex_lock(&s->mu);
    for (size_t i = 0; i < n; i++)
        if (--ms[i]->refs == 0 && ms[i]->retired)
            model_free(ms[i]);
    pthread_mutex_unlock(&s->mu);
    free(ms);
}

/* ---- requests ----------------------------------------------------------------------------- */

bool reward_scorer_error_permanent(int rc)
{
    return rc == ERR_INVAL || rc == ERR_TOOBIG;
}

void reward_scorer_result_free(struct reward_scorer_result **pr)
{
    if (!pr || !*pr)
        return;
    struct reward_scorer_result *r = *pr;
    for (size_t i = 0; r->members && i < r->n_members; i++)
        free(r->members[i]);
    free(r->members);
    free(r->scores);
    for (size_t i = 0; r->features && i < r->n_members; i++)
        free(r->features[i]);
    free(r->features);
    free(r->feature_dims);
    free(r->packed);
    free(r->rec.data.data);
    free(r);
    *pr = NULL;
}

/* Tokens of one text for member m: see the header comment. cap: the most tokens a row may
 * hold. *cut tells whether the response was cut to fit. */
static int encode_text(const struct member_model *m, const int *pids, size_t np, bool rendered_ws,
                       const char *text, int cap, int **ids, int *len, bool *cut, char *why,
                       size_t whylen)
{
    size_t tl = strlen(text);
    bool sep = !rendered_ws && tl > 0 && !isspace((unsigned char)text[0]);
    char *t = malloc(tl + 2);
    if (!t)
        return ERR_NOMEM;
    snprintf(t, tl + 2, "%s%s", sep ? " " : "", text);
    int *rids = NULL;
    size_t nr = 0;
    char err[256];
    int rc = tok_encode(m->tok, t, strlen(t), 0, &rids, &nr, err, sizeof err);
    free(t);
    if (rc) {
        snprintf(why, whylen, "%s", err);
        return rc == ERR_NOMEM ? rc : ERR_INVAL;
    }
    size_t ne = m->eos >= 0 ? 1 : 0;
    size_t room = (size_t)cap > np + ne ? (size_t)cap - np - ne : 0;
    *cut = nr > room;
    if (*cut)
        nr = room;
    size_t total = np + nr + ne;
    int *row = malloc((total ? total : 1) * sizeof *row);
    if (!row) {
        free(rids);
        return ERR_NOMEM;
    }
    memcpy(row, pids, np * sizeof *row);
    memcpy(row + np, rids, nr * sizeof *row);
    if (ne)
        row[np + nr] = m->eos;
    free(rids);
    *ids = row;
    *len = (int)total;
    return ERR_OK;
}

void reward_scorer_keep_features(reward_scorer_t *s, bool on)
{
    s->keep_features = on;
}

/* Member m's rewards of every text into out[n_texts]: one forward over all of them. With
 * features: their last-hidden features into a malloc'd *features [n_texts, *dim]. */
static int score_member(const reward_scorer_t *s, struct member_model *m,
                        const Oaif__V1__ScoreRequest *req, double *out, float **features,
                        size_t *dim, uint64_t *tokens, unsigned *truncated, char *why,
                        size_t whylen)
{
    const struct nn_config *mc = nn_model_config(m->model);
    int cap = s->cfg.max_tokens < mc->max_position_embeddings ? s->cfg.max_tokens
                                                              : mc->max_position_embeddings;
    size_t B = req->n_texts;
    const char *prompt = req->prompt ? req->prompt : "";
    int *pids = NULL, **rows = calloc(B, sizeof *rows), *lens = calloc(B, sizeof *lens);
    int *tokens_bt = NULL;
    size_t np = 0;
    char *rendered = NULL, err[256];
    int rc = rows && lens ? ERR_OK : ERR_NOMEM;
    if (!rc) {
        unsigned flags = tok_wants_bos(m->tok) ? TOK_ADD_BOS : 0;
        rc = tok_encode_prompt(m->tok, prompt, flags, &pids, &np, err, sizeof err);
        if (rc && rc != ERR_NOMEM) {
            snprintf(why, whylen, "prompt: %s", err);
            rc = ERR_INVAL;
            goto out;
        }
    }
    if (!rc)
        rc = tok_render_prompt(m->tok, prompt, &rendered);
    if (rc)
        goto out_nomem;
    size_t rl = strlen(rendered);
    bool ws = rl == 0 || isspace((unsigned char)rendered[rl - 1]);
    if (np + 1 + (m->eos >= 0 ? 1 : 0) > (size_t)cap) {
        snprintf(why, whylen,
                 "prompt: %zu tokens with the template; %s/m%u@v%u scores at most %d tokens per "
                 "text (the prompt, at least one response token%s)",
                 np, s->cfg.ensemble, m->member, m->version, cap, m->eos >= 0 ? " and EOS" : "");
        rc = ERR_INVAL;
        goto out;
    }
    int T = 1;
    for (size_t i = 0; i < B; i++) {
        bool cut = false;
        char e[300] = "";
        rc =
            encode_text(m, pids, np, ws, req->texts[i], cap, &rows[i], &lens[i], &cut, e, sizeof e);
        if (rc == ERR_NOMEM)
            goto out_nomem;
        if (rc) {
            snprintf(why, whylen, "texts[%zu]: %s", i, e);
            goto out;
        }
        *truncated += cut;
        *tokens += (uint64_t)lens[i];
        T = lens[i] > T ? lens[i] : T;
    }
    tokens_bt = malloc(B * (size_t)T * sizeof *tokens_bt);
    if (!tokens_bt)
        goto out_nomem;
    for (size_t i = 0; i < B; i++) {
        int *row = tokens_bt + i * (size_t)T;
        memcpy(row, rows[i], (size_t)lens[i] * sizeof *row);
        for (int t = lens[i]; t < T; t++)
            row[t] = 0;
    }
    rc = nn_model_reserve(m->model, (int)B, T, false);
    if (rc == ERR_NOMEM)
        goto out_nomem;
    struct nn_batch batch = {.B = (int)B, .T = T, .tokens = tokens_bt, .lengths = lens};
    struct nn_fwd_opts fo = {.logits = false};
    if (!rc)
        rc = nn_model_forward(m->model, &batch, &fo);
    if (rc) {
        snprintf(why, whylen, "%s/m%u@v%u: the forward failed (%s)", s->cfg.ensemble, m->member,
                 m->version, err_str(rc));
        rc = rc == ERR_NOMEM ? rc : ERR_AGAIN;
        goto out;
    }
    const float *r = nn_model_rewards(m->model);
    for (size_t i = 0; i < B; i++) {
        if (!isfinite(r[i])) {
            snprintf(why, whylen, "%s/m%u@v%u: texts[%zu] got a non-finite reward", s->cfg.ensemble,
                     m->member, m->version, i);
            rc = ERR_AGAIN;
            goto out;
        }
        out[i] = (double)r[i];
    }
    if (features) {
        *dim = (size_t)mc->hidden_size;
        *features = malloc(B * *dim * sizeof **features);
        if (!*features)
            goto out_nomem;
        memcpy(*features, nn_model_last_hidden(m->model), B * *dim * sizeof **features);
    }
    goto out;
out_nomem:
    rc = ERR_NOMEM;
    snprintf(why, whylen, "out of memory");
out:
    for (size_t i = 0; rows && i < B; i++)
        free(rows[i]);
    free(rows);
    free(lens);
    free(pids);
    free(rendered);
    free(tokens_bt);
    return rc;
}

/* The Scores record of a pair request, and the packed reply. */
static int result_build(const reward_scorer_t *s, struct reward_scorer_result *r,
                        const Oaif__V1__ScoreRequest *req)
{
    (void)s;
    Oaif__V1__ScoreReply rep = OAIF__V1__SCORE_REPLY__INIT;
    rep.members = r->members;
    rep.n_members = r->n_members;
    rep.scores = r->scores;
    rep.n_scores = r->n_members * r->n_texts;
    r->packed_len = oaif__v1__score_reply__get_packed_size(&rep);
    r->packed = malloc(r->packed_len ? r->packed_len : 1);
    if (!r->packed)
        return ERR_NOMEM;
    oaif__v1__score_reply__pack(&rep, r->packed);
    if (!req->pair_id || !*req->pair_id || r->n_texts != 2)
        return ERR_OK;
    size_t M = r->n_members;
    double *first = malloc((M ? M : 1) * sizeof *first);
    double *second = malloc((M ? M : 1) * sizeof *second);
    if (!first || !second) {
        free(first);
        free(second);
        return ERR_NOMEM;
    }
    for (size_t m = 0; m < M; m++) {
        first[m] = r->scores[m * 2];
        second[m] = r->scores[m * 2 + 1];
    }
    Oaif__V1__Scores sc = OAIF__V1__SCORES__INIT;
    sc.id = req->pair_id;
    sc.pair_id = req->pair_id;
    sc.members = r->members;
    sc.n_members = M;
    sc.first = first;
    sc.n_first = M;
    sc.second = second;
    sc.n_second = M;
    size_t len = oaif__v1__scores__get_packed_size(&sc);
    uint8_t *buf = malloc(len ? len : 1);
    if (buf)
        oaif__v1__scores__pack(&sc, buf);
    free(first);
    free(second);
    if (!buf)
        return ERR_NOMEM;
    oaif__v1__record__init(&r->rec);
    r->rec.kind = OAIF__V1__RECORD_KIND__RECORD_KIND_SCORES;
    r->rec.id = req->pair_id;
    r->rec.data.data = buf;
    r->rec.data.len = len;
    r->rec_ptr = &r->rec;
    r->records = &r->rec_ptr;
    r->n_records = 1;
    return ERR_OK;
}

int reward_scorer_run(reward_scorer_t *s, const Oaif__V1__ScoreRequest *req,
                      struct reward_scorer_result **out, char *why, size_t whylen)
{
    *out = NULL;
    if (req->n_texts == 0) {
        snprintf(why, whylen, "texts: the request has none");
        return ERR_INVAL;
    }
    if (req->n_texts > (size_t)s->cfg.max_texts) {
        snprintf(why, whylen, "texts: %zu texts, over the limit of %d per request", req->n_texts,
                 s->cfg.max_texts);
        return ERR_INVAL;
    }
    for (size_t i = 0; i < req->n_texts; i++)
        if (!req->texts[i]) {
            snprintf(why, whylen, "texts[%zu]: missing", i);
            return ERR_INVAL;
        }
    if (req->pair_id && strlen(req->pair_id) > 512) {
        snprintf(why, whylen, "pair_id: %zu bytes, at most 512", strlen(req->pair_id));
        return ERR_INVAL;
    }
    struct member_model **ms = NULL;
    size_t M = 0;
    int rc = acquire(s, &ms, &M, why, whylen);
    if (rc)
        return rc;
    struct reward_scorer_result *r = calloc(1, sizeof *r);
    if (r) {
        r->n_members = M;
        r->n_texts = req->n_texts;
        r->members = calloc(M, sizeof *r->members);
        r->scores = calloc(M * req->n_texts, sizeof *r->scores);
        if (s->keep_features) {
            r->features = calloc(M, sizeof *r->features);
            r->feature_dims = calloc(M, sizeof *r->feature_dims);
        }
    }
    if (!r || !r->members || !r->scores ||
        (s->keep_features && (!r->features || !r->feature_dims))) {
        rc = ERR_NOMEM;
        snprintf(why, whylen, "out of memory");
        goto out;
    }
    double t0 = now_s();
    for (size_t k = 0; !rc && k < M; k++) {
        char name[300];
        snprintf(name, sizeof name, "%s/m%u@v%u", s->cfg.ensemble, ms[k]->member, ms[k]->version);
        r->members[k] = strdup(name);
        if (!r->members[k]) {
            rc = ERR_NOMEM;
            snprintf(why, whylen, "out of memory");
            break;
        }
        rc = score_member(
            s, ms[k], req, r->scores + k * req->n_texts, r->features ? &r->features[k] : NULL,
            r->feature_dims ? &r->feature_dims[k] : NULL, &r->tokens, &r->truncated, why, whylen);
    }
    r->seconds = now_s() - t0;
    if (!rc) {
        rc = result_build(s, r, req);
        if (rc)
            snprintf(why, whylen, "packing the reply: %s", err_str(rc));
    }
out:
    release(s, ms, M);
    if (rc) {
        reward_scorer_result_free(&r);
        return rc;
    }
    *out = r;
    return ERR_OK;
}
