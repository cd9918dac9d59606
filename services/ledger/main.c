/* ledger main: configuration (defaults < run file < environment < flags, see `ledger --help`),
 * signals, the loop, the metrics server, teardown. */
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "buf.h"
#include "cfg.h"
#include "err.h"
#include "ledger.h"
#include "log.h"
#include "metrics.h"

/* The options as the configuration module fills them; copied into struct ledger_config. */
struct ledger_opts {
    char *data_dir, *clients_bind, *workers_bind, *events_bind;
    char *metrics_bind;
    int metrics_port;
    int64_t heartbeat_ms, lease_ms;
    int liveness, max_attempts;
    size_t max_msg, max_request;
    bool sync;
    char *curve_secret_key, *allowed_keys_path;
    struct cfg_strlist allowed_keys;
    char *endpoints_file;
};

#define O struct ledger_opts
static const struct cfg_option options[] = {
    CFG_STRING_OPT(O, data_dir, .key = "ledger.data_dir", .def = "data/ledger",
                   .env = "LEDGER_DATA_DIR", .flag = "--db", .help = "RocksDB directory."),
    CFG_STRING_OPT(O, clients_bind, .key = "ledger.clients_bind", .def = "tcp://127.0.0.1:5555",
                   .env = "LEDGER_CLIENTS_BIND", .flag = "--clients",
                   .help = "ROUTER for callers (port * picks a free one)."),
    CFG_STRING_OPT(O, workers_bind, .key = "ledger.workers_bind", .def = "tcp://127.0.0.1:5556",
                   .env = "LEDGER_WORKERS_BIND", .flag = "--workers", .help = "ROUTER for workers."),
    CFG_STRING_OPT(O, events_bind, .key = "ledger.events_bind", .def = "tcp://127.0.0.1:5557",
                   .env = "LEDGER_EVENTS_BIND", .flag = "--events",
                   .help = "PUB for events (empty: none)."),
    CFG_STRING_OPT(O, metrics_bind, .key = "ledger.metrics_bind", .def = "127.0.0.1",
                   .env = "LEDGER_METRICS_BIND", .flag = "--metrics-bind",
                   .help = "Address of the HTTP server for /metrics and /healthz."),
    CFG_INT_OPT(O, metrics_port, .key = "ledger.metrics_port", .def = "-1", .min = -1,
                .max = 65535, .env = "LEDGER_METRICS_PORT", .flag = "--metrics-port",
                .help = "Its port (0: any free one, -1: no HTTP server)."),
    CFG_DURATION_OPT(O, heartbeat_ms, .key = "ledger.heartbeat_interval", .def = "1s",
                     .min = 10, .max = 600000, .env = "LEDGER_HEARTBEAT_INTERVAL",
                     .flag = "--heartbeat", .help = "Heartbeat interval, both ways."),
    CFG_INT_OPT(O, liveness, .key = "ledger.heartbeat_liveness", .def = "3", .min = 2, .max = 100,
                .env = "LEDGER_HEARTBEAT_LIVENESS", .flag = "--liveness",
                .help = "Silent intervals before a worker is dead."),
    CFG_DURATION_OPT(O, lease_ms, .key = "ledger.lease_timeout", .def = "30s", .min = 10,
                     .max = 86400000, .env = "LEDGER_LEASE_TIMEOUT", .flag = "--lease",
                     .help = "Default lease; an expired lease re-queues the request."),
    CFG_INT_OPT(O, max_attempts, .key = "ledger.max_attempts", .def = "3", .min = 1, .max = 1000,
                .env = "LEDGER_MAX_ATTEMPTS", .flag = "--max-attempts",
                .help = "Default attempts before a request fails (dead letter)."),
    CFG_SIZE_OPT(O, max_msg, .key = "ledger.max_message_size", .def = "64MiB", .min = 65536,
                 .max = 1LL << 40, .env = "LEDGER_MAX_MESSAGE_SIZE", .flag = "--max-msg",
                 .help = "ZMQ_MAXMSGSIZE: a larger frame drops its connection."),
    CFG_SIZE_OPT(O, max_request, .key = "ledger.max_request_size", .def = "16MiB", .min = 1,
                 .max = 1LL << 40, .env = "LEDGER_MAX_REQUEST_SIZE", .flag = "--max-request",
                 .help = "Largest payload accepted; larger ones get an error reply."),
    CFG_BOOL_OPT(O, sync, .key = "ledger.sync", .def = "true", .env = "LEDGER_SYNC",
                 .flag = "--sync", .help = "fsync every group commit (false: benchmarks only)."),
    CFG_STRING_OPT(O, curve_secret_key, .key = "ledger.curve_secret_key", .def = NULL,
                   .env = "LEDGER_CURVE_SECRET_KEY", .flag = "--curve-secret",
                   .help = "The ledger's CURVE key pair file (oaif keys); turns CURVE on."),
    CFG_STRING_OPT(O, allowed_keys_path, .key = "ledger.allowed_keys_path", .def = NULL,
                   .env = "LEDGER_ALLOWED_KEYS_PATH", .flag = "--curve-allow",
                   .help = "Allowed public keys: a file, or a directory of *.pub files."),
    CFG_STRLIST_OPT(O, allowed_keys, .key = "ledger.allowed_keys", .def = NULL,
                    .env = "LEDGER_ALLOWED_KEYS", .flag = "--allow-key",
                    .help = "Allowed public keys (Z85), in addition to the path."),
    CFG_STRING_OPT(O, endpoints_file, .key = "ledger.endpoints_file", .def = NULL,
                   .env = "LEDGER_ENDPOINTS_FILE", .flag = "--endpoints-file",
                   .help = "Write the bound endpoints there once listening."),
};
#undef O

static const char *const sections[] = {"ledger", NULL};
static const struct cfg_spec spec = {
    .name = "ledger",
    .summary = "Durable broker and record store of an oaif run.",
    .sections = sections,
    .options = options,
    .n_options = sizeof options / sizeof options[0],
};

static volatile sig_atomic_t stop_requested;
static atomic_ullong last_turn_ms;

static void on_stop_signal(int sig)
{
    (void)sig;
    stop_requested = 1;
}

static bool healthy(void *arg)
{
    (void)arg;
    return bus_mono_ms() - atomic_load(&last_turn_ms) < 5000;
}

static int to_config(const struct ledger_opts *o, struct ledger_config *c)
{
    ledger_config_defaults(c);
#define COPY(dst, src)                                                                             \
    do {                                                                                           \
        if ((src) && strlen(src) >= sizeof(dst)) {                                                 \
            fprintf(stderr, "ledger: %s is too long\n", #src);                                     \
            return ERR_INVAL;                                                                      \
        }                                                                                          \
        snprintf(dst, sizeof(dst), "%s", (src) ? (src) : "");                                      \
    } while (0)
    COPY(c->db_path, o->data_dir);
    COPY(c->client_bind, o->clients_bind);
    COPY(c->worker_bind, o->workers_bind);
    COPY(c->events_bind, o->events_bind);
    COPY(c->curve_allow, o->allowed_keys_path);
#undef COPY
    c->heartbeat_ms = (int)o->heartbeat_ms;
    c->liveness = o->liveness;
    c->lease_ms = (unsigned)o->lease_ms;
    c->max_attempts = (unsigned)o->max_attempts;
    c->max_msg = o->max_msg;
    c->max_request = o->max_request;
    c->sync = o->sync;
    if (c->max_request + 4096 > c->max_msg) {
        fprintf(stderr, "ledger: max_request_size (%zu) must be at least 4096 below "
                        "max_message_size (%zu)\n",
                c->max_request, c->max_msg);
        return ERR_INVAL;
    }
    if (o->curve_secret_key && *o->curve_secret_key) {
        char err[512];
        if (bus_curve_load(&c->curve, o->curve_secret_key, true, err, sizeof err)) {
            fprintf(stderr, "ledger: curve_secret_key: %s\n", err);
            return ERR_INVAL;
        }
    }
    if (c->curve.on && !c->curve_allow[0] && o->allowed_keys.n == 0)
        log_warn("CURVE is on with no allowed keys: every client and worker will be refused");
    return ERR_OK;
}

static void write_endpoints(const char *path, const ledger_t *l, int metrics_port)
{
    if (!path || !*path)
        return;
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f) {
        log_error("endpoints file %s: cannot write", tmp);
        return;
    }
    fprintf(f, "clients=%s\nworkers=%s\nevents=%s\nmetrics_port=%d\n", ledger_client_endpoint(l),
            ledger_worker_endpoint(l), ledger_events_endpoint(l), metrics_port);
    fclose(f);
    rename(tmp, path);
}

int main(int argc, char **argv)
{
    struct ledger_opts opts;
    struct ledger_config cfg;
    log_init_from_env("ledger");
    int rc = cfg_load(&spec, &opts, argc, argv, NULL);
    if (rc)
        return rc == CFG_HELP ? 0 : 2;
    cfg_log(&spec, &opts);
    if (to_config(&opts, &cfg)) {
        cfg_release(&spec, &opts);
        return 2;
    }
    struct sigaction sa = {.sa_handler = on_stop_signal};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    void *zctx = zmq_ctx_new();
    ledger_t *l = NULL;
    metrics_t *metrics = metrics_new();
    metrics_server_t *http = NULL;
    rc = zctx && metrics ? ledger_new(&l, &cfg, zctx) : ERR_NOMEM;
    for (size_t i = 0; !rc && i < opts.allowed_keys.n; i++)
        rc = ledger_allow_key(l, opts.allowed_keys.items[i]);
    if (!rc && opts.metrics_port >= 0) {
        rc = metrics_server_start(&http, metrics, opts.metrics_bind, opts.metrics_port, healthy,
                                  NULL);
        if (rc)
            log_error("metrics server on %s:%d: %s", opts.metrics_bind, opts.metrics_port,
                      err_str(rc));
    }
    if (!rc) {
        log_info("listening: clients %s, workers %s, events %s, metrics %s:%d; store %s",
                 ledger_client_endpoint(l), ledger_worker_endpoint(l),
                 ledger_events_endpoint(l)[0] ? ledger_events_endpoint(l) : "(off)",
                 opts.metrics_bind, http ? metrics_server_port(http) : -1, cfg.db_path);
        write_endpoints(opts.endpoints_file, l, http ? metrics_server_port(http) : -1);
    }
    uint64_t next_metrics = 0;
    while (!rc && !stop_requested) {
        rc = ledger_poll(l, 100);
        if (rc == ERR_INTR || rc == ERR_TIMEOUT)
            rc = ERR_OK;
        uint64_t now = bus_mono_ms();
        atomic_store(&last_turn_ms, now);
        if (http && now >= next_metrics) {
            ledger_update_metrics(l, metrics);
            next_metrics = now + 500;
        }
    }
    metrics_server_stop(&http);
    ledger_destroy(&l);
    metrics_destroy(&metrics);
    if (zctx)
        zmq_ctx_term(zctx);
    cfg_release(&spec, &opts);
    log_info("exit: %s", err_str(rc));
    return rc ? 1 : 0;
}
