/* strength_estimator_service.h - the `estimate` service around strength_estimator.h: a worker of
 * the ledger (READY with the configured credit) that answers EstimateRequests with an
 * EstimateReply and commits the pair's Scores and Strength records (ids: the pair id) atomically
 * with the reply.
 *
 * One request:
 *  1. checked (strength_request_check); a bad one fails permanently, naming the field;
 *  2. the pair's two texts go to the `score` service through the ledger, as a client, under an id
 *     derived from the ensemble, the pair id, the newest member versions the ledger lists and the
 *     ask number (strength_score_id). A redelivered estimate, here or on another replica, asks
 *     the very same question, and the ledger answers it from its store: the members are not run
 *     again and the rewards are the ones the first attempt saw. A score request that fails (the
 *     ledger gave up on it) is asked again under the next ask number, up to score_asks times; a
 *     redelivery walks the same chain of stored answers. The ScoreRequest names no pair: the
 *     Scores record is ours to commit, with the Strength, in the estimate's one commit.
 *  3. mu, sigma and the action (strength_estimate) against the running distribution, then the
 *     reply with the two records.
 *
 * The running distribution of mu. The ledger's Strength records are the distribution: the service
 * reads the STRENGTH kind by its commit-order cursor (Scan after_seq), keeps the records naming
 * its ensemble in a strength_dist_t (the newest `window`, one per pair), and before each decision
 * reads what was committed since. Why this and not a sketch record of its own: a Strength record
 * is committed atomically with its estimate's reply, so the distribution can never count an
 * estimate that did not happen or miss one that did, whichever replica made it and whether or not
 * that replica then died; a separate sketch record would be a second write that a crash or two
 * replicas racing could leave out of step with the records (and the ledger has no compare-and-
 * swap). A restart rebuilds the same values by reading from seq 0, in pages (at most
 * DIST_PAGES_PER_TURN pages a loop turn, so heartbeats keep going); its own replies come back
 * through the same scan, so nothing is counted twice. Exact values cost 8 bytes and one small node
 * per pair of the window (10 000 by default); quantiles are exact. Requests whose policy uses a
 * quantile wait until the reading has caught up; the others do not.
 *
 * Failures: a score that cannot be had fails the estimate (permanently after score_asks asks: a
 * retry would walk the same stored failures); a reply of the wrong shape or too few members fails
 * it retryable; when a quantile rule needs the ledger's strengths and they cannot be read, the
 * request waits for a later read and is failed (retryable, with the reason) just before its
 * lease ends. An estimate whose
 * lease ends while it waits is forgotten (the ledger re-leases it; its score request stays
 * pending, so the next attempt finds the answer). A malformed request never stops the process.
 *
 * Not here: option parsing (strength_estimator_opts.h), signals, the metrics HTTP server. */
#ifndef STRENGTH_ESTIMATOR_SERVICE_H
#define STRENGTH_ESTIMATOR_SERVICE_H

#include <stdint.h>

#include "metrics.h"
#include "strength_estimator.h"

typedef struct strength_estimator_service strength_estimator_service_t;

struct strength_estimator_service_stats {
    uint64_t requests;     /* received */
    uint64_t replies;      /* answered ok */
    uint64_t failures;     /* failed results sent (bad requests included) */
    uint64_t bad_requests; /* failed permanently as malformed */
    uint64_t expired;      /* forgotten when their lease ended */
    uint64_t score_asks;   /* score requests submitted (a repeat of a pending one not counted) */
    uint64_t actions[7];   /* replies by Oaif__V1__StrengthAction */
    uint64_t strengths;    /* Strength records read from the ledger */
};

/* Creates the estimator from the configuration (cfg is borrowed: it must outlive the service),
 * connects to the ledger (worker, client, events; CURVE when bus.curve_secret_key is set, which
 * then needs bus.ledger_public_key) and says READY. zctx is borrowed. With metrics non-NULL
 * registers the service's series. On error writes the reason to why. ERR_OK, ERR_INVAL, ERR_IO,
 * ERR_NOMEM. */
int strength_estimator_service_new(strength_estimator_service_t **out,
                                   const struct strength_estimator_config *cfg, void *zctx,
                                   metrics_t *metrics, char *why, size_t whylen);

/* Disconnects (the ledger re-leases what we held). Sets *s to NULL; accepts NULL. */
void strength_estimator_service_destroy(strength_estimator_service_t **s);

/* One turn: waits up to timeout_ms for work, then does what is due. ERR_OK, ERR_INTR (a signal),
 * or a local fault (ERR_IO, ERR_NOMEM). */
int strength_estimator_service_poll(strength_estimator_service_t *s, int timeout_ms);

/* Copies the counters and the distribution's quantiles into the registered metrics. */
void strength_estimator_service_update_metrics(strength_estimator_service_t *s);

void strength_estimator_service_stats(const strength_estimator_service_t *s,
                                      struct strength_estimator_service_stats *out);

#endif /* STRENGTH_ESTIMATOR_SERVICE_H */
