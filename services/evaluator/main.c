/* evaluator main: configuration (defaults < run file < environment < flags, see
 * `evaluator --help`), signals, the service (evaluator_service.c), the metrics server, the loop,
 * teardown. */
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <zmq.h>

#include "bus.h"
#include "cfg.h"
#include "err.h"
#include "evaluator_opts.h"
#include "evaluator_service.h"
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
    struct evaluator_config cfg;
    log_init_from_env("evaluator");
    int rc = evaluator_config_load(&cfg, argc, argv, NULL); /* defaults < file < env < flags */
    if (rc)
        return rc == CFG_HELP ? 0 : 2;
    cfg_log(&evaluator_opts_spec, &cfg);
    struct sigaction sa = {.sa_handler = on_stop_signal}; /* no SA_RESTART: EINTR wakes poll */
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    void *zctx = zmq_ctx_new();
    metrics_t *metrics = metrics_new();
    metrics_server_t *http = NULL;
    evaluator_service_t *svc = NULL;
    char why[1024] = "";
    int exit_code = 0;
    rc = zctx && metrics ? evaluator_service_new(&svc, &cfg, zctx, metrics, why, sizeof why)
                         : ERR_NOMEM;
    if (rc) {
        log_error("%s", why[0] ? why : err_str(rc));
        exit_code = rc == ERR_INVAL || rc == ERR_IO ? 2 : 1;
    } else {
        log_info(
            "serving 'evaluate' for run %s on %s: the versions divisible by %d against v%d, "
            "judged by '%s' on %d prompts of split '%s' (events %s)",
            cfg.run && *cfg.run ? cfg.run : "(each checkpoint's own)", cfg.bus.workers_endpoint,
            cfg.every, cfg.baseline, cfg.judge_service, cfg.prompts, cfg.split,
            cfg.bus.events_endpoint && *cfg.bus.events_endpoint ? cfg.bus.events_endpoint : "off");
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
    atomic_store(&last_turn_ms, bus_mono_ms());
    while (!rc && !stop_requested) {
        rc = evaluator_service_poll(svc, 100);
        if (rc == ERR_INTR || rc == ERR_TIMEOUT)
            rc = ERR_OK;
        atomic_store(&last_turn_ms, bus_mono_ms());
    }
    if (svc && rc) {
        log_error("loop: %s", err_str(rc));
        exit_code = 1;
    }
    if (svc) {
        struct evaluator_service_stats st;
        evaluator_service_stats(svc, &st);
        log_info("totals: %llu evaluations (%llu found done, %llu failed), %llu evaluate requests, "
                 "%llu judgements (%llu failed)",
                 (unsigned long long)st.evaluations, (unsigned long long)st.skipped,
                 (unsigned long long)st.failed, (unsigned long long)st.requests,
                 (unsigned long long)st.judgements, (unsigned long long)st.judge_failures);
    }
    metrics_server_stop(&http);
    evaluator_service_destroy(&svc);
    metrics_destroy(&metrics);
    if (zctx)
        zmq_ctx_term(zctx);
    evaluator_config_release(&cfg);
    log_info("exit: %s", exit_code ? "error" : "ok");
    return exit_code;
}
