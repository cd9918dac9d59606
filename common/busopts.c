/* busopts.c - see busopts.h. */
#include "busopts.h"

#include <stdio.h>
#include <string.h>
#include <zmq.h>

#include "err.h"

static const struct cfg_option bus_options[] = {
    BUS_OPT_CLIENTS(struct bus_opts, clients_endpoint),
    BUS_OPT_WORKERS(struct bus_opts, workers_endpoint),
    BUS_OPT_EVENTS(struct bus_opts, events_endpoint),
    BUS_OPT_LEDGER_KEY(struct bus_opts, ledger_public_key),
    BUS_OPT_HEARTBEAT(struct bus_opts, heartbeat_ms),
    BUS_OPT_MAX_MESSAGE(struct bus_opts, max_message),
};

const struct cfg_spec bus_opts_spec = {
    .name = "bus",
    .summary = "The options every service shares: where the ledger is, and how to talk to it.",
    .options = bus_options,
    .n_options = sizeof bus_options / sizeof bus_options[0],
    .conf_size = sizeof(struct bus_opts),
};

int bus_opts_client(const struct bus_opts *b, const struct bus_curve *curve, void *zctx,
                    bus_client_t **out, char *why, size_t whylen)
{
    struct bus_client_opts co = {
        .endpoint = b->clients_endpoint, .curve = curve, .max_msg = b->max_message};
    int rc = bus_client_new(out, zctx, &co);
    if (rc)
        snprintf(why, whylen, "bus.clients_endpoint %s: cannot connect (%s)",
                 b->clients_endpoint ? b->clients_endpoint : "", err_str(rc));
    return rc;
}

int bus_opts_events(const struct bus_opts *b, const struct bus_curve *curve, void *zctx,
                    const char *topic, void **out, char *why, size_t whylen)
{
    *out = NULL;
    if (!b->events_endpoint || !*b->events_endpoint)
        return ERR_OK;
    void *sub = zmq_socket(zctx, ZMQ_SUB);
    int rc = sub ? bus_setup_socket(sub, false, ZMQ_SUB, b->max_message, curve) : ERR_NOMEM;
    if (!rc && (zmq_setsockopt(sub, ZMQ_SUBSCRIBE, topic, strlen(topic)) != 0 ||
                zmq_connect(sub, b->events_endpoint) != 0))
        rc = ERR_IO;
    if (rc) {
        snprintf(why, whylen, "bus.events_endpoint %s: cannot connect (%s)", b->events_endpoint,
                 zmq_strerror(zmq_errno()));
        if (sub)
            zmq_close(sub);
        return rc;
    }
    *out = sub;
    return ERR_OK;
}

int bus_opts_worker(const struct bus_opts *b, const struct bus_curve *curve, void *zctx,
                    const char *service, unsigned credit, const char *name, bus_worker_t **out,
                    char *why, size_t whylen)
{
    return bus_opts_worker_variant(b, curve, zctx, service, credit, name, NULL, out, why, whylen);
}

int bus_opts_worker_variant(const struct bus_opts *b, const struct bus_curve *curve, void *zctx,
                            const char *service, unsigned credit, const char *name,
                            const char *variant, bus_worker_t **out, char *why, size_t whylen)
{
    struct bus_worker_opts wo = {
        .variant = variant,
        .endpoint = b->workers_endpoint,
        .service = service,
        .credit = credit,
        .name = name && *name ? name : NULL,
        .heartbeat_ms = (int)b->heartbeat_ms,
        .curve = curve,
        .max_msg = b->max_message,
    };
    int rc = bus_worker_new(out, zctx, &wo);
    if (rc)
        snprintf(why, whylen, "bus.workers_endpoint %s: cannot connect (%s)",
                 b->workers_endpoint ? b->workers_endpoint : "", err_str(rc));
    return rc;
}

/* ---- rescans ------------------------------------------------------------------------------ */

#define RESCAN_SETTLE_FIRST_MS 250

void bus_rescan_init(struct bus_rescan *r)
{
    r->next = 0;
    r->settle = RESCAN_SETTLE_FIRST_MS;
    r->now = true;
}

int bus_rescan_wait_ms(const struct bus_rescan *r, int cap)
{
    uint64_t now = bus_mono_ms();
    if (r->now || r->next <= now)
        return 0;
    uint64_t left = r->next - now;
    if (cap >= 0 && left > (uint64_t)cap)
        return cap;
    return left > INT32_MAX ? INT32_MAX : (int)left;
}

void bus_rescan_drain(struct bus_rescan *r, void *sub)
{
    if (!sub)
        return;
    for (;;) {
        zmq_msg_t m;
        zmq_msg_init(&m);
        int n = zmq_msg_recv(&m, sub, ZMQ_DONTWAIT);
        zmq_msg_close(&m);
        if (n < 0)
            return;
        r->now = true;
    }
}

bool bus_rescan_due(struct bus_rescan *r)
{
    if (!r->now && bus_mono_ms() < r->next)
        return false;
    r->now = false;
    return true;
}

void bus_rescan_done(struct bus_rescan *r, bool ok, uint64_t interval_ms, uint64_t retry_ms)
{
    uint64_t wait = interval_ms;
    if (!ok) {
        if (retry_ms < wait)
            wait = retry_ms;
    } else if (r->settle) {
        if (r->settle < wait)
            wait = r->settle;
        r->settle = r->settle * 2 < interval_ms ? r->settle * 2 : 0;
    }
    r->next = bus_mono_ms() + wait;
}
