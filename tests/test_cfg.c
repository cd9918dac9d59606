/* test_cfg.c - the YAML tree, every option type, the layering and its messages, secrets, help. */
#include <setjmp.h> /* cmocka 1.1 needs these four first; keep <cmocka.h> */
#include <stdarg.h> /* in its own block, or clang-format sorts it above them */
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cfg.h"
#include "err.h"

/* ------------------------------------------------------------------------------------------ */
/* A service's table, as a service would write it                                             */

struct tconf {
    int batch_size;
    double lr;
    bool verbose;
    char *bind;
    int loss;
    int64_t timeout_ms;
    size_t max_bytes;
    struct cfg_strlist judges;
    char *api_key;
    double beta1;
    int n; /* sampler.n: read from a section this service does not own */
    int untouched;
};

enum { LOSS_DPO, LOSS_IPO, LOSS_SLIC };
static const struct cfg_choice losses[] = {{"dpo", 0}, {"ipo", 1}, {"slic", 2}, {NULL, 0}};
static const char *const sections[] = {"trainer", "annotator", NULL};

static const struct cfg_option topts[] = {
    CFG_INT_OPT(struct tconf, batch_size, .key = "trainer.batch_size", .def = "64", .min = 1,
                .max = 4096, .env = "T_BATCH_SIZE", .flag = "--batch-size",
                .help = "Prompts per step."),
    CFG_DOUBLE_OPT(struct tconf, lr, .key = "trainer.lr", .def = "5e-7", .dmin = 0, .dmax = 1,
                   .env = "T_LR", .flag = "--lr", .help = "Learning rate."),
    CFG_BOOL_OPT(struct tconf, verbose, .key = "trainer.verbose", .env = "T_VERBOSE",
                 .flag = "--verbose"),
    CFG_STRING_OPT(struct tconf, bind, .key = "trainer.bind", .def = "tcp://0.0.0.0:5555",
                   .env = "T_BIND", .flag = "--bind", .help = "Where to listen."),
    CFG_ENUM_OPT(struct tconf, loss, .key = "trainer.loss", .def = "dpo", .choices = losses,
                 .env = "T_LOSS", .flag = "--loss", .help = "DAP loss."),
    CFG_DURATION_OPT(struct tconf, timeout_ms, .key = "trainer.timeout", .def = "2s", .min = 100,
                     .max = 3600000, .env = "T_TIMEOUT", .flag = "--timeout"),
    CFG_SIZE_OPT(struct tconf, max_bytes, .key = "trainer.max_bytes", .def = "1MiB",
                 .env = "T_MAX_BYTES", .flag = "--max-bytes"),
    CFG_STRLIST_OPT(struct tconf, judges, .key = "trainer.judges", .def = "sim", .env = "T_JUDGES",
                    .flag = "--judges"),
    CFG_STRING_OPT(struct tconf, api_key, .key = "annotator.api_key", .env = "T_API_KEY",
                   .flag = "--api-key", .flags = CFG_SECRET, .help = "Judge API key."),
    CFG_DOUBLE_OPT(struct tconf, beta1, .key = "trainer.optim.beta1", .def = "0.9"),
    CFG_INT_OPT(struct tconf, n, .key = "sampler.n", .def = "2", .min = 1, .max = 64),
};

static const struct cfg_spec tspec = {.name = "t",
                                      .summary = "A test service.",
                                      .sections = sections,
                                      .options = topts,
                                      .n_options = sizeof topts / sizeof topts[0]};

static const char *const env_names[] = {"T_BATCH_SIZE", "T_LR",           "T_VERBOSE",   "T_BIND",
                                        "T_LOSS",       "T_TIMEOUT",      "T_MAX_BYTES", "T_JUDGES",
                                        "T_API_KEY",    "T_API_KEY_FILE", "OAIF_CONFIG", NULL};

static char tmpdir[64];
static char oldcwd[4096];

static int setup(void **state)
{
    (void)state;
    for (int i = 0; env_names[i]; i++)
        unsetenv(env_names[i]);
    snprintf(tmpdir, sizeof tmpdir, "/tmp/test_cfg.XXXXXX");
    if (!mkdtemp(tmpdir) || !getcwd(oldcwd, sizeof oldcwd) || chdir(tmpdir) != 0)
        return -1;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    static const char *const files[] = {"run.yaml", "key.txt", "empty.txt", NULL};
    for (int i = 0; files[i]; i++)
        unlink(files[i]);
    if (chdir(oldcwd) != 0)
        return -1;
    rmdir(tmpdir);
    for (int i = 0; env_names[i]; i++)
        unsetenv(env_names[i]);
    return 0;
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

/* Runs cfg_load with argv = {"t", args..., NULL}; returns rc, errors in *errs. */
static int load(struct tconf *c, buf_t *errs, const char *const *args)
{
    char *argv[32] = {"t"};
    int argc = 1;
    for (; args && args[argc - 1]; argc++)
        argv[argc] = (char *)args[argc - 1];
    memset(c, 0, sizeof *c);
    c->untouched = 77;
    buf_init(errs, 0);
    return cfg_load(&tspec, c, argc, argv, errs);
}

/* Expects cfg_load to fail with exactly `expected` (all lines) as its messages. */
static void expect_errors(const char *const *args, const char *expected)
{
    struct tconf c;
    buf_t errs;
    int rc = load(&c, &errs, args);
    assert_int_equal(rc, ERR_INVAL);
    assert_non_null(errs.data);
    assert_string_equal(errs.data, expected);
    assert_null(c.bind); /* released on failure */
    assert_int_equal(c.judges.n, 0);
    buf_free(&errs);
}

/* ------------------------------------------------------------------------------------------ */
/* stderr / stdout capture, for what goes to the log                                           */

struct capture {
    int fd, saved;
    char path[64];
};

static void capture_begin(struct capture *cap, int fd)
{
    fflush(fd == 1 ? stdout : stderr);
    snprintf(cap->path, sizeof cap->path, "/tmp/test_cfg_cap.XXXXXX");
    int t = mkstemp(cap->path);
    assert_true(t >= 0);
    cap->fd = fd;
    cap->saved = dup(fd);
    assert_true(dup2(t, fd) >= 0);
    close(t);
}

static char *capture_end(struct capture *cap)
{
    fflush(cap->fd == 1 ? stdout : stderr);
    dup2(cap->saved, cap->fd);
    close(cap->saved);
    FILE *f = fopen(cap->path, "r");
    assert_non_null(f);
    static char text[65536];
    size_t n = fread(text, 1, sizeof text - 1, f);
    text[n] = '\0';
    fclose(f);
    unlink(cap->path);
    return text;
}

/* ------------------------------------------------------------------------------------------ */
/* The YAML tree                                                                               */

static void test_doc_nodes_know_their_positions(void **state)
{
    (void)state;
    const char *y = "# a comment\n"
                    "trainer:\n"
                    "  batch_size: 32\n"
                    "  judges:\n"
                    "    - a\n"
                    "    - 'b c'\n"
                    "  optim: {beta1: 0.8}\n"
                    "  empty:\n";
    cfg_doc_t *doc = NULL;
    assert_int_equal(cfg_doc_parse(&doc, "run.yaml", y, strlen(y), NULL), ERR_OK);
    const struct cfg_node *root = cfg_doc_root(doc);
    assert_int_equal(root->kind, CFG_NODE_MAP);
    const struct cfg_node *bs = cfg_node_get(root, "trainer.batch_size");
    assert_non_null(bs);
    assert_int_equal(bs->kind, CFG_NODE_SCALAR);
    assert_string_equal(bs->text, "32");
    assert_string_equal(bs->key, "batch_size");
    assert_string_equal(bs->file, "run.yaml");
    assert_int_equal(bs->line, 3);
    assert_int_equal(bs->col, 15);
    assert_int_equal(bs->key_line, 3);
    assert_int_equal(bs->key_col, 3);
    const struct cfg_node *j = cfg_node_get(root, "trainer.judges");
    assert_int_equal(j->kind, CFG_NODE_SEQ);
    assert_int_equal(j->n_kids, 2);
    assert_string_equal(j->kids[1]->text, "b c");
    assert_false(j->kids[1]->plain);
    assert_int_equal(j->kids[1]->line, 6);
    assert_int_equal(j->kids[1]->col, 7);
    const struct cfg_node *b1 = cfg_node_get(root, "trainer.optim.beta1");
    assert_string_equal(b1->text, "0.8");
    assert_true(cfg_node_is_null(cfg_node_get(root, "trainer.empty")));
    assert_null(cfg_node_get(root, "trainer.batch_size.x")); /* through a scalar */
    assert_null(cfg_node_get(root, "trainer.missing"));
    assert_null(cfg_node_get(NULL, "trainer"));
    cfg_doc_free(&doc);
    assert_null(doc);
    cfg_doc_free(&doc); /* NULL-safe */
    cfg_doc_free(NULL);
}

static void test_doc_empty_has_no_root(void **state)
{
    (void)state;
    cfg_doc_t *doc = NULL;
    assert_int_equal(cfg_doc_parse(&doc, "e.yaml", "", 0, NULL), ERR_OK);
    assert_null(cfg_doc_root(doc));
    cfg_doc_free(&doc);
    assert_int_equal(cfg_doc_parse(&doc, "e.yaml", "# only a comment\n", 17, NULL), ERR_OK);
    assert_null(cfg_doc_root(doc));
    cfg_doc_free(&doc);
}

/* Parses y and expects failure with exactly the message `expected`. */
static void expect_doc_error(const char *y, size_t len, const char *expected)
{
    cfg_doc_t *doc = NULL;
    buf_t errs;
    buf_init(&errs, 0);
    assert_int_equal(cfg_doc_parse(&doc, "t.yaml", y, len, &errs), ERR_INVAL);
    assert_null(doc);
    assert_non_null(errs.data);
    assert_string_equal(errs.data, expected);
    buf_free(&errs);
}

static void test_doc_duplicate_key_names_both_places(void **state)
{
    (void)state;
    const char *y = "trainer:\n  batch_size: 1\n  lr: 2\n  batch_size: 3\n";
    expect_doc_error(y, strlen(y),
                     "t.yaml:4:3: duplicate key 'batch_size' (first at line 2, column 3)\n");
}

static void test_doc_refuses_anchors_aliases_tags(void **state)
{
    (void)state;
    const char *a = "a: &x 1\nb: 2\n";
    expect_doc_error(a, strlen(a),
                     "t.yaml:1:4: anchors (&x) are not supported: write the value out\n");
    const char *b = "a: 1\nb: *x\n";
    expect_doc_error(b, strlen(b),
                     "t.yaml:2:4: aliases (*x) are not supported: write the value out\n");
    const char *t = "a: !!str 1\n";
    expect_doc_error(t, strlen(t), "t.yaml:1:4: tags (tag:yaml.org,2002:str) are not supported\n");
}

static void test_doc_syntax_errors_have_positions(void **state)
{
    (void)state;
    const char *y = "a: 1\nb: [1, 2\nc: 3\n";
    cfg_doc_t *doc = NULL;
    buf_t errs;
    buf_init(&errs, 0);
    assert_int_equal(cfg_doc_parse(&doc, "t.yaml", y, strlen(y), &errs), ERR_INVAL);
    assert_null(doc);
    /* libyaml's wording; the position is ours to check */
    assert_non_null(strstr(errs.data, "t.yaml:3:2: did not find expected ',' or ']'"));
    buf_free(&errs);

    const char *two = "a: 1\n---\nb: 2\n";
    expect_doc_error(two, strlen(two), "t.yaml:2:1: only one YAML document is allowed\n");
    const char *key = "? [a]\n: 1\n";
    expect_doc_error(key, strlen(key),
                     "t.yaml:1:3: a mapping key must be a scalar, not a "
                     "sequence\n");
    const char *nul = "a: \"x\\0y\"\n";
    expect_doc_error(nul, strlen(nul), "t.yaml:1:4: a NUL character is not allowed in a value\n");
    const char bad_utf8[] = "a: 1\nb: \xff\n";
    expect_doc_error(bad_utf8, sizeof bad_utf8 - 1,
                     "t.yaml:2:4: invalid leading UTF-8 octet (byte 0xff)\n");
    const char raw_nul[] = "a: 1\0\n";
    expect_doc_error(raw_nul, sizeof raw_nul - 1,
                     "t.yaml:1:5: control characters are not allowed (byte 0x00)\n");
}

static void test_doc_depth_is_limited(void **state)
{
    (void)state;
    char y[400];
    size_t n = 0;
    for (int i = 0; i < 100; i++)
        y[n++] = '[';
    for (int i = 0; i < 100; i++)
        y[n++] = ']';
    y[n] = '\0';
    expect_doc_error(y, n, "t.yaml:1:65: nested deeper than 64 levels\n");
}

static void test_doc_load_missing_file_is_io(void **state)
{
    (void)state;
    cfg_doc_t *doc = NULL;
    buf_t errs;
    buf_init(&errs, 0);
    assert_int_equal(cfg_doc_load(&doc, "/nonexistent/run.yaml", &errs), ERR_IO);
    assert_string_equal(errs.data,
                        "/nonexistent/run.yaml: cannot read: No such file or directory\n");
    buf_free(&errs);
}

/* ------------------------------------------------------------------------------------------ */
/* Layering                                                                                    */

static void test_defaults_apply(void **state)
{
    (void)state;
    struct tconf c;
    buf_t errs;
    assert_int_equal(load(&c, &errs, NULL), ERR_OK);
    assert_null(errs.data);
    assert_int_equal(c.batch_size, 64);
    assert_true(c.lr == 5e-7);
    assert_false(c.verbose);
    assert_string_equal(c.bind, "tcp://0.0.0.0:5555");
    assert_int_equal(c.loss, LOSS_DPO);
    assert_int_equal(c.timeout_ms, 2000);
    assert_int_equal(c.max_bytes, 1 << 20);
    assert_int_equal(c.judges.n, 1);
    assert_string_equal(c.judges.items[0], "sim");
    assert_null(c.api_key);
    assert_true(c.beta1 == 0.9);
    assert_int_equal(c.n, 2);
    assert_int_equal(c.untouched, 77);
    cfg_release(&tspec, &c);
    assert_null(c.bind);
    cfg_release(&tspec, &c); /* twice is fine */
}

static void test_precedence_file_env_flag(void **state)
{
    (void)state;
    write_file("run.yaml", "trainer:\n"
                           "  batch_size: 32\n"
                           "  bind: tcp://127.0.0.1:1\n"
                           "  loss: ipo\n"
                           "  optim:\n"
                           "    beta1: 0.8\n"
                           "sampler:\n"
                           "  n: 4\n"
                           "  whatever: 1\n" /* not our section: not checked */
                           "ledger:\n"
                           "  anything: [1, 2]\n");
    struct tconf c;
    buf_t errs;
    const char *file_only[] = {"--config", "run.yaml", NULL};
    assert_int_equal(load(&c, &errs, file_only), ERR_OK);
    assert_int_equal(c.batch_size, 32);
    assert_string_equal(c.bind, "tcp://127.0.0.1:1");
    assert_int_equal(c.loss, LOSS_IPO);
    assert_true(c.beta1 == 0.8);
    assert_int_equal(c.n, 4);
    assert_int_equal(c.timeout_ms, 2000); /* not in the file: default */
    cfg_release(&tspec, &c);

    setenv("OAIF_CONFIG", "run.yaml", 1); /* the file by environment */
    setenv("T_BATCH_SIZE", "16", 1);
    setenv("T_LOSS", "", 1); /* empty: unset */
    assert_int_equal(load(&c, &errs, NULL), ERR_OK);
    assert_int_equal(c.batch_size, 16);
    assert_int_equal(c.loss, LOSS_IPO);
    assert_string_equal(c.bind, "tcp://127.0.0.1:1");
    cfg_release(&tspec, &c);

    const char *flags[] = {"--batch-size", "8", "--bind=tcp://127.0.0.1:2", NULL};
    assert_int_equal(load(&c, &errs, flags), ERR_OK);
    assert_int_equal(c.batch_size, 8);
    assert_string_equal(c.bind, "tcp://127.0.0.1:2");
    assert_int_equal(c.loss, LOSS_IPO);
    cfg_release(&tspec, &c);

    /* the last of a repeated flag wins; --config beats OAIF_CONFIG */
    write_file("key.txt", "trainer:\n  batch_size: 3\n");
    const char *again[] = {"--batch-size=1", "--batch-size=2", "--config", "key.txt", NULL};
    assert_int_equal(load(&c, &errs, again), ERR_OK);
    assert_int_equal(c.batch_size, 2);
    assert_int_equal(c.loss, LOSS_DPO);
    cfg_release(&tspec, &c);
    unsetenv("T_BATCH_SIZE");
    const char *other[] = {"--config", "key.txt", NULL};
    assert_int_equal(load(&c, &errs, other), ERR_OK);
    assert_int_equal(c.batch_size, 3);
    cfg_release(&tspec, &c);
}

static void test_null_in_file_keeps_default(void **state)
{
    (void)state;
    write_file("run.yaml", "trainer:\n  batch_size:\n  bind: ~\nannotator:\n");
    struct tconf c;
    buf_t errs;
    const char *args[] = {"--config", "run.yaml", NULL};
    assert_int_equal(load(&c, &errs, args), ERR_OK);
    assert_int_equal(c.batch_size, 64);
    assert_string_equal(c.bind, "tcp://0.0.0.0:5555");
    cfg_release(&tspec, &c);
}

/* ------------------------------------------------------------------------------------------ */
/* Every type: good values, then bad ones with the exact message                               */

static void test_int_values_and_errors(void **state)
{
    (void)state;
    write_file("run.yaml", "trainer:\n  lr: 0.1\n  batch_size: abc\n");
    const char *file[] = {"--config", "run.yaml", NULL};
    expect_errors(file, "run.yaml:3:15: trainer.batch_size: expected an integer in [1, 4096], got "
                        "'abc'\n");
    write_file("run.yaml", "trainer:\n  batch_size: 4097\n");
    expect_errors(file, "run.yaml:2:15: trainer.batch_size: expected an integer in [1, 4096], got "
                        "'4097'\n");
    write_file("run.yaml", "trainer:\n  batch_size: [1]\n");
    expect_errors(file, "run.yaml:2:15: trainer.batch_size: expected an integer in [1, 4096], got "
                        "a sequence\n");
    setenv("T_BATCH_SIZE", "0", 1);
    expect_errors(NULL, "environment T_BATCH_SIZE: expected an integer in [1, 4096], got '0'\n");
    unsetenv("T_BATCH_SIZE");
    const char *flag[] = {"--batch-size=1.5", NULL};
    expect_errors(flag, "flag --batch-size: expected an integer in [1, 4096], got '1.5'\n");
    const char *huge[] = {"--batch-size", "99999999999999999999", NULL};
    expect_errors(huge, "flag --batch-size: expected an integer in [1, 4096], got "
                        "'99999999999999999999'\n");

    struct tconf c;
    buf_t errs;
    const char *ok[] = {"--batch-size", " 4096 ", NULL};
    assert_int_equal(load(&c, &errs, ok), ERR_OK);
    assert_int_equal(c.batch_size, 4096);
    cfg_release(&tspec, &c);
}

static void test_double_values_and_errors(void **state)
{
    (void)state;
    struct tconf c;
    buf_t errs;
    const char *ok[] = {"--lr", "1e-3", NULL};
    assert_int_equal(load(&c, &errs, ok), ERR_OK);
    assert_true(c.lr == 1e-3);
    cfg_release(&tspec, &c);
    const char *big[] = {"--lr=2", NULL};
    expect_errors(big, "flag --lr: expected a number in [0, 1], got '2'\n");
    const char *nan[] = {"--lr=nan", NULL};
    expect_errors(nan, "flag --lr: expected a number in [0, 1], got 'nan'\n");
    setenv("T_LR", "0.5x", 1);
    expect_errors(NULL, "environment T_LR: expected a number in [0, 1], got '0.5x'\n");
}

static void test_bool_values_and_errors(void **state)
{
    (void)state;
    struct tconf c;
    buf_t errs;
    const char *alone[] = {"--verbose", NULL};
    assert_int_equal(load(&c, &errs, alone), ERR_OK);
    assert_true(c.verbose);
    cfg_release(&tspec, &c);
    setenv("T_VERBOSE", "YES", 1);
    const char *off[] = {"--verbose=off", NULL};
    assert_int_equal(load(&c, &errs, off), ERR_OK);
    assert_false(c.verbose);
    cfg_release(&tspec, &c);
    assert_int_equal(load(&c, &errs, NULL), ERR_OK);
    assert_true(c.verbose);
    cfg_release(&tspec, &c);
    const char *bad[] = {"--verbose=maybe", NULL};
    expect_errors(bad, "flag --verbose: expected true or false, got 'maybe'\n");
}

static void test_enum_values_and_suggestion(void **state)
{
    (void)state;
    struct tconf c;
    buf_t errs;
    const char *ok[] = {"--loss", "slic", NULL};
    assert_int_equal(load(&c, &errs, ok), ERR_OK);
    assert_int_equal(c.loss, LOSS_SLIC);
    cfg_release(&tspec, &c);
    const char *typo[] = {"--loss=dop", NULL};
    expect_errors(typo, "flag --loss: expected one of dpo, ipo, slic, got 'dop'; did you mean "
                        "'dpo'?\n");
    const char *far[] = {"--loss=hinge", NULL};
    expect_errors(far, "flag --loss: expected one of dpo, ipo, slic, got 'hinge'\n");
    const char *cased[] = {"--loss=DPO", NULL};
    expect_errors(cased, "flag --loss: expected one of dpo, ipo, slic, got 'DPO'\n");
}

static void test_duration_values_and_errors(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        int64_t ms;
    } good[] = {{"500ms", 500},  {"1.5s", 1500}, {"1m30s", 90000},
                {"1h", 3600000}, {"100ms", 100}, {" 2m ", 120000}};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        struct tconf c;
        buf_t errs;
        const char *args[] = {"--timeout", good[i].text, NULL};
        assert_int_equal(load(&c, &errs, args), ERR_OK);
        assert_int_equal(c.timeout_ms, good[i].ms);
        cfg_release(&tspec, &c);
    }
    static const char *const bad[] = {"5", "2h", "99ms", "1.5ms", "s", "1x", "-1s", "1s2", ""};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char arg[64], want[256];
        snprintf(arg, sizeof arg, "--timeout=%s", bad[i]);
        snprintf(want, sizeof want,
                 "flag --timeout: expected a duration like 500ms, 2s, 1m in [100ms, 1h], got "
                 "'%s'\n",
                 bad[i]);
        const char *args[] = {arg, NULL};
        expect_errors(args, want);
    }
}

static void test_size_values_and_errors(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        size_t bytes;
    } good[] = {{"4096", 4096},   {"512KiB", 512 << 10},     {"64 MiB", 64u << 20},
                {"1.5KiB", 1536}, {"10kB", 10000},           {"2GiB", (size_t)2 << 30},
                {"5MB", 5000000}, {"1TiB", (size_t)1 << 40}, {"0", 0},
                {"7B", 7}};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        struct tconf c;
        buf_t errs;
        setenv("T_MAX_BYTES", good[i].text, 1);
        assert_int_equal(load(&c, &errs, NULL), ERR_OK);
        assert_int_equal(c.max_bytes, good[i].bytes);
        cfg_release(&tspec, &c);
    }
    static const char *const bad[] = {"0.3KiB", "3XB", "1 k", "-1", "MiB", "1e3"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char want[256];
        setenv("T_MAX_BYTES", bad[i], 1);
        snprintf(want, sizeof want,
                 "environment T_MAX_BYTES: expected a size like 512KiB, 64MiB, 2GiB, got '%s'\n",
                 bad[i]);
        expect_errors(NULL, want);
    }
}

static void test_string_and_list_values(void **state)
{
    (void)state;
    write_file("run.yaml", "trainer:\n  judges: [a, 'b, c']\n  bind: \"x\\ty\"\n");
    struct tconf c;
    buf_t errs;
    const char *file[] = {"--config", "run.yaml", NULL};
    assert_int_equal(load(&c, &errs, file), ERR_OK);
    assert_int_equal(c.judges.n, 2);
    assert_string_equal(c.judges.items[0], "a");
    assert_string_equal(c.judges.items[1], "b, c"); /* a YAML item is one item */
    assert_string_equal(c.bind, "x\ty");
    cfg_release(&tspec, &c);

    setenv("T_JUDGES", " a , b,,c ", 1);
    assert_int_equal(load(&c, &errs, NULL), ERR_OK);
    assert_int_equal(c.judges.n, 3);
    assert_string_equal(c.judges.items[0], "a");
    assert_string_equal(c.judges.items[1], "b");
    assert_string_equal(c.judges.items[2], "c");
    cfg_release(&tspec, &c);

    const char *empty[] = {"--judges=", NULL}; /* a flag can empty the list */
    assert_int_equal(load(&c, &errs, empty), ERR_OK);
    assert_int_equal(c.judges.n, 0);
    cfg_release(&tspec, &c);
    unsetenv("T_JUDGES");

    write_file("run.yaml", "trainer:\n  judges:\n    - a\n    - {x: 1}\n    -\n  bind: {a: 1}\n");
    /* in table order: bind comes before judges */
    expect_errors(file, "run.yaml:6:9: trainer.bind: expected a string, got a mapping\n"
                        "run.yaml:4:7: trainer.judges: expected a string, got a mapping\n"
                        "run.yaml:5:6: trainer.judges: expected a string, got null\n");
}

/* ------------------------------------------------------------------------------------------ */
/* Unknown keys and flags                                                                      */

static void test_unknown_key_suggests_closest(void **state)
{
    (void)state;
    write_file("run.yaml", "trainer:\n"
                           "  batchsize: 3\n"
                           "  optim:\n"
                           "    beta: 0.9\n"
                           "  zzz: 1\n"
                           "annotator:\n"
                           "  api_kye: x\n"
                           "  api_key_fil: /x\n");
    const char *file[] = {"--config", "run.yaml", NULL};
    expect_errors(file, "run.yaml:2:3: trainer.batchsize: unknown option; did you mean "
                        "'trainer.batch_size'?\n"
                        "run.yaml:4:5: trainer.optim.beta: unknown option; did you mean "
                        "'trainer.optim.beta1'?\n"
                        "run.yaml:5:3: trainer.zzz: unknown option\n"
                        "run.yaml:7:3: annotator.api_kye: unknown option; did you mean "
                        "'annotator.api_key'?\n"
                        "run.yaml:8:3: annotator.api_key_fil: unknown option; did you mean "
                        "'annotator.api_key_file'?\n");

    write_file("run.yaml", "trainer: 5\n");
    expect_errors(file, "run.yaml:1:10: trainer: expected a mapping, got a scalar\n");
    write_file("run.yaml", "trainer:\n  optim: 5\n");
    expect_errors(file, "run.yaml:2:10: trainer.optim: expected a mapping, got a scalar\n");
    write_file("run.yaml", "- trainer\n");
    expect_errors(file, "run.yaml:1:1: the run file must be a mapping of sections, not a "
                        "sequence\n");
    write_file("run.yaml", "trainer:\n  lr: 1\n  lr: 2\n");
    expect_errors(file, "run.yaml:3:3: duplicate key 'lr' (first at line 2, column 3)\n");
}

static void test_bad_flags_are_errors(void **state)
{
    (void)state;
    const char *typo[] = {"--batchsize", "3", NULL};
    expect_errors(typo, "flag --batchsize: unknown; did you mean --batch-size?\n");
    const char *other[] = {"--frobnicate=1", "-x", "plain", NULL};
    expect_errors(other, "flag --frobnicate: unknown\n"
                         "unknown flag '-x' (an argument that begins with '-' goes after '--', "
                         "as in -- -x)\n"
                         "unexpected argument 'plain'\n");
    const char *novalue[] = {"--bind", NULL};
    expect_errors(novalue, "flag --bind: needs a value\n");
    const char *rest[] = {"--", "--bind", NULL};
    expect_errors(rest, "unexpected argument '--bind'\n");
    const char *ctl[] = {"--bind=ok", "a\x01'b", NULL};
    expect_errors(ctl, "unexpected argument 'a\\x01\\x27b'\n");
    const char *missing[] = {"--config", "/nonexistent.yaml", "--lr=3", NULL};
    expect_errors(missing, "/nonexistent.yaml: cannot read: No such file or directory\n"
                           "flag --lr: expected a number in [0, 1], got '3'\n");
}

/* ------------------------------------------------------------------------------------------ */
/* Secrets                                                                                     */

static void test_secret_from_files(void **state)
{
    (void)state;
    write_file("key.txt", "  sk-123\n\n");
    struct tconf c;
    buf_t errs;
    setenv("T_API_KEY_FILE", "key.txt", 1);
    assert_int_equal(load(&c, &errs, NULL), ERR_OK);
    assert_string_equal(c.api_key, "sk-123");
    cfg_release(&tspec, &c);
    unsetenv("T_API_KEY_FILE");

    write_file("run.yaml", "annotator:\n  api_key_file: key.txt\n");
    const char *file[] = {"--config", "run.yaml", NULL};
    assert_int_equal(load(&c, &errs, file), ERR_OK);
    assert_string_equal(c.api_key, "sk-123");
    cfg_release(&tspec, &c);

    setenv("T_API_KEY", "from-env", 1); /* env beats the file's _file */
    assert_int_equal(load(&c, &errs, file), ERR_OK);
    assert_string_equal(c.api_key, "from-env");
    cfg_release(&tspec, &c);
    unsetenv("T_API_KEY");

    const char *flag[] = {"--api-key-file", "key.txt", NULL};
    assert_int_equal(load(&c, &errs, flag), ERR_OK);
    assert_string_equal(c.api_key, "sk-123");
    cfg_release(&tspec, &c);

    write_file("empty.txt", " \n");
    const char *empty[] = {"--api-key-file=empty.txt", NULL};
    expect_errors(empty, "flag --api-key-file: secret file 'empty.txt' is empty\n");
    setenv("T_API_KEY_FILE", "/nonexistent/key", 1);
    expect_errors(NULL, "environment T_API_KEY_FILE: cannot read secret file '/nonexistent/key': "
                        "No such file or directory\n");
    setenv("T_API_KEY", "x", 1);
    expect_errors(NULL, "environment T_API_KEY and T_API_KEY_FILE: give one, not both\n");
    unsetenv("T_API_KEY");
    unsetenv("T_API_KEY_FILE");
    write_file("run.yaml", "annotator:\n  api_key: x\n  api_key_file: key.txt\n");
    expect_errors(file, "run.yaml:3:3: annotator.api_key_file: give either annotator.api_key or "
                        "annotator.api_key_file, not both\n");
}

static void test_secret_is_masked_in_log_and_yaml(void **state)
{
    (void)state;
    struct tconf c;
    buf_t errs;
    const char *args[] = {"--api-key", "sk-very-secret", "--judges", "a,b", NULL};
    assert_int_equal(load(&c, &errs, args), ERR_OK);
    assert_string_equal(c.api_key, "sk-very-secret");

    struct capture cap;
    capture_begin(&cap, 2);
    cfg_log(&tspec, &c);
    const char *log = capture_end(&cap);
    assert_null(strstr(log, "sk-very-secret"));
    assert_non_null(strstr(log, " config annotator.api_key = \"***\"\n"));
    assert_non_null(strstr(log, " config trainer.batch_size = 64\n"));
    assert_non_null(strstr(log, " config trainer.timeout = 2s\n"));
    size_t lines = 0;
    for (const char *p = log; *p; p++)
        lines += *p == '\n';
    assert_int_equal(lines, tspec.n_options);

    buf_t y;
    buf_init(&y, 0);
    assert_int_equal(cfg_render_yaml(&tspec, &c, &y), ERR_OK);
    assert_string_equal(y.data, "trainer:\n"
                                "  batch_size: 64\n"
                                "  lr: 5e-07\n"
                                "  verbose: false\n"
                                "  bind: \"tcp://0.0.0.0:5555\"\n"
                                "  loss: dpo\n"
                                "  timeout: 2s\n"
                                "  max_bytes: 1MiB\n"
                                "  judges: [\"a\", \"b\"]\n"
                                "  optim:\n"
                                "    beta1: 0.9\n"
                                "annotator:\n"
                                "  api_key: \"***\"\n"
                                "sampler:\n"
                                "  n: 2\n");
    buf_free(&y);
    cfg_release(&tspec, &c);

    /* the YAML reads back as the same configuration (secrets aside) */
    assert_int_equal(load(&c, &errs, NULL), ERR_OK);
    buf_init(&y, 0);
    assert_int_equal(cfg_render_yaml(&tspec, &c, &y), ERR_OK);
    write_file("run.yaml", y.data);
    cfg_release(&tspec, &c);
    const char *file[] = {"--config", "run.yaml", NULL};
    assert_int_equal(load(&c, &errs, file), ERR_OK);
    buf_t y2;
    buf_init(&y2, 0);
    assert_int_equal(cfg_render_yaml(&tspec, &c, &y2), ERR_OK);
    assert_string_equal(y.data, y2.data);
    buf_free(&y);
    buf_free(&y2);
    cfg_release(&tspec, &c);
}

static void test_secret_is_not_echoed_in_errors(void **state)
{
    (void)state;
    struct sconf {
        char *key;
    };
    static const struct cfg_option o[] = {
        CFG_STRING_OPT(struct sconf, key, .key = "a.key", .flag = "--key", .flags = CFG_SECRET)};
    static const struct cfg_spec s = {.name = "s", .options = o, .n_options = 1};
    struct sconf c = {0};
    buf_t errs;
    buf_init(&errs, 0);
    char *argv[] = {"s", "--key=hunter2", "--kye", "hunter3", NULL};
    assert_int_equal(cfg_load(&s, &c, 4, argv, &errs), ERR_INVAL);
    assert_string_equal(errs.data, "flag --kye: unknown; did you mean --key?\n");
    assert_null(c.key);
    buf_free(&errs);
}

/* ------------------------------------------------------------------------------------------ */
/* Help and the spec itself                                                                    */

struct hconf {
    int port;
    char *token;
    int64_t poll;
};

static const struct cfg_option hopts[] = {
    CFG_INT_OPT(struct hconf, port, .key = "ledger.port", .def = "9100", .min = 0, .max = 65535,
                .env = "LEDGER_PORT", .flag = "--port", .help = "Metrics port."),
    CFG_STRING_OPT(struct hconf, token, .key = "ledger.token", .env = "LEDGER_TOKEN",
                   .flag = "--token", .flags = CFG_SECRET, .help = "Bearer token."),
    CFG_DURATION_OPT(struct hconf, poll, .key = "ledger.poll", .def = "250ms"),
};
static const char *const hsections[] = {"ledger", NULL};
static const struct cfg_spec hspec = {.name = "ledger",
                                      .summary = "The durable broker.",
                                      .sections = hsections,
                                      .options = hopts,
                                      .n_options = 3};

static const char help_text[] =
    "Usage: ledger [--config FILE] [--OPTION VALUE | --OPTION=VALUE]...\n"
    "The durable broker.\n"
    "Each option is taken from, in rising precedence: its default, the run file, the "
    "environment,\n"
    "the command line.\n"
    "\n"
    "  --config FILE  $OAIF_CONFIG\n"
    "      The run file (YAML).\n"
    "  --help\n"
    "      Show this help and exit.\n"
    "  --port N  ledger.port  $LEDGER_PORT\n"
    "      Metrics port. (an integer in [0, 65535]; default 9100)\n"
    "  --token TEXT  ledger.token  $LEDGER_TOKEN\n"
    "      Secret; or from a file: --token-file FILE, ledger.token_file, $LEDGER_TOKEN_FILE.\n"
    "      Bearer token. (a string)\n"
    "  ledger.poll\n"
    "      (A duration like 500ms, 2s, 1m; default 250ms)\n";

static void test_help_text(void **state)
{
    (void)state;
    buf_t h;
    buf_init(&h, 0);
    assert_int_equal(cfg_help(&hspec, &h), ERR_OK);
    assert_string_equal(h.data, help_text);
    buf_free(&h);

    struct hconf c = {0};
    char *argv[] = {"ledger", "--port=bad", "--help", NULL};
    struct capture cap;
    capture_begin(&cap, 1);
    int rc = cfg_load(&hspec, &c, 3, argv, NULL);
    const char *out = capture_end(&cap);
    assert_int_equal(rc, CFG_HELP);
    assert_string_equal(out, help_text);
    assert_null(c.token);
}

static void test_errors_go_to_log_without_buffer(void **state)
{
    (void)state;
    struct hconf c = {0};
    char *argv[] = {"ledger", "--port=70000", NULL};
    struct capture cap;
    capture_begin(&cap, 2);
    int rc = cfg_load(&hspec, &c, 2, argv, NULL);
    const char *log = capture_end(&cap);
    assert_int_equal(rc, ERR_INVAL);
    assert_non_null(strstr(log, " ERROR "));
    assert_non_null(strstr(log, " flag --port: expected an integer in [0, 65535], got '70000'\n"));
}

static void test_bad_spec_is_reported(void **state)
{
    (void)state;
    struct bconf {
        int a, b;
        char *s;
        double d;
    } c;
    static const struct cfg_option bad[] = {
        CFG_INT_OPT(struct bconf, a, .key = "x.a", .def = "abc", .min = 1, .max = 9, .flag = "--a"),
        CFG_INT_OPT(struct bconf, b, .key = "x.a", .flag = "--a", .flags = CFG_SECRET),
        CFG_ENUM_OPT(struct bconf, b, .key = "x.e"),
        CFG_STRING_OPT(struct bconf, s, .key = "x.e.f"),
        CFG_DOUBLE_OPT(struct bconf, d, .key = "X.bad"),
        CFG_INT_OPT(struct bconf, a, .key = "x.r", .min = 5, .max = 1, .flag = "--help"),
    };
    struct cfg_spec s = {.name = "b", .options = bad, .n_options = 6};
    buf_t errs;
    buf_init(&errs, 0);
    char *argv[] = {"b", NULL};
    assert_int_equal(cfg_load(&s, &c, 1, argv, &errs), ERR_INVAL);
    assert_string_equal(errs.data,
                        "spec b: x.a: only string options can be secret\n"
                        "spec b: x.a: key listed twice\n"
                        "spec b: x.a: flag --a listed twice\n"
                        "spec b: x.e: an enum needs choices\n"
                        "spec b: x.e and x.e.f: a key cannot also be a section\n"
                        "spec b: option 4: key 'X.bad' is not a dotted path of [a-z0-9_]\n"
                        "spec b: x.r: flag '--help' must be --name, not --help or --config\n"
                        "spec b: x.r: bad range [5, 1]\n");
    buf_free(&errs);

    s.n_options = 1; /* a default that does not parse */
    buf_init(&errs, 0);
    assert_int_equal(cfg_load(&s, &c, 1, argv, &errs), ERR_INVAL);
    assert_string_equal(errs.data,
                        "spec b: x.a: default: expected an integer in [1, 9], got 'abc'\n");
    buf_free(&errs);
}

static void test_edit_distance(void **state)
{
    (void)state;
    assert_int_equal(cfg_edit_distance("kitten", "sitting"), 3);
    assert_int_equal(cfg_edit_distance("batch_size", "batchsize"), 1);
    assert_int_equal(cfg_edit_distance("ab", "ba"), 1);
    assert_int_equal(cfg_edit_distance("", "abc"), 3);
    assert_int_equal(cfg_edit_distance("same", "same"), 0);
    char long_s[300];
    memset(long_s, 'a', sizeof long_s - 1);
    long_s[sizeof long_s - 1] = '\0';
    assert_true(cfg_edit_distance(long_s, "a") == SIZE_MAX);
}

/* ------------------------------------------------------------------------------------------ */
/* deploy/oaif.example.yaml                                                                    */

struct exconf {
    int batch_size, eval_prompts;
    int64_t lease_ms;
    size_t max_msg;
    double temperature, tie_margin;
    char *judge_key;
    bool curve;
};

static void test_example_run_file_loads(void **state)
{
    (void)state;
    const char *path = OAIF_FIXTURES "/../../deploy/oaif.example.yaml";
    cfg_doc_t *doc = NULL;
    assert_int_equal(cfg_doc_load(&doc, path, NULL), ERR_OK);
    static const char *const secs[] = {"ledger", "sampler", "annotator", "trainer", "evaluator"};
    for (size_t i = 0; i < 5; i++) {
        const struct cfg_node *n = cfg_node_get(cfg_doc_root(doc), secs[i]);
        assert_non_null(n);
        assert_int_equal(n->kind, CFG_NODE_MAP);
    }
    const struct cfg_node *f = cfg_node_get(cfg_doc_root(doc), "annotator.api_key_env");
    assert_non_null(f);
    assert_string_equal(f->text, "OPENAI_API_KEY");
    cfg_doc_free(&doc);

    static const struct cfg_option o[] = {
        CFG_INT_OPT(struct exconf, batch_size, .key = "trainer.batch", .min = 1, .max = 4096),
        CFG_INT_OPT(struct exconf, eval_prompts, .key = "evaluator.prompts", .min = 1,
                    .max = 100000),
        CFG_DURATION_OPT(struct exconf, lease_ms, .key = "ledger.lease_timeout"),
        CFG_SIZE_OPT(struct exconf, max_msg, .key = "bus.max_message_size"),
        CFG_DOUBLE_OPT(struct exconf, temperature, .key = "sampler.temperature", .dmin = 0,
                       .dmax = 10),
        CFG_DOUBLE_OPT(struct exconf, tie_margin, .key = "annotator.tie_band", .dmin = 0,
                       .dmax = 0.5),
        CFG_STRING_OPT(struct exconf, judge_key, .key = "annotator.api_key", .flags = CFG_SECRET),
        CFG_BOOL_OPT(struct exconf, curve, .key = "ledger.curve", .def = "true"),
    };
    static const struct cfg_spec s = {.name = "x", .options = o, .n_options = 8};
    struct exconf c = {0};
    buf_t errs;
    buf_init(&errs, 0);
    char *argv[] = {"x", "--config", (char *)path, NULL};
    /* the example names the key's variable, never the key: the secret stays unset */
    struct cfg_spec no_curve = s;
    no_curve.n_options = 7;
    assert_int_equal(cfg_load(&no_curve, &c, 3, argv, &errs), ERR_OK);
    assert_null(c.judge_key);
    buf_free(&errs);
    cfg_release(&no_curve, &c);

    struct cfg_spec no_secret = s;
    no_secret.n_options = 6;
    assert_int_equal(cfg_load(&no_secret, &c, 3, argv, NULL), ERR_OK);
    assert_int_equal(c.batch_size, 32);
    assert_int_equal(c.eval_prompts, 64);
    assert_int_equal(c.lease_ms, 120000);
    assert_int_equal(c.max_msg, 64u << 20);
    assert_true(c.temperature == 0.9);
    assert_true(c.tie_margin == 0.05);
    cfg_release(&no_secret, &c);
}

/* Bad bytes never crash the loader: mutations of the example file either parse or fail with
 * messages; those that parse also go through cfg_load (which owns two of their sections). */
static void test_doc_survives_mutated_input(void **state)
{
    (void)state;
    cfg_doc_t *doc = NULL;
    FILE *f = fopen(OAIF_FIXTURES "/../../deploy/oaif.example.yaml", "rb");
    assert_non_null(f);
    static char orig[65536], text[65536];
    size_t len = fread(orig, 1, sizeof orig, f);
    fclose(f);
    assert_true(len > 1000);
    static const char tokens[] = ":-[]{}&*!|>'\"#,?%@` \n\t\0\xff\xc3";
    uint64_t x = 0x9e3779b97f4a7c15u; /* xorshift: the same mutations every run */
    int parsed = 0, failed = 0;
    for (int it = 0; it < 2000; it++) {
        memcpy(text, orig, len);
        int edits = 1 + it % 8;
        for (int e = 0; e < edits; e++) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            text[x % len] = tokens[(x >> 32) % (sizeof tokens - 1)];
        }
        buf_t errs;
        buf_init(&errs, 0);
        int rc = cfg_doc_parse(&doc, "m.yaml", text, len, &errs);
        if (rc == ERR_OK) {
            parsed++;
            assert_null(errs.data);
            FILE *w = fopen("run.yaml", "wb");
            assert_non_null(w);
            fwrite(text, 1, len, w);
            fclose(w);
            struct tconf c;
            const char *args[] = {"--config", "run.yaml", NULL};
            rc = load(&c, &errs, args); /* errors for the example's unknown keys, no crash */
            assert_true(rc == ERR_INVAL || rc == ERR_OK);
            cfg_release(&tspec, &c);
        } else {
            failed++;
            assert_int_equal(rc, ERR_INVAL);
            assert_null(doc);
            assert_non_null(strstr(errs.data, "m.yaml:"));
        }
        cfg_doc_free(&doc);
        buf_free(&errs);
    }
    assert_true(parsed > 0 && failed > 0);
}

/* ------------------------------------------------------------------------------------------ */
/* Renamed options, enum values, floats, origins, defaults alone                              */

enum tkind { TKIND_A = 7, TKIND_B = -3 };

struct rconf {
    char *endpoint;
    float beta;
    enum tkind kind;
    int64_t hb_ms;
};

static const struct cfg_choice tkinds[] = {{"a", TKIND_A}, {"b", TKIND_B}, {NULL, 0}};
static const char *const rsections[] = {"svc", "bus", NULL};
static const struct cfg_option ropts[] = {
    CFG_STRING_OPT(struct rconf, endpoint, .key = "bus.clients_endpoint", .def = "tcp://x:1",
                   .env = "R_ENDPOINT", .flag = "--clients-endpoint", .old_key = "svc.ledger",
                   .old_env = "R_OLD_LEDGER", .old_flag = "--ledger"),
    CFG_FLOAT_OPT(struct rconf, beta, .key = "svc.beta", .def = "0.1", .dmin = 0, .dmax = 1,
                  .env = "R_BETA", .flag = "--beta"),
    CFG_ENUM_OPT(struct rconf, kind, .key = "svc.kind", .def = "a", .choices = tkinds,
                 .flag = "--kind"),
    CFG_DURATION_OPT(struct rconf, hb_ms, .key = "bus.heartbeat_interval", .def = "1s",
                     .old_key = "ledger.heartbeat_interval", .flag = "--heartbeat"),
};
static const struct cfg_spec rspec = {.name = "r",
                                      .sections = rsections,
                                      .options = ropts,
                                      .n_options = sizeof ropts / sizeof ropts[0]};

static int rload(struct rconf *c, buf_t *errs, buf_t *warns, struct cfg_origin *origins,
                 const char *const *args)
{
    char *argv[16] = {"r"};
    int argc = 1;
    for (; args && args[argc - 1]; argc++)
        argv[argc] = (char *)args[argc - 1];
    memset(c, 0, sizeof *c);
    buf_init(errs, 0);
    buf_init(warns, 0);
    struct cfg_trace trace = {.origins = origins, .warnings = warns};
    return cfg_load_ex(&rspec, c, argc, argv, errs, &trace);
}

static void test_old_names_work_with_a_warning(void **state)
{
    (void)state;
    struct rconf c;
    buf_t errs, warns;
    struct cfg_origin org[4];
    /* the old flag alone: its value, and a warning naming the new flag */
    const char *a1[] = {"--ledger", "tcp://old:5", NULL};
    assert_int_equal(rload(&c, &errs, &warns, org, a1), ERR_OK);
    assert_string_equal(c.endpoint, "tcp://old:5");
    assert_string_equal(warns.data, "flag --ledger is an old name: use --clients-endpoint (the old "
                                    "one works until the next release)\n");
    assert_string_equal(org[0].where, "flag --ledger (old name)");
    cfg_release(&rspec, &c);
    buf_free(&errs);
    buf_free(&warns);
    /* the old variable and the old key, each with its warning; the new flag beats both */
    write_file("run.yaml", "svc:\n  ledger: tcp://file:1\nledger:\n  heartbeat_interval: 3s\n");
    setenv("R_OLD_LEDGER", "tcp://env:2", 1);
    const char *a2[] = {"--config", "run.yaml", NULL};
    assert_int_equal(rload(&c, &errs, &warns, org, a2), ERR_OK);
    assert_string_equal(c.endpoint, "tcp://env:2");
    assert_int_equal(c.hb_ms, 3000);
    assert_non_null(strstr(warns.data, "run.yaml:2:3: svc.ledger is an old name: use "
                                       "bus.clients_endpoint"));
    assert_non_null(strstr(warns.data, "run.yaml:4:3: ledger.heartbeat_interval is an old name: "
                                       "use bus.heartbeat_interval"));
    assert_non_null(strstr(warns.data, "environment R_OLD_LEDGER is an old name: use R_ENDPOINT"));
    assert_string_equal(org[0].where, "environment R_OLD_LEDGER (old name)");
    assert_string_equal(org[3].where, "run.yaml:4:23 (old name)");
    cfg_release(&rspec, &c);
    buf_free(&errs);
    buf_free(&warns);
    const char *a3[] = {"--config", "run.yaml", "--clients-endpoint", "tcp://new:3", NULL};
    assert_int_equal(rload(&c, &errs, &warns, org, a3), ERR_OK);
    assert_string_equal(c.endpoint, "tcp://new:3");
    assert_string_equal(org[0].where, "flag --clients-endpoint");
    cfg_release(&rspec, &c);
    buf_free(&errs);
    buf_free(&warns);
    unsetenv("R_OLD_LEDGER");
    /* an old key is not an unknown key in an owned section; a bad value under it names it */
    write_file("run.yaml", "svc:\n  ledger: [1]\n");
    assert_int_equal(rload(&c, &errs, &warns, org, a2), ERR_INVAL);
    assert_string_equal(errs.data,
                        "run.yaml:2:11: svc.ledger: expected a string, got a sequence\n");
    buf_free(&errs);
    buf_free(&warns);
}

static void test_enum_values_floats_and_origins(void **state)
{
    (void)state;
    struct rconf c;
    buf_t errs, warns, y;
    struct cfg_origin org[4];
    write_file("run.yaml", "svc:\n  beta: 0.25\n");
    setenv("R_BETA", "0.5", 1);
    const char *a1[] = {"--config", "run.yaml", "--kind", "b", NULL};
    assert_int_equal(rload(&c, &errs, &warns, org, a1), ERR_OK);
    assert_int_equal(c.kind, TKIND_B); /* the value, not the index */
    assert_true(c.beta == 0.5f);
    assert_null(warns.data);
    buf_init(&y, 0);
    assert_int_equal(cfg_render_yaml_origins(&rspec, &c, org, &y), ERR_OK);
    assert_string_equal(y.data, "bus:\n"
                                "  clients_endpoint: \"tcp://x:1\"  # default\n"
                                "  heartbeat_interval: 1s  # default\n"
                                "svc:\n"
                                "  beta: 0.5  # environment R_BETA\n"
                                "  kind: b  # flag --kind\n");
    buf_free(&y);
    cfg_release(&rspec, &c);
    buf_free(&errs);
    buf_free(&warns);
    unsetenv("R_BETA");
    /* floats: range and finiteness */
    const char *a2[] = {"--beta", "1e40", NULL};
    assert_int_equal(rload(&c, &errs, &warns, org, a2), ERR_INVAL);
    assert_string_equal(errs.data, "flag --beta: expected a number in [0, 1], got '1e40'\n");
    buf_free(&errs);
    buf_free(&warns);
    /* cfg_defaults: the table alone, whatever the environment says */
    setenv("R_BETA", "0.9", 1);
    memset(&c, 0, sizeof c);
    assert_int_equal(cfg_defaults(&rspec, &c), ERR_OK);
    assert_true(c.beta == 0.1f);
    assert_int_equal(c.kind, TKIND_A);
    assert_string_equal(c.endpoint, "tcp://x:1");
    cfg_release(&rspec, &c);
    unsetenv("R_BETA");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_doc_nodes_know_their_positions),
        cmocka_unit_test(test_doc_empty_has_no_root),
        cmocka_unit_test(test_doc_duplicate_key_names_both_places),
        cmocka_unit_test(test_doc_refuses_anchors_aliases_tags),
        cmocka_unit_test(test_doc_syntax_errors_have_positions),
        cmocka_unit_test(test_doc_depth_is_limited),
        cmocka_unit_test(test_doc_load_missing_file_is_io),
        cmocka_unit_test_setup_teardown(test_doc_survives_mutated_input, setup, teardown),
        cmocka_unit_test_setup_teardown(test_defaults_apply, setup, teardown),
        cmocka_unit_test_setup_teardown(test_precedence_file_env_flag, setup, teardown),
        cmocka_unit_test_setup_teardown(test_null_in_file_keeps_default, setup, teardown),
        cmocka_unit_test_setup_teardown(test_int_values_and_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_double_values_and_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bool_values_and_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_enum_values_and_suggestion, setup, teardown),
        cmocka_unit_test_setup_teardown(test_duration_values_and_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_size_values_and_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_string_and_list_values, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unknown_key_suggests_closest, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_flags_are_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_secret_from_files, setup, teardown),
        cmocka_unit_test_setup_teardown(test_secret_is_masked_in_log_and_yaml, setup, teardown),
        cmocka_unit_test_setup_teardown(test_secret_is_not_echoed_in_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_help_text, setup, teardown),
        cmocka_unit_test_setup_teardown(test_errors_go_to_log_without_buffer, setup, teardown),
        cmocka_unit_test(test_bad_spec_is_reported),
        cmocka_unit_test(test_edit_distance),
        cmocka_unit_test_setup_teardown(test_example_run_file_loads, setup, teardown),
        cmocka_unit_test_setup_teardown(test_old_names_work_with_a_warning, setup, teardown),
        cmocka_unit_test_setup_teardown(test_enum_values_floats_and_origins, setup, teardown),
    };
    return cmocka_run_group_tests_name("cfg", tests, NULL, NULL);
}
