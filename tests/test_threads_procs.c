/* test_threads_procs.c - thread budgets (issue 21), with real processes:
 *
 * `oaif up --train --threads 7 --divide` with shares 3 (trainer), 2 (sampler), 1 (reward-scorer)
 * gives the trainer 3 engine threads, the sampler 2 and the reward-scorer 1: <data>/threads says
 * so, and so does each service's startup line, which reports what the OpenMP runtime has
 * (omp_get_max_threads after the environment was set before libgomp loaded), idle threads sleeping
 * (OMP_WAIT_POLICY PASSIVE, the default, here unset in the environment). The trainer's /metrics has
 * its thread count and the loop's time by phase (compute, waits for samples and labels), and its
 * step lines say them.
 *
 * A service started directly with --threads and no OpenMP environment executes itself again with
 * it (nn_threads.h): its line says 2 threads, PASSIVE; an OMP_WAIT_POLICY of the user's is kept. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <curl/curl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "rmfixture.h"
#include "testproc.h"
#include "tpmetrics.h"

/* Waits up to timeout_ms for a line of the file at path holding needle; copies the rest of that
 * line after the needle to out. false on timeout. */
static bool wait_line(const char *path, const char *needle, char *out, size_t len, int timeout_ms)
{
    for (int waited = 0; waited <= timeout_ms; waited += 50) {
        FILE *f = fopen(path, "r");
        char line[2048];
        while (f && fgets(line, sizeof line, f)) {
            const char *p = strstr(line, needle);
            if (p) {
                snprintf(out, len, "%s", p + strlen(needle));
                out[strcspn(out, "\n")] = '\0';
                fclose(f);
                return true;
            }
        }
        if (f)
            fclose(f);
        usleep(50000);
    }
    return false;
}

static void assert_line(const char *path, const char *needle, const char *want)
{
    char rest[1024];
    if (!wait_line(path, needle, rest, sizeof rest, 30000)) {
        tp_log_tail(path, 3000);
        fail_msg("%s: no line with '%s' in 30 s", path, needle);
    }
    if (strncmp(rest, want, strlen(want)) != 0)
        fail_msg("%s: '%s%s', expected '%s%s'", path, needle, rest, needle, want);
}

/* The budgets `oaif up` wrote to DIR/threads: cores, then the trainer's, sampler's and scorer's. */
static void assert_budgets(const char *dir, const char *cores, const char *trainer,
                           const char *sampler, const char *scorer)
{
    char path[400], v[32];
    snprintf(path, sizeof path, "%s/threads", dir);
    assert_true(tp_read_kv(path, "cores", v, sizeof v, 10000));
    assert_string_equal(v, cores);
    assert_true(tp_read_kv(path, "trainer", v, sizeof v, 1000));
    assert_string_equal(v, trainer);
    assert_true(tp_read_kv(path, "sampler", v, sizeof v, 1000));
    assert_string_equal(v, sampler);
    assert_true(tp_read_kv(path, "reward-scorer", v, sizeof v, 1000));
    assert_string_equal(v, scorer);
}

static void rm_dir(const char *dir)
{
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (getenv("KEEP_LOGS") || system(cmd) != 0)
        fprintf(stderr, "left %s\n", dir);
}

static void test_oaif_up_gives_each_service_its_budget(void **state)
{
    (void)state;
    char dir[] = "/tmp/oaif-test-threads-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char sft[300], run[300], log[300], path[400], logs[300];
    snprintf(sft, sizeof sft, "%s/sft-v000000", dir);
    snprintf(run, sizeof run, "%s/run.yaml", dir);
    snprintf(log, sizeof log, "%s/up.log", dir);
    snprintf(logs, sizeof logs, "%s/logs", dir);
    rmfx_tiny_model(sft, 96, 5, 0.02f); /* room for prompt and answer */
    FILE *f = fopen(run, "w");
    assert_non_null(f);
    fprintf(f,
            "annotator:\n  backend: rules\n"
            "trainer:\n  run: threads\n  reference: %s\n  checkpoint_dir: %s/ckpt\n"
            "  steps: 100000\n  batch: 4\n  prompts_per_request: 4\n  checkpoint_every: 9000\n"
            "  max_new_tokens: 8\n  warmup: 0\n  builtin_prompts: 40\n  metrics_port: 0\n"
            "  instruction: Prefer shorter responses.\n", /* fewer ties between random answers */
            sft, dir);
    assert_int_equal(fclose(f), 0);
    unsetenv("OMP_WAIT_POLICY"); /* the default: oaif up makes idle threads sleep */
    unsetenv("OMP_NUM_THREADS");
    char *argv[] = {(char *)tp_bin("services/oaif/oaif"),
                    "up",
                    "--data",
                    dir,
                    "--config",
                    run,
                    "--train",
                    "--clients",
                    "tcp://127.0.0.1:*",
                    "--workers",
                    "tcp://127.0.0.1:*",
                    "--events",
                    "tcp://127.0.0.1:*",
                    "--annotators",
                    "1",
                    "--scorers",
                    "1",
                    "--threads",
                    "7",
                    "--divide",
                    "--trainer-share",
                    "3",
                    "--sampler-share",
                    "2",
                    "--scorer-share",
                    "1",
                    NULL};
    tp_watchdog(200, "threads_procs", log);
    pid_t up = tp_spawn(argv, log);
    assert_true(up > 0);
    /* 7 cores by shares 3 + 2 + 1: 7 * 3 / 6 = 3, 7 * 2 / 6 = 2, 7 * 1 / 6 = 1 */
    assert_budgets(dir, "7", "3", "2", "1");
    /* what each service's OpenMP runtime has */
    snprintf(path, sizeof path, "%s/trainer.log", logs);
    assert_line(path, "trainer: threads: ", "3 OpenMP (OMP_WAIT_POLICY PASSIVE)");
    snprintf(path, sizeof path, "%s/sampler-1.log", logs);
    assert_line(path, "sampler: threads: ", "2 OpenMP (OMP_WAIT_POLICY PASSIVE)");
    snprintf(path, sizeof path, "%s/reward-scorer-1.log", logs);
    assert_line(path, "reward-scorer: threads: ", "1 OpenMP (OMP_WAIT_POLICY PASSIVE)");
    /* the trainer's /metrics: its threads, and where the loop's time went */
    snprintf(path, sizeof path, "%s/trainer.log", logs);
    char port[32];
    assert_true(wait_line(path, "metrics on 127.0.0.1:", port, sizeof port, 30000));
    int p = atoi(port);
    assert_true(p > 0);
    /* the step line (every 10th) says where the time went; by then /metrics has its series (an
     * empty registry before the loop starts serves an empty page) */
    char rest[1024];
    if (!wait_line(path, "step 10/100000 ", rest, sizeof rest, 150000)) {
        tp_log_tail(path, 3000);
        fail_msg("the trainer did not log step 10 in 150 s");
    }
    if (!strstr(rest, "; compute ") || !strstr(rest, "s, waited for samples ") ||
        !strstr(rest, "s labels "))
        fail_msg("the step line lacks its phases: %s", rest);
    double threads = tp_metric(p, "oaif_trainer_threads");
    if (threads != 3)
        fail_msg("oaif_trainer_threads %g, expected 3", threads);
    double step = tp_metric(p, "oaif_trainer_step");
    double compute = tp_metric(p, "oaif_trainer_seconds_total{phase=\"compute\"}");
    double samples = tp_metric(p, "oaif_trainer_seconds_total{phase=\"wait_samples\"}");
    double labels = tp_metric(p, "oaif_trainer_seconds_total{phase=\"wait_labels\"}");
    double strength = tp_metric(p, "oaif_trainer_seconds_total{phase=\"wait_strength\"}");
    double last = tp_metric(p, "oaif_trainer_step_seconds{phase=\"compute\"}");
    fprintf(stderr,
            "trainer at step %.0f: compute %.3f s, waited for samples %.3f s, labels %.3f "
            "s, strength %.3f s; the last step computed %.4f s\n",
            step, compute, samples, labels, strength, last);
    assert_true(step >= 10);
    assert_true(compute > 0 && last > 0 && last <= compute);
    /* the first step waits for the first samples at least; no strength estimates here */
    assert_true(samples > 0);
    assert_true(labels >= 0);
    assert_true(strength == 0);
    assert_int_equal(tp_stop(up, SIGINT), 0);
    tp_watchdog(0, NULL, NULL);
    rm_dir(dir);
}

/* reward-scorer started directly (no ledger needed to start): its startup line as `want`, the
 * environment as given. */
static void direct(const char *dir, const char *name, const char *threads, const char *want)
{
    char log[400];
    snprintf(log, sizeof log, "%s/%s.log", dir, name);
    char *argv[] = {(char *)tp_bin("services/reward-scorer/reward-scorer"),
                    "--workers",
                    "tcp://127.0.0.1:1",
                    "--threads",
                    (char *)threads,
                    NULL};
    pid_t pid = tp_spawn(argv, log);
    assert_true(pid > 0);
    assert_line(log, "reward-scorer: threads: ", want);
    tp_stop(pid, SIGTERM);
}

static void test_a_service_sets_its_environment_itself(void **state)
{
    (void)state;
    char dir[] = "/tmp/oaif-test-threads-direct-XXXXXX";
    assert_non_null(mkdtemp(dir));
    tp_watchdog(60, "threads_procs (direct)", NULL);
    unsetenv("OMP_WAIT_POLICY");
    unsetenv("OMP_NUM_THREADS");
    direct(dir, "default", "2", "2 OpenMP (OMP_WAIT_POLICY PASSIVE)");
    setenv("OMP_WAIT_POLICY", "ACTIVE", 1); /* the user's choice stands */
    setenv("OMP_NUM_THREADS", "3", 1);      /* --threads wins over it */
    direct(dir, "active", "1", "1 OpenMP (OMP_WAIT_POLICY ACTIVE)");
    unsetenv("OMP_NUM_THREADS");
    setenv("OMP_WAIT_POLICY", "PASSIVE", 1);
    tp_watchdog(0, NULL, NULL);
    rm_dir(dir);
}

/* The default, without --divide: each service its share over the largest share of the cores,
 * since the trainer and the samplers mostly take turns. No compute service is started: the
 * budgets are in <data>/threads as soon as the ledger is up. */
static void test_oaif_up_shares_the_cores_by_default(void **state)
{
    (void)state;
    char dir[] = "/tmp/oaif-test-threads-shared-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char log[300], path[400], v[256];
    snprintf(log, sizeof log, "%s/up.log", dir);
    tp_watchdog(60, "threads_procs (shared)", log);
    char *argv[] = {(char *)tp_bin("services/oaif/oaif"),
                    "up",
                    "--data",
                    dir,
                    "--clients",
                    "tcp://127.0.0.1:*",
                    "--workers",
                    "tcp://127.0.0.1:*",
                    "--events",
                    "tcp://127.0.0.1:*",
                    "--samplers",
                    "0",
                    "--annotators",
                    "0",
                    "--threads",
                    "6",
                    "--trainer-share",
                    "3",
                    "--sampler-share",
                    "2",
                    "--scorer-share",
                    "1",
                    NULL};
    pid_t up = tp_spawn(argv, log);
    assert_true(up > 0);
    /* up (its signal handlers set) once the endpoints are written */
    snprintf(path, sizeof path, "%s/endpoints", dir);
    assert_true(tp_read_kv(path, "clients", v, sizeof v, 10000));
    /* 6 cores, shares 3, 2, 1 over the largest (3): 6, 4, 2 */
    assert_budgets(dir, "6", "6", "4", "2");
    assert_int_equal(tp_stop(up, SIGINT), 0);
    tp_watchdog(0, NULL, NULL);
    rm_dir(dir);
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_a_service_sets_its_environment_itself),
        cmocka_unit_test(test_oaif_up_gives_each_service_its_budget),
        cmocka_unit_test(test_oaif_up_shares_the_cores_by_default),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return rc;
}
