/* annotator_try.h - one prompt and two responses through the judge the annotator-proxy's options
 * describe, directly (no ledger, except for the reward-model backend, which asks the score service
 * through it): the outcome with the probability from each order, their disagreement, the tokens,
 * the cost and the latency. What `oaif judge try` runs: how a user checks a new judge in one
 * command before running it.
 *
 * Not here: the command's arguments and output (services/oaif/cmd_judge.c, which loads
 * annotator_opts_spec, the service's own table, so that the judge tried is configured exactly as
 * the service would be), the options themselves (annotator_opts.h). */
#ifndef ANNOTATOR_TRY_H
#define ANNOTATOR_TRY_H

#include <stdbool.h>
#include <stddef.h>

#include "annotator.h"
#include "annotator_opts.h"

/* What annotator_try() got back. */
struct annotator_try_result {
    bool asked;                 /* the request was submitted to the judge */
    struct annotator_outcome o; /* when annotator_try returned ERR_OK; o.error and o.judge point
                                 * into the arrays below, o.pair_id is "" */
    char error[1024], judge[256];
};

/* Makes the judge `o` describes (annotator_opts_judge(); for the reward-model backend with a
 * client of the ledger at o->bus and a scorer), submits `req` and drives the judge until its
 * verdict. Returns ERR_OK with res->o the outcome, a failed judgement included (res->o.rc,
 * res->o.error). Otherwise no outcome came, and why says why: with res->asked false, the judge
 * could not be made from the options or refused the request (ERR_INVAL, ERR_IO for a template
 * file, ERR_NOMEM, or the bus's error for the reward-model backend's client); with res->asked
 * true, driving it failed (a local fault of annotator_poll or of the scorer).
 * curl_global_init() must have been called (by the program's main, before any thread). */
int annotator_try(const struct annotator_opts *o, const struct annotator_request *req,
                  struct annotator_try_result *res, char *why, size_t whylen);

#endif /* ANNOTATOR_TRY_H */
