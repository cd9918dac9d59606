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
#include "cfg.h"
#include "kv.h"

/* The ledger's configuration. The option table in ledger_opts.c fills it and holds every
 * default (`ledger --help`); the strings are malloc'd by it (ledger_opts_release frees them). */
struct ledger_config {
    char *db_path;          /* RocksDB directory */
    char *client_bind;      /* ROUTER for clients */
    char *worker_bind;      /* ROUTER for workers */
    char *events_bind;      /* PUB for events; NULL or "" = none */
    char *metrics_bind;     /* address of the HTTP server for /metrics and /healthz (main.c) */
    int metrics_port;       /* its port; 0 any free one, -1 no server (main.c) */
    int64_t lease_ms;       /* default lease of a request */
    int max_attempts;       /* default attempts before a request fails */
    int64_t lease_limit_ms; /* the longest lease a client may ask for (longer: this) */
    int max_attempts_limit; /* the most attempts a client may ask for (more: this) */
    size_t max_record;      /* bytes of one record (Put, Result); at most a quarter of max_msg */
    int64_t heartbeat_ms;   /* worker heartbeat interval */
    int liveness;           /* silent intervals before a worker is dead */
    size_t max_msg;         /* ZMQ_MAXMSGSIZE */
    size_t max_request;     /* largest payload accepted in a Submit (error reply above) */
    bool sync;              /* fsync each group commit (false only for benchmarks) */
    size_t min_free;        /* below this many free bytes on the store's disk, refuse writes */
    int batch_max;          /* most messages handled per loop turn */
    char *curve_secret_key; /* the ledger's key pair file: turns CURVE on (main.c loads it) */
    char *curve_allow;      /* allow-list file or directory of client public keys; NULL: none */
    struct cfg_strlist allowed_keys; /* more allowed public keys, Z85 (main.c) */
    char *endpoints_file;            /* main.c writes the bound endpoints there once listening */
    bool repair;                     /* main.c: repair the store (kv_repair) and exit */
    struct bus_curve curve;          /* not an option: on, every socket is a CURVE server */
};

/* The defaults alone (ledger_opts_defaults in ledger_opts.c, for tests and benchmarks), as the
 * `ledger` binary would have them with no run file, environment or flags. ERR_OK or ERR_NOMEM;
 * free with ledger_config_release. */
int ledger_config_defaults(struct ledger_config *cfg);

/* Frees the strings in *cfg; safe twice. */
void ledger_config_release(struct ledger_config *cfg);

/* Replaces string field *field (of a config from ledger_config_defaults) with a copy of value.
 * ERR_OK or ERR_NOMEM. */
int ledger_config_set(char **field, const char *value);

typedef struct ledger ledger_t;

/* Open the store, rebuild the queues from it, start the ZAP handler (CURVE), bind the sockets.
 * On success *out owns it all (ledger_destroy). The config is copied; its strings are borrowed
 * until ledger_destroy. ERR_INVAL for a config that is not whole (a non-positive heartbeat,
 * liveness under 2, batch_max under 1, no client or worker endpoint). */
int ledger_new(ledger_t **out, const struct ledger_config *cfg, void *zctx);
/* Close the sockets and the store; sets *l to NULL; accepts NULL. */
void ledger_destroy(ledger_t **l);

/* One loop turn: wait up to `timeout_ms` for messages, handle them, expire leases and dead
 * workers, lease queued requests, commit, then send what the commit made true.
 * Fails only on local faults: ERR_IO (the store failed: nothing unsynced was acknowledged;
 * the process should exit and be restarted), ERR_NOMEM. A bad message gets an Error reply. */
int ledger_poll(ledger_t *l, int timeout_ms);

/* NULL while the ledger takes writes; else why it refuses them (the disk is full: new Submits
 * and Puts get ERROR_CODE_UNAVAILABLE until space returns). For /healthz. */
const char *ledger_unavailable(const ledger_t *l);

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
