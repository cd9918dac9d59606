/* annotator_scorer.h - the reward-model judge's link to the `score` service: each judgement
 * becomes a ScoreRequest {prompt, texts = [first, second], pair_id} submitted through the ledger;
 * the ScoreReply's scores (members x texts) are averaged over the members and handed to
 * annotator_scored(), which turns r_first - r_second into a probability.
 *
 * Use annotator_scorer_score() as the annotator's score function (score_user = the scorer) and
 * call annotator_scorer_poll() from the loop that drives the annotator. A reply that says the
 * request failed, a malformed reply, or none within the timeout fails the judgement with the
 * reason. Single-threaded, like the bus client it borrows. */
#ifndef ANNOTATOR_SCORER_H
#define ANNOTATOR_SCORER_H

#include <stddef.h>
#include <stdint.h>

#include "annotator.h"
#include "busclient.h"

typedef struct annotator_scorer annotator_scorer_t;

/* A scorer submitting through `client` (borrowed; it must outlive the scorer), giving each score
 * request timeout_ms to be answered. ERR_OK or ERR_NOMEM. */
int annotator_scorer_new(annotator_scorer_t **out, bus_client_t *client, int64_t timeout_ms);

/* Frees; judgements still waiting get no answer (destroy their annotator first or after, as
 * annotator_destroy() drops them). Sets *s to NULL; accepts NULL. */
void annotator_scorer_destroy(annotator_scorer_t **s);

/* The annotator_score_fn: submits the score request for `ticket`. Returns ERR_OK, ERR_NOMEM, or
 * the bus client's error. */
int annotator_scorer_score(void *user, annotator_t *a, uint64_t ticket,
                           const struct annotator_request *req);

/* Delivers the replies that arrived (waiting up to timeout_ms for one when any is outstanding)
 * and fails the judgements past their timeout. Returns ERR_OK, or the bus client's ERR_INTR /
 * ERR_IO. */
int annotator_scorer_poll(annotator_scorer_t *s, int timeout_ms);

/* Score requests outstanding. */
size_t annotator_scorer_pending(const annotator_scorer_t *s);

/* Parses a ScoreReply for two texts into the mean reward of each over the members. ERR_PROTO
 * with the reason in why when the reply is not a ScoreReply or its shape is wrong. */
int annotator_scorer_parse(const uint8_t *data, size_t len, double *r_first, double *r_second,
                           char *why, size_t whylen);

#endif /* ANNOTATOR_SCORER_H */
