/* echo_worker - a worker for the "echo" service (tests and benchmarks): replies with the
 * request's bytes. Options make it misbehave on purpose:
 *   --endpoint EP      the ledger's worker endpoint (required)
 *   --service NAME     service to serve (echo)
 *   --credit N         requests at once (1)
 *   --delay-ms N       sleep before answering (0)
 *   --fail-permanent   answer every request whose payload starts with "bad" as a permanent error
 *   --ignore PREFIX    never answer requests whose payload starts with PREFIX (lease expiry)
 *   --record KIND      with each reply, commit a record of that kind id=request id, data=payload
 *   --curve-secret F --server-key F   CURVE
 * Runs until SIGTERM/SIGINT. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zmq.h>

#include "busworker.h"
#include "err.h"
#include "log.h"

static volatile sig_atomic_t stop_requested;

static void on_stop(int sig)
{
    (void)sig;
    stop_requested = 1;
}

int main(int argc, char **argv)
{
    struct bus_worker_opts o = {.service = "echo", .credit = 1};
    struct bus_curve curve = {0};
    int delay_ms = 0, fail_bad = 0, record_kind = 0;
    const char *ignore = NULL;
    log_init_from_env("echo-worker");
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        char err[512];
        if (!strcmp(a, "--fail-permanent")) {
            fail_bad = 1;
            continue;
        }
        if (!v) {
            fprintf(stderr, "echo_worker: %s needs a value\n", a);
            return 2;
        }
        i++;
        if (!strcmp(a, "--endpoint"))
            o.endpoint = v;
        else if (!strcmp(a, "--service"))
            o.service = v;
        else if (!strcmp(a, "--credit"))
            o.credit = (unsigned)atoi(v);
        else if (!strcmp(a, "--delay-ms"))
            delay_ms = atoi(v);
        else if (!strcmp(a, "--ignore"))
            ignore = v;
        else if (!strcmp(a, "--record"))
            record_kind = atoi(v);
        else if (!strcmp(a, "--curve-secret")) {
            if (bus_curve_load(&curve, v, true, err, sizeof err)) {
                fprintf(stderr, "echo_worker: %s\n", err);
                return 2;
            }
        } else if (!strcmp(a, "--server-key")) {
            struct bus_curve s = {0};
            if (bus_curve_load(&s, v, false, err, sizeof err)) {
                fprintf(stderr, "echo_worker: %s\n", err);
                return 2;
            }
            memcpy(curve.server_key, s.public_key, sizeof curve.server_key);
        } else {
            fprintf(stderr, "echo_worker: unknown option %s\n", a);
            return 2;
        }
    }
    if (!o.endpoint) {
        fprintf(stderr, "echo_worker: --endpoint is required\n");
        return 2;
    }
    o.curve = &curve;
    struct sigaction sa = {.sa_handler = on_stop};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    void *zctx = zmq_ctx_new();
    bus_worker_t *w = NULL;
    int rc = bus_worker_new(&w, zctx, &o);
    while (!rc && !stop_requested) {
        struct bus_req *r = NULL;
        rc = bus_worker_recv(w, 100, &r);
        if (rc == ERR_TIMEOUT || rc == ERR_INTR) {
            rc = ERR_OK;
            continue;
        }
        if (rc)
            break;
        if (ignore && r->len >= strlen(ignore) && !memcmp(r->payload, ignore, strlen(ignore))) {
            bus_req_free(&r);
            continue;
        }
        if (delay_ms) {
            struct timespec ts = {delay_ms / 1000, (long)(delay_ms % 1000) * 1000000L};
            nanosleep(&ts, NULL);
        }
        if (fail_bad && r->len >= 3 && !memcmp(r->payload, "bad", 3)) {
            bus_worker_fail(w, r->id, "payload starts with 'bad'", true);
        } else if (record_kind) {
            Oaif__V1__Record rec = OAIF__V1__RECORD__INIT;
            rec.kind = (Oaif__V1__RecordKind)record_kind;
            rec.id = r->id;
            rec.data.data = r->payload;
            rec.data.len = r->len;
            Oaif__V1__Record *recs[1] = {&rec};
            bus_worker_reply(w, r->id, r->payload, r->len, recs, 1);
        } else {
            bus_worker_reply(w, r->id, r->payload, r->len, NULL, 0);
        }
        bus_req_free(&r);
    }
    bus_worker_destroy(&w);
    zmq_ctx_term(zctx);
    return rc ? 1 : 0;
}
