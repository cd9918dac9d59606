/* ledger.h - the durable broker and record store (see README "Topology and guarantees").
 *
 * One ledger per run owns the RocksDB store. Clients (trainer, evaluator, CLI) submit requests
 * for a service and read/write records; workers (sampler, annotator-proxy, ...) announce a
 * service with credit and receive leased requests. Every request is made durable before it is
 * acknowledged or leased, every reply before it is returned: each loop turn collects all work
 * into one synced WriteBatch (group commit) and only then sends the acks, leases, replies and
 * events that depend on it. Request ids are the clients': a repeated id is answered from the
 * store. An expired lease or a dead worker re-queues the request; after max_attempts it fails
 * with its last error (a dead letter). On start the ledger rebuilds its queues from the store.
 *
 * ledger_poll runs one loop turn; main.c owns the process (signals, config, teardown). */
#ifndef LEDGER_H
#define LEDGER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bus.h"
#include "kv.h"

struct ledger_config {
    char db_path[1024];     /* RocksDB directory */
    char client_bind[256];  /* ROUTER for clients */
    char worker_bind[256];  /* ROUTER for workers */
    char events_bind[256];  /* PUB for events; "" = none */
    char metrics_bind[256]; /* HTTP host:port for /metrics and /healthz; "" = none */
    unsigned lease_ms;      /* default lease of a request */
    unsigned max_attempts;  /* default attempts before a request fails */
    int heartbeat_ms;       /* worker heartbeat interval */
    int liveness;           /* silent intervals before a worker is dead (3) */
    size_t max_msg;         /* ZMQ_MAXMSGSIZE */
    size_t max_request;     /* largest payload accepted in a Submit (error reply above) */
    bool sync;              /* fsync each group commit (false only for benchmarks) */
    int batch_max;          /* most messages handled per loop turn */
    struct bus_curve curve; /* on: every socket is a CURVE server */
    char curve_allow[1024]; /* allow-list file or directory of client public keys */
};

/* Defaults: binds on 127.0.0.1:5555/5556/5557, ./data/ledger, lease 30 s, 3 attempts,
 * heartbeat 1 s, max message 64 MiB, max request 16 MiB, sync on. */
void ledger_config_defaults(struct ledger_config *cfg);

typedef struct ledger ledger_t;

/* Open the store, rebuild the queues from it, start the ZAP handler (CURVE), bind the sockets.
 * On success *out owns it all (ledger_destroy). The config is copied. */
int ledger_new(ledger_t **out, const struct ledger_config *cfg, void *zctx);
/* Close the sockets and the store; sets *l to NULL; accepts NULL. */
void ledger_destroy(ledger_t **l);

/* One loop turn: wait up to `timeout_ms` for messages, handle them, expire leases and dead
 * workers, lease queued requests, commit, then send what the commit made true.
 * Fails only on local faults: ERR_IO (the store failed: nothing unsynced was acknowledged;
 * the process should exit and be restarted), ERR_NOMEM. A bad message gets an Error reply. */
int ledger_poll(ledger_t *l, int timeout_ms);

/* The endpoints actually bound (after "tcp://127.0.0.1:0" they name the chosen port). */
const char *ledger_client_endpoint(const ledger_t *l);
const char *ledger_worker_endpoint(const ledger_t *l);
const char *ledger_events_endpoint(const ledger_t *l);

/* The status as the CLI sees it; the caller frees with ledger_status_free. */
Oaif__V1__Status *ledger_status(ledger_t *l);
void ledger_status_free(Oaif__V1__Status *s);

/* Let a CURVE public key (Z85) in, besides the allow-list path. ERR_INVAL if not a key or
 * CURVE is off. */
int ledger_allow_key(ledger_t *l, const char *z85);

/* Copy the status into Prometheus series of `m` (oaif_ledger_*): call it from the loop's
 * thread; the metrics server's thread only renders. */
struct metrics;
void ledger_update_metrics(ledger_t *l, struct metrics *m);

#endif /* LEDGER_H */
