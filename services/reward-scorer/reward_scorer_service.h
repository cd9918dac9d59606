/* reward_scorer_service.h - the `score` service around reward_scorer.h: a worker of the ledger
 * (READY with the configured credit) that answers ScoreRequests with a ScoreReply and, for a
 * request naming a pair (pair_id and two texts), attaches the pair's Scores record, committed
 * atomically with the reply.
 *
 * Three threads, as the sampler's:
 *  - the caller's (reward_scorer_service_poll): the worker socket and its heartbeats, the
 *    ledger's checkpoint events (SUB, topic "checkpoints"), the ledger's checkpoint records (a
 *    client), requests in and replies out. It never runs the engine, so heartbeats keep going
 *    while a request is scored or a member is read.
 *  - the engine thread: one request at a time, every member's forward.
 *  - the loader thread: on start, and on each checkpoint event or rescan that shows a member
 *    version newer than the one in memory (reward_scorer_plan), it reads that version (sha256
 *    verified) while requests keep running on the current ones; the new version answers the
 *    next request once it is in memory. A refused version is logged with the file and the reason
 *    and not tried again until its record changes; the old version keeps answering.
 * Until the ledger's checkpoints have been read once, and while a member with nothing in memory
 * is being loaded, requests wait; one that waits until its lease nearly ends fails (retryable)
 * with the reason. Otherwise a request the members cannot answer (none loaded, fewer than the M
 * expected) fails at once with the reason (retryable: another replica, or a later attempt, may
 * have them); a bad request fails permanently.
 *
 * Not here: option parsing (reward_scorer_opts.h), signals, the metrics HTTP server. */
#ifndef REWARD_SCORER_SERVICE_H
#define REWARD_SCORER_SERVICE_H

#include <stdint.h>

#include "metrics.h"
#include "reward_scorer.h"

typedef struct reward_scorer_service reward_scorer_service_t;

struct reward_scorer_service_stats {
    uint64_t requests;     /* received */
    uint64_t replies;      /* answered ok */
    uint64_t failures;     /* failed results sent (bad requests included) */
    uint64_t bad_requests; /* failed permanently */
    uint64_t texts, tokens, truncated;
    uint64_t records;              /* Scores records sent with replies */
    uint64_t loads, load_failures; /* member versions read */
};

/* Creates the scorer from the configuration (cfg is borrowed: it must outlive the service),
 * connects to the ledger (worker, client, events; CURVE when bus.curve_secret_key is set, which
 * then needs bus.ledger_public_key), starts the threads and says READY. zctx is borrowed. With
 * metrics non-NULL registers the service's series. On error writes the reason to why. ERR_OK,
 * ERR_INVAL, ERR_IO, ERR_NOMEM. */
int reward_scorer_service_new(reward_scorer_service_t **out, const struct reward_scorer_config *cfg,
                              void *zctx, metrics_t *metrics, char *why, size_t whylen);

/* Stops the threads (waits for a request being scored), disconnects (the ledger re-leases what
 * we held). Sets *s to NULL; accepts NULL. */
void reward_scorer_service_destroy(reward_scorer_service_t **s);

/* One turn: waits up to timeout_ms for work, then does what is due. ERR_OK, ERR_INTR (a
 * signal), or a local fault (ERR_IO, ERR_NOMEM). */
int reward_scorer_service_poll(reward_scorer_service_t *s, int timeout_ms);

/* Copies the counters into the registered metrics (call from the poll thread). */
void reward_scorer_service_update_metrics(reward_scorer_service_t *s);

void reward_scorer_service_stats(reward_scorer_service_t *s,
                                 struct reward_scorer_service_stats *out);

/* The scorer (borrowed until destroy). */
reward_scorer_t *reward_scorer_service_scorer(reward_scorer_service_t *s);

#endif /* REWARD_SCORER_SERVICE_H */
