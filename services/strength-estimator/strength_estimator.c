/* strength_estimator.c - see strength_estimator.h. */
#include "strength_estimator.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "hmap.h"
#include "sha256.h"

#define ID_MAX 512 /* a record id's limit in the ledger */

int strength_rules_check(const struct strength_rules *r, char *why, size_t whylen)
{
#define BAD(...)                                                                                   \
    do {                                                                                           \
        snprintf(why, whylen, __VA_ARGS__);                                                        \
        return ERR_INVAL;                                                                          \
    } while (0)
    if (r->policy < STRENGTH_POLICY_KEEP || r->policy > STRENGTH_POLICY_SOFT)
        BAD("strength_estimator.policy: unknown value %d", r->policy);
    if (!(r->flip_quantile >= 0 && r->flip_quantile < 1))
        BAD("strength_estimator.flip_quantile: %g is outside [0, 1)", r->flip_quantile);
    if (r->min_sample < 1)
        BAD("strength_estimator.min_sample: %d is below 1", r->min_sample);
    if (!(r->epsilon >= 0 && r->epsilon < 0.5))
        BAD("strength_estimator.epsilon: %g is outside [0, 0.5)", r->epsilon);
    if (!(r->margin_scale >= 0) || !isfinite(r->margin_scale))
        BAD("strength_estimator.margin_scale: %g must be finite and >= 0", r->margin_scale);
    if (!(r->margin_clip >= 0) || !isfinite(r->margin_clip))
        BAD("strength_estimator.margin_clip: %g must be finite and >= 0", r->margin_clip);
    if (!(r->temperature > 0) || !isfinite(r->temperature))
        BAD("strength_estimator.temperature: %g must be finite and > 0", r->temperature);
    if (!(r->drop_below >= 0) || !isfinite(r->drop_below))
        BAD("strength_estimator.drop_below: %g must be finite and >= 0", r->drop_below);
    if (!(r->drop_std_above >= 0) || !isfinite(r->drop_std_above))
        BAD("strength_estimator.drop_std_above: %g must be finite and >= 0", r->drop_std_above);
#undef BAD
    return ERR_OK;
}

const char *strength_policy_name(int policy)
{
    static const char *const names[] = {"keep", "flip", "smooth", "margin", "soft"};
    return policy >= 0 && policy < (int)(sizeof names / sizeof names[0]) ? names[policy]
                                                                         : "unknown";
}

const char *strength_action_name(int action)
{
    switch (action) {
    case OAIF__V1__STRENGTH_ACTION__STRENGTH_ACTION_KEEP:
        return "keep";
    case OAIF__V1__STRENGTH_ACTION__STRENGTH_ACTION_FLIP:
        return "flip";
    case OAIF__V1__STRENGTH_ACTION__STRENGTH_ACTION_SMOOTH:
        return "smooth";
    case OAIF__V1__STRENGTH_ACTION__STRENGTH_ACTION_MARGIN:
        return "margin";
    case OAIF__V1__STRENGTH_ACTION__STRENGTH_ACTION_DROP:
        return "drop";
    case OAIF__V1__STRENGTH_ACTION__STRENGTH_ACTION_SOFT:
        return "soft";
    default:
        return "unspecified";
    }
}

/* ---- mu and sigma ------------------------------------------------------------------------- */

int strength_stats(const double *chosen, const double *rejected, size_t M, double *mu,
                   double *sigma)
{
    if (M == 0)
        return ERR_INVAL;
    double sum = 0;
    for (size_t m = 0; m < M; m++) {
        double d = chosen[m] - rejected[m];
        if (!isfinite(d))
            return ERR_INVAL;
        sum += d;
    }
    double mean = sum / (double)M, ss = 0;
    for (size_t m = 0; m < M; m++) {
        double e = chosen[m] - rejected[m] - mean;
        ss += e * e;
    }
    *mu = mean;
    *sigma = sqrt(ss / (double)M);
    return ERR_OK;
}

/* ---- the running distribution ------------------------------------------------------------- */

/* Values are kept in commit order (a list, for the window and replacements) and, for the
 * quantiles, in a sorted array that is brought up to date when asked: the adds and removals since
 * the last query are applied one by one (binary search and memmove) while they are few, else the
 * array is rebuilt with qsort. A replica that reads thousands of strengths on start sorts once. */
#define DIST_PENDING_MAX 32

struct dist_node {
    char *id;
    double mu;
    struct dist_node *prev, *next;
};

struct strength_dist {
    size_t window; /* 0: unbounded */
    hmap_t *by_id; /* id -> struct dist_node */
    struct dist_node *head, *tail;
    size_t n;
    double *sorted; /* [cap]; valid for the first n values when !stale */
    size_t cap;
    bool stale;                                            /* rebuild from the list */
    double adds[DIST_PENDING_MAX], dels[DIST_PENDING_MAX]; /* since the last sort */
    size_t nadds, ndels;
};

strength_dist_t *strength_dist_new(size_t window)
{
    strength_dist_t *d = calloc(1, sizeof *d);
    if (!d)
        return NULL;
    d->window = window;
    d->by_id = hmap_new();
    if (!d->by_id) {
        free(d);
        return NULL;
    }
    return d;
}

void strength_dist_destroy(strength_dist_t **pd)
{
    if (!pd || !*pd)
        return;
    strength_dist_t *d = *pd;
    struct dist_node *x = d->head;
    while (x) {
        struct dist_node *nx = x->next;
        free(x->id);
        free(x);
        x = nx;
    }
    hmap_destroy(&d->by_id);
    free(d->sorted);
    free(d);
    *pd = NULL;
}

size_t strength_dist_count(const strength_dist_t *d)
{
    return d ? d->n : 0;
}

static void unlink_node(strength_dist_t *d, struct dist_node *x)
{
    if (x->prev)
        x->prev->next = x->next;
    else
        d->head = x->next;
    if (x->next)
        x->next->prev = x->prev;
    else
        d->tail = x->prev;
    x->prev = x->next = NULL;
}

static void append_node(strength_dist_t *d, struct dist_node *x)
{
    x->prev = d->tail;
    x->next = NULL;
    if (d->tail)
        d->tail->next = x;
    else
        d->head = x;
    d->tail = x;
}

static void note(strength_dist_t *d, bool add, double v)
{
    if (d->stale)
        return;
    if (add && d->nadds < DIST_PENDING_MAX)
        d->adds[d->nadds++] = v;
    else if (!add && d->ndels < DIST_PENDING_MAX)
        d->dels[d->ndels++] = v;
    else
        d->stale = true;
}

int strength_dist_add(strength_dist_t *d, const char *id, double mu)
{
    if (!isfinite(mu))
        return ERR_INVAL;
    size_t idlen = strlen(id);
    struct dist_node *x = hmap_get(d->by_id, id, idlen);
    if (x) {
        note(d, false, x->mu);
        unlink_node(d, x);
    } else {
        x = calloc(1, sizeof *x);
        if (!x || !(x->id = strdup(id)) || hmap_put(d->by_id, id, idlen, x)) {
            if (x)
                free(x->id);
            free(x);
            return ERR_NOMEM;
        }
        d->n++;
    }
    x->mu = mu;
    /* the oldest leave while x, counted in n, is not in the list yet: it cannot be one of them */
    while (d->window && d->n > d->window && d->head) {
        struct dist_node *old = d->head; /* the head has no prev: unlinked by hand */
        d->head = old->next;
        if (d->head)
            d->head->prev = NULL;
        else
            d->tail = NULL;
        hmap_del(d->by_id, old->id, strlen(old->id));
        note(d, false, old->mu);
        free(old->id);
        free(old);
        d->n--;
    }
    append_node(d, x);
    note(d, true, mu);
    return ERR_OK;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The first index whose value is >= v in sorted[0..n). */
static size_t lower_bound(const double *s, size_t n, double v)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (s[mid] < v)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* Brings d->sorted up to date. false when out of memory. */
static bool dist_sort(strength_dist_t *d)
{
    /* applying the pending ones one by one, the array holds up to n + ndels values */
    size_t need = d->stale ? d->n : d->n + d->ndels;
    if (d->cap < need) {
        size_t nc = d->cap ? d->cap : 64;
        while (nc < need)
            nc *= 2;
        double *g = realloc(d->sorted, nc * sizeof *g);
        if (!g)
            return false;
        d->sorted = g;
        d->cap = nc;
    }
    if (d->stale) {
        size_t i = 0;
        for (struct dist_node *x = d->head; x; x = x->next)
            d->sorted[i++] = x->mu;
        qsort(d->sorted, d->n, sizeof *d->sorted, cmp_double);
    } else {
        /* adds first: a value removed since the last sort may have been added since, too */
        size_t m = d->n + d->ndels - d->nadds; /* values in the array now */
        for (size_t i = 0; i < d->nadds; i++) {
            size_t at = lower_bound(d->sorted, m, d->adds[i]);
            memmove(d->sorted + at + 1, d->sorted + at, (m - at) * sizeof *d->sorted);
            d->sorted[at] = d->adds[i];
            m++;
        }
        for (size_t i = 0; i < d->ndels; i++) {
            size_t at = lower_bound(d->sorted, m, d->dels[i]);
            memmove(d->sorted + at, d->sorted + at + 1, (m - at - 1) * sizeof *d->sorted);
            m--;
        }
    }
    d->stale = false;
    d->nadds = d->ndels = 0;
    return true;
}

bool strength_dist_quantile(const strength_dist_t *cd, double q, double *out)
{
    strength_dist_t *d = (strength_dist_t *)cd; /* the sorted cache is not the value */
    if (!d || d->n == 0)
        return false;
    if ((d->stale || d->nadds || d->ndels) && !dist_sort(d))
        return false;
    double k = ceil(q * (double)d->n - 1e-9) - 1;
    size_t i = k < 0 ? 0 : (size_t)k;
    if (i >= d->n)
        i = d->n - 1;
    *out = d->sorted[i];
    return true;
}

/* ---- the decision ------------------------------------------------------------------------- */

void strength_decide(const struct strength_rules *r, double mu, double sigma,
                     const strength_dist_t *dist, struct strength_decision *out)
{
    memset(out, 0, sizeof *out);
    out->action = OAIF__V1__STRENGTH_ACTION__STRENGTH_ACTION_KEEP;
    if (r->drop_below > 0 && fabs(mu) < r->drop_below) {
        out->action = OAIF__V1__STRENGTH_ACTION__STRENGTH_ACTION_DROP;
        snprintf(out->reason, sizeof out->reason, "|mu| %.4g < drop_below %.4g", fabs(mu),
                 r->drop_below);
        return;
    }
    if (r->drop_std_above > 0 && sigma > r->drop_std_above) {
        out->action = OAIF__V1__STRENGTH_ACTION__STRENGTH_ACTION_DROP;
        snprintf(out->reason, sizeof out->reason, "sigma %.4g > drop_std_above %.4g", sigma,
                 r->drop_std_above);
        return;
    }
    switch (r->policy) {
    case STRENGTH_POLICY_FLIP: {
        size_t n = strength_dist_count(dist);
        double qv = 0;
        if (r->flip_quantile > 0 && n >= (size_t)r->min_sample &&
            strength_dist_quantile(dist, r->flip_quantile, &qv)) {
            out->sample = n;
            out->threshold = qv;
            if (mu <= qv)
                out->action = OAIF__V1__STRENGTH_ACTION__STRENGTH_ACTION_FLIP;
            snprintf(out->reason, sizeof out->reason, "mu %.4g %s q%.2f %.4g of %zu", mu,
                     mu <= qv ? "<=" : ">", r->flip_quantile, qv, n);
        } else {
            if (mu < 0)
                out->action = OAIF__V1__STRENGTH_ACTION__STRENGTH_ACTION_FLIP;
            if (r->flip_quantile > 0)
                snprintf(out->reason, sizeof out->reason,
                         "mu %.4g %s 0 (%zu strengths, under min_sample %d)", mu,
                         mu < 0 ? "<" : ">=", n, r->min_sample);
            else
                snprintf(out->reason, sizeof out->reason, "mu %.4g %s 0", mu, mu < 0 ? "<" : ">=");
        }
        return;
    }
    case STRENGTH_POLICY_SMOOTH:
        if (mu < 0) {
            out->action = OAIF__V1__STRENGTH_ACTION__STRENGTH_ACTION_SMOOTH;
            out->smoothing = r->epsilon;
        }
        snprintf(out->reason, sizeof out->reason, "mu %.4g %s 0", mu, mu < 0 ? "<" : ">=");
        return;
    case STRENGTH_POLICY_MARGIN: {
        double c = r->margin_clip, m = mu > c ? c : mu < -c ? -c : mu;
        out->action = OAIF__V1__STRENGTH_ACTION__STRENGTH_ACTION_MARGIN;
        out->margin = r->margin_scale * m;
        snprintf(out->reason, sizeof out->reason, "margin %.4g x clip(mu %.4g, %.4g)",
                 r->margin_scale, mu, c);
        return;
    }
    case STRENGTH_POLICY_SOFT:
        out->action = OAIF__V1__STRENGTH_ACTION__STRENGTH_ACTION_SOFT;
        out->soft_target = 1.0 / (1.0 + exp(-mu / r->temperature));
        snprintf(out->reason, sizeof out->reason, "sigmoid(mu %.4g / T %.4g)", mu, r->temperature);
        return;
    default:
        snprintf(out->reason, sizeof out->reason, "policy keep");
        return;
    }
}

/* ---- requests ----------------------------------------------------------------------------- */

int strength_request_check(const Oaif__V1__EstimateRequest *req, char *why, size_t whylen)
{
    const Oaif__V1__Pair *p = req->pair;
    const Oaif__V1__Label *l = req->label;
#define BAD(...)                                                                                   \
    do {                                                                                           \
        snprintf(why, whylen, __VA_ARGS__);                                                        \
        return ERR_INVAL;                                                                          \
    } while (0)
    if (!p)
        BAD("pair: missing");
    size_t idlen = p->id ? strlen(p->id) : 0;
    if (idlen == 0 || idlen > ID_MAX)
        BAD("pair.id: must be 1 to %d bytes (got %zu)", ID_MAX, idlen);
    if (!p->prompt)
        BAD("pair.prompt: missing (pair %s)", p->id);
    if (p->n_responses != 2)
        BAD("pair.responses: %zu responses, a pair has 2 (pair %s)", p->n_responses, p->id);
    for (size_t i = 0; i < 2; i++)
        if (!p->responses[i] || !p->responses[i]->text)
            BAD("pair.responses[%zu].text: missing (pair %s)", i, p->id);
    if (!l)
        BAD("label: missing (pair %s)", p->id);
    if (l->pair_id && *l->pair_id && strcmp(l->pair_id, p->id) != 0)
        BAD("label.pair_id: '%s' is not the pair's id '%s'", l->pair_id, p->id);
    if (l->winner == OAIF__V1__WINNER__WINNER_TIE)
        BAD("label.winner: a tie has no chosen response (pair %s)", p->id);
    if (l->winner != OAIF__V1__WINNER__WINNER_FIRST && l->winner != OAIF__V1__WINNER__WINNER_SECOND)
        BAD("label.winner: %d is neither FIRST nor SECOND (pair %s)", (int)l->winner, p->id);
#undef BAD
    return ERR_OK;
}

void strength_score_id(const char *ensemble, const char *pair_id, const char *members, int ask,
                       char *out, size_t outlen)
{
    struct sha256 h;
    uint8_t dg[SHA256_DIGEST_LEN];
    char hex[SHA256_HEX_LEN + 1], n[16];
    sha256_init(&h);
    /* lengths first: no two different quadruples hash the same bytes */
    const char *parts[3] = {ensemble, pair_id, members};
    for (size_t i = 0; i < 3; i++) {
        char len[24];
        int k = snprintf(len, sizeof len, "%zu:", strlen(parts[i]));
        sha256_update(&h, len, (size_t)k);
        sha256_update(&h, parts[i], strlen(parts[i]));
    }
    int k = snprintf(n, sizeof n, "ask%d", ask);
    sha256_update(&h, n, (size_t)k);
    sha256_final(&h, dg);
    sha256_hex(dg, hex);
    snprintf(out, outlen, "strength-score-%s", hex);
}

bool strength_members_note(const char *ensemble, const Oaif__V1__Checkpoint *c, int64_t *versions,
                           size_t cap)
{
    if (!c || c->kind != OAIF__V1__CHECKPOINT_KIND__CHECKPOINT_KIND_REWARD || !c->ensemble ||
        strcmp(c->ensemble, ensemble) != 0 || c->member >= cap ||
        (int64_t)c->version <= versions[c->member])
        return false;
    versions[c->member] = c->version;
    return true;
}

void strength_members_key(const int64_t *versions, size_t cap, char *out, size_t outlen)
{
    if (outlen == 0)
        return;
    out[0] = '\0';
    size_t len = 0;
    for (size_t m = 0; m < cap; m++) {
        if (versions[m] < 0)
            continue;
        int w = snprintf(out + len, outlen - len, "%sm%zu@v%lld", len ? "," : "", m,
                         (long long)versions[m]);
        if (w < 0 || len + (size_t)w >= outlen) {
            out[len] = '\0'; /* a whole member or none */
            return;
        }
        len += (size_t)w;
    }
}

static int pack_record(Oaif__V1__Record *rec, Oaif__V1__RecordKind kind, const char *id,
                       const ProtobufCMessage *msg)
{
    size_t len = protobuf_c_message_get_packed_size(msg);
    uint8_t *buf = malloc(len ? len : 1);
    if (!buf)
        return ERR_NOMEM;
    protobuf_c_message_pack(msg, buf);
    oaif__v1__record__init(rec);
    rec->kind = kind;
    rec->id = (char *)id;
    rec->data.data = buf;
    rec->data.len = len;
    return ERR_OK;
}

int strength_estimate(const struct strength_estimator_config *cfg,
                      const Oaif__V1__EstimateRequest *req, const Oaif__V1__ScoreReply *scores,
                      const strength_dist_t *dist, struct strength_result **out, char *why,
                      size_t whylen)
{
    *out = NULL;
    const Oaif__V1__Pair *p = req->pair;
    size_t M = scores->n_members;
    if (M < (size_t)(cfg->min_members > 0 ? cfg->min_members : 1)) {
        snprintf(why, whylen, "score: %zu member%s answered, at least %d wanted (ensemble '%s')", M,
                 M == 1 ? "" : "s", cfg->min_members, cfg->ensemble);
        return ERR_AGAIN;
    }
    if (scores->n_scores != 2 * M) {
        snprintf(why, whylen, "score: %zu scores for %zu members and 2 texts", scores->n_scores, M);
        return ERR_AGAIN;
    }
    struct strength_result *r = calloc(1, sizeof *r);
    double *first = malloc(M * sizeof *first), *second = malloc(M * sizeof *second);
    int rc = r && first && second ? ERR_OK : ERR_NOMEM;
    if (rc) {
        snprintf(why, whylen, "out of memory");
        goto out;
    }
    for (size_t m = 0; m < M; m++) {
        first[m] = scores->scores[m * 2];
        second[m] = scores->scores[m * 2 + 1];
    }
    bool first_won = req->label->winner == OAIF__V1__WINNER__WINNER_FIRST;
    rc = first_won ? strength_stats(first, second, M, &r->mu, &r->sigma)
                   : strength_stats(second, first, M, &r->mu, &r->sigma);
    if (rc) {
        snprintf(why, whylen, "score: a member's reward of pair %s is not finite", p->id);
        rc = ERR_AGAIN;
        goto out;
    }
    r->n_members = M;
    strength_decide(&cfg->rules, r->mu, r->sigma, dist, &r->decision);

    Oaif__V1__Scores sc = OAIF__V1__SCORES__INIT;
    sc.id = p->id;
    sc.pair_id = p->id;
    sc.members = scores->members;
    sc.n_members = M;
    sc.first = first;
    sc.n_first = M;
    sc.second = second;
    sc.n_second = M;
    Oaif__V1__Strength st = OAIF__V1__STRENGTH__INIT;
    const struct strength_decision *d = &r->decision;
    st.id = p->id;
    st.pair_id = p->id;
    st.mean = r->mu;
    st.std = r->sigma;
    st.action = d->action;
    st.margin = d->margin;
    st.smoothing = d->smoothing;
    st.soft_target = d->soft_target;
    st.members = (uint32_t)M;
    st.ensemble = cfg->ensemble;
    st.run = p->run ? p->run : "";
    st.reason = (char *)d->reason;
    st.sample = d->sample;
    st.threshold = d->threshold;
    Oaif__V1__EstimateReply rep = OAIF__V1__ESTIMATE_REPLY__INIT;
    rep.strength = &st;
    rep.scores = &sc;
    r->packed_len = oaif__v1__estimate_reply__get_packed_size(&rep);
    r->packed = malloc(r->packed_len ? r->packed_len : 1);
    rc = r->packed ? ERR_OK : ERR_NOMEM;
    if (!rc) {
        oaif__v1__estimate_reply__pack(&rep, r->packed);
        rc = pack_record(&r->rec[0], OAIF__V1__RECORD_KIND__RECORD_KIND_SCORES, p->id, &sc.base);
    }
    if (!rc)
        rc = pack_record(&r->rec[1], OAIF__V1__RECORD_KIND__RECORD_KIND_STRENGTH, p->id, &st.base);
    if (rc) {
        snprintf(why, whylen, "out of memory");
        goto out;
    }
    r->records[0] = &r->rec[0];
    r->records[1] = &r->rec[1];
    r->n_records = 2;
out:
    free(first);
    free(second);
    if (rc)
        strength_result_free(&r);
    *out = r;
    return rc;
}

void strength_result_free(struct strength_result **pr)
{
    if (!pr || !*pr)
        return;
    struct strength_result *r = *pr;
    free(r->packed);
    for (size_t i = 0; i < 2; i++)
        free(r->rec[i].data.data);
    free(r);
    *pr = NULL;
}
