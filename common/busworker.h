/* busworker.h - the worker side of the bus: a service's replica connects to the ledger's worker
 * ROUTER, says READY with its service name and credit (how many requests it takes at once),
 * receives leased requests, and answers each with a result or an error. Heartbeats both ways
 * every `heartbeat_ms`; when the ledger is silent for 3 intervals the worker reconnects with a
 * fresh socket and says READY again, so a restarted ledger gets its workers back by itself.
 * A worker keeps one routing id (random, per process) across reconnects, so results for requests
 * received before a reconnect are still delivered: the ledger takes a result only from the
 * worker holding the request's lease (or the one whose lease just ended), and with CURVE only
 * under the same key. Single-threaded: one thread owns it. */
#ifndef BUSWORKER_H
#define BUSWORKER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bus.h"

typedef struct bus_worker bus_worker_t;

struct bus_worker_opts {
    const char *endpoint;          /* the ledger's worker endpoint, e.g. tcp://127.0.0.1:5556 */
    const char *service;           /* "sample", "annotate", ... */
    unsigned credit;               /* requests at once (>= 1) */
    const char *name;              /* for logs and status; NULL: host:pid */
    int heartbeat_ms;              /* 0: 1000 */
    const struct bus_curve *curve; /* NULL or !on: plaintext */
    size_t max_msg;                /* 0: BUS_DEFAULT_MAX_MSG */
    const char *variant; /* what the answers depend on (a judge's identity), announced in Ready:
                          * the ledger refuses a worker whose service is served with another;
                          * NULL or "": none */
};

/* One leased request; owned by the caller after bus_worker_recv (bus_req_free). */
struct bus_req {
    char *id;
    char *service;
    uint8_t *payload;
    size_t len;
    unsigned attempt;     /* 1 on first delivery */
    uint64_t deadline_ms; /* the lease's end, ms since the epoch */
};

void bus_req_free(struct bus_req **r);

/* Connect and say READY. The struct `o` is copied. ERR_OK, ERR_INVAL, ERR_IO. */
int bus_worker_new(bus_worker_t **out, void *zctx, const struct bus_worker_opts *o);
/* Close the socket (the ledger re-queues what was leased to us once we stop heart-beating);
 * sets *w to NULL; accepts NULL. */
void bus_worker_destroy(bus_worker_t **w);

/* Wait up to `timeout_ms` (-1: forever) for the next request, keeping heartbeats and
 * reconnection going meanwhile. ERR_OK: *req is set. ERR_TIMEOUT: nothing came.
 * ERR_INTR: a signal. ERR_REMOTE: the ledger refused this worker's Ready (another variant on
 * its service, a bad name): bus_worker_refusal says why, and the worker should stop. Other
 * messages (heartbeats, disconnects) are handled inside. */
int bus_worker_recv(bus_worker_t *w, int timeout_ms, struct bus_req **req);

/* Answer request `id` with `payload` and records to commit atomically with the reply
 * (`records` may be NULL when n == 0; they are borrowed). ERR_OK, or ERR_AGAIN if the ledger
 * is unreachable right now (the ledger will re-lease the request; the result is dropped). */
int bus_worker_reply(bus_worker_t *w, const char *id, const void *payload, size_t len,
                     Oaif__V1__Record **records, size_t n);
/* Fail request `id` with a reason. `permanent`: retrying cannot help (a bad request). */
int bus_worker_fail(bus_worker_t *w, const char *id, const char *error, bool permanent);

/* For a caller with its own poll loop: the socket to poll for ZMQ_POLLIN, and tick(), which
 * sends heartbeats and reconnects when due (bus_worker_recv calls it itself). */
void *bus_worker_socket(bus_worker_t *w);
int bus_worker_tick(bus_worker_t *w);
/* Milliseconds until the next tick is due (for poll timeouts). */
int bus_worker_next_tick_ms(const bus_worker_t *w);
/* Why the ledger refused this worker ("" while it has not). */
const char *bus_worker_refusal(const bus_worker_t *w);
/* Reconnections so far (tests). */
unsigned bus_worker_reconnects(const bus_worker_t *w);

#endif /* BUSWORKER_H */
