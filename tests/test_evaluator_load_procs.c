/* test_evaluator_load_procs - an evaluator on a ledger of many prompts keeps its heartbeats.
 * The evaluator reads the first evaluator.prompts of its split by scanning every prompt record,
 * 1000 a page. It did so in one go in its poll loop: on a ledger of 300,000 training prompts
 * stored before the 12 held-out ones, the loop stopped for longer than three heartbeat intervals,
 * so the worker took the ledger for gone and reconnected (and the ledger dropped it, with its
 * leases). Now it reads a slice of pages a turn (at most 100 ms) and goes on at the next. A real
 * ledger and evaluator; the evaluation itself is not run (no sampler): the evaluator's line
 * "evaluating against v0 on 12 prompts" says the prompts were read. */
#include <setjmp.h> /* cmocka 1.1 needs these four first */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

#include "bus.h"
#include "busclient.h"
#include "ckpt.h"
#include "err.h"
#include "testproc.h"

#define NTRAIN 300000
#define NEVAL  12
#define CHUNK  25000

struct fx {
    char dir[256], log[300], ep[300], cep[256], wep[256];
    pid_t ledger, evaluator;
    void *zctx;
    bus_client_t *c;
};

/* Prompts [from, to) of `split` ("t<i>" or "e<i>"), in puts of CHUNK. */
static void put_prompts(struct fx *f, const char *split, int from, int to)
{
    Oaif__V1__Record *recs = calloc(CHUNK, sizeof *recs);
    Oaif__V1__Record **rp = calloc(CHUNK, sizeof *rp);
    uint8_t(*bufs)[64] = calloc(CHUNK, sizeof *bufs);
    char(*ids)[16] = calloc(CHUNK, sizeof *ids);
    assert_true(recs && rp && bufs && ids);
    for (int a = from; a < to; a += CHUNK) {
        int n = to - a < CHUNK ? to - a : CHUNK;
        for (int i = 0; i < n; i++) {
            snprintf(ids[i], sizeof ids[i], "%c%d", split[0], a + i);
            Oaif__V1__Prompt p = OAIF__V1__PROMPT__INIT;
            p.id = ids[i];
            p.text = "What is 1 + 1?";
            p.reference = "2";
            p.split = (char *)split;
            size_t len = oaif__v1__prompt__get_packed_size(&p);
            assert_true(len <= sizeof bufs[i]);
            oaif__v1__prompt__pack(&p, bufs[i]);
            oaif__v1__record__init(&recs[i]);
            recs[i].kind = OAIF__V1__RECORD_KIND__RECORD_KIND_PROMPT;
            recs[i].id = ids[i];
            recs[i].data.data = bufs[i];
            recs[i].data.len = len;
            rp[i] = &recs[i];
        }
        char put_id[64];
        snprintf(put_id, sizeof put_id, "prompts-%s-%d", split, a);
        assert_int_equal(bus_client_put(f->c, put_id, rp, (size_t)n, true, 60000), ERR_OK);
    }
    free(recs);
    free(rp);
    free(bufs);
    free(ids);
}

static void publish(struct fx *f, uint32_t version)
{
    Oaif__V1__Checkpoint ck = OAIF__V1__CHECKPOINT__INIT;
    ck.version = version;
    ck.kind = version ? OAIF__V1__CHECKPOINT_KIND__CHECKPOINT_KIND_POLICY
                      : OAIF__V1__CHECKPOINT_KIND__CHECKPOINT_KIND_SFT;
    char path[400];
    snprintf(path, sizeof path, "%s/ckpt/v%u", f->dir, version);
    ck.path = path;
    ck.sha256 = "0000000000000000000000000000000000000000000000000000000000000000";
    ck.created_ms = bus_now_ms();
    ck.run = "test";
    assert_int_equal(ckpt_publish(f->c, &ck, 5000), ERR_OK);
}

static void test_many_prompts_do_not_stop_the_heartbeats(void **state)
{
    struct fx *f = *state;
    put_prompts(f, "train", 0, NTRAIN);
    put_prompts(f, "eval", 0, NEVAL);
    publish(f, 0);
    publish(f, 2);
    char *argv[] = {(char *)tp_bin("services/evaluator/evaluator"),
                    "--clients",
                    f->cep,
                    "--workers",
                    f->wep,
                    "--events",
                    "",
                    "--heartbeat",
                    "200ms",
                    "--every",
                    "2",
                    "--prompts",
                    "12",
                    "--batch",
                    "4",
                    "--run",
                    "test",
                    NULL};
    f->evaluator = tp_spawn(argv, f->log);
    assert_true(f->evaluator > 0);
    int i = 0;
    for (; i < 600 && !tp_log_count(f->log, "test v2: evaluating against v0 on 12 prompts"); i++)
        usleep(100000);
    if (i == 600) {
        tp_log_tail(f->log, 4000);
        fail_msg("the evaluator did not start v2's evaluation in 60 s");
    }
    usleep(500000); /* three heartbeat intervals more */
    assert_true(tp_alive(f->evaluator));
    if (tp_log_count(f->log, "reconnecting") ||
        tp_log_count(f->log, "silent for too many heartbeat")) {
        tp_log_tail(f->log, 4000);
        fail_msg("the evaluator's worker went silent while it read the prompts");
    }
}

static int setup(void **state)
{
    static struct fx fx;
    struct fx *f = &fx;
    memset(f, 0, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/oaif-evalload-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->log, sizeof f->log, "%.200s/services.log", f->dir);
    snprintf(f->ep, sizeof f->ep, "%.200s/endpoints", f->dir);
    tp_watchdog(150, "evaluator_load_procs", f->log);
    f->ledger = tp_ledger(f->dir, f->log, (const char *const[]){"--heartbeat", "200ms", NULL},
                          "clients", f->cep, sizeof f->cep);
    assert_true(f->ledger > 0);
    assert_true(tp_read_kv(f->ep, "workers", f->wep, sizeof f->wep, 10000));
    f->zctx = zmq_ctx_new();
    struct bus_client_opts o = {.endpoint = f->cep};
    assert_int_equal(bus_client_new(&f->c, f->zctx, &o), ERR_OK);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    if (f->evaluator > 0)
        tp_stop(f->evaluator, SIGTERM);
    if (f->ledger > 0)
        tp_stop(f->ledger, SIGTERM);
    bus_client_destroy(&f->c);
    zmq_ctx_term(f->zctx);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", f->dir);
    if (system(cmd) != 0)
        fprintf(stderr, "left %s\n", f->dir);
    tp_watchdog(0, NULL, NULL);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_many_prompts_do_not_stop_the_heartbeats),
    };
    return cmocka_run_group_tests_name("evaluator_load_procs", tests, setup, teardown);
}
