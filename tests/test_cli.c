/* test_cli - the `oaif` command against a real ledger process: import (all or nothing, with the
 * file, line and reason on a bad line), export as JSONL, status, keys. */
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
    char *argv[] = {(char *)tp_bin("services/ledger/ledger"), "--db", db, "--clients",
                    "tcp://127.0.0.1:*", "--workers", "tcp://127.0.0.1:*", "--events", "",
                    "--endpoints-file", ep, NULL};
    f->ledger = tp_spawn(argv, log);
    if (f->ledger <= 0 || !tp_read_kv(ep, "clients", f->cep, sizeof f->cep, 10000)) {
        free(f);
        return -1;
    }
    setenv("OAIF_LEDGER", f->cep, 1);
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

/* Run `oaif ARGS` with stdout and stderr captured into out; returns the exit code. */
static int oaif(char *out, size_t outlen, const char *args)
{
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "%s %s 2>&1", tp_bin("services/oaif/oaif"), args);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    size_t n = fread(out, 1, outlen - 1, p);
    out[n] = '\0';
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
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
    write_file(path, "{\"prompt\": \"What is 2+2?\", \"reference\": \"4\"}\n"
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
    assert_int_equal(oaif(out, sizeof out, "status --ledger tcp://127.0.0.1:1 --timeout-ms 300"),
                     1);
    assert_non_null(strstr(out, "no answer from the ledger"));
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_import_is_all_or_nothing_and_export_reads_back,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_errors_name_the_problem, setup, teardown),
        cmocka_unit_test_setup_teardown(test_keys_writes_a_usable_pair, setup, teardown),
        cmocka_unit_test_setup_teardown(test_task_demos_are_the_sft_stream, setup, teardown),
    };
    return cmocka_run_group_tests_name("cli", tests, NULL, NULL);
}
