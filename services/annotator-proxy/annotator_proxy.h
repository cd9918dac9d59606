/* annotator_proxy.h - the annotate service: a worker of the ledger that answers AnnotateRequests
 * with Labels by asking the configured judge.
 *
 * Each turn of the loop: drive the judge (its HTTP calls, and the ledger socket as an extra fd),
 * take every request the ledger leased to us, look their cache keys up in the ledger at once (one
 * Get of RECORD_KIND_CACHE), answer the hits from the stored Label (cached = true, no judge call),
 * and submit the misses to the judge. A finished judgement is replied with the AnnotateReply and
 * two records committed with it: the Label (kind LABEL, id = the request id) and the cache entry
 * (kind CACHE, id = the cache key, data = the packed Label). A failed judgement is a failed
 * result with the reason (permanent when no retry can help), never a label; a request that is
 * not an AnnotateRequest with a pair of two responses fails permanently.
 *
 * Not here: configuration parsing (annotator_opts.h), signals, the metrics HTTP server. */
#ifndef ANNOTATOR_PROXY_H
#define ANNOTATOR_PROXY_H

#include <stddef.h>
#include <stdint.h>

#include "annotator_opts.h"
#include "metrics.h"

typedef struct annotator_proxy annotator_proxy_t;

/* Counters of the service around the judge (the judge's own are annotator_totals()). */
struct annotator_proxy_stats {
    uint64_t requests;     /* leased requests received */
    uint64_t bad_requests; /* failed permanently before reaching the judge */
    uint64_t cache_hits, cache_misses;
    uint64_t replies;  /* labels sent */
    uint64_t failures; /* failed results sent */
};

/* Creates the judge from o, connects to the ledger as a worker of "annotate" (and as a client
 * when the cache or the reward-model backend needs one) and says READY. zctx is borrowed. With
 * metrics non-NULL, registers the service's series in it (see annotator_proxy_update_metrics).
 * On error writes the reason to why (never a secret). ERR_OK, ERR_INVAL, ERR_IO, ERR_NOMEM. */
int annotator_proxy_new(annotator_proxy_t **out, const struct annotator_opts *o, void *zctx,
                        metrics_t *metrics, char *why, size_t whylen);

/* Disconnects; judgements in flight are dropped (the ledger re-leases them). Sets *p to NULL;
 * accepts NULL. */
void annotator_proxy_destroy(annotator_proxy_t **p);

/* One turn: waits up to timeout_ms for work, then does what is due. Returns ERR_OK, ERR_INTR
 * (a signal), or a local fault (ERR_IO, ERR_NOMEM). */
int annotator_proxy_poll(annotator_proxy_t *p, int timeout_ms);

/* Copies the judge's totals and the service's counters into the registered metrics. Call from
 * the loop's thread (it reads the judge). */
void annotator_proxy_update_metrics(annotator_proxy_t *p);

/* The judge (borrowed until destroy). */
annotator_t *annotator_proxy_judge(annotator_proxy_t *p);

void annotator_proxy_stats(const annotator_proxy_t *p, struct annotator_proxy_stats *out);

#endif /* ANNOTATOR_PROXY_H */
