/* test_trainer_strength_procs - preference strength in the online loop, with real processes: a
 * ledger, a sampler, a reward-scorer serving an ensemble of two tiny random reward models, a
 * strength-estimator, the trainer with trainer.strength.enabled, and (in a thread of this test)
 * an annotate worker that labels by a fixed rule.
 *  - Required: while no estimator runs, the trainer waits (no step, no checkpoint); once one
 *    starts, the run ends. `oaif audit` is clean and lists the trained pairs by their Strength's
 *    action (flip for mu < 0, keep otherwise, drop for |mu| under a threshold): the steps applied
 *    exactly what the records say, every trained pair has its Strength, and the dropped pairs are
 *    set aside as "strength drop".
 *  - Advisory: with no estimator at all, every pair trains as labeled after the timeout, counted
 *    in the step records, the log and /metrics, and the audit is clean. */
#include <setjmp.h> /* cmocka 1.1 needs these four first; keep <cmocka.h> */
#include <stdarg.h> /* in its own block, or clang-format sorts it above them */
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <curl/curl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zmq.h>

#include "buf.h"
#include "busclient.h"
#include "busworker.h"
#include "checkpoint.h"
#include "ckpt.h"
#include "err.h"
#include "model.h"
#include "testproc.h"
#include "tpbus.h"
#include "tpmetrics.h"

#ifndef TEST_WATCHDOG_S
#define TEST_WATCHDOG_S 300
#endif

struct fx {
    char dir[256], log[300], ep[300], ckpt[300], sft[320], store[300];
    char cep[256], wep[256], eep[256];
    pid_t ledger, sampler, scorer, estimator, trainer;
    void *zctx;
    bus_client_t *c;
    pthread_t judge;
    atomic_int stop;
};

/* ---- the judge: prefers the response whose text sorts first ------------------------------- */

static void *judge_main(void *arg)
{
    struct fx *f = arg;
    struct bus_worker_opts o = {
        .endpoint = f->wep, .service = "annotate", .credit = 8, .heartbeat_ms = 200};
    bus_worker_t *w = NULL;
    while (!atomic_load(&f->stop) && bus_worker_new(&w, f->zctx, &o))
        usleep(100000);
    while (w && !atomic_load(&f->stop)) {
        struct bus_req *r = NULL;
        if (bus_worker_recv(w, 100, &r))
            continue;
        Oaif__V1__AnnotateRequest *ar =
            oaif__v1__annotate_request__unpack(NULL, r->len, r->payload);
        if (!ar || !ar->pair || ar->pair->n_responses != 2) {
            bus_worker_fail(w, r->id, "not an AnnotateRequest with two responses", true);
        } else {
            Oaif__V1__Label l = OAIF__V1__LABEL__INIT;
            l.id = r->id;
            l.pair_id = ar->pair->id;
            l.judge = "test-judge";
            l.winner = strcmp(ar->pair->responses[0]->text, ar->pair->responses[1]->text) <= 0
                           ? OAIF__V1__WINNER__WINNER_FIRST
                           : OAIF__V1__WINNER__WINNER_SECOND;
            Oaif__V1__AnnotateReply rep = OAIF__V1__ANNOTATE_REPLY__INIT;
            rep.label = &l;
            uint8_t buf[4096], lbuf[4096];
            size_t n = oaif__v1__annotate_reply__pack(&rep, buf);
            size_t ln = oaif__v1__label__pack(&l, lbuf);
            Oaif__V1__Record rec = OAIF__V1__RECORD__INIT;
            rec.kind = OAIF__V1__RECORD_KIND__RECORD_KIND_LABEL;
            rec.id = r->id;
            rec.data.data = lbuf;
            rec.data.len = ln;
            Oaif__V1__Record *recs[1] = {&rec};
            bus_worker_reply(w, r->id, buf, n, recs, 1);
        }
        if (ar)
            oaif__v1__annotate_request__free_unpacked(ar, NULL);
        bus_req_free(&r);
    }
    bus_worker_destroy(&w);
    return NULL;
}

/* ---- processes ---------------------------------------------------------------------------- */

static void start_ledger(struct fx *f)
{
    char db[320];
    snprintf(db, sizeof db, "%s/db", f->dir);
    char *argv[] = {(char *)tp_bin("services/ledger/ledger"),
                    "--db",
                    db,
                    "--clients",
                    "tcp://127.0.0.1:*",
                    "--workers",
                    "tcp://127.0.0.1:*",
                    "--events",
                    "tcp://127.0.0.1:*",
                    "--heartbeat",
                    "200ms",
                    "--lease",
                    "20s",
                    "--sync=false",
                    "--endpoints-file",
                    f->ep,
                    NULL};
    f->ledger = tp_spawn(argv, f->log);
    assert_true(f->ledger > 0);
    assert_true(tp_read_kv(f->ep, "clients", f->cep, sizeof f->cep, 10000));
    assert_true(tp_read_kv(f->ep, "workers", f->wep, sizeof f->wep, 1000));
    assert_true(tp_read_kv(f->ep, "events", f->eep, sizeof f->eep, 1000));
}

/* The tiny random "SFT" model the sampler and the trainer start from. */
static void make_sft(struct fx *f)
{
    struct nn_config c;
    nn_config_default(&c);
    c.hidden_size = 32;
    c.intermediate_size = 64;
    c.num_hidden_layers = 1;
    c.num_attention_heads = 2;
    c.num_key_value_heads = 1;
    c.max_position_embeddings = 96;
    nn_model_t *m = NULL;
    char err[256];
    assert_int_equal(nn_model_new(&m, &c, err, sizeof err), ERR_OK);
    nn_model_init_random(m, 5, 0.02f);
    assert_int_equal(nn_checkpoint_save(m, f->sft, err, sizeof err), ERR_OK);
    nn_model_destroy(&m);
}

/* Member `member` (version 1) of ensemble "e": a random reward model, written to the store and
 * recorded in the ledger. */
static void publish_member(struct fx *f, uint32_t member, uint64_t seed)
{
    struct nn_config c;
    nn_config_default(&c);
    c.hidden_size = 32;
    c.intermediate_size = 64;
    c.num_hidden_layers = 1;
    c.num_attention_heads = 2;
    c.num_key_value_heads = 1;
    c.max_position_embeddings = 256;
    c.reward_head = true;
    nn_model_t *m = NULL;
    char err[256], dir[PATH_MAX], file[PATH_MAX + 32], hex[65], id[64];
    assert_int_equal(nn_model_new(&m, &c, err, sizeof err), ERR_OK);
    nn_model_init_random(m, seed, 0.5f);
    snprintf(dir, sizeof dir, "%s/reward-e-m%u-v%06u", f->store, member, 1u);
    assert_int_equal(nn_checkpoint_save(m, dir, err, sizeof err), ERR_OK);
    nn_model_destroy(&m);
    snprintf(file, sizeof file, "%s/%s", dir, NN_CKPT_WEIGHTS);
    assert_int_equal(ckpt_file_sha256(file, hex, err, sizeof err), ERR_OK);
    snprintf(id, sizeof id, "reward-e-m%u-v1", member);
    Oaif__V1__Checkpoint ck = OAIF__V1__CHECKPOINT__INIT;
    ck.id = id;
    ck.kind = OAIF__V1__CHECKPOINT_KIND__CHECKPOINT_KIND_REWARD;
    ck.version = 1;
    ck.ensemble = "e";
    ck.member = member;
    ck.path = dir;
    ck.sha256 = hex;
    ck.created_ms = bus_now_ms();
    ck.run = "test";
    assert_int_equal(ckpt_publish(f->c, &ck, 5000), ERR_OK);
}

static void start_workers(struct fx *f)
{
    char *sampler[] = {(char *)tp_bin("services/sampler/sampler"),
                       "--clients",
                       f->cep,
                       "--workers",
                       f->wep,
                       "--events",
                       f->eep,
                       "--checkpoint-dir",
                       f->ckpt,
                       "--heartbeat",
                       "200ms",
                       NULL};
    f->sampler = tp_spawn(sampler, f->log);
    char *scorer[] = {(char *)tp_bin("services/reward-scorer/reward-scorer"),
                      "--clients",
                      f->cep,
                      "--workers",
                      f->wep,
                      "--events",
                      f->eep,
                      "--heartbeat",
                      "200ms",
                      "--checkpoint-dir",
                      f->store,
                      "--threads",
                      "1",
                      "--ensemble",
                      "e",
                      "--members",
                      "2",
                      NULL};
    f->scorer = tp_spawn(scorer, f->log);
    assert_true(f->sampler > 0 && f->scorer > 0);
    assert_true(tp_wait_workers(f->c, "sample", 1, 15000));
    assert_true(tp_wait_workers(f->c, "score", 1, 15000));
}

/* The estimator of ensemble "e": flip mu < 0, drop |mu| < drop_below. */
static void start_estimator(struct fx *f, const char *drop_below)
{
    char *argv[] = {(char *)tp_bin("services/strength-estimator/strength-estimator"),
                    "--clients",
                    f->cep,
                    "--workers",
                    f->wep,
                    "--events",
                    f->eep,
                    "--heartbeat",
                    "200ms",
                    "--ensemble",
                    "e",
                    "--min-members",
                    "2",
                    "--policy",
                    "flip",
                    "--flip-quantile",
                    "0",
                    "--drop-below",
                    (char *)drop_below,
                    NULL};
    f->estimator = tp_spawn(argv, f->log);
    assert_true(f->estimator > 0);
    assert_true(tp_wait_workers(f->c, "estimate", 1, 15000));
}

/* The trainer of run "t": `steps` steps of 4 pairs, offline (every pair from the SFT model, so the
 * strengths do not drift with the policy), strength on, then the NULL-terminated extra flags. */
static pid_t start_trainer(struct fx *f, const char *steps, const char *const *extra)
{
    char *argv[48] = {(char *)tp_bin("services/trainer/trainer"),
                      "--ledger",
                      f->cep,
                      "--reference",
                      f->sft,
                      "--checkpoints",
                      f->ckpt,
                      "--run",
                      "t",
                      "--steps",
                      (char *)steps,
                      "--batch",
                      "4",
                      "--prompts-per-request",
                      "4",
                      "--inflight",
                      "2",
                      "--checkpoint-every",
                      "2",
                      "--max-new-tokens",
                      "12",
                      "--lr",
                      "1e-3",
                      "--warmup",
                      "0",
                      "--offline",
                      "--strength",
                      NULL};
    size_t n = 0;
    while (argv[n])
        n++;
    for (size_t i = 0; extra && extra[i] && n + 1 < sizeof argv / sizeof argv[0]; i++)
        argv[n++] = (char *)extra[i];
    argv[n] = NULL;
    f->trainer = tp_spawn(argv, f->log);
    assert_true(f->trainer > 0);
    return f->trainer;
}

static int wait_exit(pid_t p, int timeout_s, const char *log)
{
    for (int i = 0; i < timeout_s * 10; i++) {
        int st;
        if (waitpid(p, &st, WNOHANG) == p)
            return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
        usleep(100000);
    }
    tp_stop(p, SIGKILL);
    fprintf(stderr, "pid %d killed at the time limit; the end of %s:\n", (int)p, log);
    tp_log_tail(log, 8000);
    return -1;
}

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/oaif-test-trainer-strength-XXXXXX");
    if (!mkdtemp(f->dir))
        return -1;
    snprintf(f->log, sizeof f->log, "%s/log", f->dir);
    snprintf(f->ep, sizeof f->ep, "%s/endpoints", f->dir);
    snprintf(f->ckpt, sizeof f->ckpt, "%s/ckpt", f->dir);
    snprintf(f->sft, sizeof f->sft, "%s/sft-v000000", f->ckpt);
    snprintf(f->store, sizeof f->store, "%s/store", f->dir);
    setenv("OMP_NUM_THREADS", "1", 1);
    if (mkdir(f->ckpt, 0755) != 0 || mkdir(f->store, 0755) != 0)
        return -1;
    f->zctx = zmq_ctx_new();
    make_sft(f);
    start_ledger(f);
    setenv("BUS_CLIENTS_ENDPOINT", f->cep, 1);
    struct bus_client_opts o = {.endpoint = f->cep};
    assert_int_equal(bus_client_new(&f->c, f->zctx, &o), ERR_OK);
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "%s task prompts --n 40 | %s import prompts - >/dev/null",
             tp_bin("services/oaif/oaif"), tp_bin("services/oaif/oaif"));
    if (system(cmd) != 0)
        return -1;
    publish_member(f, 0, 101);
    publish_member(f, 1, 202);
    start_workers(f);
    assert_int_equal(pthread_create(&f->judge, NULL, judge_main, f), 0);
    tp_watchdog(TEST_WATCHDOG_S, "this trainer_strength_procs test", f->log);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    pid_t *ps[] = {&f->trainer, &f->estimator, &f->scorer, &f->sampler};
    for (size_t i = 0; i < sizeof ps / sizeof ps[0]; i++)
        if (*ps[i] > 0 && tp_alive(*ps[i]))
            tp_stop(*ps[i], i == 0 ? SIGKILL : SIGTERM);
    atomic_store(&f->stop, 1);
    pthread_join(f->judge, NULL);
    bus_client_destroy(&f->c);
    if (f->ledger > 0)
        tp_stop(f->ledger, SIGTERM);
    zmq_ctx_term(f->zctx);
    if (!getenv("KEEP_LOGS")) {
        char cmd[300];
        snprintf(cmd, sizeof cmd, "rm -rf %s", f->dir);
        if (system(cmd) != 0)
            return -1;
    } else {
        fprintf(stderr, "logs kept in %s\n", f->dir);
    }
    free(f);
    tp_watchdog(0, NULL, NULL);
    return 0;
}

/* ---- what the ledger holds ---------------------------------------------------------------- */

/* `oaif audit`'s output into out; its exit status. */
static int audit(char *out, size_t len)
{
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "%s audit 2>&1", tp_bin("services/oaif/oaif"));
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    size_t n = fread(out, 1, len - 1, p);
    out[n] = '\0';
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* The number after `label` in out (-1 when absent). */
static long count_of(const char *out, const char *label)
{
    const char *p = strstr(out, label);
    return p ? strtol(p + strlen(label), NULL, 10) : -1;
}

/* The audit's line for action `name`: by record and applied in steps (-1 when absent; applied
 * is -1 for drop, which no step applies). */
static void action_line(const char *out, const char *name, long *records, double *applied)
{
    *records = -1;
    *applied = -1;
    for (const char *p = strstr(out, "strength        "); p;
         p = strstr(p + 1, "strength        ")) {
        char want[32];
        long n;
        double a;
        int got = sscanf(p, "strength        %ld %31s (applied in steps: %lf)", &n, want, &a);
        if (got >= 2 && !strcmp(want, name)) {
            *records = n;
            *applied = got == 3 ? a : -1;
        }
    }
}

/* Every Strength record in the ledger: their mus into mu (cap), the count. */
static size_t strengths(struct fx *f, double *mu, size_t cap)
{
    Oaif__V1__Envelope *env = NULL;
    assert_int_equal(
        bus_client_scan(f->c, OAIF__V1__RECORD_KIND__RECORD_KIND_STRENGTH, 0, 1000, 5000, &env),
        ERR_OK);
    size_t n = 0;
    for (size_t i = 0; i < env->records->n_records; i++) {
        const Oaif__V1__Record *r = env->records->records[i];
        Oaif__V1__Strength *s = oaif__v1__strength__unpack(NULL, r->data.len, r->data.data);
        assert_non_null(s);
        if (n < cap)
            mu[n] = s->mean;
        n++;
        oaif__v1__strength__free_unpacked(s, NULL);
    }
    oaif__v1__envelope__free_unpacked(env, NULL);
    return n;
}

static long newest_version(struct fx *f)
{
    Oaif__V1__Checkpoint *ck = NULL;
    long v = -1;
    if (ckpt_find_policy(f->c, -1, 2000, &ck) == ERR_OK) {
        v = ck->version;
        oaif__v1__checkpoint__free_unpacked(ck, NULL);
    }
    return v;
}

/* ---- tests -------------------------------------------------------------------------------- */

static void test_required_strength_waits_then_audit_lists_actions(void **state)
{
    struct fx *f = *state;
    pid_t t = start_trainer(f, "4", NULL);
    /* No estimator: labeled pairs wait for their estimates, and nothing is trained. */
    sleep(4);
    assert_true(tp_alive(t));
    assert_int_equal(newest_version(f), 0); /* SFT's alone */
    /* The pairs are sampled from SFT with fixed seeds, so their mu are too: from -4 to 4.4, a
     * third with |mu| < 0.8, more negative than positive ones outside. Some pairs drop, some
     * flip and some keep. */
    start_estimator(f, "0.8");
    assert_int_equal(wait_exit(t, 180, f->log), 0);
    assert_int_equal(newest_version(f), 2);

    char out[8192];
    int rc = audit(out, sizeof out);
    if (rc != 0)
        fail_msg("audit failed:\n%s", out);
    assert_int_equal(count_of(out, "pairs trained   "), 16);
    assert_int_equal(count_of(out, "trained twice   "), 0);
    assert_int_equal(count_of(out, "trained, no strength "), 0);
    long keep, flip, drop;
    double akeep, aflip, adrop;
    action_line(out, "keep", &keep, &akeep);
    action_line(out, "flip", &flip, &aflip);
    action_line(out, "drop", &drop, &adrop);
    if (keep < 1 || flip < 1 || drop < 1)
        fail_msg("the audit lists keep %ld, flip %ld, drop %ld:\n%s", keep, flip, drop, out);
    /* required: the steps applied exactly what the trained pairs' records say */
    assert_int_equal(keep + flip, 16);
    assert_true(akeep == (double)keep && aflip == (double)flip);
    /* the dropped pairs were set aside, each with its reason */
    const char *sa = strstr(out, " strength drop");
    assert_non_null(sa);
    long set_aside = 0;
    for (const char *p = strstr(out, "set aside       "); p;
         p = strstr(p + 1, "set aside       ")) {
        char why[64];
        long n;
        if (sscanf(p, "set aside       %ld %63[^\n]", &n, why) == 2 &&
            !strcmp(why, "strength drop"))
            set_aside = n;
    }
    assert_int_equal(set_aside, drop);
    /* the records behind the actions: |mu| < 0.8 drops, mu <= -0.8 flips */
    double mu[512];
    size_t n = strengths(f, mu, 512);
    assert_true(n >= 16 + (size_t)drop);
    size_t flips = 0, drops = 0; /* the drop rule comes first */
    for (size_t i = 0; i < n && i < 512; i++) {
        drops += mu[i] > -0.8 && mu[i] < 0.8;
        flips += mu[i] <= -0.8;
    }
    assert_true(drops >= (size_t)drop && flips >= (size_t)flip);
}

/* The value of the series starting with `prefix` on the trainer's /metrics, whose port its log
 * names (-1 when absent). */
static double trainer_metric(struct fx *f, const char *prefix)
{
    static const char needle[] = "metrics on 127.0.0.1:";
    int port = -1;
    for (int i = 0; i < 100 && port < 0; i++) {
        FILE *lf = fopen(f->log, "r");
        char line[2048];
        while (lf && fgets(line, sizeof line, lf))
            if (strstr(line, needle) && strstr(line, "trainer"))
                port = atoi(strstr(line, needle) + strlen(needle));
        if (lf)
            fclose(lf);
        if (port < 0)
            usleep(50000);
    }
    assert_true(port > 0);
    return tp_metric(port, prefix);
}

static void test_advisory_strength_trains_through_an_estimator_that_is_down(void **state)
{
    struct fx *f = *state;
    const char *const extra[] = {
        "--strength-required=false", "--strength-timeout", "300ms", "--metrics-port", "0", NULL};
    pid_t t = start_trainer(f, "100", extra);
    /* No estimator ever runs: every pair waits 300 ms, then trains as labeled. */
    uint64_t deadline = bus_mono_ms() + 120000;
    while (newest_version(f) < 2 && bus_mono_ms() < deadline && tp_alive(t))
        usleep(50000);
    assert_true(newest_version(f) >= 2);
    double failed = trainer_metric(f, "oaif_trainer_strength_failed_total");
    assert_true(failed >= 16); /* two checkpoints of two steps of four pairs, at least */
    assert_true(trainer_metric(f, "oaif_trainer_strength_actions_total{action=\"keep\"}") == 0);
    int st = tp_stop(t, SIGTERM);
    f->trainer = 0;
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);

    char out[8192];
    int rc = audit(out, sizeof out);
    if (rc != 0)
        fail_msg("audit failed:\n%s", out);
    long trained = count_of(out, "pairs trained   ");
    assert_true(trained >= 16);
    assert_int_equal(count_of(out, "strengths       "), 0);
    assert_int_equal(count_of(out, "trained, no strength "), trained);
    char want[80];
    snprintf(want, sizeof want, "(unestimated in steps: %ld)", trained);
    if (!strstr(out, want))
        fail_msg("the audit does not say '%s':\n%s", want, out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_required_strength_waits_then_audit_lists_actions,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_advisory_strength_trains_through_an_estimator_that_is_down, setup, teardown),
    };
    return cmocka_run_group_tests_name("trainer_strength_procs", tests, NULL, NULL);
}
