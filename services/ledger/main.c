/* ledger main: configuration, signals, the loop, teardown. */
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "err.h"
#include "ledger.h"
#include "log.h"

static volatile sig_atomic_t stop_requested;
static const char *endpoints_file;

static const char usage[] =
    "usage: ledger [options]   (each option also reads LEDGER_<NAME> from the environment)\n"
    "  --db PATH              RocksDB directory (data/ledger)\n"
    "  --clients EP           client ROUTER endpoint (tcp://127.0.0.1:5555; port * = any)\n"
    "  --workers EP           worker ROUTER endpoint (tcp://127.0.0.1:5556)\n"
    "  --events EP            event PUB endpoint (tcp://127.0.0.1:5557; '' = off)\n"
    "  --lease-ms N           default lease (30000)\n"
    "  --max-attempts N       default attempts before a dead letter (3)\n"
    "  --heartbeat-ms N       worker heartbeat interval (1000)\n"
    "  --max-request BYTES    largest payload accepted with an error reply above (16777216)\n"
    "  --max-msg BYTES        ZMQ_MAXMSGSIZE: larger frames drop the connection (67108864)\n"
    "  --no-sync              do not fsync group commits (benchmarks only)\n"
    "  --curve-secret FILE    the ledger's CURVE key pair (oaif keys); turns CURVE on\n"
    "  --curve-allow PATH     allowed client public keys: a file or a directory of *.pub\n"
    "  --endpoints-file PATH  write the bound endpoints there once listening\n";

/* Parse an unsigned value for `name`; on error print it and return false. */
static bool parse_uint(const char *name, const char *v, unsigned long lo, unsigned long hi,
                       unsigned long *out)
{
    char *end = NULL;
    unsigned long x = strtoul(v, &end, 10);
    if (!*v || *end || x < lo || x > hi) {
        fprintf(stderr, "ledger: %s: expected an integer in [%lu, %lu], got '%s'\n", name, lo, hi,
                v);
        return false;
    }
    *out = x;
    return true;
}

static bool set_opt(struct ledger_config *c, const char *name, const char *v)
{
    unsigned long x;
    if (!strcmp(name, "db"))
        snprintf(c->db_path, sizeof c->db_path, "%s", v);
    else if (!strcmp(name, "clients"))
        snprintf(c->client_bind, sizeof c->client_bind, "%s", v);
    else if (!strcmp(name, "workers"))
        snprintf(c->worker_bind, sizeof c->worker_bind, "%s", v);
    else if (!strcmp(name, "events"))
        snprintf(c->events_bind, sizeof c->events_bind, "%s", v);
    else if (!strcmp(name, "lease-ms")) {
        if (!parse_uint(name, v, 10, 86400000, &x))
            return false;
        c->lease_ms = (unsigned)x;
    } else if (!strcmp(name, "max-attempts")) {
        if (!parse_uint(name, v, 1, 1000, &x))
            return false;
        c->max_attempts = (unsigned)x;
    } else if (!strcmp(name, "heartbeat-ms")) {
        if (!parse_uint(name, v, 10, 600000, &x))
            return false;
        c->heartbeat_ms = (int)x;
    } else if (!strcmp(name, "max-request")) {
        if (!parse_uint(name, v, 1, 1ul << 40, &x))
            return false;
        c->max_request = x;
    } else if (!strcmp(name, "max-msg")) {
        if (!parse_uint(name, v, 4096, 1ul << 40, &x))
            return false;
        c->max_msg = x;
    } else if (!strcmp(name, "curve-secret")) {
        char err[512];
        if (bus_curve_load(&c->curve, v, true, err, sizeof err)) {
            fprintf(stderr, "ledger: --curve-secret: %s\n", err);
            return false;
        }
    } else if (!strcmp(name, "curve-allow"))
        snprintf(c->curve_allow, sizeof c->curve_allow, "%s", v);
    else if (!strcmp(name, "endpoints-file"))
        endpoints_file = v;
    else {
        fprintf(stderr, "ledger: unknown option --%s\n%s", name, usage);
        return false;
    }
    return true;
}

static int ledger_config_load(struct ledger_config *c, int argc, char **argv)
{
    static const char *const names[] = {"db", "clients", "workers", "events", "lease-ms",
                                        "max-attempts", "heartbeat-ms", "max-request", "max-msg",
                                        "curve-secret", "curve-allow", "endpoints-file"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        char env[64] = "LEDGER_";
        for (size_t j = 0; names[i][j] && j < 50; j++)
            env[7 + j] = names[i][j] == '-' ? '_' : (char)(names[i][j] - 32 * (names[i][j] >= 'a'));
        const char *v = getenv(env);
        if (v && !set_opt(c, names[i], v))
            return ERR_INVAL;
    }
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            fputs(usage, stdout);
            exit(0);
        }
        if (!strcmp(a, "--no-sync")) {
            c->sync = false;
            continue;
        }
        if (strncmp(a, "--", 2) != 0) {
            fprintf(stderr, "ledger: unexpected argument '%s'\n%s", a, usage);
            return ERR_INVAL;
        }
        char name[64];
        const char *eq = strchr(a, '=');
        const char *v;
        if (eq) {
            snprintf(name, sizeof name, "%.*s", (int)(eq - a - 2), a + 2);
            v = eq + 1;
        } else {
            snprintf(name, sizeof name, "%s", a + 2);
            if (i + 1 >= argc) {
                fprintf(stderr, "ledger: option --%s needs a value\n", name);
                return ERR_INVAL;
            }
            v = argv[++i];
        }
        if (!set_opt(c, name, v))
            return ERR_INVAL;
    }
    if (c->max_request + 4096 > c->max_msg) {
        fprintf(stderr, "ledger: --max-request (%zu) must be at least 4096 below --max-msg (%zu)\n",
                c->max_request, c->max_msg);
        return ERR_INVAL;
    }
    if (c->curve.on && !c->curve_allow[0])
        log_warn("CURVE is on with no --curve-allow: every client will be refused");
    return ERR_OK;
}

static void write_endpoints(const ledger_t *l)
{
    if (!endpoints_file)
        return;
    char tmp[1100];
    snprintf(tmp, sizeof tmp, "%s.tmp", endpoints_file);
    FILE *f = fopen(tmp, "w");
    if (!f)
        return;
    fprintf(f, "clients=%s\nworkers=%s\nevents=%s\n", ledger_client_endpoint(l),
            ledger_worker_endpoint(l), ledger_events_endpoint(l));
    fclose(f);
    rename(tmp, endpoints_file);
}

static void on_stop_signal(int sig)
{
    (void)sig;
    stop_requested = 1;
}

int main(int argc, char **argv)
{
    struct ledger_config cfg;
    ledger_config_defaults(&cfg);
    log_init_from_env("ledger");
    if (ledger_config_load(&cfg, argc, argv))
        return 2;
    struct sigaction sa = {.sa_handler = on_stop_signal};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    void *zctx = zmq_ctx_new();
    ledger_t *l = NULL;
    int rc = zctx ? ledger_new(&l, &cfg, zctx) : ERR_NOMEM;
    if (!rc) {
        log_info("listening: clients %s, workers %s, events %s; store %s",
                 ledger_client_endpoint(l), ledger_worker_endpoint(l),
                 ledger_events_endpoint(l)[0] ? ledger_events_endpoint(l) : "(off)",
                 cfg.db_path);
        write_endpoints(l);
    }
    while (!rc && !stop_requested) {
        rc = ledger_poll(l, 100);
        if (rc == ERR_INTR || rc == ERR_TIMEOUT)
            rc = ERR_OK;
    }
    ledger_destroy(&l);
    if (zctx)
        zmq_ctx_term(zctx);
    log_info("exit: %s", err_str(rc));
    return rc ? 1 : 0;
}
