/* test_import_pairs_cli - `oaif import pairs` and `oaif export pairs --format trl|hh`, the real
 * binary against a real ledger process: every format imported (and again, adding nothing), a bad
 * file importing nothing and naming FILE:LINE and the reason, --skip-bad importing the good rows
 * and counting the others by reason, --format, the size limit, and exports that import back as the
 * same pairs. */
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

#include "testproc.h"

struct fx {
    char dir[256];
    char cep[256];
    pid_t ledger;
};

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/oaif-test-pairs-XXXXXX");
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
    setenv("OAIF_TIMEOUT", "20s", 1); /* a loaded machine */
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

/* Runs `oaif ARGS` (ARGS may end in a redirection of stdout) with what it writes to the pipe
 * captured into out; returns the exit code. */
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

/* Runs `oaif ARGS` with stdout into the file `path` and stderr into out. */
static int oaif_to(const char *path, char *out, size_t outlen, const char *args)
{
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "%s %s 2>&1 >%s", tp_bin("services/oaif/oaif"), args, path);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    size_t n = fread(out, 1, outlen - 1, p);
    out[n] = '\0';
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static int count(const char *s, const char *needle)
{
    int n = 0;
    for (const char *p = s; (p = strstr(p, needle)); p++)
        n++;
    return n;
}

/* How many records of `kind` ("pairs", "labels", ...) the ledger holds. */
static int records(const char *kind)
{
    static char out[1 << 20];
    char args[64], want[64];
    snprintf(args, sizeof args, "export %s", kind);
    assert_int_equal(oaif(out, sizeof out, args), 0);
    snprintf(want, sizeof want, "\"kind\":\"%s\"", kind);
    return count(out, want);
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    static char buf[1 << 18];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = '\0';
    fclose(f);
    return strdup(buf);
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

#define FIX OAIF_FIXTURES "/pairs/"

static void expect_in(const char *out, const char *needle)
{
    if (!strstr(out, needle))
        fail_msg("no \"%s\" in:\n%s", needle, out);
}

static void test_every_format_imports_and_again_adds_nothing(void **state)
{
    (void)state;
    static const struct {
        const char *file, *says;
    } files[] = {
        {"hh.jsonl", "imported 3 pairs from " FIX "hh.jsonl (format hh, dataset hh)"},
        {"trl.jsonl", "imported 4 pairs from " FIX "trl.jsonl (format trl, dataset trl)"},
        {"trl_implicit.jsonl", "imported 2 pairs from " FIX "trl_implicit.jsonl (format trl"},
        {"part2.json",
         "imported 3 pairs from " FIX "part2.json (format part2, dataset part2): 3 labels, 2 "
         "strengths, 1 scores"},
        {"tldr.jsonl", "imported 3 pairs from " FIX "tldr.jsonl (format tldr, dataset tldr)"},
    };
    char out[16384], args[1024];
    for (int round = 0; round < 2; round++)
        for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
            snprintf(args, sizeof args, "import pairs %s%s", FIX, files[i].file);
            if (oaif(out, sizeof out, args) != 0)
                fail_msg("%s:\n%s", args, out);
            expect_in(out, files[i].says);
        }
    assert_int_equal(records("pairs"), 15);
    assert_int_equal(records("labels"), 15);
    assert_int_equal(records("strengths"), 2);
    assert_int_equal(records("scores"), 1);
    static char all[1 << 20];
    assert_int_equal(oaif(all, sizeof all, "export labels"), 0);
    assert_int_equal(count(all, "\"judge\":\"import:part2\""), 3);
    assert_int_equal(count(all, "\"winner\":\"WINNER_FIRST\""), 15);
    assert_int_equal(oaif(all, sizeof all, "export pairs"), 0);
    expect_in(all, "\"prompt\":\"Name a fruit.\\n\\nAssistant: Apple.\\n\\nHuman: Another one?\"");
    expect_in(all, "\"run\":\"trl_implicit\"");
    /* The same file under another dataset is another set of pairs. */
    assert_int_equal(oaif(out, sizeof out, "import pairs " FIX "hh.jsonl --dataset hh-copy"), 0);
    assert_int_equal(records("pairs"), 18);
}

static void test_a_bad_row_imports_nothing(void **state)
{
    (void)state;
    char out[16384];
    assert_int_equal(oaif(out, sizeof out, "import pairs " FIX "hh_bad.jsonl"), 1);
    expect_in(out, "oaif import: " FIX "hh_bad.jsonl:2: field \"rejected\": missing");
    expect_in(out, "hh_bad.jsonl:3: field \"rejected\": expected a string, got a number");
    expect_in(out, "hh_bad.jsonl:4: chosen and rejected are the same response");
    expect_in(out, "hh_bad.jsonl:5: chosen and rejected have different prompts");
    expect_in(out, "hh_bad.jsonl:6: field \"chosen\": no \"\\n\\nAssistant:\" turn");
    expect_in(out, "hh_bad.jsonl:7: not valid JSON");
    expect_in(out, "hh_bad.jsonl:10: field \"rejected\": the response is empty");
    expect_in(out, "8 of 10 rows of " FIX "hh_bad.jsonl are bad");
    expect_in(out, "nothing was imported (--skip-bad imports the good ones)");
    assert_int_equal(records("pairs"), 0);
    assert_int_equal(records("labels"), 0);

    assert_int_equal(oaif(out, sizeof out, "import pairs " FIX "part2_bad.json"), 1);
    expect_in(out, "part2_bad.json:3: item 2: field \"chosen\": the last turn (chosen 3) is the "
                   "Human's, not the Assistant's");
    expect_in(out, "part2_bad.json:4: item 3: fields \"chosen_score_list\" and "
                   "\"rejected_score_list\": 2 and 1 scores");
    assert_int_equal(records("pairs"), 0);
}

static void test_skip_bad_counts_each_reason(void **state)
{
    (void)state;
    char out[16384];
    assert_int_equal(oaif(out, sizeof out, "import pairs " FIX "hh_bad.jsonl --skip-bad"), 0);
    expect_in(out, "imported 2 pairs");
    expect_in(out, "skipped 8 bad rows of 10: 1 not valid JSON, 1 missing field, 1 wrong type, "
                   "2 malformed transcript, 1 prompts differ, 1 empty prompt or response, 1 "
                   "identical responses");
    expect_in(out,
              "1 missing field, the first: " FIX "hh_bad.jsonl:2: field \"rejected\": missing");
    expect_in(out, "2 malformed transcript, the first: " FIX "hh_bad.jsonl:6:");
    assert_int_equal(records("pairs"), 2);

    assert_int_equal(oaif(out, sizeof out, "import pairs " FIX "trl_bad.jsonl --skip-bad"), 0);
    expect_in(out, "skipped 6 bad rows of 7: 1 missing field, 1 wrong type, 1 bad value, 1 "
                   "malformed transcript, 1 prompts differ, 1 empty prompt or response");
    assert_int_equal(oaif(out, sizeof out, "import pairs " FIX "part2_bad.json --skip-bad"), 0);
    expect_in(out, "skipped 6 bad rows of 7: 1 missing field, 1 wrong type, 2 bad value, 1 "
                   "malformed transcript, 1 prompts differ");
    assert_int_equal(oaif(out, sizeof out, "import pairs " FIX "tldr_bad.jsonl --skip-bad"), 0);
    expect_in(out, "skipped 4 bad rows of 5: 1 missing field, 2 bad value, 1 identical responses");
    assert_int_equal(records("pairs"), 5);
    assert_int_equal(records("strengths"), 1);
    /* Again: the same good rows, nothing new. */
    assert_int_equal(oaif(out, sizeof out, "import pairs " FIX "hh_bad.jsonl --skip-bad"), 0);
    assert_int_equal(records("pairs"), 5);
}

static void test_format_limits_and_bad_bytes(void **state)
{
    struct fx *f = *state;
    char out[16384], args[1024], path[400];
    /* Named: every row is read as that format. */
    assert_int_equal(oaif(out, sizeof out, "import pairs " FIX "hh.jsonl --format tldr"), 1);
    expect_in(out, "hh.jsonl:1: field \"info\": missing");
    assert_int_equal(oaif(out, sizeof out, "import pairs " FIX "hh.jsonl --format hh"), 0);
    assert_int_equal(oaif(out, sizeof out, "import pairs " FIX "hh.jsonl --format nope"), 2);
    expect_in(out, "flag --format: expected one of auto, hh, trl, part2, tldr");
    assert_int_equal(oaif(out, sizeof out, "import pairs " FIX "hh.jsonl --dataset 'a b'"), 2);
    expect_in(out, "flag --dataset: 'a b' is not a dataset name");

    /* A first row that fits no format. */
    snprintf(path, sizeof path, "%s/odd.jsonl", f->dir);
    write_file(path, "{\"question\": \"q\", \"answer\": \"a\"}\n");
    snprintf(args, sizeof args, "import pairs %s", path);
    assert_int_equal(oaif(out, sizeof out, args), 1);
    expect_in(out, "odd.jsonl:1: cannot tell the format");
    expect_in(out, "name it with --format hh|trl|part2|tldr");

    /* The response limit, and bytes that are not UTF-8. */
    snprintf(path, sizeof path, "%s/big.jsonl", f->dir);
    write_file(path, "{\"prompt\": \"q\", \"chosen\": \"0123456789012345678901234567890123456789"
                     "0123456789\", \"rejected\": \"short\"}\n"
                     "{\"prompt\": \"q\", \"chosen\": \"caf\xe9\", \"rejected\": \"b\"}\n");
    snprintf(args, sizeof args, "import pairs %s --max-response-bytes 40", path);
    assert_int_equal(oaif(out, sizeof out, args), 1);
    expect_in(out, "big.jsonl:1: field \"chosen\": the response is 50 bytes, over the limit of 40 "
                   "(--max-response-bytes)");
    expect_in(out, "big.jsonl:2: invalid UTF-8 (byte 0xe9 at column 31)");
    assert_int_equal(records("pairs"), 3);

    /* stdin, named "stdin" unless --dataset says otherwise. */
    snprintf(args, sizeof args, "import pairs - < %s/trl_implicit.jsonl", OAIF_FIXTURES "/pairs");
    assert_int_equal(oaif(out, sizeof out, args), 0);
    expect_in(out, "imported 2 pairs from - (format trl, dataset stdin)");
}

/* Export as TRL and as HH, import the export: the same pairs (the same ids under the same
 * dataset, so nothing new; the same lines under another). */
static void test_export_imports_back_as_the_same_pairs(void **state)
{
    struct fx *f = *state;
    char out[16384], args[1024], path[400], path2[400];
    static const char *const files[] = {"hh.jsonl", "trl.jsonl", "part2.json", "tldr.jsonl"};
    for (size_t i = 0; i < 4; i++) {
        snprintf(args, sizeof args, "import pairs %s%s --dataset mix", FIX, files[i]);
        assert_int_equal(oaif(out, sizeof out, args), 0);
    }
    assert_int_equal(oaif(out, sizeof out, "import pairs " FIX "trl_implicit.jsonl"), 0);
    int pairs = records("pairs");
    assert_int_equal(pairs, 15);
    static const char *const fmts[] = {"trl", "hh"};
    for (size_t k = 0; k < 2; k++) {
        snprintf(path, sizeof path, "%s/mix.%s.jsonl", f->dir, fmts[k]);
        snprintf(args, sizeof args, "export pairs --format %s --dataset mix", fmts[k]);
        assert_int_equal(oaif_to(path, out, sizeof out, args), 0);
        expect_in(out, "exported 13 pairs");
        char *a = slurp(path);
        assert_int_equal(count(a, "\n"), 13);
        if (k == 0) {
            expect_in(a, "{\"prompt\":\"What is the capital of France?\",\"chosen\":\"Paris.\","
                         "\"rejected\":\"Lyon.\"}\n");
            /* TL;DR: choice 1 made the second summary the chosen one. */
            expect_in(a, "\"chosen\":\"my rice always burns at the bottom\",\"rejected\":\"rice\"");
        } else {
            expect_in(a, "{\"chosen\":\"\\n\\nHuman: What is 2+2?\\n\\nAssistant: 4.\","
                         "\"rejected\":\"\\n\\nHuman: What is 2+2?\\n\\nAssistant: 5.\"}\n");
        }
        /* Under the same dataset: the same ids, nothing new. */
        snprintf(args, sizeof args, "import pairs %s --dataset mix", path);
        assert_int_equal(oaif(out, sizeof out, args), 0);
        expect_in(out, "imported 13 pairs");
        assert_int_equal(records("pairs"), pairs);
        /* Under another: new pairs that export to the very same lines. */
        snprintf(args, sizeof args, "import pairs %s --dataset again-%s", path, fmts[k]);
        assert_int_equal(oaif(out, sizeof out, args), 0);
        pairs += 13;
        assert_int_equal(records("pairs"), pairs);
        snprintf(path2, sizeof path2, "%s/again.%s.jsonl", f->dir, fmts[k]);
        snprintf(args, sizeof args, "export pairs --format %s --dataset again-%s", fmts[k],
                 fmts[k]);
        assert_int_equal(oaif_to(path2, out, sizeof out, args), 0);
        char *b = slurp(path2);
        assert_string_equal(a, b);
        free(a);
        free(b);
    }
    /* Without --dataset: every pair. */
    snprintf(path, sizeof path, "%s/all.jsonl", f->dir);
    assert_int_equal(oaif_to(path, out, sizeof out, "export pairs --format trl"), 0);
    expect_in(out, "exported 41 pairs as trl");
    /* --format is for pairs; --dataset needs it. */
    assert_int_equal(oaif(out, sizeof out, "export labels --format trl"), 2);
    expect_in(out, "--format trl|hh and --dataset are for pairs");
    assert_int_equal(oaif(out, sizeof out, "export pairs --dataset mix"), 2);
    assert_int_equal(oaif(out, sizeof out, "export pairs --format csv"), 2);
    expect_in(out, "flag --format: expected one of records, trl, hh");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_every_format_imports_and_again_adds_nothing, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_a_bad_row_imports_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_skip_bad_counts_each_reason, setup, teardown),
        cmocka_unit_test_setup_teardown(test_format_limits_and_bad_bytes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_export_imports_back_as_the_same_pairs, setup,
                                        teardown),
    };
    return cmocka_run_group_tests_name("import_pairs_cli", tests, NULL, NULL);
}
