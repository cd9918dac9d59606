/* trainer main: the online loop (OAIF) as a process: the options (trainer_opts.c: the run
 * file's `trainer` section, the environment, flags; `trainer --help`), CURVE, signals, the
 * metrics server (trainer.metrics_port), the loop, its summary. */
#include <inttypes.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "cfg.h"
#include "err.h"
#include "log.h"
#include "metrics.h"
#include "nn_threads.h"
#include "online.h"
#include "trainer_opts.h"

static volatile sig_atomic_t stop_requested;

static void on_stop_signal(int sig)
{
    (void)sig;
    stop_requested = 1;
}

int main(int argc, char **argv)
{
    struct trainer_online_config c;
    log_init_from_env("trainer");
    int rc = trainer_opts_load(&c, argc, argv, NULL, NULL);
    if (rc)
        return rc == CFG_HELP ? 0 : 2;
    nn_threads_setup("trainer", c.threads); /* first: it may execute the program again */
    cfg_log(&trainer_opts_spec, &c);
    struct bus_curve curve;
    char why[600];
    if (bus_curve_client(&curve, c.curve_secret_key, c.ledger_public_key,
                         "trainer.curve_secret_key", why, sizeof why)) {
        log_error("%s", why);
        trainer_opts_release(&c);
        return 2;
    }
    c.curve = &curve;
    struct sigaction sa = {.sa_handler = on_stop_signal};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    void *zctx = zmq_ctx_new();
    metrics_t *metrics = c.metrics_port >= 0 ? metrics_new() : NULL;
    metrics_server_t *http = NULL;
    rc = zctx && (metrics || c.metrics_port < 0) ? ERR_OK : ERR_NOMEM;
    if (!rc && metrics) {
        rc = metrics_server_start(&http, metrics, c.metrics_bind, c.metrics_port, NULL, NULL);
        if (rc)
            log_error("metrics server on %s:%d: %s", c.metrics_bind, c.metrics_port, err_str(rc));
        else
            log_info("metrics on %s:%d", c.metrics_bind, metrics_server_port(http));
    }
    c.metrics = metrics;
    struct trainer_online_summary sum = {0};
    if (!rc)
        rc = trainer_online_run(&c, zctx, &stop_requested, &sum);
    char best[96] = "no checkpoint evaluated";
    if (sum.best_version > 0)
        snprintf(best, sizeof best, "best evaluated v%u (win rate %.1f%%)", sum.best_version,
                 100 * sum.best_win_rate);
    log_info("run '%s': step %d, policy v%u; this process: %d steps in %.1f s, %" PRIu64
             " pairs labeled, %" PRIu64 " trained, %" PRIu64 " ties, %" PRIu64 " stale, %" PRIu64
             " failed; %s; %s",
             c.run, sum.step, sum.version, sum.steps_done, sum.seconds, sum.labeled, sum.trained,
             sum.ties, sum.stale, sum.failed, best, err_str(rc));
    if (c.strength.enabled)
        log_info("strength: %" PRIu64 " keep, %" PRIu64 " flip, %" PRIu64 " smooth, %" PRIu64
                 " margin, %" PRIu64 " soft, %" PRIu64 " drop; %" PRIu64
                 " trained as labeled (no estimate)",
                 sum.strength_actions[OAIF__V1__STRENGTH_ACTION__STRENGTH_ACTION_KEEP],
                 sum.strength_actions[OAIF__V1__STRENGTH_ACTION__STRENGTH_ACTION_FLIP],
                 sum.strength_actions[OAIF__V1__STRENGTH_ACTION__STRENGTH_ACTION_SMOOTH],
                 sum.strength_actions[OAIF__V1__STRENGTH_ACTION__STRENGTH_ACTION_MARGIN],
                 sum.strength_actions[OAIF__V1__STRENGTH_ACTION__STRENGTH_ACTION_SOFT],
                 sum.strength_actions[OAIF__V1__STRENGTH_ACTION__STRENGTH_ACTION_DROP],
                 sum.strength_failed);
    metrics_server_stop(&http);
    metrics_destroy(&metrics);
    if (zctx)
        zmq_ctx_term(zctx);
    trainer_opts_release(&c);
    return rc && rc != ERR_INTR ? 1 : 0;
}
