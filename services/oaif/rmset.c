/* rmset.c - a preference set with its labels and an ensemble to score it (rmset.h). */
#include "rmset.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "rm.h"
#include "trainer_opts.h"

int rmset_find(const struct rmset *s, const char *id)
{
    size_t lo = 0, hi = s->data.n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(s->data.pairs[mid].id, id);
        if (!c)
            return (int)mid;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return -1;
}

static int on_label(void *ctx, const Oaif__V1__Record *r)
{
    struct rmset *s = ctx;
    Oaif__V1__Label *l = oaif__v1__label__unpack(NULL, r->data.len, r->data.data);
    if (!l)
        return ERR_OK;
    const char *pid = l->pair_id && *l->pair_id ? l->pair_id : r->id;
    int i = rmset_find(s, pid);
    int rc = ERR_OK;
    if (i >= 0) {
        struct rmset_pair *p = &s->p[i];
        const char *j = l->judge ? l->judge : "";
        p->noise_flipped = l->noise_flipped;
        if (l->noise_flipped || !strncmp(j, "rules", 5))
            s->noise_known = true;
        int k = 0;
        while (k < p->nj && strcmp(p->judge[k], j) != 0)
            k++;
        if (k == p->nj && k < RMSET_MAX_JUDGES) {
            p->judge[k] = strdup(j);
            if (!p->judge[k])
                rc = ERR_NOMEM;
            else
                p->nj++;
        }
        if (!rc && k < p->nj)
            p->winner[k] = (int)l->winner;
    }
    oaif__v1__label__free_unpacked(l, NULL);
    return rc;
}

struct ckpts {
    Oaif__V1__Checkpoint **c;
    size_t n, cap;
    int member;
};

static int on_checkpoint(void *ctx, const Oaif__V1__Record *r)
{
    struct ckpts *e = ctx;
    Oaif__V1__Checkpoint *c = oaif__v1__checkpoint__unpack(NULL, r->data.len, r->data.data);
    if (!c)
        return ERR_OK;
    if (e->member >= 0 && c->member != (uint32_t)e->member) {
        oaif__v1__checkpoint__free_unpacked(c, NULL);
        return ERR_OK;
    }
    if (e->n == e->cap) {
        size_t cap = e->cap ? 2 * e->cap : 16;
        Oaif__V1__Checkpoint **nc = realloc(e->c, cap * sizeof *nc);
        if (!nc) {
            oaif__v1__checkpoint__free_unpacked(c, NULL);
            return ERR_NOMEM;
        }
        e->c = nc;
        e->cap = cap;
    }
    e->c[e->n++] = c;
    return ERR_OK;
}

/* Loads the newest version of each member among the records into s; ERR_NOTFOUND when none. */
static int load_members(reward_scorer_t *s, struct ckpts *ck, char *err, size_t errlen)
{
    struct reward_member_ref *refs = calloc(REWARD_SCORER_MEMBERS_MAX, sizeof *refs);
    if (!refs)
        return ERR_NOMEM;
    size_t n = reward_scorer_plan(s, ck->c, ck->n, refs, REWARD_SCORER_MEMBERS_MAX);
    int rc = n ? ERR_OK : ERR_NOTFOUND;
    if (!n)
        snprintf(err, errlen, "no reward checkpoint of that ensemble (and member) in the ledger");
    for (size_t i = 0; !rc && i < n; i++)
        rc = reward_scorer_load(s, &refs[i], err, errlen);
    free(refs);
    return rc;
}

int rmset_open(struct rmset *s, bus_client_t *cl, int timeout_ms, const struct rmset_spec *spec,
               char *err, size_t errlen)
{
    memset(s, 0, sizeof *s);
    *err = '\0';
    struct trainer_rm_opts ro;
    struct ckpts ck = {.member = spec->member};
    int rc = trainer_rm_defaults(&ro);
    if (!rc) {
        ro.dataset = (char *)spec->dataset; /* borrowed: cleared before the release */
        ro.run = (char *)spec->run;
        ro.holdout = spec->holdout;
        rc = trainer_rm_data_load(cl, &ro, timeout_ms, &s->data, err, errlen);
        ro.dataset = ro.run = NULL;
        trainer_rm_release(&ro);
    }
    if (!rc) {
        s->p = calloc(s->data.n ? s->data.n : 1, sizeof *s->p);
        rc = s->p ? bus_client_scan_each(cl, OAIF__V1__RECORD_KIND__RECORD_KIND_LABEL, timeout_ms,
                                         on_label, s)
                  : ERR_NOMEM;
        if (rc && !*err)
            snprintf(err, errlen, "reading the labels: %s", err_str(rc));
    }
    if (!rc) {
        rc = bus_client_scan_each(cl, OAIF__V1__RECORD_KIND__RECORD_KIND_CHECKPOINT, timeout_ms,
                                  on_checkpoint, &ck);
        if (rc)
            snprintf(err, errlen, "reading the checkpoints: %s", err_str(rc));
    }
    if (!rc) {
        struct reward_scorer_config sc = {
            .ensemble = (char *)spec->ensemble, /* copied by reward_scorer_new */
            .checkpoint_dir = (char *)spec->checkpoint_dir,
            .max_texts = 2,
            .max_tokens = spec->max_len,
        };
        rc = reward_scorer_new(&s->scorer, &sc, err, errlen);
    }
    if (!rc)
        rc = load_members(s->scorer, &ck, err, errlen);
    for (size_t i = 0; i < ck.n; i++)
        oaif__v1__checkpoint__free_unpacked(ck.c[i], NULL);
    free(ck.c);
    if (rc && !*err)
        snprintf(err, errlen, "%s", err_str(rc));
    return rc;
}

int rmset_score(struct rmset *s, size_t i, struct reward_scorer_result **res, char *err,
                size_t errlen)
{
    const struct trainer_rm_pair *p = &s->data.pairs[i];
    char *texts[2] = {p->chosen, p->rejected};
    Oaif__V1__ScoreRequest req = OAIF__V1__SCORE_REQUEST__INIT;
    req.prompt = p->prompt;
    req.n_texts = 2;
    req.texts = texts;
    return reward_scorer_run(s->scorer, &req, res, err, errlen);
}

void rmset_close(struct rmset *s)
{
    reward_scorer_destroy(&s->scorer);
    for (size_t i = 0; s->p && i < s->data.n; i++)
        for (int k = 0; k < s->p[i].nj; k++)
            free(s->p[i].judge[k]);
    free(s->p);
    s->p = NULL;
    trainer_rm_data_free(&s->data);
}
