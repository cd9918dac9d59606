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
