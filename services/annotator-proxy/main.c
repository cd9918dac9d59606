/* annotator-proxy main: configuration (defaults < run file < environment < flags, see
 * `annotator-proxy --help`), signals, the judge and the ledger connection, the loop, the metrics
 * server, teardown. The logic lives in annotator_proxy.c. */
#include <curl/curl.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <zmq.h>

#include "annotator_opts.h"
#include "annotator_proxy.h"
#include "bus.h"
#include "cfg.h"
#include "err.h"
#include "log.h"
#include "metrics.h"

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
    struct annotator_opts opts;
    log_init_from_env("annotator-proxy");
    int rc = annotator_opts_load(&opts, argc, argv, NULL);
    if (rc)
        return rc == CFG_HELP ? 0 : 2;
    cfg_log(&annotator_opts_spec, &opts);
    /* before any thread: libcurl's global state, then signals (libzmq's threads block them) */
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        log_error("curl_global_init failed");
        annotator_opts_release(&opts);
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
    annotator_proxy_t *proxy = NULL;
    char why[512] = "";
    int exit_code = 0;
    rc = zctx && metrics ? annotator_proxy_new(&proxy, &opts, zctx, metrics, why, sizeof why)
                         : ERR_NOMEM;
    if (rc) {
        log_error("%s", why[0] ? why : err_str(rc));
        exit_code = rc == ERR_INVAL || rc == ERR_IO ? 2 : 1;
    }
    if (!rc) {
        char desc[2048];
        annotator_describe(annotator_proxy_judge(proxy), desc, sizeof desc);
        log_info("%s", desc);
        log_info("serving '%s' for %s (credit %u, cache %s)", opts.service,
                 opts.bus.workers_endpoint, annotator_opts_credit(&opts),
                 annotator_opts_cache(&opts) ? "on" : "off");
    }
    if (!rc && opts.metrics_port >= 0) {
        rc = metrics_server_start(&http, metrics, opts.metrics_bind, opts.metrics_port, healthy,
                                  NULL);
        if (rc) {
            log_error("metrics server on %s:%d: %s", opts.metrics_bind, opts.metrics_port,
                      err_str(rc));
            exit_code = 1;
        } else {
            log_info("metrics on %s:%d", opts.metrics_bind, metrics_server_port(http));
        }
    }
    uint64_t next_metrics = 0;
    atomic_store(&last_turn_ms, bus_mono_ms());
    while (!rc && !stop_requested) {
        rc = annotator_proxy_poll(proxy, 100);
        if (rc == ERR_INTR || rc == ERR_TIMEOUT)
            rc = ERR_OK;
        uint64_t now = bus_mono_ms();
        atomic_store(&last_turn_ms, now);
        if (now >= next_metrics) {
            annotator_proxy_update_metrics(proxy);
            next_metrics = now + 500;
        }
    }
    if (proxy && rc) {
        log_error("loop: %s", err_str(rc));
        exit_code = 1;
    }
    if (proxy) {
        struct annotator_totals t;
        annotator_totals(annotator_proxy_judge(proxy), &t);
        log_info("totals: %llu judgements (%llu ok, %llu failed), %llu calls, tokens %llu+%llu, "
                 "cost %.6g",
                 (unsigned long long)t.judgements, (unsigned long long)t.ok,
                 (unsigned long long)t.failed, (unsigned long long)t.calls,
                 (unsigned long long)t.prompt_tokens, (unsigned long long)t.completion_tokens,
                 t.cost);
    }
    metrics_server_stop(&http);
    annotator_proxy_destroy(&proxy);
    metrics_destroy(&metrics);
    if (zctx)
        zmq_ctx_term(zctx);
    curl_global_cleanup();
    annotator_opts_release(&opts);
    log_info("exit: %s", exit_code ? "error" : "ok");
    return exit_code;
}
