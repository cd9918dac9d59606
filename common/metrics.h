/* metrics.h - counters, gauges and histograms, rendered in the Prometheus text exposition
 * format 0.0.4, and a small HTTP server (libmicrohttpd) for GET /metrics and GET /healthz.
 *
 * A registry (metrics_t) holds metric families; a family has a name, help text, a type and, for
 * histograms, fixed bucket bounds; each registration with a distinct label set is one series of
 * that family and returns a handle owned by the registry. Updates through a handle are lock-free
 * atomics and may come from any thread while another thread renders. A series registered twice
 * (same name, same labels in the same order) returns the same handle.
 *
 * Locking: the registry has one mutex, taken by registration and by rendering (so series may be
 * registered while the HTTP thread renders). Updates take no lock. A render reads each value
 * atomically, but not all of them at one instant: a histogram's _sum may include an observation
 * that its buckets do not yet show. _count is always equal to the +Inf bucket.
 *
 * Not here: summaries (quantiles), the OpenMetrics format, timestamps, pushing to a gateway,
 * removing series (a service's label sets are small and fixed: service, verb, result). */
#ifndef METRICS_H
#define METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"

typedef struct metrics metrics_t;                     /* the registry */
typedef struct metrics_counter metrics_counter_t;     /* one counter series */
typedef struct metrics_gauge metrics_gauge_t;         /* one gauge series */
typedef struct metrics_histogram metrics_histogram_t; /* one histogram series */
typedef struct metrics_server metrics_server_t;       /* the HTTP server */

/* An empty registry, or NULL when out of memory. Free with metrics_destroy(). */
metrics_t *metrics_new(void);

/* Frees the registry and every series; handles from it become invalid. Sets *m to NULL.
 * Accepts m == NULL and *m == NULL. Stop any server using it first. */
void metrics_destroy(metrics_t **m);

/* Register (or find) a series. `name` matches [a-zA-Z_:][a-zA-Z0-9_:]*; `help` is one line of
 * text (escaped on output); then label name/value pairs, ended by NULL: label names match
 * [a-zA-Z_][a-zA-Z0-9_]*, do not start with "__", and "le" is reserved for histograms; values are
 * any UTF-8 text (escaped on output). Example:
 *   metrics_counter_register(reg, &c, "oaif_requests_total", "Requests handled.",
 *                            "service", "annotate", "result", "ok", NULL);
 * On ERR_OK *out is a handle borrowed from the registry until metrics_destroy(). Returns
 * ERR_INVAL for a bad name or label, an odd number of label arguments, or a name already
 * registered with another type, help text or bucket layout; ERR_NOMEM. *out is NULL on error. */
int metrics_counter_register(metrics_t *m, metrics_counter_t **out, const char *name,
                             const char *help, ...) __attribute__((sentinel));
int metrics_gauge_register(metrics_t *m, metrics_gauge_t **out, const char *name, const char *help,
                           ...) __attribute__((sentinel));
/* `bounds` are the upper bounds of the buckets, finite and strictly increasing (1 to 64 of
 * them); the +Inf bucket is implied. */
int metrics_histogram_register(metrics_t *m, metrics_histogram_t **out, const char *name,
                               const char *help, const double *bounds, size_t n_bounds, ...)
    __attribute__((sentinel));

/* Adds v to the counter. A negative or NaN v is ignored (counters only go up). NULL-safe. */
void metrics_counter_add(metrics_counter_t *c, double v);
/* Adds 1. NULL-safe. */
void metrics_counter_inc(metrics_counter_t *c);
/* The current value (for tests and for a service's own status). 0 for NULL. */
double metrics_counter_value(const metrics_counter_t *c);

/* Sets / adds to the gauge. NULL-safe. */
void metrics_gauge_set(metrics_gauge_t *g, double v);
void metrics_gauge_add(metrics_gauge_t *g, double v);
double metrics_gauge_value(const metrics_gauge_t *g);

/* Counts v in the first bucket whose bound is >= v (the +Inf bucket if none) and adds it to the
 * sum. NaN is ignored. NULL-safe. */
void metrics_histogram_observe(metrics_histogram_t *h, double v);
/* The number of observations so far. 0 for NULL. */
uint64_t metrics_histogram_count(const metrics_histogram_t *h);

/* Called at the start of each metrics_render() (so: in the HTTP server's thread, for each GET
 * /metrics), before the registry lock is taken. Use it to refresh gauges from service state
 * just in time (queue depths, workers alive). It runs concurrently with the service's own
 * thread: it may update metrics (atomic) and register series, but must read service state only
 * under the service's own lock or through atomics, and must not block for long. NULL clears it. */
void metrics_set_prerender(metrics_t *m, void (*fn)(void *arg), void *arg);

/* Appends the text exposition (format 0.0.4) of every family to `out`: families in registration
 * order, each with "# HELP" and "# TYPE" lines, then its series in registration order
 * (histograms as _bucket{le=...} cumulative, then _sum and _count). Calls the pre-render hook
 * first. Returns ERR_OK, or buf's error (ERR_NOMEM, ERR_TOOBIG at the buffer's cap). */
int metrics_render(metrics_t *m, buf_t *out);

/* Returns true while the service is healthy; called in the HTTP thread for each GET /healthz
 * (same rules as the pre-render hook). */
typedef bool (*metrics_health_fn)(void *arg);

/* Serves the registry over HTTP on `bind_addr` (a numeric IPv4 or IPv6 address, e.g. "0.0.0.0",
 * "127.0.0.1", "::", or "localhost"; no other names) and `port` (0: an ephemeral port; see
 * metrics_server_port). Routes: GET or HEAD /metrics -> 200 text/plain; version=0.0.4;
 * GET or HEAD /healthz -> 200 "ok\n" when `healthy` (NULL: always) returns true, else 503
 * "unhealthy\n"; GET or HEAD /livez -> the same as /healthz unless metrics_server_set_liveness
 * gave it a test of its own; other methods on those paths -> 405 with an Allow header; other paths -> 404.
 * One internal thread serves the requests. `m` must outlive the server.
 * On ERR_OK *out owns the running server; ERR_INVAL for a bad address or port; ERR_IO when the
 * address cannot be bound (in use, not local); ERR_NOMEM. */
int metrics_server_start(metrics_server_t **out, metrics_t *m, const char *bind_addr, int port,
                         metrics_health_fn healthy, void *health_arg);

/* Says why /healthz is unhealthy: `why` (called in the HTTP thread after `healthy` returned
 * false, with its arg) returns a static string or NULL; the 503's body is "unhealthy: WHY\n". */
void metrics_server_set_health_reason(metrics_server_t *s, const char *(*why)(void *arg));

/* Gives /livez a test of its own (called like `healthy`, with the same arg): 200 "ok\n" or 503
 * "not live\n". A service that is alive but should get no work (the ledger on a full disk) is
 * unhealthy and live: an orchestrator takes it out of service on /healthz and restarts it only
 * on /livez, since a restart frees no disk. */
void metrics_server_set_liveness(metrics_server_t *s, metrics_health_fn live);

/* The port the server is bound to (the chosen one when started with port 0). */
int metrics_server_port(const metrics_server_t *s);

/* Stops the server (waits for its thread) and frees it; sets *s to NULL. Accepts s == NULL and
 * *s == NULL. */
void metrics_server_stop(metrics_server_t **s);

#endif /* METRICS_H */
