/* busclient.h - the caller side of the bus: submit requests to a service through the ledger,
 * collect their replies, and read or write records.
 *
 * Requests are identified by ids the caller chooses (bus_client_submit): the ledger runs an id
 * once and answers every repeat with the stored reply, so the client can resend freely. It
 * resends a request that has no Ack after `resend_ms`, and keeps re-announcing acknowledged
 * ones at a slower pace until the reply arrives, so a ledger that restarted (and forgot who
 * was waiting) answers them again. Put/Get/Scan/Status/Lookup are synchronous and retried
 * until their deadline. Single-threaded: one thread owns a client. */
#ifndef BUSCLIENT_H
#define BUSCLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bus.h"

typedef struct bus_client bus_client_t;

struct bus_client_opts {
    const char *endpoint;          /* the ledger's client endpoint */
    const struct bus_curve *curve; /* NULL or !on: plaintext */
    int resend_ms;                 /* 0: 1000; unacknowledged requests are resent this often */
    int reannounce_ms;             /* 0: 5000; acknowledged ones, until their reply */
    size_t max_msg;                /* 0: BUS_DEFAULT_MAX_MSG */
};

/* A reply delivered by bus_client_poll; borrowed for the duration of the callback. */
typedef void (*bus_reply_fn)(void *ctx, const Oaif__V1__Reply *reply);

int bus_client_new(bus_client_t **out, void *zctx, const struct bus_client_opts *o);
/* Pending requests are forgotten (the ledger still runs them). Accepts NULL. */
void bus_client_destroy(bus_client_t **c);

/* Submit `payload` to `service` as request `id` (ids are unique per run; reuse one only to
 * mean "the same request"). lease_ms/max_attempts 0: the ledger's defaults (larger than its
 * limits: cut to them). ERR_EXISTS if this client already has `id` pending; ERR_INVAL if `id` is
 * not an id (printable UTF-8, at most BUS_ID_MAX bytes: buscheck.h), with the reason in
 * bus_client_last_error. The send is attempted at once and retried by poll. */
int bus_client_submit(bus_client_t *c, const char *service, const char *id, const void *payload,
                      size_t len, unsigned lease_ms, unsigned max_attempts);

/* Wait up to `timeout_ms` (0: just look; -1: until something happens) and deliver each
 * reply that arrived to cb. Returns the number delivered (>= 0), or ERR_INTR / ERR_IO. */
int bus_client_poll(bus_client_t *c, int timeout_ms, bus_reply_fn cb, void *ctx);

/* The socket, for a caller with its own poll loop (a worker that is also a client): poll it for
 * ZMQ_POLLIN, then call bus_client_poll(c, 0, ...), which also delivers replies kept by a
 * synchronous call and resends what is due. Borrowed until bus_client_destroy. */
void *bus_client_socket(bus_client_t *c);

/* Requests submitted and not yet answered. */
size_t bus_client_pending(const bus_client_t *c);
/* Resends so far (tests, metrics). */
uint64_t bus_client_resends(const bus_client_t *c);

/* Submit and wait for the reply, up to timeout_ms. On ERR_OK *out is the reply envelope
 * (reply in (*out)->reply; free with oaif__v1__envelope__free_unpacked). ERR_TIMEOUT.
 * Other replies arriving meanwhile are kept for the next bus_client_poll. */
int bus_client_call(bus_client_t *c, const char *service, const char *id, const void *payload,
                    size_t len, int timeout_ms, Oaif__V1__Envelope **out);

/* Synchronous queries. On ERR_OK *out is the answer envelope (free it as above):
 * put -> ack; get/scan/lookup -> records; status -> status. ERR_REMOTE: the ledger answered
 * with an Error (its message in bus_client_last_error). ERR_PROTO: the answer came but is
 * malformed (a string that is not UTF-8, stored before the ledger refused those; why in
 * bus_client_last_error). ERR_TIMEOUT. ERR_INVAL (put): its id or
 * a record's is not an id (buscheck.h), with the reason in bus_client_last_error. */
int bus_client_put(bus_client_t *c, const char *put_id, Oaif__V1__Record **records, size_t n,
                   bool if_absent, int timeout_ms);
int bus_client_get(bus_client_t *c, Oaif__V1__RecordKind kind, const char *const *ids, size_t n,
                   int timeout_ms, Oaif__V1__Envelope **out);
int bus_client_scan(bus_client_t *c, Oaif__V1__RecordKind kind, uint64_t after_seq,
                    unsigned limit, int timeout_ms, Oaif__V1__Envelope **out);
int bus_client_lookup(bus_client_t *c, const char *const *ids, size_t n, int timeout_ms,
                      Oaif__V1__Envelope **out);

/* Every record of `kind`, in commit order, through fn (pages of 1000 scans). Stops at the first
 * failure: a scan's (as bus_client_scan) or fn's non-zero return, which it returns. */
int bus_client_scan_each(bus_client_t *c, Oaif__V1__RecordKind kind, int timeout_ms,
                         int (*fn)(void *ctx, const Oaif__V1__Record *r), void *ctx);
int bus_client_status(bus_client_t *c, int timeout_ms, Oaif__V1__Envelope **out);
/* Send any envelope as a synchronous query (the answer must echo its corr). */
int bus_client_query(bus_client_t *c, Oaif__V1__Envelope *q, int timeout_ms,
                     Oaif__V1__Envelope **out);

/* The last Error message from the ledger; borrowed until the next call. */
const char *bus_client_last_error(const bus_client_t *c);

#endif /* BUSCLIENT_H */
