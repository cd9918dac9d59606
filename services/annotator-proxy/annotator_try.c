/* annotator_try.c - see annotator_try.h. */
#include "annotator_try.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <zmq.h>

#include "annotator_scorer.h"
#include "busclient.h"
#include "err.h"

/* What on_done fills: the caller's result, and whether the outcome came. */
struct wait {
    struct annotator_try_result *res;
    bool done;
};

static void on_done(void *user, const struct annotator_outcome *o)
{
    struct wait *w = user;
    struct annotator_try_result *r = w->res;
    w->done = true;
    r->o = *o;
    snprintf(r->error, sizeof r->error, "%s", o->error ? o->error : "");
    snprintf(r->judge, sizeof r->judge, "%s", o->judge ? o->judge : "");
    r->o.error = r->error;
    r->o.judge = r->judge;
    r->o.pair_id = "";
}

int annotator_try(const struct annotator_opts *o, const struct annotator_request *req,
                  struct annotator_try_result *res, char *why, size_t whylen)
{
    memset(res, 0, sizeof *res);
    why[0] = '\0';
    void *zctx = NULL;
    bus_client_t *client = NULL;
    annotator_scorer_t *scorer = NULL;
    annotator_t *judge = NULL;
    struct annotator_judge_ctx ctx;
    int rc = ERR_OK;
    bool rm = o->judge.backend == ANNOTATOR_BACKEND_REWARD_MODEL;
    struct bus_curve curve;
    if (rm) { /* the reward-model judge asks the score service, through the ledger */
        rc = annotator_opts_curve(o, &curve, why, whylen);
        zctx = rc ? NULL : zmq_ctx_new();
        struct bus_client_opts co = {
            .endpoint = o->bus.clients_endpoint, .curve = &curve, .max_msg = o->bus.max_message};
        if (!rc)
            rc = zctx ? bus_client_new(&client, zctx, &co) : ERR_NOMEM;
        if (!rc)
            rc = annotator_scorer_new(&scorer, client, o->score_timeout_ms);
        if (rc && !why[0])
            snprintf(why, whylen, "bus.clients_endpoint %s: %s", o->bus.clients_endpoint,
                     err_str(rc));
    }
    if (!rc)
        rc = annotator_opts_judge(o, &ctx, rm ? annotator_scorer_score : NULL, scorer, &judge, why,
                                  whylen);
    if (rc) {
        if (!why[0])
            snprintf(why, whylen, "%s", err_str(rc));
        goto out;
    }
    struct wait w = {.res = res};
    rc = annotator_submit(judge, req, on_done, &w);
    if (rc) {
        snprintf(why, whylen, "the judge refused the request: %s", err_str(rc));
        goto out;
    }
    res->asked = true;
    while (!w.done) {
        rc = annotator_poll(judge, scorer && annotator_scorer_pending(scorer) ? 5 : 100, NULL, 0);
        if (!rc && scorer)
            rc = annotator_scorer_poll(scorer, 0);
        if (rc) {
            snprintf(why, whylen, "%s", err_str(rc));
            goto out;
        }
    }
out:
    annotator_destroy(&judge);
    annotator_scorer_destroy(&scorer);
    bus_client_destroy(&client);
    if (zctx)
        zmq_ctx_term(zctx);
    return rc;
}
