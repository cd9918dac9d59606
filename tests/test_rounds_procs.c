/* test_rounds_procs - `oaif run` with oaif.run.rounds (services/oaif/rounds.h) end to end through
 * real processes: `oaif up` (a ledger, a sampler, an annotator-proxy with the rules judge, a
 * reward-scorer serving ensemble "main") and `oaif run` in three rounds of one step each on a tiny
 * random model. Round 0's policy is the SFT model (nothing retrained); before rounds 1 and 2 the
 * member of "main" is retrained with MetaRM on the meta set of that round's policy and the member
 * of "base" the vanilla way, each published as a new version (v1, then v2) that the reward-scorer
 * loads; every round's record holds both ensembles' accuracy on the round's pairs and the policy's
 * evaluation, and the summary table lists the three rounds. A first `oaif run`, stopped by SIGINT
 * while round 1's first member trains (slowed down), leaves round 0 recorded and round 1 unbegun
 * (exit 1, said); the next goes on from round 1. Run again at the end, it trains nothing more;
 * more rounds than steps, or the served ensemble as the baseline, are refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <jansson.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "rmfixture.h"
#include "testproc.h"

#ifndef TEST_WATCHDOG_S
#define TEST_WATCHDOG_S 400
#endif

struct rfx {
    char dir[256], ckpt[300], sft[320], data[300], run[300], uplog[300];
    pid_t up;
};

static void write_run_file(const struct rfx *f)
{
    FILE *rf = fopen(f->run, "w");
    assert_non_null(rf);
    fprintf(rf,
            "annotator:\n  backend: rules\n"
            "sampler:\n  checkpoint_dir: %s\n"
            "reward_scorer:\n  ensemble: main\n  checkpoint_dir: %s\n"
            "trainer:\n  run: r\n  reference: %s\n  checkpoint_dir: %s\n  steps: 3\n"
            "  batch: 8\n  prompts_per_request: 8\n  checkpoint_every: 1\n"
            "  max_new_tokens: 12\n  builtin_prompts: 40\n"
            "  instruction: \"Prefer shorter responses.\"\n" /* random answers: by length */
            "oaif:\n"
            "  run:\n    rounds: 3\n    rounds_meta: true\n    rounds_members: 1\n"
            "    rounds_baseline: base\n"
            "  rm:\n    init: %s\n    checkpoint_dir: %s\n    batch: 4\n    epochs: 1\n"
            "    max_len: 96\n    meta_prompts: 4\n    meta_batch: 2\n"
            "    meta_max_new_tokens: 6\n    meta_timeout: 60s\n"
            "  rm_eval:\n    checkpoint_dir: %s\n    max_len: 96\n"
            "  eval:\n    n: 4\n    max_new: 8\n",
            f->ckpt, f->ckpt, f->sft, f->ckpt, f->sft, f->ckpt, f->ckpt);
    fclose(rf);
}

static int setup(void **state)
{
    struct rfx *f = calloc(1, sizeof *f);
    if (!f)
        return -1;
    snprintf(f->dir, sizeof f->dir, "/tmp/oaif-test-rounds-XXXXXX");
    if (!mkdtemp(f->dir))
        return -1;
    snprintf(f->ckpt, sizeof f->ckpt, "%s/ckpt", f->dir);
    snprintf(f->sft, sizeof f->sft, "%s/sft-v000000", f->ckpt);
    snprintf(f->data, sizeof f->data, "%s/data", f->dir);
    snprintf(f->run, sizeof f->run, "%s/run.yaml", f->dir);
    snprintf(f->uplog, sizeof f->uplog, "%s/up.log", f->dir);
    assert_int_equal(mkdir(f->ckpt, 0755), 0);
    setenv("OMP_NUM_THREADS", "1", 1);
    rmfx_tiny_model(f->sft, 96, 5, 0.02f);
    write_run_file(f);
    char *argv[] = {(char *)tp_bin("services/oaif/oaif"),
                    "up",
                    "--data",
                    f->data,
                    "--config",
                    f->run,
                    "--clients",
                    "tcp://127.0.0.1:*",
                    "--workers",
                    "tcp://127.0.0.1:*",
                    "--events",
                    "tcp://127.0.0.1:*",
                    "--annotators=1",
                    "--scorers=1",
                    NULL};
    f->up = tp_spawn(argv, f->uplog);
    char ep[400], cep[256];
    snprintf(ep, sizeof ep, "%s/endpoints", f->data);
    assert_true(tp_read_kv(ep, "clients", cep, sizeof cep, 20000));
    setenv("BUS_CLIENTS_ENDPOINT", cep, 1);
    tp_watchdog(TEST_WATCHDOG_S, "test_rounds_procs", f->uplog);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct rfx *f = *state;
    if (f->up > 0) {
        kill(f->up, SIGINT);
        for (int i = 0; i < 300 && tp_alive(f->up); i++)
            usleep(100000);
        if (tp_alive(f->up))
            tp_stop(f->up, SIGKILL);
    }
    tp_watchdog(0, NULL, NULL);
    int rc = 0;
    if (!getenv("KEEP_LOGS")) {
        char cmd[300];
        snprintf(cmd, sizeof cmd, "rm -rf %s", f->dir);
        rc = system(cmd) == 0 ? 0 : -1;
    } else {
        fprintf(stderr, "logs kept in %s\n", f->dir);
    }
    free(f);
    return rc;
}

/* Whether the file at path holds `needle`. */
static bool file_has(const char *path, const char *needle)
{
    FILE *in = fopen(path, "r");
    if (!in)
        return false;
    static char text[1 << 20];
    size_t n = fread(text, 1, sizeof text - 1, in);
    fclose(in);
    text[n] = '\0';
    return strstr(text, needle) != NULL;
}

/* The records of rounds.jsonl, one JSON object a line. */
static json_t *read_records(const struct rfx *f)
{
    char path[400];
    snprintf(path, sizeof path, "%s/rounds/rounds.jsonl", f->data);
    FILE *in = fopen(path, "r");
    assert_non_null(in);
    json_t *all = json_array();
    char line[1 << 14];
    while (fgets(line, sizeof line, in)) {
        json_error_t e;
        json_t *j = json_loads(line, 0, &e);
        if (!j)
            fail_msg("%s: not JSON (%s): %s", path, e.text, line);
        json_array_append_new(all, j);
    }
    fclose(in);
    return all;
}

/* Round r's record checked: its policy version, what it published (one member of "main" and one
 * of "base"), its two ensembles scored with the members published or, in round 0, said to be
 * missing, and its evaluation. Returns the version of main's member (0 in round 0). */
static unsigned check_round(const json_t *rec, int r)
{
    assert_int_equal(json_integer_value(json_object_get(rec, "round")), r);
    assert_int_equal(json_integer_value(json_object_get(rec, "step_to")), r + 1);
    assert_int_equal(json_integer_value(json_object_get(rec, "policy_version")), r);
    const json_t *pub = json_object_get(rec, "published");
    assert_int_equal(json_is_true(json_object_get(rec, "retrained")), r > 0);
    assert_int_equal(json_array_size(pub), r > 0 ? 2 : 0);
    unsigned version = 0;
    const json_t *ens = json_object_get(rec, "ensembles");
    assert_int_equal(json_array_size(ens), 2);
    for (size_t k = 0; k < 2; k++) {
        const json_t *e = json_array_get(ens, k);
        assert_string_equal(json_string_value(json_object_get(e, "ensemble")), k ? "base" : "main");
        assert_int_equal(json_is_true(json_object_get(e, "meta")), k == 0);
        if (r == 0) { /* nothing published yet: said, not scored */
            assert_non_null(json_string_value(json_object_get(e, "error")));
            continue;
        }
        if (json_object_get(e, "error"))
            fail_msg("round %d, %s: %s", r, json_string_value(json_object_get(e, "ensemble")),
                     json_string_value(json_object_get(e, "error")));
        const char *published = json_string_value(json_array_get(pub, k));
        const char *name = k ? "base/m0@v" : "main/m0@v";
        assert_non_null(published);
        assert_int_equal(strncmp(published, name, strlen(name)), 0);
        unsigned v = (unsigned)strtoul(published + strlen(name), NULL, 10);
        if (k == 0)
            version = v;
        assert_true(json_integer_value(json_object_get(e, "pairs")) > 0);
        assert_true(json_is_number(json_object_get(e, "accuracy")));
        const json_t *m0 = json_array_get(json_object_get(e, "members"), 0);
        assert_string_equal(json_string_value(json_object_get(m0, "model")), published);
    }
    const json_t *ev = json_object_get(rec, "eval");
    if (json_object_get(ev, "error"))
        fail_msg("round %d: eval: %s", r, json_string_value(json_object_get(ev, "error")));
    assert_int_equal(json_integer_value(json_object_get(ev, "version")), r + 1);
    assert_true(json_is_number(json_object_get(ev, "win_rate")));
    return version;
}

/* `oaif run` stopped by SIGINT in round 1's retraining, one member at a time, slowed down: round
 * 0 is recorded, round 1 not begun, and it says so. */
static void stop_in_round_1(struct rfx *f)
{
    char cmd[2000], log[400], member[400], path[400];
    snprintf(log, sizeof log, "%s/stopped-run.log", f->dir);
    snprintf(member, sizeof member, "%s/logs/rounds-r1-main-m0.log", f->data);
    snprintf(cmd, sizeof cmd,
             "RM_STEP_SLEEP=300ms exec %s run %s --data %s --rounds-jobs 1 >>%s 2>&1",
             tp_bin("services/oaif/oaif"), f->run, f->data, log);
    char *argv[] = {"/bin/sh", "-c", cmd, NULL};
    pid_t pid = tp_spawn(argv, NULL);
    assert_true(pid > 0);
    for (int i = 0; i < 1200 && !file_has(member, "rm "); i++) {
        char st[200];
        if (tp_state(pid, st, sizeof st)) {
            tp_log_tail(log, 8000);
            fail_msg("oaif run %s before round 1's retraining", st);
        }
        usleep(50000);
    }
    int st = tp_stop(pid, SIGINT);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 1 ||
        !file_has(log, "stopped in round 1's reward-model training")) {
        tp_log_tail(log, 8000);
        fail_msg("oaif run stopped in round 1: want exit 1 and the reason");
    }
    snprintf(path, sizeof path, "%s/rounds/round-1.json", f->data);
    assert_int_not_equal(access(path, F_OK), 0);
    json_t *recs = read_records(f);
    assert_int_equal(json_array_size(recs), 1);
    json_decref(recs);
    snprintf(path, sizeof path, "%s/logs/rounds-r1-base-m0.log", f->data);
    assert_int_not_equal(access(path, F_OK), 0); /* one at a time: not started */
}

static void test_three_rounds_retrain_and_record(void **state)
{
    struct rfx *f = *state;
    static char out[1 << 16];
    char args[1200], path[600];
    stop_in_round_1(f);
    snprintf(args, sizeof args, "run %s --data %s", f->run, f->data);
    int rc = rmfx_oaif(out, sizeof out, args);
    if (rc != 0)
        fail_msg("oaif run (3 rounds): exit %d\n%s", rc, out);
    fprintf(stderr, "%s", out);
    assert_non_null(strstr(out, "rounds: 1 of 3 done"));
    assert_null(strstr(out, "round 0/3:"));
    assert_non_null(strstr(out, "round 1/3: retraining 1 member(s) of 'main' with MetaRM"));
    assert_non_null(strstr(out, "round 2/3: online training to step 3"));

    json_t *recs = read_records(f);
    assert_int_equal(json_array_size(recs), 3);
    unsigned v[3];
    for (int r = 0; r < 3; r++)
        v[r] = check_round(json_array_get(recs, (size_t)r), r);
    json_decref(recs);
    /* republished between rounds: round 1's member (v1, or v2 when the stopped one resumed into a
     * second version) and a newer one in round 2 */
    assert_true(v[1] >= 1);
    assert_true(v[2] > v[1]);

    /* MetaRM's meta set came from the round's policy; the vanilla member had none */
    snprintf(path, sizeof path, "%s/logs/rounds-r1-main-m0.log", f->data);
    assert_true(file_has(path, "responses of policy v1"));
    snprintf(path, sizeof path, "%s/logs/rounds-r2-main-m0.log", f->data);
    assert_true(file_has(path, "responses of policy v2"));
    snprintf(path, sizeof path, "%s/logs/rounds-r2-base-m0.log", f->data);
    assert_true(file_has(path, "rm: published reward-base-m0-v2"));
    assert_false(file_has(path, "meta set"));

    /* the reward-scorer loaded the republished member by itself */
    char logs[400];
    snprintf(logs, sizeof logs, "%s/logs/reward-scorer-1.log", f->data);
    bool loaded = false;
    char newest[64];
    snprintf(newest, sizeof newest, "main/m0@v%u loaded", v[2]);
    for (int i = 0; i < 200 && !loaded; i++) {
        loaded = file_has(logs, newest);
        if (!loaded)
            usleep(100000);
    }
    assert_true(loaded);

    /* the summary: the table of the three rounds */
    snprintf(path, sizeof path, "%s/rounds/summary.txt", f->data);
    assert_true(file_has(path, "main (MetaRM)"));
    assert_true(file_has(path, "base (vanilla)"));
    assert_true(file_has(path, "2     2-3 "));

    /* again: every round is done, nothing is trained */
    rc = rmfx_oaif(out, sizeof out, args);
    if (rc != 0 || !strstr(out, "rounds: 3 of 3 done") || strstr(out, "retraining") ||
        !strstr(out, "main (MetaRM)"))
        fail_msg("oaif run again: exit %d\n%s", rc, out);
    snprintf(path, sizeof path, "%s/logs/rounds-r3-main-m0.log", f->data);
    assert_int_not_equal(access(path, F_OK), 0);

    /* bad rounds: more than trainer.steps, the baseline the served ensemble; refused, named */
    snprintf(args, sizeof args, "run %s --data %s --rounds 4", f->run, f->data);
    rc = rmfx_oaif(out, sizeof out, args);
    if (rc != 2 || !strstr(out, "oaif.run.rounds is 4 but trainer.steps is 3"))
        fail_msg("--rounds 4 of 3 steps: exit %d\n%s", rc, out);
    snprintf(args, sizeof args, "run %s --data %s --rounds-baseline main", f->run, f->data);
    rc = rmfx_oaif(out, sizeof out, args);
    if (rc != 2 || !strstr(out, "oaif.run.rounds_baseline 'main' is the served ensemble"))
        fail_msg("--rounds-baseline main: exit %d\n%s", rc, out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_three_rounds_retrain_and_record, setup, teardown),
    };
    return cmocka_run_group_tests_name("rounds_procs", tests, NULL, NULL);
}
