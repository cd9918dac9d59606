/* evaluator_service.h - the `evaluate` service around evaluator.h: a worker of the ledger that
 * answers EvaluateRequests with an EvaluateReply, and a listener of the ledger's checkpoint events
 * that evaluates every E-th published policy version by itself.
 *
 * One thread, no engine: everything it does is asking other services through the ledger, so the
 * poll thread submits, collects and heart-beats without waiting on anything but short record
 * queries. Versions are evaluated one at a time, oldest first: the version's answers and the
 * baseline's through `sample` (pinned), then one judgement per prompt through the evaluation
 * judge, then an EvalResult record ("eval-<run>-v<version>-<judge service>") put in the ledger.
 * Every request id is derived from what it asks (evaluator.h): a version whose EvalResult exists
 * is not evaluated again, and an evaluator killed half-way asks the same ids again and gets the
 * ledger's stored replies, so nothing is sampled or judged twice. The baseline's answers are
 * requested under ids that do not depend on the run or the version: drawn once per sampling
 * setting and checkpoint, then answered from the ledger.
 * A failed sample request fails the version's evaluation (logged, and the evaluate request that
 * asked for it fails with the reason); a failed judgement leaves its prompt out and is counted.
 *
 * Not here: option parsing (evaluator_opts.h), signals, the metrics HTTP server. */
#ifndef EVALUATOR_SERVICE_H
#define EVALUATOR_SERVICE_H

#include <stdint.h>

#include "evaluator.h"
#include "metrics.h"

typedef struct evaluator_service evaluator_service_t;

struct evaluator_service_stats {
    uint64_t evaluations;    /* EvalResults written */
    uint64_t skipped;        /* versions found evaluated already */
    uint64_t failed;         /* evaluations that failed */
    uint64_t requests;       /* evaluate requests received */
    uint64_t judgements;     /* judge replies (stored ones included) */
    uint64_t judge_failures; /* judgements that failed */
    int64_t last_version;    /* -1: none yet */
    double last_win_rate, last_lc_win_rate;
};

/* Connects to the ledger as the options say (worker of "evaluate", client, events), zctx and cfg
 * borrowed for the service's life. With metrics non-NULL registers its series. ERR_OK; ERR_INVAL,
 * ERR_IO, ERR_NOMEM with the reason in why. */
int evaluator_service_new(evaluator_service_t **out, const struct evaluator_config *cfg, void *zctx,
                          metrics_t *metrics, char *why, size_t whylen);

/* Disconnects (requests in flight stay in the ledger, answered for whoever asks the same ids
 * again). Sets *s to NULL; accepts NULL. */
void evaluator_service_destroy(evaluator_service_t **s);

/* One turn: waits up to timeout_ms for replies, requests or events, then does what is due.
 * ERR_OK, ERR_INTR (a signal), or a local fault (ERR_IO, ERR_NOMEM). */
int evaluator_service_poll(evaluator_service_t *s, int timeout_ms);

void evaluator_service_stats(const evaluator_service_t *s, struct evaluator_service_stats *out);

#endif /* EVALUATOR_SERVICE_H */
