/* sampler_service.h - the `sample` service around sampler.h: a worker of the ledger (READY with
 * credit 1: the batching happens inside a request) that answers SampleRequests with a
 * SampleReply and attaches one Pair record per prompt (kind PAIR, id "<request id>/<index>"),
 * committed atomically with the reply.
 *
 * Three threads:
 *  - the caller's (sampler_service_poll): the worker socket and its heartbeats, the ledger's
 *    checkpoint events (SUB, topic "checkpoints"), the ledger's checkpoint records (a client),
 *    requests in and replies out. It never runs the engine, so heartbeats keep going while a
 *    request is generated or a checkpoint is read.
 *  - the engine thread: one request at a time (loading its pinned version first when that one is
 *    not in memory: the ledger's record gives the directory and the sha256).
 *  - the loader thread (built-in backend): on start, and on each checkpoint event or rescan that
 *    shows a policy newer than the newest loaded, it reads that version (sha256 verified) while
 *    requests keep running on the current one; the new version serves the next request once it
 *    is in memory. A version that failed to load is not retried until its record changes.
 * Until a first version is loaded, requests wait (the log says so once); one that waits until
 * its lease ends fails with "no policy version is loaded yet" so the ledger retries it.
 *
 * Failures are results with the reason: a bad request (a field out of range, an unknown or
 * missing version, a corrupt checkpoint) fails permanently; others (no version yet, the remote
 * server unreachable) let the ledger retry.
 *
 * Not here: option parsing (sampler_opts.h), signals, the metrics HTTP server. */
#ifndef SAMPLER_SERVICE_H
#define SAMPLER_SERVICE_H

#include <stdint.h>

#include "metrics.h"
#include "sampler.h"

typedef struct sampler_service sampler_service_t;

struct sampler_service_stats {
    uint64_t requests;     /* received */
    uint64_t replies;      /* answered ok */
    uint64_t failures;     /* failed results sent (bad requests included) */
    uint64_t bad_requests; /* failed permanently */
    uint64_t responses, tokens;
    uint64_t loads, load_failures; /* versions read (background and pinned) */
};

/* Creates the sampler from the configuration (cfg is borrowed: it must outlive the service),
 * connects to the ledger (worker, client, events; CURVE when bus.curve_secret_key is set, which
 * then needs bus.ledger_public_key), starts the threads and says READY. zctx is borrowed. With
 * metrics non-NULL registers the service's series. On error writes the reason to why. ERR_OK,
 * ERR_INVAL, ERR_IO, ERR_NOMEM. */
int sampler_service_new(sampler_service_t **out, const struct sampler_config *cfg, void *zctx,
                        metrics_t *metrics, char *why, size_t whylen);

/* Stops the threads (waits for a request being generated), disconnects (the ledger re-leases
 * what we held). Sets *s to NULL; accepts NULL. */
void sampler_service_destroy(sampler_service_t **s);

/* One turn: waits up to timeout_ms for work, then does what is due. ERR_OK, ERR_INTR (a
 * signal), or a local fault (ERR_IO, ERR_NOMEM). */
int sampler_service_poll(sampler_service_t *s, int timeout_ms);

/* Copies the counters into the registered metrics (call from the poll thread). */
void sampler_service_update_metrics(sampler_service_t *s);

void sampler_service_stats(sampler_service_t *s, struct sampler_service_stats *out);

/* The sampler (borrowed until destroy). */
sampler_t *sampler_service_sampler(sampler_service_t *s);

#endif /* SAMPLER_SERVICE_H */
