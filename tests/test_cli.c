/* test_cli - the `oaif` command, the real binary, against a real ledger process: import (all or
 * nothing, with the file, line and reason on a bad line), export as JSONL, status, keys; every verb
 * listed by `oaif help` and answering --help; bad numbers named by flag; old option names working
 * with a warning; `oaif judge try` with the rules judge; `oaif model` on a small model; `oaif
 * config show` with origins and secrets (and the tables of `oaif sft` and `oaif eval`). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "err.h"
#include "task.h"
#include "testproc.h"

struct fx {
    char dir[256];
    char cep[256];
    pid_t ledger;
};

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/oaif-test-cli-XXXXXX");
    if (!mkdtemp(f->dir)) {
        free(f);
        return -1;
    }
    char db[300], ep[300], log[300];
    snprintf(db, sizeof db, "%s/db", f->dir);
    snprintf(ep, sizeof ep, "%s/endpoints", f->dir);
    snprintf(log, sizeof log, "%s/ledger.log", f->dir);
    char *argv[] = {(char *)tp_bin("services/ledger/ledger"),
                    "--db",
                    db,
                    "--clients",
                    "tcp://127.0.0.1:*",
                    "--workers",
                    "tcp://127.0.0.1:*",
                    "--events",
                    "",
                    "--endpoints-file",
                    ep,
                    NULL};
    f->ledger = tp_spawn(argv, log);
    if (f->ledger <= 0 || !tp_read_kv(ep, "clients", f->cep, sizeof f->cep, 10000)) {
        free(f);
        return -1;
    }
    setenv("BUS_CLIENTS_ENDPOINT", f->cep, 1);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    tp_stop(f->ledger, SIGTERM);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", f->dir);
    if (system(cmd) != 0)
        return -1;
    free(f);
    return 0;
}

/* Run `env ENV oaif ARGS` (ENV: "-u VAR ... VAR=value ...", or "") with stdout and stderr captured
 * into out; returns the exit code. */
static int oaif_env(char *out, size_t outlen, const char *env, const char *args)
{
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "env %s %s %s 2>&1", env, tp_bin("services/oaif/oaif"), args);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    size_t n = fread(out, 1, outlen - 1, p);
    out[n] = '\0';
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* Run `oaif ARGS`, as oaif_env without changes to the environment. */
static int oaif(char *out, size_t outlen, const char *args)
{
    return oaif_env(out, outlen, "", args);
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static int count_lines(const char *s, const char *needle)
{
    int n = 0;
    for (const char *p = s; (p = strstr(p, needle)); p++)
        n++;
    return n;
}

static void test_import_is_all_or_nothing_and_export_reads_back(void **state)
{
    struct fx *f = *state;
    char path[400], args[600], out[16384];
    snprintf(path, sizeof path, "%s/bad.jsonl", f->dir);
    write_file(path, "{\"prompt\": \"What is 2+2?\", \"reference\": \"4\"}\n\n"
                     "{\"prompt\": \"Reverse abc\", \"colour\": \"red\"}\n");
    snprintf(args, sizeof args, "import prompts %s", path);
    assert_int_equal(oaif(out, sizeof out, args), 1);
    assert_non_null(strstr(out, "bad.jsonl:3: unknown field \"colour\""));
    assert_non_null(strstr(out, "nothing was imported"));
    assert_int_equal(oaif(out, sizeof out, "export prompts"), 0);
    assert_int_equal(count_lines(out, "\"kind\":\"prompts\""), 0);

    snprintf(path, sizeof path, "%s/bad2.jsonl", f->dir);
    write_file(path, "{\"prompt\": \"ok\"}\n{\"prompt\": \"\"}\n");
    snprintf(args, sizeof args, "import prompts %s", path);
    assert_int_equal(oaif(out, sizeof out, args), 1);
    assert_non_null(strstr(out, "bad2.jsonl:2: field \"prompt\": missing or empty"));

    snprintf(path, sizeof path, "%s/good.jsonl", f->dir);
    write_file(path,
               "{\"prompt\": \"What is 2+2?\", \"reference\": \"4\"}\n"
               "{\"id\": \"rev-1\", \"prompt\": \"Reverse \\\"abc\\\" \\u00e9\", \"answer\": "
               "\"cba\", \"family\": \"reverse\", \"split\": \"eval\", \"meta\": {\"k\": 1}}\n");
    snprintf(args, sizeof args, "import prompts %s", path);
    assert_int_equal(oaif(out, sizeof out, args), 0);
    assert_int_equal(oaif(out, sizeof out, args), 0); /* twice: nothing new */
    assert_int_equal(oaif(out, sizeof out, "export prompts"), 0);
    assert_int_equal(count_lines(out, "\"kind\":\"prompts\""), 2);
    assert_non_null(strstr(out, "\"id\":\"rev-1\""));
    assert_non_null(strstr(out, "\"text\":\"Reverse \\\"abc\\\" \xc3\xa9\""));
    assert_non_null(strstr(out, "\"split\":\"eval\""));
    assert_non_null(strstr(out, "\"meta_json\":\"{\\\"k\\\":1}\""));

    assert_int_equal(oaif(out, sizeof out, "status"), 0);
    assert_non_null(strstr(out, "prompts"));
    assert_non_null(strstr(out, "dead letters 0"));
    assert_int_equal(oaif(out, sizeof out, "status --json"), 0);
    assert_non_null(strstr(out, "\"kind\":\"RECORD_KIND_PROMPT\",\"count\":2"));
}

static void test_errors_name_the_problem(void **state)
{
    struct fx *f = *state;
    char out[4096], args[600];
    assert_int_equal(oaif(out, sizeof out, "export nonsense"), 2);
    assert_non_null(strstr(out, "usage: oaif export KIND"));
    assert_int_equal(oaif(out, sizeof out, "frobnicate"), 2);
    assert_non_null(strstr(out, "unknown verb 'frobnicate'"));
    snprintf(args, sizeof args, "import prompts %s/missing.jsonl", f->dir);
    assert_int_equal(oaif(out, sizeof out, args), 1);
    assert_non_null(strstr(out, "missing.jsonl: No such file"));
    /* No ledger there: a bounded wait and a sentence that says so. */
    assert_int_equal(oaif(out, sizeof out, "status --clients tcp://127.0.0.1:1 --timeout 300ms"),
                     1);
    assert_non_null(strstr(out, "no answer from the ledger at tcp://127.0.0.1:1 within 300 ms"));
}

/* The connection options' old names keep working, each with a warning naming the new one. */
static void test_old_option_names_work_with_a_warning(void **state)
{
    (void)state;
    char out[4096];
    assert_int_equal(oaif(out, sizeof out, "status --ledger tcp://127.0.0.1:1 --timeout-ms 300"),
                     1);
    assert_non_null(strstr(out, "within 300 ms"));
    assert_non_null(strstr(out, "flag --ledger is an old name: use --clients"));
    assert_non_null(strstr(out, "flag --timeout-ms is an old name: use --timeout"));
    assert_int_equal(oaif(out, sizeof out, "status --timeout-ms=250 --clients tcp://127.0.0.1:1"),
                     1);
    assert_non_null(strstr(out, "within 250 ms"));
    /* The old variable, when the new one is not set. */
    assert_int_equal(oaif_env(out, sizeof out,
                              "-u BUS_CLIENTS_ENDPOINT OAIF_LEDGER=tcp://127.0.0.1:2",
                              "status --timeout 200ms"),
                     1);
    assert_non_null(
        strstr(out, "environment OAIF_LEDGER is an old name: use BUS_CLIENTS_ENDPOINT"));
    assert_non_null(strstr(out, "no answer from the ledger at tcp://127.0.0.1:2"));
}

static void test_keys_writes_a_usable_pair(void **state)
{
    struct fx *f = *state;
    char out[4096], args[600], path[400];
    snprintf(args, sizeof args, "keys node1 --dir %s", f->dir);
    assert_int_equal(oaif(out, sizeof out, args), 0);
    assert_non_null(strstr(out, "public key: "));
    snprintf(path, sizeof path, "%s/node1.key", f->dir);
    assert_int_equal(access(path, R_OK), 0);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    snprintf(path, sizeof path, "%s/node1.key.pub", f->dir);
    assert_int_equal(access(path, R_OK), 0);
}

/* `oaif task demos` writes the very demonstrations `oaif sft` trains on, readable by --data. */
static void test_task_demos_are_the_sft_stream(void **state)
{
    struct fx *f = *state;
    char path[400], args[600], out[16384], err[256];
    snprintf(path, sizeof path, "%s/demos.jsonl", f->dir);
    snprintf(args, sizeof args, "task demos --n 40 --seed 3 > %s", path);
    assert_int_equal(oaif(out, sizeof out, args), 0);
    struct task_pair *got = NULL, *want = NULL;
    size_t n = 0;
    assert_int_equal(task_jsonl_read(path, &got, &n, err, sizeof err), ERR_OK);
    assert_int_equal(n, 40);
    struct task_demo_config dc = TASK_DEMO_CONFIG_DEFAULT;
    assert_int_equal(task_demo_pairs(3, 40, &dc, &want), ERR_OK);
    for (size_t i = 0; i < n; i++) {
        assert_string_equal(got[i].id, want[i].id);
        assert_string_equal(got[i].prompt, want[i].prompt);
        assert_string_equal(got[i].response, want[i].response);
    }
    task_pairs_free(&got, n);
    task_pairs_free(&want, 40);
    assert_int_equal(oaif(out, sizeof out, "task demos --split eval --n 5"), 1);
    assert_non_null(strstr(out, "train split only"));
}

/* `oaif help` lists every verb, one line each, and each verb answers --help with its usage. */
static void test_help_lists_every_verb_and_each_has_help(void **state)
{
    (void)state;
    static const char *const verbs[] = {"status",   "import", "export", "keys",  "task",
                                        "annotate", "audit",  "eval",   "up",    "run",
                                        "judge",    "sft",    "model",  "config"};
    char out[16384], args[64], line[32];
    assert_int_equal(oaif(out, sizeof out, "help"), 0);
    for (size_t i = 0; i < sizeof verbs / sizeof verbs[0]; i++) {
        snprintf(line, sizeof line, "\n  %s ", verbs[i]);
        if (!strstr(out, line))
            fail_msg("oaif help does not list %s:\n%s", verbs[i], out);
    }
    for (size_t i = 0; i < sizeof verbs / sizeof verbs[0]; i++) {
        snprintf(args, sizeof args, "%s --help", verbs[i]);
        int rc = oaif(out, sizeof out, args);
        if (rc != 0 || (!strstr(out, "sage") && !strstr(out, "oaif model")))
            fail_msg("oaif %s: exit %d, no usage:\n%s", args, rc, out);
    }
}

/* A bad number is an error naming the verb, the flag and what it takes: exit status 2, nothing
 * started. */
static void test_bad_numbers_name_the_flag(void **state)
{
    struct fx *f = *state;
    char out[4096], args[600];
    assert_int_equal(oaif(out, sizeof out, "up --samplers x"), 2);
    assert_non_null(
        strstr(out, "oaif up: flag --samplers: expected an integer in [0, 30], got 'x'"));
    assert_int_equal(oaif(out, sizeof out, "up --annotators 2x"), 2);
    assert_non_null(strstr(out, "--annotators: expected an integer"));
    assert_int_equal(oaif(out, sizeof out, "task prompts --n 5x"), 2);
    assert_non_null(
        strstr(out, "oaif task: flag --n: expected an integer in [1, 1000000], got '5x'"));
    assert_int_equal(oaif(out, sizeof out, "task prompts --split test"), 2);
    assert_non_null(strstr(out, "--split: expected one of train, eval"));
    snprintf(args, sizeof args, "annotate %s/pairs.jsonl --in-flight 0", f->dir);
    assert_int_equal(oaif(out, sizeof out, args), 2);
    assert_non_null(strstr(out, "--in-flight: expected an integer in [1, 100000], got '0'"));
    assert_int_equal(oaif(out, sizeof out, "eval --policy /nonexistent --n ten"), 2);
    assert_non_null(strstr(out, "oaif eval: flag --n: expected an integer"));
    assert_int_equal(oaif(out, sizeof out, "eval --policy /nonexistent --top-p 1.5"), 2);
    assert_non_null(strstr(out, "--top-p: expected a number in"));
    assert_int_equal(oaif(out, sizeof out, "status --timeout 5"), 2);
    assert_non_null(strstr(out, "--timeout: expected a duration"));
    assert_int_equal(oaif(out, sizeof out, "status --frobnicate 1"), 2);
    assert_non_null(strstr(out, "flag --frobnicate: unknown"));
    assert_int_equal(oaif(out, sizeof out, "up --train"), 2); /* no run file */
    assert_non_null(strstr(out, "--train needs the run file"));
}

/* `oaif judge try` with the rules judge (no ledger, no API): the texts from flags or positional
 * arguments (after "--" even one that starts with '-'), the annotator's options and the verb's own
 * in one table, strict numbers, and too many or too few texts refused. */
static void test_judge_try_reads_its_table(void **state)
{
    (void)state;
    char out[16384];
    assert_int_equal(
        oaif(out, sizeof out, "judge try --backend rules --json --prompt 'What is 3 - 8?' -- -5 5"),
        0);
    assert_non_null(strstr(out, "\"judge\":\"rules/noise=0/seed=1\""));
    assert_non_null(strstr(out, "\"winner\":\"first\""));
    assert_int_equal(oaif(out, sizeof out, "judge try --backend rules --seed x p a b"), 2);
    assert_non_null(strstr(out, "oaif judge try: flag --seed: expected an integer"));
    assert_int_equal(oaif(out, sizeof out, "judge try --backend rules --noise 2 p a b"), 2);
    assert_non_null(strstr(out, "--noise"));
    assert_int_equal(oaif(out, sizeof out, "judge try --backend rules --first a p a b"), 2);
    assert_non_null(strstr(out, "unexpected argument 'b'"));
    assert_int_equal(oaif(out, sizeof out, "judge try --backend rules p a"), 2);
    assert_non_null(strstr(out, "needs PROMPT FIRST SECOND"));
    assert_int_equal(oaif(out, sizeof out, "judge frobnicate"), 2);
    assert_int_equal(oaif(out, sizeof out, "judge try --help"), 0);
    assert_non_null(strstr(out, "--backend"));
    assert_non_null(strstr(out, "--pair-id"));
}

/* `oaif model`: a small random model written by init, described by info, answered by generate. */
static void test_model_init_info_generate(void **state)
{
    struct fx *f = *state;
    char out[16384], args[800];
    snprintf(args, sizeof args,
             "model init %s/m --layers 2 --hidden 32 --heads 2 --kv-heads 1 --intermediate 64 "
             "--seed 5",
             f->dir);
    assert_int_equal(oaif(out, sizeof out, args), 0);
    assert_non_null(strstr(out, "parameters"));
    snprintf(args, sizeof args, "model info %s/m --tensors", f->dir);
    assert_int_equal(oaif(out, sizeof out, args), 0);
    assert_non_null(strstr(out, "num_hidden_layers       2"));
    assert_non_null(strstr(out, "model.layers.1.mlp.down_proj.weight"));
    snprintf(args, sizeof args, "model generate %s/m --prompt '2+2=' --max-new 4", f->dir);
    assert_int_equal(oaif(out, sizeof out, args), 0);
    snprintf(args, sizeof args, "model init %s/m2 --layers two", f->dir);
    assert_int_equal(oaif(out, sizeof out, args), 2);
    assert_non_null(strstr(out, "--layers"));
    assert_int_equal(oaif(out, sizeof out, "model frobnicate"), 2);
}

/* `oaif config show`: each value with where it came from (run file, environment, flag, default),
 * secrets masked, one service or all, an unknown service named with the choices. */
static void test_config_show_says_where_each_value_came_from(void **state)
{
    struct fx *f = *state;
    char out[65536], args[800], run[400];
    snprintf(run, sizeof run, "%s/run.yaml", f->dir);
    write_file(run, "sampler:\n  max_new_tokens: 77\n");
    snprintf(args, sizeof args, "config show --service sampler --config %s --temperature 0.5", run);
    assert_int_equal(oaif_env(out, sizeof out, "SAMPLER_SEED=9", args), 0);
    char want[600];
    snprintf(want, sizeof want, "max_new_tokens: 77  # %s:2:19", run);
    assert_non_null(strstr(out, want));
    assert_non_null(strstr(out, "seed: 9  # environment SAMPLER_SEED"));
    assert_non_null(strstr(out, "temperature: 0.5  # flag --temperature"));
    assert_non_null(strstr(out, "top_p: 1  # default"));
    assert_null(strstr(out, "--- # trainer")); /* one service */

    /* Every service; a secret shows as ***; an old name warns on stderr. */
    assert_int_equal(oaif_env(out, sizeof out,
                              "-u BUS_CLIENTS_ENDPOINT ANNOTATOR_API_KEY=sk-test-do-not-print "
                              "OAIF_LEDGER=tcp://10.1.2.3:5555",
                              "config show"),
                     0);
    static const char *const services[] = {"ledger", "sampler", "annotator-proxy", "trainer", "sft",
                                           "eval",   "oaif"};
    for (size_t i = 0; i < sizeof services / sizeof services[0]; i++) {
        snprintf(want, sizeof want, "--- # %s\n", services[i]);
        if (!strstr(out, want))
            fail_msg("config show lacks %s:\n%s", services[i], out);
    }
    assert_non_null(strstr(out, "api_key: \"***\"  # environment ANNOTATOR_API_KEY"));
    assert_null(strstr(out, "sk-test-do-not-print"));
    assert_non_null(strstr(out, "clients_endpoint: \"tcp://10.1.2.3:5555\"  # environment "
                                "OAIF_LEDGER (old name)"));
    assert_non_null(strstr(out, "warning: environment OAIF_LEDGER is an old name"));

    assert_int_equal(oaif(out, sizeof out, "config show --service nope"), 2);
    assert_non_null(strstr(out, "unknown service 'nope' (one of: ledger, sampler, annotator-proxy, "
                                "reward-scorer, strength-estimator, evaluator, trainer, sft, eval, "
                                "rm, oaif)"));
    /* the reward-scorer's table, a run-file value with its origin */
    assert_int_equal(oaif(out, sizeof out, "config show --service reward-scorer --ensemble e7"), 0);
    assert_non_null(strstr(out, "ensemble: \"e7\"  # flag --ensemble"));
    /* the tables of oaif sft and oaif eval, as those verbs load them */
    assert_int_equal(oaif(out, sizeof out, "config show --service sft --steps 12"), 0);
    assert_non_null(strstr(out, "--- # sft\noaif:\n  sft:\n"));
    assert_non_null(strstr(out, "steps: 12  # flag --steps"));
    assert_non_null(strstr(out, "eval_n: 350  # default"));
    assert_int_equal(oaif(out, sizeof out, "config show --service eval --n 7"), 0);
    assert_non_null(strstr(out, "n: 7  # flag --n"));
    assert_non_null(strstr(out, "max_new: 128  # default"));
    assert_int_equal(oaif(out, sizeof out, "config show --no-such-flag 1"), 2);
    assert_non_null(strstr(out, "--no-such-flag"));
    assert_int_equal(oaif(out, sizeof out, "config show --service sampler --temperature hot"), 2);
    assert_non_null(strstr(out, "flag --temperature: expected a number"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_import_is_all_or_nothing_and_export_reads_back, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_errors_name_the_problem, setup, teardown),
        cmocka_unit_test_setup_teardown(test_keys_writes_a_usable_pair, setup, teardown),
        cmocka_unit_test_setup_teardown(test_task_demos_are_the_sft_stream, setup, teardown),
        cmocka_unit_test_setup_teardown(test_old_option_names_work_with_a_warning, setup, teardown),
        cmocka_unit_test_setup_teardown(test_help_lists_every_verb_and_each_has_help, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_bad_numbers_name_the_flag, setup, teardown),
        cmocka_unit_test_setup_teardown(test_judge_try_reads_its_table, setup, teardown),
        cmocka_unit_test_setup_teardown(test_model_init_info_generate, setup, teardown),
        cmocka_unit_test_setup_teardown(test_config_show_says_where_each_value_came_from, setup,
                                        teardown),
    };
    return cmocka_run_group_tests_name("cli", tests, NULL, NULL);
}
