/* rm_data.c - see rm_data.h. */
#include "rm_data.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "hmap.h"
#include "log.h"
#include "rm.h"
#include "sha256.h"

bool trainer_rm_is_heldout(const char *id, double holdout)
{
    if (!(holdout > 0.0))
        return false;
    uint8_t d[SHA256_DIGEST_LEN];
    sha256(id, strlen(id), d);
    uint64_t x = 0;
    for (int i = 0; i < 8; i++)
        x = x << 8 | d[i];
    return (double)(x >> 11) * 0x1.0p-53 < holdout;
}

void trainer_rm_data_free(struct trainer_rm_data *d)
{
    if (!d)
        return;
    for (size_t i = 0; i < d->n; i++) {
        free(d->pairs[i].id);
        free(d->pairs[i].prompt);
        free(d->pairs[i].chosen);
        free(d->pairs[i].rejected);
    }
    free(d->pairs);
    memset(d, 0, sizeof *d);
}

static int pair_cmp(const void *a, const void *b)
{
    const struct trainer_rm_pair *x = a, *y = b;
    return strcmp(x->id, y->id);
}

static int str_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void digest_str(struct sha256 *s, const char *t)
{
    sha256_update(s, t, strlen(t) + 1); /* NUL-separated: no field runs into the next */
}

int trainer_rm_data_finish(struct trainer_rm_data *d, const struct trainer_rm_opts *o,
                           char *const *ids, size_t nids)
{
    /* flips: the sorted ids, searched per pair */
    char **sorted = NULL;
    if (nids) {
        sorted = malloc(nids * sizeof *sorted);
        if (!sorted)
            return ERR_NOMEM;
        memcpy(sorted, ids, nids * sizeof *sorted);
        qsort(sorted, nids, sizeof *sorted, str_cmp);
    }
    d->counts.flip_ids = nids;
    d->counts.flipped = d->counts.heldout = d->counts.strengths = 0;
    for (size_t i = 0; i < d->n; i++) {
        struct trainer_rm_pair *p = &d->pairs[i];
        const char *key = p->id;
        p->flipped = sorted && bsearch(&key, sorted, nids, sizeof *sorted, str_cmp);
        double lp = p->label_p;
        if (p->flipped) {
            char *t = p->chosen;
            p->chosen = p->rejected;
            p->rejected = t;
            p->strength = -p->strength;
            lp = 1.0 - lp;
            d->counts.flipped++;
        }
        d->counts.strengths += p->has_strength;
        double m = o->margin;
        if (o->margin_from_strength && p->has_strength) {
            double mu = p->strength, c = o->margin_clip;
            mu = mu > c ? c : mu < -c ? -c : mu;
            m += o->margin_scale * mu;
        }
        p->margin = (float)m;
        p->has_target = false;
        p->target = 0.0f;
        if (o->soft_target == TRAINER_RM_SOFT_LABEL) {
            p->has_target = true;
            p->target = (float)(lp < 0.0 ? 0.0 : lp > 1.0 ? 1.0 : lp);
        } else if (o->soft_target == TRAINER_RM_SOFT_STRENGTH && p->has_strength) {
            p->has_target = true;
            p->target = (float)(1.0 / (1.0 + exp(-p->strength)));
        }
        p->heldout = trainer_rm_is_heldout(p->id, o->holdout);
        d->counts.heldout += p->heldout;
    }
    free(sorted);
    if (d->n)
        qsort(d->pairs, d->n, sizeof *d->pairs, pair_cmp);
    struct sha256 s;
    sha256_init(&s);
    for (size_t i = 0; i < d->n; i++) {
        const struct trainer_rm_pair *p = &d->pairs[i];
        char num[96];
        digest_str(&s, p->id);
        digest_str(&s, p->prompt);
        digest_str(&s, p->chosen);
        digest_str(&s, p->rejected);
        snprintf(num, sizeof num, "%.9g %d %.9g %d", (double)p->margin, p->has_target,
                 (double)p->target, p->heldout);
        digest_str(&s, num);
    }
    uint8_t h[SHA256_DIGEST_LEN];
    sha256_final(&s, h);
    sha256_hex(h, d->digest);
    return ERR_OK;
}

/* ---- reading the ledger ------------------------------------------------------------------ */

struct verdict { /* a pair's latest label */
    int winner;  /* Oaif__V1__Winner */
    double prob_first;
};

struct reader {
    const char *name;
    hmap_t *verdicts;  /* pair id -> struct verdict */
    hmap_t *strengths; /* pair id -> double (mu) */
    hmap_t *index;     /* pair id -> its index in d->pairs plus one (a uintptr_t) */
    struct trainer_rm_data *d;
    size_t cap;
};

static int on_label(void *ctx, const Oaif__V1__Record *r)
{
    struct reader *rd = ctx;
    Oaif__V1__Label *l = oaif__v1__label__unpack(NULL, r->data.len, r->data.data);
    if (!l)
        return ERR_OK; /* not ours to judge: a record we cannot read names no pair */
    const char *pid = l->pair_id && *l->pair_id ? l->pair_id : r->id;
    struct verdict *v = hmap_get(rd->verdicts, pid, strlen(pid));
    int rc = ERR_OK;
    if (!v) {
        v = malloc(sizeof *v);
        if (!v || hmap_put(rd->verdicts, pid, strlen(pid), v)) {
            free(v);
            rc = ERR_NOMEM;
        }
    }
    if (!rc)
        *v = (struct verdict){.winner = (int)l->winner, .prob_first = l->prob_first};
    oaif__v1__label__free_unpacked(l, NULL);
    return rc;
}

static int on_strength(void *ctx, const Oaif__V1__Record *r)
{
    struct reader *rd = ctx;
    Oaif__V1__Strength *s = oaif__v1__strength__unpack(NULL, r->data.len, r->data.data);
    if (!s)
        return ERR_OK;
    const char *pid = s->pair_id && *s->pair_id ? s->pair_id : r->id;
    double *mu = hmap_get(rd->strengths, pid, strlen(pid));
    int rc = ERR_OK;
    if (!mu) {
        mu = malloc(sizeof *mu);
        if (!mu || hmap_put(rd->strengths, pid, strlen(pid), mu)) {
            free(mu);
            rc = ERR_NOMEM;
        }
    }
    if (!rc)
        *mu = s->mean;
    oaif__v1__strength__free_unpacked(s, NULL);
    return rc;
}

static int on_pair(void *ctx, const Oaif__V1__Record *r)
{
    struct reader *rd = ctx;
    Oaif__V1__Pair *p = oaif__v1__pair__unpack(NULL, r->data.len, r->data.data);
    if (!p)
        return ERR_OK;
    int rc = ERR_OK;
    if (!p->run || strcmp(p->run, rd->name) != 0 || !p->id || !*p->id)
        goto out;
    rd->d->counts.records++;
    if (p->n_responses != 2 || !p->prompt || !p->responses[0]->text || !p->responses[1]->text ||
        !*p->responses[0]->text || !*p->responses[1]->text ||
        !strcmp(p->responses[0]->text, p->responses[1]->text)) {
        rd->d->counts.malformed++;
        goto out;
    }
    const struct verdict *v = hmap_get(rd->verdicts, p->id, strlen(p->id));
    if (!v) {
        rd->d->counts.unlabeled++;
        goto out;
    }
    if (v->winner != OAIF__V1__WINNER__WINNER_FIRST &&
        v->winner != OAIF__V1__WINNER__WINNER_SECOND) {
        rd->d->counts.ties++;
        goto out;
    }
    /* a pair stored twice (a re-put) counts once: the later record wins */
    struct trainer_rm_data *d = rd->d;
    uintptr_t at = (uintptr_t)hmap_get(rd->index, p->id, strlen(p->id));
    if (at) {
        struct trainer_rm_pair *old = &d->pairs[at - 1];
        free(old->id);
        free(old->prompt);
        free(old->chosen);
        free(old->rejected);
        memset(old, 0, sizeof *old);
    } else if (d->n == rd->cap) {
        size_t nc = rd->cap ? rd->cap * 2 : 1024;
        void *np = realloc(d->pairs, nc * sizeof *d->pairs);
        if (!np) {
            rc = ERR_NOMEM;
            goto out;
        }
        d->pairs = np;
        rd->cap = nc;
    }
    int c = v->winner == OAIF__V1__WINNER__WINNER_FIRST ? 0 : 1;
    struct trainer_rm_pair *q = at ? &d->pairs[at - 1] : &d->pairs[d->n];
    memset(q, 0, sizeof *q);
    q->id = strdup(p->id);
    q->prompt = strdup(p->prompt);
    q->chosen = strdup(p->responses[c]->text);
    q->rejected = strdup(p->responses[1 - c]->text);
    q->label_p = c == 0 ? v->prob_first : 1.0 - v->prob_first;
    const double *mu = rd->strengths ? hmap_get(rd->strengths, p->id, strlen(p->id)) : NULL;
    q->has_strength = mu != NULL;
    q->strength = mu ? *mu : 0.0;
    if (!at) {
        d->n++;
        if (hmap_put(rd->index, p->id, strlen(p->id), (void *)(uintptr_t)d->n))
            rc = ERR_NOMEM;
    }
    if (!q->id || !q->prompt || !q->chosen || !q->rejected)
        rc = ERR_NOMEM;
out:
    oaif__v1__pair__free_unpacked(p, NULL);
    return rc;
}

static void free_values(hmap_t **m)
{
    if (!*m)
        return;
    size_t pos = 0;
    void *v;
    while (hmap_next(*m, &pos, NULL, NULL, &v))
        free(v);
    hmap_destroy(m);
}

/* The ids of the flip file, one a line (blank lines and lines starting with '#' skipped,
 * surrounding whitespace trimmed). */
static int read_flip_file(const char *path, char ***ids, size_t *n, char *err, size_t errlen)
{
    *ids = NULL;
    *n = 0;
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, errlen, "--flip-file %s: %s", path, strerror(errno));
        return errno == ENOENT ? ERR_NOTFOUND : ERR_IO;
    }
    char *line = NULL;
    size_t cap = 0, acap = 0;
    ssize_t len;
    int rc = ERR_OK;
    while (!rc && (len = getline(&line, &cap, f)) >= 0) {
        char *s = line, *e = line + len;
        while (s < e && isspace((unsigned char)*s))
            s++;
        while (e > s && isspace((unsigned char)e[-1]))
            e--;
        if (s == e || *s == '#')
            continue;
        if (*n == acap) {
            size_t nc = acap ? acap * 2 : 64;
            char **np = realloc(*ids, nc * sizeof *np);
            if (!np) {
                rc = ERR_NOMEM;
                break;
            }
            *ids = np;
            acap = nc;
        }
        (*ids)[*n] = strndup(s, (size_t)(e - s));
        if (!(*ids)[*n])
            rc = ERR_NOMEM;
        else
            (*n)++;
    }
    if (!rc && ferror(f)) {
        snprintf(err, errlen, "--flip-file %s: read error", path);
        rc = ERR_IO;
    }
    if (rc == ERR_NOMEM)
        snprintf(err, errlen, "--flip-file %s: out of memory", path);
    free(line);
    fclose(f);
    if (rc) {
        for (size_t i = 0; i < *n; i++)
            free((*ids)[i]);
        free(*ids);
        *ids = NULL;
        *n = 0;
    }
    return rc;
}

static const char *kind_name(Oaif__V1__RecordKind k)
{
    switch (k) {
    case OAIF__V1__RECORD_KIND__RECORD_KIND_PAIR:
        return "pairs";
    case OAIF__V1__RECORD_KIND__RECORD_KIND_LABEL:
        return "labels";
    default:
        return "strengths";
    }
}

int trainer_rm_data_load(bus_client_t *cl, const struct trainer_rm_opts *o, int timeout_ms,
                         struct trainer_rm_data *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    const char *name = o->dataset ? o->dataset : o->run;
    char **ids = NULL;
    size_t nids = 0;
    int rc = ERR_OK;
    if (o->flip_file && (rc = read_flip_file(o->flip_file, &ids, &nids, err, errlen)))
        return rc;
    struct reader rd = {.name = name, .d = out, .verdicts = hmap_new(), .index = hmap_new()};
    bool want_strength = o->margin_from_strength || o->soft_target == TRAINER_RM_SOFT_STRENGTH;
    if (want_strength)
        rd.strengths = hmap_new();
    rc = rd.verdicts && rd.index && (!want_strength || rd.strengths) ? ERR_OK : ERR_NOMEM;
    Oaif__V1__RecordKind kind = OAIF__V1__RECORD_KIND__RECORD_KIND_LABEL;
    if (!rc)
        rc = bus_client_scan_each(cl, kind, timeout_ms, on_label, &rd);
    if (!rc && want_strength) {
        kind = OAIF__V1__RECORD_KIND__RECORD_KIND_STRENGTH;
        rc = bus_client_scan_each(cl, kind, timeout_ms, on_strength, &rd);
    }
    if (!rc) {
        kind = OAIF__V1__RECORD_KIND__RECORD_KIND_PAIR;
        rc = bus_client_scan_each(cl, kind, timeout_ms, on_pair, &rd);
    }
    if (rc) {
        snprintf(err, errlen, "reading %s from the ledger: %s%s%s", kind_name(kind), err_str(rc),
                 rc == ERR_REMOTE ? ": " : "", rc == ERR_REMOTE ? bus_client_last_error(cl) : "");
    }
    if (!rc && (rc = trainer_rm_data_finish(out, o, ids, nids)))
        snprintf(err, errlen, "out of memory");
    if (!rc && out->n == 0) {
        snprintf(err, errlen,
                 "no labeled pair of %s '%s' in the ledger (%zu pair records of that name: %zu "
                 "ties, %zu unlabeled, %zu malformed)%s",
                 o->dataset ? "dataset" : "run", name, out->counts.records, out->counts.ties,
                 out->counts.unlabeled, out->counts.malformed,
                 out->counts.records ? ""
                 : o->dataset        ? "; import it with oaif import pairs"
                                     : "");
        rc = ERR_NOTFOUND;
    }
    if (!rc && nids && out->counts.flipped < nids)
        log_warn("rm: %zu of the %zu ids in %s name no pair of the set", nids - out->counts.flipped,
                 nids, o->flip_file);
    if (!rc && o->margin_from_strength && out->counts.strengths < out->n)
        log_warn("rm: %zu of %zu pairs have no Strength record: they get the fixed margin alone",
                 out->n - out->counts.strengths, out->n);
    free_values(&rd.verdicts);
    free_values(&rd.strengths);
    hmap_destroy(&rd.index);
    for (size_t i = 0; i < nids; i++)
        free(ids[i]);
    free(ids);
    if (rc)
        trainer_rm_data_free(out);
    return rc;
}
