/* test_trainer_backoff_procs - a run that can never succeed stops instead of spinning. A real
 * ledger, sampler and trainer: the ledger's version-0 record names a path the sampler cannot
 * read (the store mounted elsewhere, or another deployment's directory), so the sampler falls
 * back to its own checkpoint_dir. Holding another model there, every sample request fails its
 * sha256 check: before, the trainer resubmitted at once forever (190,528 failed requests in 10
 * minutes after deploy/demo.sh then deploy/chaos.sh); now it stops at the first with an error
 * that says what to do. Holding nothing, the requests fail as not found: the trainer backs off
 * (doubling waits) and stops after SAMPLE_FAILURES_MAX failures in a row. A judge that always
 * ties (answering "1" in both orders: position bias cancels to a tie) gives no pair to train on:
 * before, the trainer waited forever while every label was paid for; now it warns, then stops at
 * trainer.max_unusable_labels. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "busclient.h"
#include "checkpoint.h"
#include "ckpt.h"
#include "err.h"
#include "fake_judge_run.h"
#include "rmfixture.h"
#include "testproc.h"

struct fx {
    char dir[256], log[300], ep[300], mine[300], other[300], sft[320], osft[320];
    char cep[256], wep[256], eep[256];
    pid_t ledger, sampler, trainer, proxy;
    struct fake_judge fj;
};

/* The ledger, 40 prompts, and version 0's record as a trainer elsewhere wrote it: the sha256
 * of our reference, at a path that does not exist here. */
static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof *f);
    if (!f)
        return -1;
    snprintf(f->dir, sizeof f->dir, "/tmp/oaif-test-backoff-XXXXXX");
    if (!mkdtemp(f->dir))
        return -1;
    snprintf(f->log, sizeof f->log, "%s/log", f->dir);
    snprintf(f->ep, sizeof f->ep, "%s/endpoints", f->dir);
    snprintf(f->mine, sizeof f->mine, "%s/mine", f->dir);
    snprintf(f->other, sizeof f->other, "%s/other", f->dir);
    snprintf(f->sft, sizeof f->sft, "%s/sft-v000000", f->mine);
    snprintf(f->osft, sizeof f->osft, "%s/sft-v000000", f->other);
    if (mkdir(f->mine, 0755) || mkdir(f->other, 0755))
        return -1;
    rmfx_tiny_model(f->sft, 96, 5, 0.02f);
    tp_watchdog(90, "trainer_backoff_procs", f->log);
    f->ledger = tp_ledger(
        f->dir, f->log,
        (const char *const[]){"--events", "tcp://127.0.0.1:*", "--heartbeat", "200ms", NULL},
        "clients", f->cep, sizeof f->cep);
    assert_true(f->ledger > 0);
    assert_true(tp_read_kv(f->ep, "workers", f->wep, sizeof f->wep, 1000));
    assert_true(tp_read_kv(f->ep, "events", f->eep, sizeof f->eep, 1000));
    char cmd[1200];
    snprintf(cmd, sizeof cmd,
             "%s task prompts --n 40 | %s import prompts - --clients %s >/dev/null",
             tp_bin("services/oaif/oaif"), tp_bin("services/oaif/oaif"), f->cep);
    if (system(cmd) != 0)
        return -1;

    void *zctx = zmq_ctx_new();
    bus_client_t *cl = NULL;
    struct bus_client_opts o = {.endpoint = f->cep};
    assert_int_equal(bus_client_new(&cl, zctx, &o), ERR_OK);
    char file[400], sha[65], err[256];
    snprintf(file, sizeof file, "%s/%s", f->sft, NN_CKPT_WEIGHTS);
    assert_int_equal(ckpt_file_sha256(file, sha, err, sizeof err), ERR_OK);
    Oaif__V1__Checkpoint ck = OAIF__V1__CHECKPOINT__INIT;
    ck.version = 0;
    ck.kind = OAIF__V1__CHECKPOINT_KIND__CHECKPOINT_KIND_SFT;
    ck.path = "/nonexistent/elsewhere/sft-v000000";
    ck.sha256 = sha;
    ck.run = "t";
    assert_int_equal(ckpt_publish(cl, &ck, 5000), ERR_OK);
    bus_client_destroy(&cl);
    zmq_ctx_term(zctx);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    if (f->trainer > 0 && tp_alive(f->trainer))
        tp_stop(f->trainer, SIGKILL);
    if (f->sampler > 0)
        tp_stop(f->sampler, SIGTERM);
    if (f->proxy > 0)
        tp_stop(f->proxy, SIGTERM);
    fake_judge_stop(&f->fj);
    if (f->ledger > 0)
        tp_stop(f->ledger, SIGTERM);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", f->dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", f->dir);
    free(f);
    tp_watchdog(0, NULL, NULL);
    return 0;
}

/* A sampler reading checkpoints from `dir`. */
static void start_sampler_in(struct fx *f, const char *dir)
{
    char *argv[] = {(char *)tp_bin("services/sampler/sampler"),
                    "--clients",
                    f->cep,
                    "--workers",
                    f->wep,
                    "--events",
                    f->eep,
                    "--checkpoint-dir",
                    (char *)dir,
                    "--heartbeat",
                    "200ms",
                    NULL};
    f->sampler = tp_spawn(argv, f->log);
    assert_true(f->sampler > 0);
}

static void start_sampler(struct fx *f)
{
    start_sampler_in(f, f->other);
}

/* Runs the trainer to its end with the NULL-terminated extra flags; its exit status, and the
 * seconds it took into *secs. */
static int run_trainer_with(struct fx *f, const char *const *extra, double *secs)
{
    char *argv[] = {(char *)tp_bin("services/trainer/trainer"),
                    "--ledger",
                    f->cep,
                    "--reference",
                    f->sft,
                    "--checkpoints",
                    f->mine,
                    "--run",
                    "t",
                    "--steps",
                    "3",
                    "--batch",
                    "4",
                    "--prompts-per-request",
                    "4",
                    "--inflight",
                    "1",
                    "--max-new-tokens",
                    "8",
                    NULL,
                    NULL,
                    NULL,
                    NULL,
                    NULL};
    for (int i = 0, n = 19; extra && extra[i] && n < 23; i++)
        argv[n++] = (char *)extra[i];
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    f->trainer = tp_spawn(argv, f->log);
    assert_true(f->trainer > 0);
    int st = 0;
    assert_int_equal(waitpid(f->trainer, &st, 0), f->trainer);
    f->trainer = 0;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    *secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    assert_true(WIFEXITED(st));
    return WEXITSTATUS(st);
}

static int run_trainer(struct fx *f, double *secs)
{
    return run_trainer_with(f, NULL, secs);
}

/* Another model where the sampler looks: permanent, the run stops at the first failure. */
static void test_wrong_model_stops_the_run(void **state)
{
    struct fx *f = *state;
    rmfx_tiny_model(f->osft, 96, 6, 0.02f);
    start_sampler(f);
    double secs = 0;
    assert_int_not_equal(run_trainer(f, &secs), 0);
    assert_true(secs < 30);
    assert_int_equal(tp_log_count(f->log, "trainer: stopping: a checkpoint's weights are not what"),
                     1);
    assert_true(tp_log_count(f->log, "the ledger's record says") >= 1);
    assert_true(tp_log_count(f->log, "trainer: sample request") <= 2);
}

/* No model where the sampler looks: each failure doubles the wait (0.1 s, 0.2 s, ...), and
 * the run stops after 8 in a row instead of resubmitting forever. */
static void test_failing_samples_back_off_then_stop(void **state)
{
    struct fx *f = *state;
    start_sampler(f);
    double secs = 0;
    assert_int_not_equal(run_trainer(f, &secs), 0);
    assert_int_equal(tp_log_count(f->log, "trainer: stopping: sample requests keep failing"), 1);
    /* 7 waits of 0.1 to 6.4 s: 12.7 s; the 8th failure stops it */
    assert_true(secs > 12.0);
    assert_true(secs < 60);
    assert_int_equal(tp_log_count(f->log, "in a row; the next in"), 7);
}

/* The sampler reads the right model (where the trainer's reference is); the only judge always
 * says "1": the annotator asks both orders, the verdicts disagree, every label is a tie. */
static void test_a_judge_that_always_ties_stops_the_run(void **state)
{
    struct fx *f = *state;
    start_sampler_in(f, f->mine);
    const char *bias[] = {"--mode", "bias", NULL};
    assert_int_equal(fake_judge_start(&f->fj, bias), 0);
    char *argv[] = {(char *)tp_bin("services/annotator-proxy/annotator-proxy"),
                    "--clients",
                    f->cep,
                    "--workers",
                    f->wep,
                    "--heartbeat",
                    "200ms",
                    "--backend",
                    "openai",
                    "--template-dir",
                    JUDGE_TEMPLATES,
                    "--base-url",
                    f->fj.base_url,
                    "--model",
                    "judge-1",
                    NULL};
    f->proxy = tp_spawn(argv, f->log);
    assert_true(f->proxy > 0);
    const char *extra[] = {"--max-unusable-labels", "40", NULL};
    double secs = 0;
    assert_int_not_equal(run_trainer_with(f, extra, &secs), 0);
    assert_true(secs < 60);
    /* warned at 4 batches (16) and 32, stopped at 40; no step was ever taken */
    assert_int_equal(tp_log_count(f->log,
                                  "trainer: the last 16 labels gave no pair to train on (the "
                                  "last: a tie); the run stops at 40"),
                     1);
    assert_int_equal(tp_log_count(f->log, "trainer: the last 32 labels gave no pair"), 1);
    assert_int_equal(tp_log_count(f->log,
                                  "trainer: stopping: the last 40 labels gave no pair to train "
                                  "on (the last: a tie; trainer.max_unusable_labels 40)"),
                     1);
    assert_int_equal(tp_log_count(f->log, "step 1/3"), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_wrong_model_stops_the_run, setup, teardown),
        cmocka_unit_test_setup_teardown(test_failing_samples_back_off_then_stop, setup, teardown),
        cmocka_unit_test_setup_teardown(test_a_judge_that_always_ties_stops_the_run, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
