/* sampler main: configuration (defaults < run file < environment < flags, see `sampler --help`),
 * signals, the service (sampler_service.c), the metrics server, the loop, teardown. */
#include <curl/curl.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <zmq.h>

#include "bus.h"
#include "cfg.h"
#include "err.h"
#include "log.h"
#include "metrics.h"
#include "nn_threads.h"
#include "sampler_opts.h"
#include "sampler_service.h"

static volatile sig_atomic_t stop_requested;
static atomic_ullong last_turn_ms;

static void on_stop_signal(int sig)
{
    (void)sig;
    stop_requested = 1; /* only async-signal-safe work in here */
}

static bool healthy(void *arg)
{
    (void)arg;
    return bus_mono_ms() - atomic_load(&last_turn_ms) < 5000;
}

int main(int argc, char **argv)
{
    struct sampler_config cfg;
    log_init_from_env("sampler");
    int rc = sampler_config_load(&cfg, argc, argv, NULL); /* defaults < file < env < flags */
    if (rc)
        return rc == CFG_HELP ? 0 : 2;
    /* before any thread: the engine's threads (may execute the program again, so before the
     * configuration's log), libcurl's global state, then signals */
    nn_threads_setup("sampler", cfg.threads);
    cfg_log(&sampler_opts_spec, &cfg);
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        log_error("curl_global_init failed");
        sampler_config_release(&cfg);
        return 1;
    }
    struct sigaction sa = {.sa_handler = on_stop_signal}; /* no SA_RESTART: EINTR wakes poll */
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    void *zctx = zmq_ctx_new();
    metrics_t *metrics = metrics_new();
    metrics_server_t *http = NULL;
    sampler_service_t *svc = NULL;
    char why[1024] = "";
    int exit_code = 0;
    rc = zctx && metrics ? sampler_service_new(&svc, &cfg, zctx, metrics, why, sizeof why)
                         : ERR_NOMEM;
    if (rc) {
        log_error("%s", why[0] ? why : err_str(rc));
        exit_code = rc == ERR_INVAL || rc == ERR_IO ? 2 : 1;
    } else if (cfg.backend == SAMPLER_BACKEND_REMOTE) {
        log_info("serving 'sample' for %s from %s (model %s, version %d)", cfg.bus.workers_endpoint,
                 cfg.remote.base_url, cfg.remote.model, cfg.remote.version);
    } else {
        log_info("serving 'sample' for %s from %s (events %s)", cfg.bus.workers_endpoint,
                 cfg.checkpoint_dir,
                 cfg.bus.events_endpoint && *cfg.bus.events_endpoint ? cfg.bus.events_endpoint
                                                                     : "off");
    }
    if (!rc && cfg.metrics_port >= 0) {
        rc =
            metrics_server_start(&http, metrics, cfg.metrics_bind, cfg.metrics_port, healthy, NULL);
        if (rc) {
            log_error("metrics server on %s:%d: %s", cfg.metrics_bind, cfg.metrics_port,
                      err_str(rc));
            exit_code = 1;
        } else {
            log_info("metrics on %s:%d", cfg.metrics_bind, metrics_server_port(http));
        }
    }
    uint64_t next_metrics = 0;
    atomic_store(&last_turn_ms, bus_mono_ms());
    while (!rc && !stop_requested) {
        rc = sampler_service_poll(svc, 100);
        if (rc == ERR_INTR || rc == ERR_TIMEOUT)
            rc = ERR_OK;
        uint64_t now = bus_mono_ms();
        atomic_store(&last_turn_ms, now);
        if (now >= next_metrics) {
            sampler_service_update_metrics(svc);
            next_metrics = now + 500;
        }
    }
    if (svc && rc) {
        log_error("loop: %s", err_str(rc));
        exit_code = 1;
    }
    if (svc) {
        struct sampler_service_stats st;
        sampler_service_stats(svc, &st);
        log_info("totals: %llu requests (%llu ok, %llu failed, %llu bad), %llu responses, %llu "
                 "tokens, %llu versions loaded (%llu failed)",
                 (unsigned long long)st.requests, (unsigned long long)st.replies,
                 (unsigned long long)st.failures, (unsigned long long)st.bad_requests,
                 (unsigned long long)st.responses, (unsigned long long)st.tokens,
                 (unsigned long long)st.loads, (unsigned long long)st.load_failures);
    }
    metrics_server_stop(&http);
    sampler_service_destroy(&svc);
    metrics_destroy(&metrics);
    if (zctx)
        zmq_ctx_term(zctx);
    curl_global_cleanup();
    sampler_config_release(&cfg);
    log_info("exit: %s", exit_code ? "error" : "ok");
    return exit_code;
}
