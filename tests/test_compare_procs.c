/* test_compare_procs - `oaif compare` as a real process against a real ledger process holding
 * hand-made EvalResult records: three seeds of "online" and of "offline" (plus an unpaired fourth
 * seed and an older version that must not count), paired by the '*' of the patterns; the numbers
 * the verb prints (--json and the table) equal the paired differences and intervals computed by
 * hand (the mean length's too); records that carry EvalResult.seed pair by it whatever the run
 * names; a run judged by two judges needs --judge; a setting with no evaluation and a missing
 * argument are named. `oaif import evals`: runs of other ledgers, exported, whose records share
 * one id (the trainer's own "eval-policy-v<N>"), come in under "<run>/<id>", once however often
 * the file is imported, and compare as the originals; a bad line imports nothing and is named;
 * `oaif report --runs` puts each setting's runs in the page's data. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <jansson.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zmq.h>

#include "busclient.h"
#include "err.h"
#include "testproc.h"

struct fx {
    char dir[256], log[300], ep[300], cep[256];
    pid_t ledger;
    void *zctx;
};

static struct fx *g;

struct ev {
    const char *run;
    unsigned version;
    const char *judge;
    double win_rate, accuracy;
    uint64_t seed;
};

static const struct ev evs[] = {
    {"online-s1", 1, "rules", 0.30, 0.10, 0}, /* older: must not count */
    {"online-s1", 2, "rules", 0.60, 0.50, 0},    {"online-s2", 2, "rules", 0.70, 0.52, 0},
    {"online-s3", 2, "rules", 0.65, 0.48, 0},    {"offline-s1", 2, "rules", 0.50, 0.52, 0},
    {"offline-s2", 2, "rules", 0.58, 0.50, 0},   {"offline-s3", 2, "rules", 0.57, 0.48, 0},
    {"offline-s4", 2, "rules", 0.90, 0.90, 0}, /* no online partner */
    {"two-judges", 3, "rules", 0.60, 0.50, 0},   {"two-judges", 3, "gpt", 0.55, 0.50, 0},
    {"alpha", 1, "rules", 0.40, 0.30, 11}, /* paired by EvalResult.seed */
    {"alpha-again", 1, "rules", 0.45, 0.35, 12}, {"beta-x", 1, "rules", 0.50, 0.40, 12},
    {"beta-y", 1, "rules", 0.60, 0.50, 11},
};
#define NEVS (sizeof evs / sizeof evs[0])

static void put_evals(struct fx *f)
{
    Oaif__V1__Record recs[NEVS], *rp[NEVS];
    Oaif__V1__EvalResult er[NEVS];
    uint8_t *bufs[NEVS];
    char ids[NEVS][64];
    for (size_t i = 0; i < NEVS; i++) {
        oaif__v1__eval_result__init(&er[i]);
        snprintf(ids[i], sizeof ids[i], "eval-%s-v%u-%s", evs[i].run, evs[i].version, evs[i].judge);
        er[i].id = ids[i];
        er[i].run = (char *)evs[i].run;
        er[i].version = evs[i].version;
        er[i].judge = (char *)evs[i].judge;
        er[i].win_rate = evs[i].win_rate;
        er[i].win_rate_lo = evs[i].win_rate - 0.05;
        er[i].win_rate_hi = evs[i].win_rate + 0.05;
        er[i].accuracy = evs[i].accuracy;
        er[i].mean_length = 100 * evs[i].win_rate; /* its differences: 100 x the win rate's */
        er[i].prompts = 100;
        er[i].seed = evs[i].seed;
        size_t n = oaif__v1__eval_result__get_packed_size(&er[i]);
        bufs[i] = malloc(n);
        assert_non_null(bufs[i]);
        oaif__v1__eval_result__pack(&er[i], bufs[i]);
        oaif__v1__record__init(&recs[i]);
        recs[i].kind = OAIF__V1__RECORD_KIND__RECORD_KIND_EVAL;
        recs[i].id = ids[i];
        recs[i].data.data = bufs[i];
        recs[i].data.len = n;
        rp[i] = &recs[i];
    }
    struct bus_client_opts o = {.endpoint = f->cep};
    bus_client_t *c = NULL;
    assert_int_equal(bus_client_new(&c, f->zctx, &o), ERR_OK);
    assert_int_equal(bus_client_put(c, "evals", rp, NEVS, false, 10000), ERR_OK);
    bus_client_destroy(&c);
    for (size_t i = 0; i < NEVS; i++)
        free(bufs[i]);
}

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof *f);
    assert_non_null(f);
    snprintf(f->dir, sizeof f->dir, "/tmp/oaif-compare-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->log, sizeof f->log, "%s/services.log", f->dir);
    snprintf(f->ep, sizeof f->ep, "%s/endpoints", f->dir);
    tp_watchdog(100, "compare_procs", f->log);
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
                    "--endpoints-file",
                    f->ep,
                    NULL};
    f->ledger = tp_spawn(argv, f->log);
    assert_true(f->ledger > 0);
    assert_true(tp_read_kv(f->ep, "clients", f->cep, sizeof f->cep, 10000));
    f->zctx = zmq_ctx_new();
    put_evals(f);
    g = f;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    tp_stop(f->ledger, SIGTERM);
    zmq_ctx_term(f->zctx);
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf %s", f->dir);
    if (system(cmd) != 0)
        fprintf(stderr, "left %s\n", f->dir);
    free(f);
    tp_watchdog(0, NULL, NULL);
    return 0;
}

/* Runs `oaif ARGS --clients EP`, stdout and stderr into out; returns the exit status. */
static int oaif(char *out, size_t len, const char *args)
{
    char cmd[2000];
    snprintf(cmd, sizeof cmd, "%s %s --clients %s 2>&1", tp_bin("services/oaif/oaif"), args,
             g->cep);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    size_t got = fread(out, 1, len - 1, p);
    out[got] = '\0';
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static int compare(char *out, size_t len, const char *args)
{
    char a[1800];
    snprintf(a, sizeof a, "compare %s", args);
    return oaif(out, len, a);
}

static double num(json_t *o, const char *path1, const char *key)
{
    json_t *x = path1 ? json_object_get(o, path1) : o;
    assert_non_null(x);
    json_t *v = json_object_get(x, key);
    if (!v)
        fail_msg("no %s.%s", path1 ? path1 : "", key);
    return json_number_value(v);
}

static void test_settings_pair_by_the_star_and_the_numbers_are_right(void **state)
{
    (void)state;
    static char out[1 << 16];
    int rc = compare(out, sizeof out, "'online-s*' 'offline-s*' --json");
    if (rc != 0)
        fail_msg("exit %d:\n%s", rc, out);
    json_error_t je;
    json_t *top = json_loads(out, 0, &je);
    if (!top)
        fail_msg("not JSON (%s):\n%s", je.text, out);
    json_t *c = json_array_get(json_object_get(top, "comparisons"), 0);
    assert_non_null(c);
    json_t *seeds = json_object_get(c, "seeds");
    assert_int_equal(json_array_size(seeds), 3);
    for (size_t i = 0; i < 3; i++) {
        json_t *row = json_array_get(seeds, i);
        char want[8];
        snprintf(want, sizeof want, "s%zu", i + 1);
        assert_string_equal(json_string_value(json_object_get(row, "seed")), want + 1);
        assert_int_equal((int)num(row, "a", "version"), 2); /* the highest, not v1 */
    }
    json_t *unp = json_object_get(c, "unpaired");
    assert_int_equal(json_array_size(unp), 1);
    assert_string_equal(json_string_value(json_array_get(unp, 0)), "offline-s4");
    /* d = -0.10 -0.12 -0.08: mean -0.1, sd 0.02, t_{0.975,2} 4.3027 */
    double se = 0.02 / sqrt(3);
    assert_true(fabs(num(c, "win_rate", "mean") + 0.1) < 1e-9);
    assert_true(fabs(num(c, "win_rate", "sd") - 0.02) < 1e-9);
    assert_true(fabs(num(c, "win_rate", "t_lo") - (-0.1 - 4.3027 * se)) < 1e-4);
    assert_true(fabs(num(c, "win_rate", "t_hi") - (-0.1 + 4.3027 * se)) < 1e-4);
    assert_true(num(c, "win_rate", "boot_lo") >= -0.12 - 1e-9);
    assert_true(num(c, "win_rate", "boot_hi") <= -0.08 + 1e-9);
    assert_true(json_is_true(json_object_get(json_object_get(c, "win_rate"), "finding")));
    /* accuracy: +0.02 -0.02 0: no effect */
    assert_true(fabs(num(c, "accuracy", "mean")) < 1e-9);
    assert_true(json_is_false(json_object_get(json_object_get(c, "accuracy"), "finding")));
    assert_true(fabs(num(c, "mean_length", "mean") + 10) < 1e-6);
    assert_true(fabs(num(c, "mean_length", "t_lo") - 100 * num(c, "win_rate", "t_lo")) < 1e-6);
    assert_true(fabs(num(json_array_get(seeds, 0), NULL, "d_mean_length") + 10) < 1e-6);
    json_decref(top);

    rc = compare(out, sizeof out, "'online-s*' 'offline-s*'");
    print_message("%s", out);
    if (rc != 0 || !strstr(out, "win rate  B - A over 3 seeds: mean -0.1000") ||
        !strstr(out, "a finding") || !strstr(out, "not a finding") ||
        !strstr(out, "left out (its seed has no partner): offline-s4"))
        fail_msg("exit %d, table:\n%s", rc, out);
}

static void test_records_with_seeds_pair_by_seed(void **state)
{
    (void)state;
    static char out[1 << 16];
    int rc = compare(out, sizeof out, "'alpha*' 'beta-*' --json --resamples 0");
    if (rc != 0)
        fail_msg("exit %d:\n%s", rc, out);
    json_t *top = json_loads(out, 0, NULL);
    assert_non_null(top);
    json_t *c = json_array_get(json_object_get(top, "comparisons"), 0);
    json_t *seeds = json_object_get(c, "seeds");
    assert_int_equal(json_array_size(seeds), 2);
    for (size_t i = 0; i < 2; i++) {
        json_t *row = json_array_get(seeds, i);
        const char *a = json_string_value(json_object_get(json_object_get(row, "a"), "run"));
        const char *b = json_string_value(json_object_get(json_object_get(row, "b"), "run"));
        /* seed 11: alpha with beta-y; seed 12: alpha-again with beta-x */
        assert_string_equal(b, !strcmp(a, "alpha") ? "beta-y" : "beta-x");
    }
    /* d = 0.20 (seed 11) and 0.05 (seed 12) */
    assert_true(fabs(num(c, "win_rate", "mean") - 0.125) < 1e-9);
    json_decref(top);
}

static void test_two_judges_need_judge_and_bad_settings_are_named(void **state)
{
    (void)state;
    static char out[1 << 16];
    int rc = compare(out, sizeof out, "two-judges online-s1");
    if (rc != 2 || !strstr(out, "two-judges") || !strstr(out, "--judge"))
        fail_msg("exit %d:\n%s", rc, out);
    rc = compare(out, sizeof out, "two-judges online-s1 --judge rules --version 3");
    if (rc != 2 || !strstr(out, "'online-s1': no evaluation"))
        fail_msg("exit %d:\n%s", rc, out);
    rc = compare(out, sizeof out, "two-judges 'online-s*' --judge rules");
    if (rc != 2 || !strstr(out, "share no seed"))
        fail_msg("exit %d:\n%s", rc, out);
    rc = compare(out, sizeof out, "nosuch-run 'offline-s*'");
    if (rc != 2 || !strstr(out, "'nosuch-run': no evaluation"))
        fail_msg("exit %d:\n%s", rc, out);
    rc = compare(out, sizeof out, "'online-s*'");
    if (rc != 2 || !strstr(out, "two settings at least"))
        fail_msg("exit %d:\n%s", rc, out);
    rc = compare(out, sizeof out, "'a*b*' 'offline-s*'");
    if (rc != 2 || !strstr(out, "at most one '*'"))
        fail_msg("exit %d:\n%s", rc, out);
}

static void test_import_evals_gathers_other_ledgers_runs(void **state)
{
    (void)state;
    static char out[1 << 16];
    char path[400], cmd[600];
    snprintf(path, sizeof path, "%s/evals.jsonl", g->dir);
    /* As oaif export evals writes them (and one line as its data alone): four runs of two
     * settings, each record named as the trainer names its own, the same in every run. */
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    static const struct {
        const char *run;
        double w, acc, len;
    } rows[] = {{"imp-a-s1", 0.55, 0.60, 40},
                {"imp-a-s2", 0.57, 0.62, 42},
                {"imp-b-s1", 0.50, 0.58, 50},
                {"imp-b-s2", 0.54, 0.60, 46}};
    for (size_t i = 0; i < 4; i++)
        fprintf(f,
                "%s{\"id\":\"eval-policy-v000002\",\"version\":2,\"judge\":\"rules\","
                "\"win_rate\":%g,\"wins\":3,\"ties\":7,\"accuracy\":%g,\"mean_length\":%g,"
                "\"metrics\":[{\"name\":\"n\",\"value\":10},{\"name\":\"zero\"}],"
                "\"created_ms\":1796608918543,\"run\":\"%s\"}%s\n",
                i == 3 ? "" : "{\"kind\":\"evals\",\"id\":\"x\",\"seq\":1,\"data\":", rows[i].w,
                rows[i].acc, rows[i].len, rows[i].run, i == 3 ? "" : "}");
    fclose(f);
    for (int twice = 0; twice < 2; twice++) {
        snprintf(cmd, sizeof cmd, "import evals %s", path);
        int rc = oaif(out, sizeof out, cmd);
        if (rc != 0 || !strstr(out, "imported 4 evaluations"))
            fail_msg("exit %d:\n%s", rc, out);
    }
    int rc = oaif(out, sizeof out, "export evals");
    assert_int_equal(rc, 0);
    int n = 0;
    for (const char *p = out; (p = strstr(p, "\"id\":\"imp-")); p++)
        n++;
    if (n != 4) /* once each, under <run>/<id>, however often imported */
        fail_msg("%d imported records, not 4:\n%s", n, out);
    if (!strstr(out, "\"id\":\"imp-b-s2/eval-policy-v000002\""))
        fail_msg("no record imp-b-s2/eval-policy-v000002:\n%s", out);

    rc = compare(out, sizeof out, "'imp-a-s*' 'imp-b-s*' --json");
    if (rc != 0)
        fail_msg("exit %d:\n%s", rc, out);
    json_t *top = json_loads(out, 0, NULL);
    assert_non_null(top);
    json_t *c = json_array_get(json_object_get(top, "comparisons"), 0);
    assert_int_equal(json_array_size(json_object_get(c, "seeds")), 2);
    assert_true(fabs(num(c, "win_rate", "mean") + 0.04) < 1e-9); /* -0.05, -0.03 */
    assert_true(fabs(num(c, "accuracy", "mean") + 0.02) < 1e-9); /* -0.02, -0.02 */
    assert_true(fabs(num(c, "mean_length", "mean") - 7) < 1e-9); /* +10, +4 */
    json_decref(top);

    /* oaif report --runs: each setting's runs in the page's data */
    snprintf(cmd, sizeof cmd, "report --run imp-a-s1 --runs 'imp-a-s*,imp-b-s*' --out %s/r.html",
             g->dir);
    rc = oaif(out, sizeof out, cmd);
    if (rc != 0)
        fail_msg("exit %d:\n%s", rc, out);
    snprintf(cmd, sizeof cmd,
             "grep -o '\"imp-b-s\\*\":\\[[^]]*\\]' %s/r.html | grep -o 'imp-b-s[12]\"' | sort -u | "
             "wc -l",
             g->dir);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    int runs = 0;
    assert_int_equal(fscanf(p, "%d", &runs), 1);
    pclose(p);
    assert_int_equal(runs, 2);

    /* a bad line: nothing imported, the line and field named */
    f = fopen(path, "w");
    assert_non_null(f);
    fprintf(f, "{\"id\":\"e1\",\"run\":\"imp-c-s1\",\"win_rate\":0.5}\n");
    fprintf(f, "{\"id\":\"e2\",\"run\":\"imp-c-s2\",\"win_rate\":\"high\"}\n");
    fclose(f);
    snprintf(cmd, sizeof cmd, "import evals %s", path);
    rc = oaif(out, sizeof out, cmd);
    if (rc != 1 || !strstr(out, "evals.jsonl:2") || !strstr(out, "\"win_rate\": expected a number"))
        fail_msg("exit %d:\n%s", rc, out);
    rc = compare(out, sizeof out, "'imp-c-s*' 'imp-a-s*'");
    if (rc != 2 || !strstr(out, "no evaluation"))
        fail_msg("exit %d:\n%s", rc, out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_settings_pair_by_the_star_and_the_numbers_are_right),
        cmocka_unit_test(test_records_with_seeds_pair_by_seed),
        cmocka_unit_test(test_two_judges_need_judge_and_bad_settings_are_named),
        cmocka_unit_test(test_import_evals_gathers_other_ledgers_runs),
    };
    return cmocka_run_group_tests_name("compare_procs", tests, setup, teardown);
}
