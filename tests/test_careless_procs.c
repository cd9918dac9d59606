/* test_careless_procs - what a careless user did, through the real `oaif` and `ledger`
 * binaries: a directory given as the input file, `oaif annotate` with no ledger running, `oaif
 * keys NAME` run twice, an allow-list without the ledger's secret key, a malformed allowed key,
 * an import larger than one put, a trainer whose checkpoints would not fit one put.
 * Each must fail clearly (exit status, and a message naming the problem), not succeed quietly,
 * wait forever or overwrite. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "testproc.h"

struct fx {
    char dir[256], err[300];
};

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof *f);
    if (!f)
        return -1;
    snprintf(f->dir, sizeof f->dir, "/tmp/oaif-test-careless-XXXXXX");
    if (!mkdtemp(f->dir)) {
        free(f);
        return -1;
    }
    snprintf(f->err, sizeof f->err, "%s/err", f->dir);
    tp_watchdog(60, "careless", f->err);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", f->dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", f->dir);
    free(f);
    return 0;
}

/* Runs `BIN ARGS` (BIN relative to the build directory), stdout and stderr to dir/out and
 * dir/err; its exit status. */
static int run(struct fx *f, const char *bin, const char *args)
{
    char cmd[1500];
    int n = snprintf(cmd, sizeof cmd, "%s %s >%s/out 2>%s", tp_bin(bin), args, f->dir, f->err);
    assert_true(n > 0 && (size_t)n < sizeof cmd);
    int st = system(cmd);
    assert_true(WIFEXITED(st));
    return WEXITSTATUS(st);
}

static bool err_has(struct fx *f, const char *needle)
{
    FILE *fp = fopen(f->err, "r");
    if (!fp)
        return false;
    char line[4096];
    bool found = false;
    while (!found && fgets(line, sizeof line, fp))
        found = strstr(line, needle) != NULL;
    fclose(fp);
    if (!found)
        tp_log_tail(f->err, 2000);
    return found;
}

static void slurp(const char *path, char *out, size_t len)
{
    FILE *fp = fopen(path, "r");
    assert_non_null(fp);
    size_t n = fread(out, 1, len - 1, fp);
    out[n] = '\0';
    fclose(fp);
}

/* Before: "imported 0 prompts", exit 0. A read error is not the end of the file. */
static void test_directory_as_input(void **state)
{
    struct fx *f = *state;
    char args[600];
    snprintf(args, sizeof args, "import prompts %s --clients tcp://127.0.0.1:1", f->dir);
    assert_int_equal(run(f, "services/oaif/oaif", args), 1);
    assert_true(err_has(f, "is a directory"));
    snprintf(args, sizeof args, "annotate %s --clients tcp://127.0.0.1:1", f->dir);
    assert_int_equal(run(f, "services/oaif/oaif", args), 1);
    assert_true(err_has(f, "is a directory"));
    /* an empty file imports nothing, and says so */
    snprintf(args, sizeof args, "import prompts /dev/null --clients tcp://127.0.0.1:1");
    assert_int_equal(run(f, "services/oaif/oaif", args), 1);
    assert_true(err_has(f, "no prompts"));
}

/* Writes `text` to the file `name` in the fixture's directory; its path into path. */
static void write_text(const struct fx *f, char *path, size_t len, const char *name,
                       const char *text)
{
    snprintf(path, len, "%s/%s", f->dir, name);
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fputs(text, fp);
    fclose(fp);
}

/* Before: "0/6 labels" forever. Now the ledger's silence fails it after --timeout. */
static void test_annotate_without_ledger(void **state)
{
    struct fx *f = *state;
    char path[400], args[800];
    write_text(f, path, sizeof path, "pairs.jsonl",
               "{\"prompt\":\"2+2?\",\"response_a\":\"4\",\"response_b\":\"5\"}\n");
    snprintf(args, sizeof args, "annotate %s --clients tcp://127.0.0.1:1 --timeout 1s --quiet",
             path);
    time_t t0 = time(NULL);
    assert_int_equal(run(f, "services/oaif/oaif", args), 1);
    assert_true(time(NULL) - t0 < 15);
    assert_true(err_has(f, "no answer from the ledger"));
}

/* Before: the second run replaced the pair without a word. */
static void test_keys_twice(void **state)
{
    struct fx *f = *state;
    char args[600], key[400], first[256], again[256];
    snprintf(args, sizeof args, "keys alice --dir %s", f->dir);
    snprintf(key, sizeof key, "%s/alice.key.pub", f->dir);
    assert_int_equal(run(f, "services/oaif/oaif", args), 0);
    slurp(key, first, sizeof first);
    assert_int_equal(run(f, "services/oaif/oaif", args), 1);
    assert_true(err_has(f, "already exists"));
    slurp(key, again, sizeof again);
    assert_string_equal(first, again);
    snprintf(args, sizeof args, "keys alice --dir %s --force", f->dir);
    assert_int_equal(run(f, "services/oaif/oaif", args), 0);
    slurp(key, again, sizeof again);
    assert_string_not_equal(first, again);
}

/* Before: an allow-list without the ledger's key pair ran a plaintext ledger open to all, and
 * a malformed allowed key exited 1 with "invalid argument". Both are configuration errors (2)
 * that name the setting. */
static void test_allow_list_without_key(void **state)
{
    struct fx *f = *state;
    char args[1000];
    snprintf(args, sizeof args, "keys ledger --dir %s", f->dir);
    assert_int_equal(run(f, "services/oaif/oaif", args), 0);
    const char *common = "--clients tcp://127.0.0.1:* --workers tcp://127.0.0.1:* --events ''";
    snprintf(args, sizeof args, "--db %s/db %s --curve-allow %s/ledger.key.pub", f->dir, common,
             f->dir);
    assert_int_equal(run(f, "services/ledger/ledger", args), 2);
    assert_true(err_has(f, "curve_secret_key is not"));
    snprintf(args, sizeof args,
             "--db %s/db %s --curve-secret %s/ledger.key --allow-key not-a-z85-key-at-all", f->dir,
             common, f->dir);
    assert_int_equal(run(f, "services/ledger/ledger", args), 2);
    assert_true(err_has(f, "ledger.allowed_keys[0]: 'not-a-z85-key-at-all'"));
}

/* Before: 60,000 short prompts went in 4 MB chunks of about 50,000 records, over the ledger's
 * records a put: "over the limit of 10000 per put", nothing imported. Now chunks are cut by count
 * too. */
static void test_a_large_import_goes_in_parts(void **state)
{
    struct fx *f = *state;
    char path[400], log[400], cep[256], args[1200];
    snprintf(path, sizeof path, "%s/many.jsonl", f->dir);
    snprintf(log, sizeof log, "%s/ledger.log", f->dir);
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    for (int i = 0; i < 60000; i++)
        fprintf(fp, "{\"id\":\"p%d\",\"prompt\":\"q\",\"reference\":\"r\",\"split\":\"train\"}\n",
                i);
    fclose(fp);
    pid_t ledger = tp_ledger(f->dir, log, NULL, "clients", cep, sizeof cep);
    assert_true(ledger > 0);
    snprintf(args, sizeof args, "import prompts %s --clients %s --timeout 60s", path, cep);
    assert_int_equal(run(f, "services/oaif/oaif", args), 0);
    char out[4096];
    snprintf(args, sizeof args, "%s/out", f->dir);
    slurp(args, out, sizeof out);
    assert_non_null(strstr(out, "imported 60000 prompts"));
    snprintf(args, sizeof args, "status --clients %s", cep);
    assert_int_equal(run(f, "services/oaif/oaif", args), 0);
    snprintf(args, sizeof args, "%s/out", f->dir);
    slurp(args, out, sizeof out);
    if (!strstr(out, "60000") && !strstr(out, "60,000"))
        fail_msg("oaif status does not count 60000 prompts: %s", out);
    assert_int_equal(tp_stop(ledger, SIGTERM), 0);
}

/* Before: a file holding one id twice with different prompts printed "imported 3 prompts", and
 * the ledger kept the first and dropped the second without a word. Now that is refused, naming
 * both; a line repeated exactly is skipped and counted. */
static void test_one_id_twice_in_an_import(void **state)
{
    struct fx *f = *state;
    char log[400], cep[256], args[1200], path[400], out[4096];
    snprintf(log, sizeof log, "%s/ledger.log", f->dir);
    pid_t ledger = tp_ledger(f->dir, log, NULL, "clients", cep, sizeof cep);
    assert_true(ledger > 0);
    write_text(f, path, sizeof path, "conflict.jsonl",
               "{\"id\":\"a\",\"prompt\":\"x\"}\n{\"id\":\"b\",\"prompt\":\"x\"}\n"
               "{\"id\":\"a\",\"prompt\":\"y\"}\n");
    snprintf(args, sizeof args, "import prompts %s --clients %s", path, cep);
    assert_int_equal(run(f, "services/oaif/oaif", args), 1);
    assert_true(err_has(f, "conflict.jsonl: prompt 3 has the id 'a' of prompt 1, with other "
                           "contents (an id names one prompt; nothing was imported)"));
    write_text(f, path, sizeof path, "repeated.jsonl",
               "{\"id\":\"a\",\"prompt\":\"x\"}\n{\"id\":\"a\",\"prompt\":\"x\"}\n"
               "{\"id\":\"c\",\"prompt\":\"z\"}\n");
    snprintf(args, sizeof args, "import prompts %s --clients %s", path, cep);
    assert_int_equal(run(f, "services/oaif/oaif", args), 0);
    snprintf(path, sizeof path, "%s/out", f->dir);
    slurp(path, out, sizeof out);
    assert_non_null(strstr(out, "imported 2 prompts"));
    assert_non_null(strstr(out, "1 repeated line of the file skipped"));
    snprintf(args, sizeof args, "export prompts --clients %s", cep);
    assert_int_equal(run(f, "services/oaif/oaif", args), 0);
    slurp(path, out, sizeof out);
    assert_non_null(strstr(out, "\"text\":\"x\""));
    assert_null(strstr(out, "\"text\":\"y\""));
    assert_int_equal(tp_stop(ledger, SIGTERM), 0);
}

/* Before: the trainer ran for hours and failed at its first checkpoint, whose one atomic put
 * (every step and trained pair since the last) was over the ledger's records a put. Now it is
 * refused at the start, with the largest checkpoint_every that fits. */
static void test_checkpoints_too_far_apart(void **state)
{
    struct fx *f = *state;
    char args[1200];
    snprintf(args, sizeof args,
             "--ledger tcp://127.0.0.1:1 --reference %s/none --checkpoints %s/ck --batch 128 "
             "--checkpoint-every 1000 --steps 2000",
             f->dir, f->dir);
    assert_int_not_equal(run(f, "services/trainer/trainer", args), 0);
    assert_true(err_has(f, "trainer.checkpoint_every 1000 x (trainer.batch 128 + 1) + 2 = 129002 "
                           "records would go in one checkpoint's put, over the ledger's 50000 a "
                           "put: checkpoint at most every 387 steps at this batch"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_directory_as_input, setup, teardown),
        cmocka_unit_test_setup_teardown(test_annotate_without_ledger, setup, teardown),
        cmocka_unit_test_setup_teardown(test_keys_twice, setup, teardown),
        cmocka_unit_test_setup_teardown(test_allow_list_without_key, setup, teardown),
        cmocka_unit_test_setup_teardown(test_a_large_import_goes_in_parts, setup, teardown),
        cmocka_unit_test_setup_teardown(test_checkpoints_too_far_apart, setup, teardown),
        cmocka_unit_test_setup_teardown(test_one_id_twice_in_an_import, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
