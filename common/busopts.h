/* busopts.h - the bus options every service shares, written once: where the ledger is, the
 * CURVE keys, the heartbeat interval and the largest message. A service's option table lists
 * the ones it uses; each gives the same run-file key, environment variable and flag in every
 * service and in the CLI, with its default from bus.h:
 *
 *   static const struct cfg_option options[] = {
 *       ...
 *       BUS_OPT_CLIENTS(struct sampler_config, bus.clients_endpoint),
 *       BUS_OPT_CURVE_SECRET(struct sampler_config, bus.curve_secret_key, "sampler", "SAMPLER"),
 *   };
 *
 * Old names (trainer and CLI: --ledger and $OAIF_LEDGER; the CLI's --server-key; the ledger's
 * and workers' ledger.heartbeat_interval) keep working for one release, with a warning. */
#ifndef BUSOPTS_H
#define BUSOPTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bus.h"
#include "busclient.h"
#include "busworker.h"
#include "cfg.h"

/* The fields the macros fill; a service embeds this (or names its own fields of these types). */
struct bus_opts {
    char *clients_endpoint;  /* the ledger's ROUTER for callers */
    char *workers_endpoint;  /* the ledger's ROUTER for workers */
    char *events_endpoint;   /* the ledger's PUB ("" or NULL: none) */
    char *ledger_public_key; /* Z85 text or a key file; NULL: no CURVE */
    char *curve_secret_key;  /* this process's key pair file; NULL: no CURVE */
    int64_t heartbeat_ms;
    size_t max_message;
};

/* clang-format off */
#define BUS_OPT_CLIENTS(T, m)                                                                     \
    CFG_STRING_OPT(T, m, .key = "bus.clients_endpoint", .flags = CFG_ENDPOINT, .def = BUS_DEFAULT_CLIENTS,               \
                   .env = "BUS_CLIENTS_ENDPOINT", .flag = "--clients",                            \
                   .old_env = "OAIF_LEDGER", .old_flag = "--ledger",                              \
                   .help = "The ledger's endpoint for callers.")
#define BUS_OPT_WORKERS(T, m)                                                                     \
    CFG_STRING_OPT(T, m, .key = "bus.workers_endpoint", .flags = CFG_ENDPOINT, .def = BUS_DEFAULT_WORKERS,               \
                   .env = "BUS_WORKERS_ENDPOINT", .flag = "--workers",                            \
                   .help = "The ledger's endpoint for workers.")
#define BUS_OPT_EVENTS(T, m)                                                                      \
    CFG_STRING_OPT(T, m, .key = "bus.events_endpoint", .flags = CFG_ENDPOINT, .def = BUS_DEFAULT_EVENTS,                 \
                   .env = "BUS_EVENTS_ENDPOINT", .flag = "--events",                              \
                   .help = "The ledger's event publisher (empty: none; records are rescanned).")
#define BUS_OPT_LEDGER_KEY(T, m)                                                                  \
    CFG_STRING_OPT(T, m, .key = "bus.ledger_public_key", .env = "BUS_LEDGER_PUBLIC_KEY",          \
                   .flag = "--ledger-key", .old_flag = "--server-key",                            \
                   .help = "The ledger's CURVE public key: Z85 text or a file (ledger.key.pub).")
/* svc: the service's section ("sampler"); SVC: its variable prefix ("SAMPLER"). Per service,
 * because each process has a key pair of its own. */
#define BUS_OPT_CURVE_SECRET(T, m, svc, SVC)                                                      \
    CFG_STRING_OPT(T, m, .key = svc ".curve_secret_key", .env = SVC "_CURVE_SECRET_KEY",          \
                   .flag = "--curve-secret",                                                      \
                   .help = "This process's CURVE key pair file (oaif keys); turns CURVE on.")
#define BUS_OPT_HEARTBEAT(T, m)                                                                   \
    CFG_DURATION_OPT(T, m, .key = "bus.heartbeat_interval", .def = BUS_DEFAULT_HEARTBEAT,         \
                     .min = 10, .max = 600000, .env = "BUS_HEARTBEAT_INTERVAL",                   \
                     .flag = "--heartbeat", .old_key = "ledger.heartbeat_interval",               \
                     .old_env = "LEDGER_HEARTBEAT_INTERVAL",                                      \
                     .help = "Heartbeat interval between the ledger and its workers.")
#define BUS_OPT_MAX_MESSAGE(T, m)                                                                 \
    CFG_SIZE_OPT(T, m, .key = "bus.max_message_size", .def = BUS_DEFAULT_MAX_MESSAGE,             \
                 .min = 65536, .max = 1LL << 40, .env = "BUS_MAX_MESSAGE_SIZE",                   \
                 .flag = "--max-message-size",                                                    \
                 .help = "ZMQ_MAXMSGSIZE: a larger frame drops its connection.")
/* clang-format on */

/* Every bus option above in one table (over struct bus_opts): the keys the shared `bus` section of
 * a run file may hold, whichever service reads it (cfg.c refuses any other). */
extern const struct cfg_spec bus_opts_spec;

/* Connecting from the options, the same way in every worker service. Each returns ERR_OK with
 * *out owned by the caller, or an error with `why` naming the option and the endpoint
 * ("bus.clients_endpoint tcp://...: cannot connect (...)"). `curve` is the process's CURVE
 * material (bus_curve_client; off: plaintext). */

/* A client of the ledger's clients endpoint (free with bus_client_destroy). */
int bus_opts_client(const struct bus_opts *b, const struct bus_curve *curve, void *zctx,
                    bus_client_t **out, char *why, size_t whylen);

/* A SUB socket on the events endpoint subscribed to `topic` (zmq_close it); *out is NULL, with
 * ERR_OK, when the options name no events endpoint. */
int bus_opts_events(const struct bus_opts *b, const struct bus_curve *curve, void *zctx,
                    const char *topic, void **out, char *why, size_t whylen);

/* When a service reads the ledger's records again: at once after it starts, after every event
 * (a hint: the records say what is new), `retry_ms` after a failed read, and every `interval_ms`.
 * A PUB socket drops what it sends before a SUB's connection is made (ZeroMQ's slow joiner), so
 * an event published just after the start can be lost: until the interval is reached the reads
 * also come 0.25, 0.5, 1, 2, 4 ... s apart, and a record published in that window waits at most
 * about as long as the service has been up, not a whole interval. */
struct bus_rescan {
    uint64_t next;   /* when the next read is due (bus_mono_ms) */
    uint64_t settle; /* the next gap while the subscription may not be live; 0: interval reached */
    bool now;        /* an event came, or the service asked for a read */
};

void bus_rescan_init(struct bus_rescan *r); /* due at once */
/* Milliseconds until the next read is due (0: due), at most `cap` (cap < 0: no cap). */
int bus_rescan_wait_ms(const struct bus_rescan *r, int cap);
/* Reads every waiting event on `sub` (NULL: none) and marks a read due when one came. */
void bus_rescan_drain(struct bus_rescan *r, void *sub);
/* Whether a read is due now; true clears the event mark (call bus_rescan_done after the read). */
bool bus_rescan_due(struct bus_rescan *r);
/* Schedules the next read after one that succeeded (ok) or failed. */
void bus_rescan_done(struct bus_rescan *r, bool ok, uint64_t interval_ms, uint64_t retry_ms);

/* A worker of `service` on the workers endpoint with `credit` and `name` (NULL or "": host:pid),
 * heart-beating at the options' interval (free with bus_worker_destroy). */
int bus_opts_worker(const struct bus_opts *b, const struct bus_curve *curve, void *zctx,
                    const char *service, unsigned credit, const char *name, bus_worker_t **out,
                    char *why, size_t whylen);

/* The same, announcing `variant` (a judge's identity, busworker.h) in its Ready. */
int bus_opts_worker_variant(const struct bus_opts *b, const struct bus_curve *curve, void *zctx,
                            const char *service, unsigned credit, const char *name,
                            const char *variant, bus_worker_t **out, char *why, size_t whylen);

#endif /* BUSOPTS_H */
