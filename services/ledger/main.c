/* ledger main: configuration (defaults < run file < environment < flags, see `ledger --help`),
 * signals, the loop, the metrics server, teardown. */
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

#include "buf.h"
#include "cfg.h"
#include "err.h"
#include "ledger.h"
#include "ledger_opts.h"
#include "log.h"
#include "metrics.h"

static volatile sig_atomic_t stop_requested;
static atomic_ullong last_turn_ms;
static _Atomic(const char *) unavailable; /* ledger_unavailable(), copied each turn */

static void on_stop_signal(int sig)
{
    (void)sig;
    stop_requested = 1;
}

static bool live(void *arg)
{
    (void)arg;
    return bus_mono_ms() - atomic_load(&last_turn_ms) < 5000;
}

static bool healthy(void *arg)
{
    return live(arg) && !atomic_load(&unavailable);
}

static const char *health_reason(void *arg)
{
    (void)arg;
    const char *why = atomic_load(&unavailable);
    return why ? why : "the ledger's loop has not turned for 5 s";
}

/* What follows from the options: sizes that must agree, and the CURVE key pair. */
static int check_config(struct ledger_config *c)
{
    if (c->max_request + 4096 > c->max_msg) {
        log_error("ledger.max_request_size (%zu) must be at least 4096 below "
                  "bus.max_message_size (%zu)",
                  c->max_request, c->max_msg);
        return ERR_INVAL;
    }
    if (c->curve_secret_key && *c->curve_secret_key) {
        char err[512];
        if (bus_curve_load(&c->curve, c->curve_secret_key, true, err, sizeof err)) {
            log_error("ledger.curve_secret_key: %s", err);
            return ERR_INVAL;
        }
    }
    bool allow_list = (c->curve_allow && *c->curve_allow) || c->allowed_keys.n > 0;
    if (allow_list && !c->curve.on) {
        /* Without a key pair CURVE is off: the list would guard nothing, and anyone who can
         * reach the ports could read and write the run. */
        log_error("ledger.%s is set but ledger.curve_secret_key is not: without the ledger's "
                  "key pair the sockets are plaintext and open to all; set "
                  "ledger.curve_secret_key (`oaif keys ledger` makes one) or remove the "
                  "allow-list",
                  c->allowed_keys.n ? "allowed_keys" : "allowed_keys_path");
        return ERR_INVAL;
    }
    for (size_t i = 0; i < c->allowed_keys.n; i++) {
        const char *k = c->allowed_keys.items[i];
        uint8_t raw[32];
        if (strlen(k) != 40 || !zmq_z85_decode(raw, k)) {
            log_error("ledger.allowed_keys[%zu]: '%.60s' is not a CURVE public key (40 "
                      "characters of Z85, as in the .pub file `oaif keys` writes)",
                      i, k);
            return ERR_INVAL;
        }
    }
    if (c->curve.on && !allow_list)
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
    struct ledger_config cfg;
    log_init_from_env("ledger");
    int rc = ledger_opts_load(&cfg, argc, argv, NULL, NULL);
    if (rc)
        return rc == CFG_HELP ? 0 : 2;
    cfg_log(&ledger_opts_spec, &cfg);
    if (cfg.repair) {
        /* Not while a ledger runs: RocksDB's lock makes the repair fail then. */
        rc = kv_repair(cfg.db_path);
        if (!rc)
            log_info("repaired %s: what could be read is kept, damaged files are in %s/lost; "
                     "start the ledger and compare `oaif status` with what you expect",
                     cfg.db_path, cfg.db_path);
        ledger_config_release(&cfg);
        return rc ? 1 : 0;
    }
    if (check_config(&cfg)) {
        ledger_config_release(&cfg);
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
    for (size_t i = 0; !rc && i < cfg.allowed_keys.n; i++)
        rc = ledger_allow_key(l, cfg.allowed_keys.items[i]);
    if (!rc && cfg.metrics_port >= 0) {
        rc =
            metrics_server_start(&http, metrics, cfg.metrics_bind, cfg.metrics_port, healthy, NULL);
        if (rc)
            log_error("metrics server on %s:%d: %s", cfg.metrics_bind, cfg.metrics_port,
                      err_str(rc));
        else {
            metrics_server_set_health_reason(http, health_reason);
            metrics_server_set_liveness(http, live);
        }
    }
    if (!rc) {
        log_info("listening: clients %s, workers %s, events %s, metrics %s:%d; store %s",
                 ledger_client_endpoint(l), ledger_worker_endpoint(l),
                 ledger_events_endpoint(l)[0] ? ledger_events_endpoint(l) : "(off)",
                 cfg.metrics_bind, http ? metrics_server_port(http) : -1, cfg.db_path);
        write_endpoints(cfg.endpoints_file, l, http ? metrics_server_port(http) : -1);
    }
    uint64_t next_metrics = 0;
    while (!rc && !stop_requested) {
        rc = ledger_poll(l, 100);
        if (rc == ERR_INTR || rc == ERR_TIMEOUT)
            rc = ERR_OK;
        uint64_t now = bus_mono_ms();
        atomic_store(&last_turn_ms, now);
        if (l)
            atomic_store(&unavailable, ledger_unavailable(l));
        if (http && now >= next_metrics) {
            ledger_update_metrics(l, metrics);
            next_metrics = now + 500;
        }
    }
    metrics_server_stop(&http);
    if (rc == ERR_NOSPACE) {
        /* The disk filled under a write despite ledger.min_free_space (another process took
         * the space between the check and the write). RocksDB now refuses every write and may
         * abort while closing, so the store is left as a crash leaves it: everything
         * acknowledged was synced before. */
        log_error("the disk of %s filled during a commit: nothing of that commit was "
                  "acknowledged; exiting without closing the store; restart the ledger once "
                  "there is space (raise ledger.min_free_space to keep this from recurring)",
                  cfg.db_path);
        _exit(1);
    }
    ledger_destroy(&l);
    metrics_destroy(&metrics);
    if (zctx)
        zmq_ctx_term(zctx);
    ledger_config_release(&cfg);
    log_info("exit: %s", err_str(rc));
    /* ERR_INVAL before the loop is bad configuration (an allow-list file that does not parse):
     * 2, as for the options themselves. */
    return rc == ERR_INVAL ? 2 : rc ? 1 : 0;
}
