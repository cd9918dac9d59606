/* annotator.c - see annotator.h.
 *
 * A judgement owns one or two orders. For the HTTP backends each order is one http request whose
 * callback parses the answer; the judgement finishes when its last order does. The rules and
 * reward-model backends put their finished judgements on the `ready` list, which annotator_poll()
 * delivers, so every callback runs from annotator_poll() whatever the backend. */
#include "annotator.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "buf.h"
#include "err.h"
#include "log.h"
#include "template.h"
#include "wire.h"

#define KEY_MAX_BYTES 4096

struct judgement;

struct order {
    struct judgement *j;
    bool swapped;
    double est_tokens;
    char *body; /* request body until submitted */
    int rc;
    enum annotator_failure failure;
    char *error;
    bool permanent;
    struct annotator_order_result res;
};

struct judgement {
    annotator_t *a;
    annotator_done_fn done;
    void *user;
    char *pair_id;
    int64_t t0;
    unsigned norders, pending;
    struct order orders[2];
    uint64_t ticket;                       /* reward-model */
    bool noise_flipped;                    /* rules */
    struct judgement *next;                /* ready list or scoring list */
    struct judgement *all_prev, *all_next; /* every judgement not yet delivered */
};

struct annotator {
    struct annotator_config cfg; /* its settings; name points to `name`, the other strings are
                                    NULL (the copies below) */
    struct http_config http_cfg;
    char *name, *base_url, *model, *url, *anthropic_version, *template_path, *reasoning_effort;
    enum wire_limit_field limit_field; /* the auto setting resolved */
    char *key_source;                  /* "annotator.api_key", "env NAME" or NULL: for describe() */
    char *key;                         /* the API key; NULL: none */
    char **headers;
    size_t nheaders;
    struct template *tpl;
    enum wire_format wire;
    http_client_t *http;
    struct judgement *ready_head, *ready_tail;
    struct judgement *scoring;
    struct judgement *all; /* for destroy: judgements in flight, whatever their state */
    uint64_t next_ticket;
    size_t pending;
    struct annotator_totals tot;
};

const struct cfg_choice annotator_backend_names[] = {
    {"openai", ANNOTATOR_BACKEND_OPENAI},
    {"anthropic", ANNOTATOR_BACKEND_ANTHROPIC},
    {"rules", ANNOTATOR_BACKEND_RULES},
    {"reward-model", ANNOTATOR_BACKEND_REWARD_MODEL},
    {NULL, 0}};
const struct cfg_choice annotator_limit_field_names[] = {
    {"auto", ANNOTATOR_LIMIT_AUTO},
    {"max_tokens", ANNOTATOR_LIMIT_MAX_TOKENS},
    {"max_completion_tokens", ANNOTATOR_LIMIT_MAX_COMPLETION_TOKENS},
    {NULL, 0}};
const struct cfg_choice annotator_orders_names[] = {
    {"both", ANNOTATOR_ORDERS_BOTH}, {"random", ANNOTATOR_ORDERS_RANDOM_ONE}, {NULL, 0}};

static const char *choice_name(const struct cfg_choice *c, int value)
{
    for (; c->name; c++)
        if (c->value == value)
            return c->name;
    return "?";
}

int annotator_backend_parse(const char *s, enum annotator_backend *out)
{
    for (const struct cfg_choice *c = annotator_backend_names; s && c->name; c++)
        if (strcmp(s, c->name) == 0) {
            *out = (enum annotator_backend)c->value;
            return ERR_OK;
        }
    return ERR_INVAL;
}

const char *annotator_backend_name(enum annotator_backend b)
{
    return choice_name(annotator_backend_names, (int)b);
}

const char *annotator_orders_name(enum annotator_orders o)
{
    return choice_name(annotator_orders_names, (int)o);
}

static bool is_http_backend(const annotator_t *a)
{
    return a->cfg.backend == ANNOTATOR_BACKEND_OPENAI ||
           a->cfg.backend == ANNOTATOR_BACKEND_ANTHROPIC;
}

/* ---- construction ------------------------------------------------------------------------- */

static void wipe_free(char *s)
{
    if (s) {
        volatile char *p = s;
        while (*p)
            *p++ = '\0';
        free(s);
    }
}

/* Takes the key from api_key, else from the variable api_key_env names. *key NULL when neither
 * is set; *source says where it came from (for describe()). */
static int read_key(const struct annotator_config *cfg, char **key, char **source, char *why,
                    size_t whylen)
{
    *key = NULL;
    *source = NULL;
    const char *k, *from;
    buf_t src;
    buf_init(&src, 0);
    if (cfg->api_key && *cfg->api_key) {
        k = cfg->api_key;
        from = "annotator.api_key";
        buf_append_str(&src, from);
    } else if (cfg->api_key_env && *cfg->api_key_env) {
        k = getenv(cfg->api_key_env);
        if (!k || !*k) {
            snprintf(why, whylen,
                     "annotator.api_key_env: environment variable %s is not set or empty",
                     cfg->api_key_env);
            return ERR_INVAL;
        }
        from = "annotator.api_key_env";
        buf_printf(&src, "env %s", cfg->api_key_env);
    } else {
        return ERR_OK;
    }
    bool ok = strlen(k) <= KEY_MAX_BYTES;
    for (const char *p = k; ok && *p; p++)
        ok = (unsigned char)*p >= 0x20 && *p != 0x7f;
    if (!ok) { /* the reason, never the key */
        snprintf(why, whylen,
                 "%s: the key must be one line of at most %d bytes, no control "
                 "characters",
                 from, KEY_MAX_BYTES);
        buf_free(&src);
        return ERR_INVAL;
    }
    char *copy = strdup(k);
    if (!copy || !src.data) {
        wipe_free(copy);
        buf_free(&src);
        return ERR_NOMEM;
    }
    *key = copy;
    *source = buf_steal(&src);
    return ERR_OK;
}

/* Adds the header "name: prefix value" (prefix may be ""). */
static int add_header(annotator_t *a, const char *name, const char *prefix, const char *value)
{
    buf_t b;
    buf_init(&b, 0);
    int rc = buf_printf(&b, "%s: %s%s", name, prefix, value);
    if (rc) {
        buf_free(&b);
        return rc;
    }
    char **h = realloc(a->headers, (a->nheaders + 1) * sizeof *h);
    if (!h) {
        buf_free(&b);
        return ERR_NOMEM;
    }
    a->headers = h;
    a->headers[a->nheaders++] = buf_steal(&b);
    return ERR_OK;
}

static char *dup_opt(const char *s)
{
    return s ? strdup(s) : NULL;
}

static bool is_set(const char *s)
{
    return s && *s;
}

/* The base URL: the option, or the backend's public API. */
static const char *base_url_of(const struct annotator_config *cfg)
{
    if (is_set(cfg->base_url))
        return cfg->base_url;
    return cfg->backend == ANNOTATOR_BACKEND_ANTHROPIC ? ANNOTATOR_ANTHROPIC_URL
                                                       : ANNOTATOR_OPENAI_URL;
}

static int validate(const struct annotator_config *cfg, char *why, size_t whylen)
{
    const char *bad = NULL;
    bool http =
        cfg->backend == ANNOTATOR_BACKEND_OPENAI || cfg->backend == ANNOTATOR_BACKEND_ANTHROPIC;
    const char *url = base_url_of(cfg);
    if (cfg->backend < ANNOTATOR_BACKEND_OPENAI || cfg->backend > ANNOTATOR_BACKEND_REWARD_MODEL)
        bad = "backend: not one of openai, anthropic, rules, reward-model";
    else if (http && strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0)
        bad = "base_url: must start with http:// or https://";
    else if (http && !is_set(cfg->model))
        bad = "model: required";
    else if (http && !is_set(cfg->template_name))
        bad = "template: required";
    else if (http && !(cfg->temperature >= 0 && cfg->temperature <= 2))
        bad = "temperature: must be in [0, 2]";
    else if (http && (cfg->max_tokens < 1 || cfg->max_tokens > 100000))
        bad = "max_tokens: must be in 1..100000";
    else if (cfg->backend == ANNOTATOR_BACKEND_OPENAI && cfg->logprobs &&
             (cfg->top_logprobs < 1 || cfg->top_logprobs > 20))
        bad = "top_logprobs: must be in 1..20";
    else if (cfg->backend == ANNOTATOR_BACKEND_ANTHROPIC && !is_set(cfg->anthropic_version))
        bad = "anthropic_version: required";
    else if (cfg->thinking_budget < 0 ||
             (cfg->backend == ANNOTATOR_BACKEND_ANTHROPIC && cfg->thinking_budget > 0 &&
              (cfg->thinking_budget < 1024 || cfg->thinking_budget >= cfg->max_tokens)))
        bad = "thinking_budget: 0 (off), or at least 1024 and less than max_tokens";
    else if (cfg->limit_field < ANNOTATOR_LIMIT_AUTO ||
             cfg->limit_field > ANNOTATOR_LIMIT_MAX_COMPLETION_TOKENS)
        bad = "max_tokens_field: must be auto, max_tokens or max_completion_tokens";
    else if (!(cfg->tie_band >= 0 && cfg->tie_band <= 0.5))
        bad = "tie_band: must be in [0, 0.5]";
    else if (!(cfg->price_input_per_mtok >= 0) || !(cfg->price_output_per_mtok >= 0))
        bad = "price: must be >= 0";
    else if (isnan(cfg->price_cached_input_per_mtok) || isnan(cfg->price_cache_write_per_mtok))
        bad = "price of cached tokens: not a number";
    else if (cfg->orders != ANNOTATOR_ORDERS_BOTH && cfg->orders != ANNOTATOR_ORDERS_RANDOM_ONE)
        bad = "orders: must be both or random";
    else if (cfg->backend == ANNOTATOR_BACKEND_RULES && !cfg->rules)
        bad = "backend: the rules backend needs a rules function";
    else if (cfg->backend == ANNOTATOR_BACKEND_REWARD_MODEL && !cfg->score)
        bad = "backend: the reward-model backend needs a scoring function";
    for (size_t i = 0; !bad && i < cfg->extra_headers.n; i++) {
        const char *h = cfg->extra_headers.items ? cfg->extra_headers.items[i] : NULL;
        if (!h || !strchr(h, ':') || strpbrk(h, "\r\n"))
            bad = "extra_headers: each must be 'Name: value' on one line";
    }
    if (!bad)
        return ERR_OK;
    snprintf(why, whylen, "annotator.%s", bad);
    return ERR_INVAL;
}

/* The completion limit's field: the option, or by default max_completion_tokens where it is
 * required or preferred (OpenAI's own API, which deprecated max_tokens and whose reasoning
 * models reject it; any reasoning model), max_tokens for the other OpenAI-compatible servers,
 * some of which know no other. */
static enum wire_limit_field limit_field_of(const struct annotator_config *cfg, const char *url)
{
    if (cfg->limit_field == ANNOTATOR_LIMIT_MAX_TOKENS || cfg->backend != ANNOTATOR_BACKEND_OPENAI)
        return WIRE_LIMIT_MAX_TOKENS;
    if (cfg->limit_field == ANNOTATOR_LIMIT_MAX_COMPLETION_TOKENS || cfg->reasoning_model)
        return WIRE_LIMIT_MAX_COMPLETION_TOKENS;
    const char *host = url ? strstr(url, "://") : NULL;
    host = host ? host + 3 : "";
    size_t hl = strcspn(host, ":/");
    static const char oa[] = "api.openai.com";
    return hl == sizeof oa - 1 && strncasecmp(host, oa, hl) == 0 ? WIRE_LIMIT_MAX_COMPLETION_TOKENS
                                                                 : WIRE_LIMIT_MAX_TOKENS;
}

/* The template option as a file: a path as is (it has a '/' or ends in .txt); a bare NAME is
 * template_dir/NAME.txt. *out is malloc'd. ERR_IO when it cannot be read. */
static int template_path(const struct annotator_config *cfg, char **out, char *why, size_t whylen)
{
    const char *t = cfg->template_name;
    size_t n = strlen(t);
    bool path = strchr(t, '/') || (n > 4 && strcmp(t + n - 4, ".txt") == 0);
    buf_t b;
    buf_init(&b, 0);
    int rc =
        path ? buf_append_str(&b, t)
             : buf_printf(&b, "%s/%s.txt", is_set(cfg->template_dir) ? cfg->template_dir : ".", t);
    *out = buf_steal(&b);
    if (rc || !*out) {
        free(*out);
        *out = NULL;
        return ERR_NOMEM;
    }
    if (access(*out, R_OK) != 0) {
        snprintf(why, whylen, "annotator.template: %s: %s%s", *out, strerror(errno),
                 path ? "" : " (a name is looked up in annotator.template_dir)");
        free(*out);
        *out = NULL;
        return ERR_IO;
    }
    return ERR_OK;
}

int annotator_new(annotator_t **out, const struct annotator_config *cfg, char *why, size_t whylen)
{
    *out = NULL;
    int rc = validate(cfg, why, whylen);
    if (rc)
        return rc;
    annotator_t *a = calloc(1, sizeof *a);
    if (!a)
        return ERR_NOMEM;
    /* the settings, not the caller's strings: ours are the copies in *a */
    a->cfg = *cfg;
    a->cfg.name = a->cfg.base_url = a->cfg.model = NULL;
    a->cfg.api_key = a->cfg.api_key_env = NULL;
    a->cfg.template_name = a->cfg.template_dir = a->cfg.anthropic_version = NULL;
    a->cfg.reasoning_effort = NULL;
    a->cfg.extra_headers.items = NULL;
    a->cfg.extra_headers.n = 0;
    a->http_cfg = http_opts_config(&cfg->http);
    if (is_http_backend(a)) {
        a->wire = cfg->backend == ANNOTATOR_BACKEND_OPENAI ? WIRE_OPENAI : WIRE_ANTHROPIC;
        a->base_url = dup_opt(base_url_of(cfg));
        a->model = dup_opt(cfg->model);
        a->anthropic_version = dup_opt(cfg->anthropic_version);
        a->reasoning_effort = dup_opt(cfg->reasoning_effort);
        a->limit_field = limit_field_of(cfg, a->base_url);
        if (!a->base_url || !a->model || (cfg->anthropic_version && !a->anthropic_version) ||
            (cfg->reasoning_effort && !a->reasoning_effort)) {
            rc = ERR_NOMEM;
            goto out_destroy;
        }
        rc = template_path(cfg, &a->template_path, why, whylen);
        if (!rc)
            rc = template_load(&a->tpl, a->template_path, why, whylen);
        if (!rc)
            rc = read_key(cfg, &a->key, &a->key_source, why, whylen);
        if (rc)
            goto out_destroy;
        size_t bl = strlen(a->base_url);
        while (bl && a->base_url[bl - 1] == '/')
            a->base_url[--bl] = '\0';
        buf_t u;
        buf_init(&u, 0);
        rc = buf_printf(&u, "%s%s", a->base_url,
                        a->wire == WIRE_OPENAI ? "/chat/completions" : "/messages");
        a->url = buf_steal(&u);
        if (!rc && !a->url)
            rc = ERR_NOMEM;
        if (!rc)
            rc = add_header(a, "Content-Type", "", "application/json");
        if (!rc && a->key && a->wire == WIRE_OPENAI)
            rc = add_header(a, "Authorization", "Bearer ", a->key);
        if (!rc && a->key && a->wire == WIRE_ANTHROPIC)
            rc = add_header(a, "x-api-key", "", a->key);
        if (!rc && a->wire == WIRE_ANTHROPIC)
            rc = add_header(a, "anthropic-version", "", a->anthropic_version);
        for (size_t i = 0; !rc && i < cfg->extra_headers.n; i++) {
            const char *h = cfg->extra_headers.items[i];
            char name[128];
            size_t nl = (size_t)(strchr(h, ':') - h);
            snprintf(name, sizeof name, "%.*s", (int)(nl < sizeof name ? nl : sizeof name - 1), h);
            const char *v = h + nl + 1;
            while (*v == ' ')
                v++;
            rc = add_header(a, name, "", v);
        }
        if (rc)
            goto out_destroy;
        char hwhy[160];
        if (http_config_validate(&a->http_cfg, hwhy, sizeof hwhy)) {
            snprintf(why, whylen, "annotator.http: %s", hwhy);
            rc = ERR_INVAL;
            goto out_destroy;
        }
        rc = http_client_new(&a->http, &a->http_cfg);
        if (rc)
            goto out_destroy;
    }
    buf_t n;
    buf_init(&n, 0);
    if (is_set(cfg->name)) {
        rc = buf_append_str(&n, cfg->name);
    } else if (is_http_backend(a)) {
        const char *base = strrchr(a->template_path, '/');
        base = base ? base + 1 : a->template_path;
        size_t bl = strlen(base);
        if (bl > 4 && strcmp(base + bl - 4, ".txt") == 0)
            bl -= 4;
        rc = buf_printf(&n, "%s/%s/%.*s", annotator_backend_name(cfg->backend), a->model, (int)bl,
                        base);
    } else {
        rc = buf_append_str(&n, annotator_backend_name(cfg->backend));
    }
    a->name = buf_steal(&n);
    if (!rc && !a->name)
        rc = ERR_NOMEM;
    if (rc)
        goto out_destroy;
    a->cfg.name = a->name;
    *out = a;
    return ERR_OK;
out_destroy:
    annotator_destroy(&a);
    return rc;
}

static void judgement_free(struct judgement *j)
{
    if (!j)
        return;
    for (unsigned i = 0; i < 2; i++) {
        free(j->orders[i].body);
        free(j->orders[i].error);
    }
    free(j->pair_id);
    free(j);
}

void annotator_destroy(annotator_t **pa)
{
    if (!pa || !*pa)
        return;
    annotator_t *a = *pa;
    /* the http client drops its requests without callbacks; every judgement not yet delivered
     * (in flight, scoring or ready) is on the `all` list */
    http_client_destroy(&a->http);
    while (a->all) {
        struct judgement *j = a->all;
        a->all = j->all_next;
        judgement_free(j);
    }
    template_free(&a->tpl);
    for (size_t i = 0; i < a->nheaders; i++)
        wipe_free(a->headers[i]);
    free(a->headers);
    wipe_free(a->key);
    free(a->key_source);
    free(a->name);
    free(a->base_url);
    free(a->model);
    free(a->url);
    free(a->anthropic_version);
    free(a->template_path);
    free(a->reasoning_effort);
    free(a);
    *pa = NULL;
}

/* ---- judgements --------------------------------------------------------------------------- */

static void all_add(annotator_t *a, struct judgement *j)
{
    j->all_prev = NULL;
    j->all_next = a->all;
    if (a->all)
        a->all->all_prev = j;
    a->all = j;
    a->pending++;
}

static void all_remove(annotator_t *a, struct judgement *j)
{
    if (j->all_prev)
        j->all_prev->all_next = j->all_next;
    else
        a->all = j->all_next;
    if (j->all_next)
        j->all_next->all_prev = j->all_prev;
    a->pending--;
}

static void ready_push(annotator_t *a, struct judgement *j)
{
    j->next = NULL;
    if (a->ready_tail)
        a->ready_tail->next = j;
    else
        a->ready_head = j;
    a->ready_tail = j;
}

/* Sets an order's failure; the message is formatted, redacted and copied. */
static void order_fail(annotator_t *a, struct order *o, int rc, enum annotator_failure f,
                       bool permanent, const char *fmt, ...) __attribute__((format(printf, 6, 7)));

static void order_fail(annotator_t *a, struct order *o, int rc, enum annotator_failure f,
                       bool permanent, const char *fmt, ...)
{
    char msg[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    const char *secrets[1] = {a->key};
    http_redact(msg, secrets, a->key ? 1 : 0);
    o->rc = rc ? rc : ERR_PROTO;
    o->failure = f;
    o->permanent = permanent;
    free(o->error);
    o->error = strdup(msg); /* NULL on OOM: finish() falls back to a static reason */
}

static enum annotator_winner winner_of(double p, double tau)
{
    if (p > 0.5 + tau)
        return ANNOTATOR_WINNER_FIRST;
    if (p < 0.5 - tau)
        return ANNOTATOR_WINNER_SECOND;
    return ANNOTATOR_WINNER_TIE;
}

/* Builds the outcome, updates the totals, calls back, frees j (which is off every list). */
static void finish(annotator_t *a, struct judgement *j)
{
    struct annotator_outcome o = {
        .judge = a->name,
        .pair_id = j->pair_id ? j->pair_id : "",
        .norders = j->norders,
        .noise_flipped = j->noise_flipped,
        .latency_ms = (double)(http_now_ms() - j->t0),
    };
    char err[1024];
    const struct order *failed = NULL;
    if (j->norders > 2)
        j->norders = 2; /* never: one or two orders */
    o.norders = j->norders;
    for (unsigned i = 0; i < j->norders; i++) {
        const struct order *ord = &j->orders[i];
        o.orders[i] = ord->res;
        o.prompt_tokens += ord->res.prompt_tokens;
        o.completion_tokens += ord->res.completion_tokens;
        o.cost += ord->res.cost;
        if (ord->rc && !failed)
            failed = ord;
    }
    if (failed) {
        o.rc = failed->rc;
        o.failure = failed->failure;
        o.permanent = failed->permanent;
        if (j->norders == 2)
            snprintf(err, sizeof err, "order %s: %s", failed->swapped ? "BA" : "AB",
                     failed->error ? failed->error : err_str(failed->rc));
        else
            snprintf(err, sizeof err, "%s", failed->error ? failed->error : err_str(failed->rc));
        o.error = err;
    } else if (j->norders == 2) {
        double p_ab = j->orders[0].res.prob_first, p_ba = j->orders[1].res.prob_first;
        o.prob_first = 0.5 * (p_ab + 1 - p_ba);
        o.disagreement = fabs(p_ab - (1 - p_ba));
    } else {
        double p = j->orders[0].res.prob_first;
        o.prob_first = j->orders[0].swapped ? 1 - p : p;
    }
    if (!o.rc)
        o.winner = winner_of(o.prob_first, a->cfg.tie_band);

    struct annotator_totals *t = &a->tot;
    t->judgements++;
    t->prompt_tokens += o.prompt_tokens;
    t->completion_tokens += o.completion_tokens;
    t->cost += o.cost;
    if (o.rc) {
        t->failed++;
        t->failed_by[o.failure]++;
    } else {
        t->ok++;
        t->latency_ms_sum += o.latency_ms;
        if (o.winner == ANNOTATOR_WINNER_FIRST)
            t->wins_first++;
        else if (o.winner == ANNOTATOR_WINNER_SECOND)
            t->wins_second++;
        else
            t->ties++;
        if (j->norders == 2) {
            t->disagreement_sum += o.disagreement;
            t->disagreement_n++;
        }
    }
    j->done(j->user, &o);
    judgement_free(j);
}

/* The price of a million tokens of one kind: its own rate, or the input price when unset. */
static double rate_or_input(const annotator_t *a, double rate)
{
    return rate >= 0 ? rate : a->cfg.price_input_per_mtok;
}

/* Records the usage of an answer: tokens, cost (cache reads and writes at their own rates), and
 * the correction of the tokens-per-minute bucket. */
static void order_usage(annotator_t *a, struct order *o, const struct wire_answer *ans)
{
    struct annotator_order_result *r = &o->res;
    r->prompt_tokens = ans->prompt_tokens;
    r->completion_tokens = ans->completion_tokens;
    r->cached_tokens = ans->cached_tokens;
    r->cache_write_tokens = ans->cache_write_tokens;
    unsigned cached = ans->cached_tokens + ans->cache_write_tokens <= ans->prompt_tokens
                          ? ans->cached_tokens + ans->cache_write_tokens
                          : ans->prompt_tokens;
    r->cost = (ans->prompt_tokens - cached) * a->cfg.price_input_per_mtok / 1e6 +
              ans->cached_tokens * rate_or_input(a, a->cfg.price_cached_input_per_mtok) / 1e6 +
              ans->cache_write_tokens * rate_or_input(a, a->cfg.price_cache_write_per_mtok) / 1e6 +
              ans->completion_tokens * a->cfg.price_output_per_mtok / 1e6;
    if (ans->prompt_tokens || ans->completion_tokens)
        http_client_charge_tokens(a->http, (double)ans->prompt_tokens + ans->completion_tokens -
                                               o->est_tokens);
}

/* Reads the verdict of a parsed answer into the order's result, or fails the order. Refusals,
 * answers cut off and answers without a verdict are permanent failures unless
 * retry_unparseable says to ask again. */
static void order_verdict(annotator_t *a, struct order *o, const struct wire_answer *ans)
{
    char why[256], ex[240];
    bool permanent = !a->cfg.retry_unparseable;
    if (ans->refusal) {
        wire_excerpt(ex, sizeof ex, ans->refusal);
        order_fail(a, o, ERR_REMOTE, ANNOTATOR_FAIL_REFUSAL, permanent, "refusal: %s", ex);
        return;
    }
    if (ans->truncated) {
        wire_excerpt(ex, sizeof ex, ans->text);
        order_fail(a, o, ERR_PROTO, ANNOTATOR_FAIL_PARSE, permanent,
                   "the answer was cut off (%s %s after %u completion tokens%s; raise "
                   "annotator.max_tokens): '%s'",
                   a->wire == WIRE_OPENAI ? "finish_reason" : "stop_reason", ans->finish,
                   ans->completion_tokens, ans->reasoning ? ", reasoning included" : "", ex);
        return;
    }
    struct wire_verdict v;
    if (wire_find_verdict(ans, &a->tpl->verdict, a->tpl->answers, &v, why, sizeof why)) {
        char g[96];
        wire_grammar_str(&a->tpl->verdict, g, sizeof g);
        order_fail(a, o, ERR_PROTO, ANNOTATOR_FAIL_PARSE, permanent, "no verdict (@verdict %s): %s",
                   g, why);
        return;
    }
    struct annotator_order_result *r = &o->res;
    r->verdict_line = v.line;
    r->verdict_column = v.column;
    r->lp_index = v.lp_index;
    snprintf(r->lp_token, sizeof r->lp_token, "%s", v.lp_token);
    snprintf(r->lp_note, sizeof r->lp_note, "%s", v.lp_note);
    snprintf(r->verdict, sizeof r->verdict, "%s", a->tpl->answers[v.choice]);
    if (v.has_logprobs) {
        r->has_logprobs = true;
        r->prob_first = wire_prob_first(v.lp);
    } else {
        r->prob_first = v.choice == 0 ? 1.0 : 0.0;
    }
}

/* The http client's test of an error body: credits spent or a bad key are final. */
static bool answer_permanent(long status, const char *body, size_t len)
{
    (void)status;
    return wire_error_permanent(body, len, NULL, 0);
}

/* An HTTP order finished: parse the answer into the order's result. */
static void on_http_done(void *user, const struct http_response *resp)
{
    struct order *o = user;
    struct judgement *j = o->j;
    annotator_t *a = j->a;
    o->res.attempts = resp->attempts;
    o->res.latency_ms = resp->latency_ms;
    o->res.lp_index = -1;
    a->tot.calls++;
    if (resp->rc) {
        enum annotator_failure f = resp->rc == ERR_NOMEM    ? ANNOTATOR_FAIL_LOCAL
                                   : resp->status != 0      ? ANNOTATOR_FAIL_HTTP
                                   : resp->rc == ERR_TOOBIG ? ANNOTATOR_FAIL_PARSE
                                   : resp->rc == ERR_INVAL  ? ANNOTATOR_FAIL_LOCAL
                                                            : ANNOTATOR_FAIL_TRANSPORT;
        char kind[48] = "";
        bool final = resp->status != 0 &&
                     wire_error_permanent(resp->body, resp->body_len, kind, sizeof kind);
        order_fail(a, o, resp->rc, f, resp->permanent || final, "%s%s%s%s", resp->error,
                   kind[0] ? " (" : "", kind, kind[0] ? ": not retried)" : "");
    } else {
        struct wire_answer ans;
        char why[256], ex[240];
        bool final = false;
        int rc = wire_parse(a->wire, resp->body, resp->body_len, &ans, &final, why, sizeof why);
        if (rc) {
            wire_excerpt(ex, sizeof ex, resp->body);
            order_fail(a, o, rc, rc == ERR_NOMEM ? ANNOTATOR_FAIL_LOCAL : ANNOTATOR_FAIL_PARSE,
                       final, "unparseable answer: %s; body: %s", why, ex);
        } else {
            order_usage(a, o, &ans);
            order_verdict(a, o, &ans);
            wire_answer_free(&ans);
        }
    }
    if (--j->pending == 0) {
        all_remove(a, j);
        finish(a, j);
    }
}

static uint64_t mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static uint64_t fnv1a(uint64_t h, const char *s)
{
    for (; s && *s; s++)
        h = (h ^ (unsigned char)*s) * 0x100000001b3ull;
    return (h ^ 0xff) * 0x100000001b3ull; /* a separator so ("ab","c") != ("a","bc") */
}

/* Renders and builds the body of one order. */
static int order_prepare(annotator_t *a, struct order *o, const struct annotator_request *req)
{
    const char *r1 = req->responses[o->swapped ? 1 : 0];
    const char *r2 = req->responses[o->swapped ? 0 : 1];
    char *sys = NULL, *user = NULL;
    int rc = template_render(a->tpl, req->instruction, req->prompt, r1, r2,
                             a->cfg.strip_special_tokens, &sys, &user);
    if (!rc) {
        /* reasoning models take neither a temperature nor log-probs; Anthropic's extended
         * thinking takes no temperature either */
        bool reasoning =
            a->cfg.reasoning_model || (a->wire == WIRE_ANTHROPIC && a->cfg.thinking_budget > 0);
        struct wire_params wp = {
            .model = a->model,
            .temperature = a->cfg.temperature,
            .send_temperature = !reasoning,
            .max_tokens = (unsigned)a->cfg.max_tokens,
            .limit_field = a->limit_field,
            .logprobs = a->cfg.logprobs && !reasoning,
            .top_logprobs = (unsigned)a->cfg.top_logprobs,
            .reasoning_effort = a->reasoning_effort,
            .thinking_budget = (unsigned)a->cfg.thinking_budget,
            .json_object = a->cfg.json_mode && a->tpl->verdict.mode == WIRE_VERDICT_JSON,
        };
        rc = wire_build(a->wire, &wp, sys, user, &o->body);
        /* about four bytes a token, plus the answer */
        o->est_tokens = (double)((sys ? strlen(sys) : 0) + strlen(user)) / 4 + a->cfg.max_tokens;
    }
    free(sys);
    free(user);
    return rc;
}

static void order_submit(annotator_t *a, struct order *o, const struct annotator_request *req)
{
    const char *secrets[1] = {a->key};
    struct http_request hr = {
        .method = "POST",
        .url = a->url,
        .headers = (const char *const *)a->headers,
        .nheaders = a->nheaders,
        .body = o->body,
        .body_len = strlen(o->body),
        .secrets = secrets,
        .nsecrets = a->key ? 1 : 0,
        .tokens = o->est_tokens,
        .deadline_ms = req->deadline_ms,
        .permanent = answer_permanent,
    };
    int rc = http_client_submit(a->http, &hr, on_http_done, o);
    free(o->body);
    o->body = NULL;
    if (rc) {
        order_fail(a, o, rc, ANNOTATOR_FAIL_LOCAL, false, "cannot queue the request: %s",
                   err_str(rc));
        o->j->pending--;
    }
}

int annotator_submit(annotator_t *a, const struct annotator_request *req, annotator_done_fn done,
                     void *user)
{
    if (!a || !req || !done || !req->prompt || !req->responses[0] || !req->responses[1])
        return ERR_INVAL;
    struct judgement *j = calloc(1, sizeof *j);
    if (!j)
        return ERR_NOMEM;
    j->a = a;
    j->done = done;
    j->user = user;
    j->t0 = http_now_ms();
    if (req->pair_id && !(j->pair_id = strdup(req->pair_id))) {
        judgement_free(j);
        return ERR_NOMEM;
    }
    char why[256];
    int rc = ERR_OK;
    switch (a->cfg.backend) {
    case ANNOTATOR_BACKEND_OPENAI:
    case ANNOTATOR_BACKEND_ANTHROPIC: {
        if (a->cfg.orders == ANNOTATOR_ORDERS_BOTH) {
            j->norders = 2;
            j->orders[1].swapped = true;
        } else {
            uint64_t h = fnv1a(fnv1a(fnv1a(0xcbf29ce484222325ull, req->prompt), req->responses[0]),
                               req->responses[1]);
            j->norders = 1;
            j->orders[0].swapped = mix64(h ^ req->seed) & 1;
        }
        for (unsigned i = 0; !rc && i < j->norders; i++) {
            j->orders[i].j = j;
            j->orders[i].res.swapped = j->orders[i].swapped;
            rc = order_prepare(a, &j->orders[i], req);
        }
        if (rc) { /* invalid UTF-8 in a text, or out of memory: nothing was sent */
            judgement_free(j);
            return rc;
        }
        all_add(a, j);
        j->pending = j->norders;
        for (unsigned i = 0; i < j->norders; i++)
            order_submit(a, &j->orders[i], req);
        if (j->pending == 0) { /* none could be queued: report it from poll */
            ready_push(a, j);
        }
        return ERR_OK;
    }
    case ANNOTATOR_BACKEND_RULES: {
        struct annotator_verdict v = {.prob_first = 0.5};
        struct order *o = &j->orders[0];
        j->norders = 1;
        o->j = j;
        why[0] = '\0';
        rc = a->cfg.rules(a->cfg.rules_user, req, &v, why, sizeof why);
        a->tot.calls++;
        if (rc) {
            order_fail(a, o, rc, ANNOTATOR_FAIL_BACKEND, false, "rules: %s",
                       why[0] ? why : err_str(rc));
        } else if (!(v.prob_first >= 0 && v.prob_first <= 1)) {
            order_fail(a, o, ERR_INVAL, ANNOTATOR_FAIL_BACKEND, false,
                       "rules: prob_first %g is not in [0, 1]", v.prob_first);
        } else {
            o->res.prob_first = v.prob_first;
            snprintf(o->res.verdict, sizeof o->res.verdict, "%s", v.verdict);
            j->noise_flipped = v.noise_flipped;
        }
        o->res.latency_ms = (double)(http_now_ms() - j->t0);
        all_add(a, j);
        ready_push(a, j);
        return ERR_OK;
    }
    case ANNOTATOR_BACKEND_REWARD_MODEL: {
        j->norders = 1;
        j->orders[0].j = j;
        j->pending = 1;
        j->ticket = ++a->next_ticket;
        all_add(a, j);
        j->next = a->scoring;
        a->scoring = j;
        rc = a->cfg.score(a->cfg.score_user, a, j->ticket, req);
        if (rc) {
            /* still on the scoring list unless the function scored it before failing */
            annotator_scored(a, j->ticket, rc, 0, 0, "the scoring function failed to start");
        }
        return ERR_OK;
    }
    }
    judgement_free(j);
    return ERR_INVAL;
}

int annotator_scored(annotator_t *a, uint64_t ticket, int rc, double reward_first,
                     double reward_second, const char *why)
{
    struct judgement **pp = &a->scoring;
    while (*pp && (*pp)->ticket != ticket)
        pp = &(*pp)->next;
    if (!*pp)
        return ERR_NOTFOUND;
    struct judgement *j = *pp;
    *pp = j->next;
    struct order *o = &j->orders[0];
    a->tot.calls++;
    if (rc) {
        order_fail(a, o, rc, ANNOTATOR_FAIL_BACKEND, false, "reward model: %s",
                   why ? why : err_str(rc));
    } else if (!isfinite(reward_first) || !isfinite(reward_second)) {
        order_fail(a, o, ERR_PROTO, ANNOTATOR_FAIL_BACKEND, false,
                   "reward model: non-finite reward (%g, %g)", reward_first, reward_second);
    } else {
        double d = reward_first - reward_second; /* p = sigmoid(r1 - r2), computed stably */
        o->res.prob_first = d >= 0 ? 1 / (1 + exp(-d)) : exp(d) / (1 + exp(d));
        snprintf(o->res.verdict, sizeof o->res.verdict, "%+.4g", d);
    }
    o->res.latency_ms = (double)(http_now_ms() - j->t0);
    j->pending = 0;
    ready_push(a, j);
    return ERR_OK;
}

static void deliver_ready(annotator_t *a)
{
    /* detach the list first: callbacks may submit (and add to it) */
    struct judgement *j = a->ready_head;
    a->ready_head = a->ready_tail = NULL;
    while (j) {
        struct judgement *next = j->next;
        all_remove(a, j);
        finish(a, j);
        j = next;
    }
}

int annotator_poll(annotator_t *a, int timeout_ms, struct pollfd *extra, size_t nextra)
{
    deliver_ready(a);
    if (a->ready_head)
        timeout_ms = 0;
    int rc = ERR_OK;
    if (a->http) {
        rc = http_client_poll(a->http, timeout_ms, extra, nextra);
    } else if (nextra || timeout_ms > 0) { /* no fds of our own: never wait forever on none */
        if (poll(extra, (nfds_t)nextra, timeout_ms) < 0 && errno != EINTR)
            rc = ERR_IO;
    }
    deliver_ready(a);
    return rc;
}

size_t annotator_pollfds(annotator_t *a, struct pollfd *fds, size_t cap)
{
    return a->http ? http_client_pollfds(a->http, fds, cap) : 0;
}

int annotator_timeout_ms(annotator_t *a)
{
    if (a->ready_head)
        return 0;
    return a->http ? http_client_timeout_ms(a->http) : -1;
}

size_t annotator_pending(const annotator_t *a)
{
    return a->pending;
}

const char *annotator_judge_id(const annotator_t *a)
{
    return a->name;
}

/* ---- cache key, totals, description, protobuf ---------------------------------------------- */

static void key_field(struct sha256 *s, const void *p, size_t n)
{
    uint8_t len[8];
    for (int i = 0; i < 8; i++)
        len[i] = (uint8_t)((uint64_t)n >> (8 * i));
    sha256_update(s, len, sizeof len);
    sha256_update(s, p, n);
}

static void key_str(struct sha256 *s, const char *v)
{
    key_field(s, v ? v : "", v ? strlen(v) : 0);
}

void annotator_cache_key(const annotator_t *a, const struct annotator_request *req,
                         char out[SHA256_HEX_LEN + 1])
{
    struct sha256 s;
    char num[160];
    sha256_init(&s);
    key_str(&s, "oaif-judge-cache-v1");
    key_str(&s, annotator_backend_name(a->cfg.backend));
    key_str(&s, a->name);
    if (is_http_backend(a)) {
        key_str(&s, a->url);
        key_str(&s, a->model);
        snprintf(num, sizeof num, "t=%.17g max=%d lp=%d top=%d strip=%d", a->cfg.temperature,
                 a->cfg.max_tokens, (int)a->cfg.logprobs, a->cfg.top_logprobs,
                 (int)a->cfg.strip_special_tokens);
        key_str(&s, num);
        /* what else changes the question: only when set, so that older keys stay valid */
        bool json = a->cfg.json_mode && a->tpl->verdict.mode == WIRE_VERDICT_JSON;
        if (a->cfg.reasoning_model || a->reasoning_effort || a->cfg.thinking_budget ||
            a->limit_field != WIRE_LIMIT_MAX_TOKENS || json) {
            snprintf(num, sizeof num, "reasoning=%d effort=%.40s budget=%d field=%d json=%d",
                     (int)a->cfg.reasoning_model, a->reasoning_effort ? a->reasoning_effort : "",
                     a->cfg.thinking_budget, (int)a->limit_field, (int)json);
            key_str(&s, num);
        }
        key_str(&s, a->wire == WIRE_ANTHROPIC ? a->anthropic_version : "");
        key_field(&s, a->tpl->digest, sizeof a->tpl->digest);
    }
    snprintf(num, sizeof num, "orders=%d tau=%.17g", (int)a->cfg.orders, a->cfg.tie_band);
    key_str(&s, num);
    key_str(&s, req->instruction);
    key_str(&s, req->prompt);
    key_str(&s, req->responses[0]);
    key_str(&s, req->responses[1]);
    bool seeded = a->cfg.backend == ANNOTATOR_BACKEND_RULES ||
                  (is_http_backend(a) && a->cfg.orders == ANNOTATOR_ORDERS_RANDOM_ONE);
    if (a->cfg.backend == ANNOTATOR_BACKEND_RULES)
        key_str(&s, req->reference);
    if (seeded) {
        snprintf(num, sizeof num, "seed=%llu", (unsigned long long)req->seed);
        key_str(&s, num);
    }
    uint8_t d[SHA256_DIGEST_LEN];
    sha256_final(&s, d);
    sha256_hex(d, out);
}

void annotator_totals(const annotator_t *a, struct annotator_totals *out)
{
    *out = a->tot;
    if (a->http) {
        struct http_stats st;
        http_client_stats(a->http, &st);
        out->http_attempts = st.attempts;
        out->http_retries = st.retries;
        out->rate_waits = st.rate_waits;
    }
}

void annotator_describe(const annotator_t *a, char *out, size_t len)
{
    const struct annotator_config *c = &a->cfg;
    const struct http_config *h = &a->http_cfg;
    if (!len)
        return;
    if (!is_http_backend(a)) {
        snprintf(out, len, "judge %s: backend %s, tie_band %g", a->name,
                 annotator_backend_name(c->backend), c->tie_band);
        return;
    }
    char grammar[96];
    wire_grammar_str(&a->tpl->verdict, grammar, sizeof grammar);
    snprintf(out, len,
             "judge %s: backend %s, url %s, model %s, api key %s%s, template %s (answers %s/%s), "
             "verdict %s, temperature %g, %s %d, reasoning model %s, logprobs %s (top %d), "
             "orders %s, tie_band %g, retry unparseable %s, price in/cached/cache write/out "
             "per Mtok %g/%g/%g/%g, in flight %u, attempts %u, timeouts connect %ld ms total "
             "%ld ms, limits %g req/min %g tok/min",
             a->name, annotator_backend_name(c->backend), a->url, a->model,
             a->key ? "set from " : "none", a->key_source ? a->key_source : "", a->template_path,
             a->tpl->answers[0], a->tpl->answers[1], grammar, c->temperature,
             a->limit_field == WIRE_LIMIT_MAX_COMPLETION_TOKENS ? "max_completion_tokens"
                                                                : "max_tokens",
             c->max_tokens, c->reasoning_model ? "yes" : "no",
             a->wire == WIRE_OPENAI && c->logprobs && !c->reasoning_model ? "on" : "off",
             c->top_logprobs, annotator_orders_name(c->orders), c->tie_band,
             c->retry_unparseable ? "yes" : "no", c->price_input_per_mtok,
             rate_or_input(a, c->price_cached_input_per_mtok),
             rate_or_input(a, c->price_cache_write_per_mtok), c->price_output_per_mtok,
             h->max_in_flight, h->max_attempts, h->connect_timeout_ms, h->total_timeout_ms,
             h->requests_per_minute, h->tokens_per_minute);
}

int annotator_request_from_pb(const Oaif__V1__AnnotateRequest *pb, struct annotator_request *req,
                              char *why, size_t whylen)
{
    memset(req, 0, sizeof *req);
    if (!pb || !pb->pair) {
        snprintf(why, whylen, "annotate request: no pair");
        return ERR_INVAL;
    }
    const Oaif__V1__Pair *p = pb->pair;
    if (p->n_responses != 2 || !p->responses[0] || !p->responses[1]) {
        snprintf(why, whylen, "annotate request: pair %s has %zu responses, not 2",
                 p->id ? p->id : "?", p->n_responses);
        return ERR_INVAL;
    }
    req->pair_id = p->id;
    req->prompt = p->prompt;
    req->responses[0] = p->responses[0]->text;
    req->responses[1] = p->responses[1]->text;
    req->instruction = pb->instruction && *pb->instruction ? pb->instruction : NULL;
    req->reference = pb->reference && *pb->reference ? pb->reference : NULL;
    req->seed = pb->seed;
    if (!req->prompt || !req->responses[0] || !req->responses[1]) {
        snprintf(why, whylen, "annotate request: pair %s lacks its prompt or a response text",
                 p->id ? p->id : "?");
        return ERR_INVAL;
    }
    return ERR_OK;
}

int annotator_fill_label(const struct annotator_outcome *o, struct annotator_label *out)
{
    if (!o || o->rc != ERR_OK)
        return ERR_INVAL;
    Oaif__V1__Label init = OAIF__V1__LABEL__INIT;
    out->label = init;
    Oaif__V1__Label *l = &out->label;
    l->pair_id = (char *)(o->pair_id ? o->pair_id : "");
    l->judge = (char *)(o->judge ? o->judge : "");
    l->winner = (Oaif__V1__Winner)o->winner;
    l->prob_first = o->prob_first;
    l->latency_ms = o->latency_ms;
    l->prompt_tokens = o->prompt_tokens;
    l->completion_tokens = o->completion_tokens;
    l->cost = o->cost;
    l->disagreement = o->disagreement;
    l->noise_flipped = o->noise_flipped;
    unsigned n = o->norders > 2 ? 2 : o->norders;
    for (unsigned i = 0; i < n; i++) {
        Oaif__V1__OrderResult oi = OAIF__V1__ORDER_RESULT__INIT;
        const struct annotator_order_result *r = &o->orders[i];
        oi.swapped = r->swapped;
        oi.prob_first = r->prob_first;
        oi.verdict = (char *)r->verdict;
        oi.prompt_tokens = r->prompt_tokens;
        oi.completion_tokens = r->completion_tokens;
        oi.latency_ms = r->latency_ms;
        oi.cost = r->cost;
        oi.has_logprobs = r->has_logprobs;
        out->orders[i] = oi;
        out->order_ptrs[i] = &out->orders[i];
    }
    l->n_orders = n;
    l->orders = n ? out->order_ptrs : NULL;
    return ERR_OK;
}
