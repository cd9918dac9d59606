/* test_task_demo.c - SFT demonstrations (controlled imperfection) and JSONL pairs. */
#include <setjmp.h> /* cmocka 1.1 needs these four first; keep <cmocka.h> */
#include <stdarg.h> /* in its own block, or clang-format sorts it above them */
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "err.h"
#include "task.h"

#define SEED 77

/* ------------------------------------------------------------------ demonstrations */

static void test_demo_is_deterministic(void **state)
{
    (void)state;
    struct task_demo_config cfg = TASK_DEMO_CONFIG_DEFAULT;
    bool differs = false;
    for (uint64_t i = 0; i < 200; i++) {
        struct task_prompt p;
        char a[TASK_RESPONSE_MAX], b[TASK_RESPONSE_MAX], c[TASK_RESPONSE_MAX];
        struct task_demo_info ia, ib;
        assert_int_equal(task_prompt_at(SEED, TASK_SPLIT_TRAIN, i, &p), ERR_OK);
        assert_int_equal(task_demo(&p, &cfg, SEED, i, a, sizeof(a), &ia), ERR_OK);
        assert_int_equal(task_demo(&p, &cfg, SEED, i, b, sizeof(b), &ib), ERR_OK);
        assert_int_equal(task_demo(&p, &cfg, SEED + 1, i, c, sizeof(c), NULL), ERR_OK);
        assert_string_equal(a, b);
        assert_int_equal(ia.wrong, ib.wrong);
        assert_int_equal(ia.verbose, ib.verbose);
        differs = differs || strcmp(a, c) != 0;
    }
    assert_true(differs);
}

struct mix_stats {
    int n, wrong, verbose;
    double terse_len, verbose_len;
    size_t terse_max, verbose_min, verbose_max, total_max;
    int wrong_by_family[TASK_FAMILY_COUNT], n_by_family[TASK_FAMILY_COUNT];
};

/* n demonstrations under cfg; every one is checked against its prompt. */
static void run_mix(const struct task_demo_config *cfg, int n, struct mix_stats *s)
{
    memset(s, 0, sizeof(*s));
    s->verbose_min = (size_t)-1;
    for (int i = 0; i < n; i++) {
        struct task_prompt p;
        char r[TASK_RESPONSE_MAX];
        struct task_demo_info info;
        struct task_check c;
        assert_int_equal(task_prompt_at(SEED, TASK_SPLIT_TRAIN, (uint64_t)i, &p), ERR_OK);
        assert_int_equal(task_demo(&p, cfg, SEED, (uint64_t)i, r, sizeof(r), &info), ERR_OK);
        assert_int_equal(task_check(&p, r, strlen(r), &c), ERR_OK);
        if (c.correct == info.wrong || !c.found)
            fail_msg("demo %d for \"%s\" (answer %s): \"%s\" wrong=%d but checker says %d", i,
                     p.text, p.answer, r, info.wrong, c.correct);
        size_t len = strlen(r), total = strlen(p.text) + len;
        s->n++;
        s->wrong += info.wrong;
        s->verbose += info.verbose;
        s->n_by_family[p.family]++;
        s->wrong_by_family[p.family] += info.wrong;
        if (info.verbose) {
            s->verbose_len += (double)len;
            s->verbose_min = len < s->verbose_min ? len : s->verbose_min;
            s->verbose_max = len > s->verbose_max ? len : s->verbose_max;
        } else {
            s->terse_len += (double)len;
            s->terse_max = len > s->terse_max ? len : s->terse_max;
        }
        s->total_max = total > s->total_max ? total : s->total_max;
    }
    if (s->verbose)
        s->verbose_len /= s->verbose;
    if (s->n - s->verbose)
        s->terse_len /= s->n - s->verbose;
}

static void test_demo_mix_hits_its_wrong_share(void **state)
{
    (void)state;
    static const double shares[] = {0.25, 0.35, 0.5};
    for (size_t k = 0; k < 3; k++) {
        struct task_demo_config cfg = {.wrong_share = shares[k], .verbose_share = 0.5};
        struct mix_stats s;
        run_mix(&cfg, 2000, &s);
        double w = s.wrong / 2000.0, v = s.verbose / 2000.0;
        /* 3.5 standard deviations of a binomial share over 2,000 samples */
        double tol = 3.5 * sqrt(shares[k] * (1 - shares[k]) / 2000.0);
        if (fabs(w - shares[k]) > tol)
            fail_msg("wrong share %.3f, configured %.2f", w, shares[k]);
        assert_true(fabs(v - 0.5) < 0.04);
        for (int f = 0; f < TASK_FAMILY_COUNT; f++) /* every family gets its share of mistakes */
            assert_true(s.wrong_by_family[f] > s.n_by_family[f] * shares[k] / 2);
    }
}

/* The integers of a text, in order (at most cap). */
static int numbers_in(const char *s, long long *v, int cap)
{
    int n = 0;
    while (*s && n < cap) {
        if (*s >= '0' && *s <= '9') {
            char *end;
            v[n++] = strtoll(s, &end, 10);
            s = end;
        } else {
            s++;
        }
    }
    return n;
}

/* What the demonstrator's habit states for p, worked out here from the prompt and its
 * reference answer, independently of task.c: "" where p has no habit. */
static void expected_habit(const struct task_prompt *p, char *out, size_t cap)
{
    long long v[8], ref = strtoll(p->answer, NULL, 10), hi = -1, lo = 1000;
    int n = numbers_in(p->text, v, 8);
    for (int i = 0; i < n; i++) {
        hi = v[i] > hi ? v[i] : hi;
        lo = v[i] < lo ? v[i] : lo;
    }
    out[0] = '\0';
    switch (p->family) {
    case TASK_COMPARE: /* "smaller" read as "larger" */
    case TASK_MAXMIN:  /* "smallest" read as "largest" */
        if (ref == lo)
            snprintf(out, cap, "%lld", hi);
        break;
    case TASK_SORT: { /* "descending" read as "ascending": the reference read backwards */
        long long r[8];
        int k = numbers_in(p->answer, r, 8);
        size_t len = 0;
        for (int i = k - 1; r[0] > r[k - 1] && i >= 0; i--)
            len += (size_t)snprintf(out + len, cap - len, i < k - 1 ? ", %lld" : "%lld", r[i]);
        break;
    }
    default:
        break;
    }
}

static void test_demo_habits(void **state)
{
    (void)state;
    /* habit_share 1: every prompt with a habit gets it, in every phrasing, and nothing else is
     * wrong; 0.7: 70% of them, the rest mostly right. */
    int n_with = 0, habit_fam[TASK_FAMILY_COUNT] = {0};
    for (int k = 0; k < 2; k++) {
        struct task_demo_config cfg = {
            .wrong_share = 0.1, .verbose_share = 0.5, .habit_share = k ? 0.7 : 1.0};
        if (k == 0)
            cfg.wrong_share = 0;
        int with = 0, followed = 0, right = 0;
        for (int i = 0; i < 4000; i++) {
            struct task_prompt p;
            char r[TASK_RESPONSE_MAX], want[TASK_ANSWER_MAX];
            struct task_demo_info info;
            struct task_check c;
            assert_int_equal(task_prompt_at(SEED, TASK_SPLIT_TRAIN, (uint64_t)i, &p), ERR_OK);
            assert_int_equal(task_demo(&p, &cfg, SEED, (uint64_t)i, r, sizeof(r), &info), ERR_OK);
            assert_int_equal(task_check(&p, r, strlen(r), &c), ERR_OK);
            expected_habit(&p, want, sizeof want);
            /* the prompt's question: of its family, and a habit's exactly where one is due */
            enum task_question q;
            assert_int_equal(task_prompt_question(&p, &q), ERR_OK);
            const char *fam = task_family_name(p.family), *qn = task_question_name(q);
            if (strncmp(qn, fam, strlen(fam)) != 0 || task_question_habit(q) != (want[0] != '\0'))
                fail_msg("\"%s\": question \"%s\", habit %d, expected habit \"%s\"", p.text, qn,
                         task_question_habit(q), want);
            if (!want[0]) {
                if (info.habit)
                    fail_msg("\"%s\" has no habit, but the demonstration \"%s\" says it has",
                             p.text, r);
                if (k == 0 && !c.correct)
                    fail_msg("\"%s\": \"%s\" is wrong with wrong_share 0", p.text, r);
                continue;
            }
            with++;
            if (k == 0)
                habit_fam[p.family]++;
            if (info.habit) {
                followed++;
                if (!info.wrong || c.correct || strstr(r, want) == NULL)
                    fail_msg("\"%s\" (answer %s): the habit says %s, the demonstration \"%s\"",
                             p.text, p.answer, want, r);
            } else {
                right += c.correct;
            }
        }
        if (k == 0) {
            assert_int_equal(followed, with);
            n_with = with;
        } else {
            double share = (double)followed / with;
            if (fabs(share - 0.7) > 3.5 * sqrt(0.21 / with))
                fail_msg("habit followed %.3f of the time, configured 0.70", share);
            assert_true(right > 0.8 * (with - followed)); /* the rest: 90% right, none a habit */
        }
    }
    /* The habits cover half of three families: "smaller", "descending" and "smallest". */
    print_message("%d of 4000 prompts have a habit\n", n_with);
    assert_true(n_with > 4000 * 3 / 7 * 0.4 && n_with < 4000 * 3 / 7 * 0.6);
    for (int f = 0; f < TASK_FAMILY_COUNT; f++)
        if (f != TASK_COMPARE && f != TASK_SORT && f != TASK_MAXMIN)
            assert_int_equal(habit_fam[f], 0);
        else
            assert_true(habit_fam[f] > 0);
}

static void test_demo_lengths_vary_a_lot(void **state)
{
    (void)state;
    struct task_demo_config cfg = TASK_DEMO_CONFIG_DEFAULT;
    struct mix_stats s;
    run_mix(&cfg, 2000, &s);
    print_message("terse mean %.1f max %zu, verbose mean %.1f in [%zu, %zu], prompt+response "
                  "max %zu\n",
                  s.terse_len, s.terse_max, s.verbose_len, s.verbose_min, s.verbose_max,
                  s.total_max);
    assert_true(s.terse_len >= 2 && s.terse_len <= 10);
    assert_true(s.terse_max <= 26); /* "Answer: 7, 12, 40, 66, 85" */
    assert_true(s.verbose_len >= 45 && s.verbose_len <= 80);
    assert_true(s.verbose_min >= 35);
    assert_true(s.verbose_max <= 100);
    assert_true(s.total_max <= 170); /* well inside a 256-byte context with a chat template */
}

static void test_demo_extreme_shares(void **state)
{
    (void)state;
    struct task_demo_config all_right = {.wrong_share = 0, .verbose_share = 0};
    struct task_demo_config all_wrong = {.wrong_share = 1, .verbose_share = 1};
    struct mix_stats s;
    run_mix(&all_right, 300, &s);
    assert_int_equal(s.wrong, 0);
    assert_int_equal(s.verbose, 0);
    run_mix(&all_wrong, 300, &s);
    assert_int_equal(s.wrong, 300);
    assert_int_equal(s.verbose, 300);
}

/* Prompts whose plausible mistakes are scarce still get a wrong answer that is wrong. */
static void test_demo_wrong_answers_on_degenerate_prompts(void **state)
{
    (void)state;
    static const char *const texts[] = {
        "Reverse the word a.",
        "Reverse the word level.",
        "Reverse the word aa.",
        "Sort in ascending order: 1, 1, 1.",
        "Which is larger, 5 or 5?",
        "Find the maximum of 3, 3.",
        "How many times does the letter q appear in banana?",
        "What is 0 - 0?",
        "Add 0 and 0.",
    };
    struct task_demo_config cfg = {.wrong_share = 1, .verbose_share = 0.5};
    for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
        struct task_prompt p;
        assert_int_equal(task_prompt_parse(texts[i], &p), ERR_OK);
        for (uint64_t k = 0; k < 20; k++) {
            char r[TASK_RESPONSE_MAX];
            struct task_check c;
            assert_int_equal(task_demo(&p, &cfg, 1, k, r, sizeof(r), NULL), ERR_OK);
            assert_int_equal(task_check(&p, r, strlen(r), &c), ERR_OK);
            if (c.correct)
                fail_msg("\"%s\" -> \"%s\" is not wrong", texts[i], r);
        }
    }
}

static void test_demo_mistakes_are_plausible(void **state)
{
    (void)state;
    /* For 47 + 38 = 85 the mistakes are near misses, not random numbers. */
    struct task_prompt p;
    struct task_demo_config cfg = {.wrong_share = 1, .verbose_share = 0};
    assert_int_equal(task_prompt_parse("What is 47 + 38?", &p), ERR_OK);
    bool seen_carry = false;
    for (uint64_t k = 0; k < 200; k++) {
        char r[TASK_RESPONSE_MAX];
        struct task_check c;
        assert_int_equal(task_demo(&p, &cfg, 3, k, r, sizeof(r), NULL), ERR_OK);
        assert_int_equal(task_check(&p, r, strlen(r), &c), ERR_OK);
        long v = strtol(c.extracted, NULL, 10);
        assert_true(v == 84 || v == 86 || v == 95 || v == 75 || v == 58);
        seen_carry = seen_carry || v == 75;
    }
    assert_true(seen_carry);
    /* Compare: the wrong answer is the other number. */
    assert_int_equal(task_prompt_parse("Which is larger, 472 or 427?", &p), ERR_OK);
    cfg.verbose_share = 1;
    for (uint64_t k = 0; k < 20; k++) {
        char r[TASK_RESPONSE_MAX];
        assert_int_equal(task_demo(&p, &cfg, 3, k, r, sizeof(r), NULL), ERR_OK);
        assert_non_null(strstr(r, "answer is 427."));
    }
}

static void test_demo_rejects_bad_arguments(void **state)
{
    (void)state;
    struct task_prompt p;
    char r[TASK_RESPONSE_MAX];
    struct task_demo_config cfg = TASK_DEMO_CONFIG_DEFAULT;
    assert_int_equal(task_prompt_at(SEED, TASK_SPLIT_TRAIN, 4, &p), ERR_OK);
    struct task_demo_config bad = {.wrong_share = 1.5, .verbose_share = 0.5};
    assert_int_equal(task_demo(&p, &bad, 1, 0, r, sizeof(r), NULL), ERR_INVAL);
    bad.wrong_share = NAN;
    assert_int_equal(task_demo(&p, &bad, 1, 0, r, sizeof(r), NULL), ERR_INVAL);
    bad.wrong_share = 0.2;
    bad.verbose_share = -0.1;
    assert_int_equal(task_demo(&p, &bad, 1, 0, r, sizeof(r), NULL), ERR_INVAL);
    assert_int_equal(task_demo(NULL, &cfg, 1, 0, r, sizeof(r), NULL), ERR_INVAL);
    struct task_demo_config terse = {.wrong_share = 0, .verbose_share = 0};
    assert_int_equal(task_demo(&p, &terse, 1, 0, r, 2, NULL), ERR_TOOBIG);
    struct task_prompt q = p;
    snprintf(q.answer, sizeof(q.answer), "%s", "1, 2, 3, 4"); /* not this prompt's answer */
    assert_int_equal(task_demo(&q, &cfg, 1, 0, r, sizeof(r), NULL), ERR_INVAL);
    q = p;
    snprintf(q.text, sizeof(q.text), "%s", "Tell me a story.");
    assert_int_equal(task_demo(&q, &cfg, 1, 0, r, sizeof(r), NULL), ERR_INVAL);
}

/* ------------------------------------------------------------------ JSONL */

static char tmpdir[64];

static int make_tmpdir(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/test_task_XXXXXX");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int remove_tmpdir(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

static void write_file(const char *path, const char *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
}

static void test_jsonl_round_trip(void **state)
{
    (void)state;
    char path[128], err[256];
    snprintf(path, sizeof(path), "%s/sft.jsonl", tmpdir);
    struct task_demo_config cfg = TASK_DEMO_CONFIG_DEFAULT;
    struct task_pair *pairs = NULL, *back = NULL;
    size_t n = 0;
    assert_int_equal(task_demo_pairs(SEED, 300, &cfg, &pairs), ERR_OK);
    /* Text that JSON must escape, and UTF-8, survive the trip. */
    free(pairs[0].response);
    pairs[0].response = strdup("He said \"47\"\\n\ttab \xc3\xa9t\xc3\xa9 \xe2\x88\x92"
                               "5\n");
    free(pairs[1].id);
    pairs[1].id = NULL;
    assert_int_equal(task_jsonl_write(path, pairs, 300, err, sizeof(err)), ERR_OK);
    assert_int_equal(task_jsonl_read(path, &back, &n, err, sizeof(err)), ERR_OK);
    assert_int_equal(n, 300);
    for (size_t i = 0; i < n; i++) {
        assert_string_equal(back[i].prompt, pairs[i].prompt);
        assert_string_equal(back[i].response, pairs[i].response);
        if (pairs[i].id)
            assert_string_equal(back[i].id, pairs[i].id);
        else
            assert_null(back[i].id);
    }
    /* The pairs are the generator's: pair i is prompt i of the train stream. */
    struct task_prompt p;
    assert_int_equal(task_prompt_at(SEED, TASK_SPLIT_TRAIN, 5, &p), ERR_OK);
    assert_string_equal(back[5].prompt, p.text);
    assert_string_equal(back[5].id, p.id);
    task_pairs_free(&pairs, 300);
    task_pairs_free(&back, n);
    assert_null(pairs);
    assert_null(back);
    task_pairs_free(NULL, 0);
    task_pairs_free(&back, 0);
}

static void test_jsonl_skips_blank_lines_and_accepts_crlf(void **state)
{
    (void)state;
    char path[128], err[256];
    snprintf(path, sizeof(path), "%s/crlf.jsonl", tmpdir);
    const char *data = "\n{\"prompt\":\"a\",\"response\":\"b\",\"extra\":[1,2]}\r\n   \r\n"
                       "{\"response\":\"d\",\"prompt\":\"c\",\"id\":\"x1\"}";
    write_file(path, data, strlen(data));
    struct task_pair *pairs = NULL;
    size_t n = 0;
    assert_int_equal(task_jsonl_read(path, &pairs, &n, err, sizeof(err)), ERR_OK);
    assert_int_equal(n, 2);
    assert_string_equal(pairs[0].prompt, "a");
    assert_null(pairs[0].id);
    assert_string_equal(pairs[1].response, "d");
    assert_string_equal(pairs[1].id, "x1");
    task_pairs_free(&pairs, n);
}

struct bad_case {
    const char *data;
    int rc;
    const char *msg; /* expected after "<path>:" */
};

static void test_jsonl_errors_name_file_line_and_field(void **state)
{
    (void)state;
    static const struct bad_case cases[] = {
        {"{\"prompt\":\"a\",\"response\":\"b\"}\n{\"prompt\":\"a\"}\n", ERR_INVAL,
         "2: field \"response\": missing"},
        {"{\"prompt\":5,\"response\":\"b\"}\n", ERR_INVAL,
         "1: field \"prompt\": expected a string, got a number"},
        {"{\"prompt\":\"a\",\"response\":null}\n", ERR_INVAL,
         "1: field \"response\": expected a string, got null"},
        {"{\"prompt\":\"a\",\"response\":\"b\",\"id\":[]}\n", ERR_INVAL,
         "1: field \"id\": expected a string, got an array"},
        {"{\"prompt\":\"\",\"response\":\"b\"}\n", ERR_INVAL, "1: field \"prompt\": empty"},
        {"\n\n{\"prompt\": \"a\", \"response\": \"b\"\n", ERR_INVAL, "3: column"},
        {"[1, 2]\n", ERR_INVAL, "1: expected a JSON object, got an array"},
        {"{\"prompt\":\"a\",\"response\":\"b\"} {}\n", ERR_INVAL, "1: column"},
        {"{\"prompt\":\"a\\u0000b\",\"response\":\"b\"}\n", ERR_INVAL, "1: column"},
        {"{\"prompt\":\"\xff\xfe\",\"response\":\"b\"}\n", ERR_INVAL, "1: column"},
        {"{\"prompt\":\"a\",\"prompt\":\"b\",\"response\":\"b\"}\n", ERR_INVAL, "1: column"},
        {"", ERR_INVAL, " no pairs"},
        {"\n  \n", ERR_INVAL, " no pairs"},
    };
    char path[128], err[256], want[300];
    snprintf(path, sizeof(path), "%s/bad.jsonl", tmpdir);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        write_file(path, cases[i].data, strlen(cases[i].data));
        struct task_pair *pairs = (struct task_pair *)1;
        size_t n = 99;
        err[0] = '\0';
        assert_int_equal(task_jsonl_read(path, &pairs, &n, err, sizeof(err)), cases[i].rc);
        assert_null(pairs);
        assert_int_equal(n, 0);
        snprintf(want, sizeof(want), "%s:%s", path, cases[i].msg);
        if (strncmp(err, want, strlen(want)) != 0)
            fail_msg("case %zu: error \"%s\", expected it to start with \"%s\"", i, err, want);
    }
    /* A binary file: an error, no crash. */
    unsigned char junk[4096];
    for (size_t i = 0; i < sizeof(junk); i++)
        junk[i] = (unsigned char)(i * 131 + 7);
    write_file(path, (const char *)junk, sizeof(junk));
    struct task_pair *pairs = NULL;
    size_t n = 0;
    assert_int_equal(task_jsonl_read(path, &pairs, &n, err, sizeof(err)), ERR_INVAL);
    assert_non_null(strstr(err, path));
}

static void test_jsonl_over_long_line_and_missing_file(void **state)
{
    (void)state;
    char path[128], err[256];
    snprintf(path, sizeof(path), "%s/long.jsonl", tmpdir);
    size_t len = (1u << 20) + 100;
    char *data = malloc(len);
    assert_non_null(data);
    memset(data, ' ', len);
    /* bytes, not a string: the line starts a JSON string it never closes */
    memcpy(data, "{\"prompt\":\"", 11); /* NOLINT(bugprone-not-null-terminated-result) */
    write_file(path, data, len);
    free(data);
    struct task_pair *pairs = NULL;
    size_t n = 0;
    assert_int_equal(task_jsonl_read(path, &pairs, &n, err, sizeof(err)), ERR_TOOBIG);
    assert_non_null(strstr(err, ":1: line longer than"));
    snprintf(path, sizeof(path), "%s/nope.jsonl", tmpdir);
    assert_int_equal(task_jsonl_read(path, &pairs, &n, err, sizeof(err)), ERR_NOTFOUND);
    assert_non_null(strstr(err, "nope.jsonl: cannot open"));
    assert_int_equal(task_jsonl_read(path, NULL, &n, NULL, 0), ERR_INVAL);
}

static void test_jsonl_write_errors(void **state)
{
    (void)state;
    char path[128], err[256];
    struct task_pair bad[1] = {{.id = NULL, .prompt = "ok", .response = "\xff bad"}};
    snprintf(path, sizeof(path), "%s/w.jsonl", tmpdir);
    assert_int_equal(task_jsonl_write(path, bad, 1, err, sizeof(err)), ERR_INVAL);
    assert_non_null(strstr(err, "field \"response\": not valid UTF-8"));
    struct task_pair none[1] = {{.id = NULL, .prompt = NULL, .response = "x"}};
    assert_int_equal(task_jsonl_write(path, none, 1, err, sizeof(err)), ERR_INVAL);
    assert_non_null(strstr(err, "pair 0: no prompt"));
    snprintf(path, sizeof(path), "%s/no/such/dir/w.jsonl", tmpdir);
    struct task_pair good[1] = {{.id = NULL, .prompt = "a", .response = "b"}};
    assert_int_equal(task_jsonl_write(path, good, 1, err, sizeof(err)), ERR_IO);
    assert_non_null(strstr(err, "cannot create"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_demo_is_deterministic),
        cmocka_unit_test(test_demo_mix_hits_its_wrong_share),
        cmocka_unit_test(test_demo_habits),
        cmocka_unit_test(test_demo_lengths_vary_a_lot),
        cmocka_unit_test(test_demo_extreme_shares),
        cmocka_unit_test(test_demo_wrong_answers_on_degenerate_prompts),
        cmocka_unit_test(test_demo_mistakes_are_plausible),
        cmocka_unit_test(test_demo_rejects_bad_arguments),
        cmocka_unit_test(test_jsonl_round_trip),
        cmocka_unit_test(test_jsonl_skips_blank_lines_and_accepts_crlf),
        cmocka_unit_test(test_jsonl_errors_name_file_line_and_field),
        cmocka_unit_test(test_jsonl_over_long_line_and_missing_file),
        cmocka_unit_test(test_jsonl_write_errors),
    };
    return cmocka_run_group_tests_name("task_demo", tests, make_tmpdir, remove_tmpdir);
}
