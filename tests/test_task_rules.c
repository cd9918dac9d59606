/* test_task_rules.c - the simulated annotator (the `rules` judge). */
#include <setjmp.h> /* cmocka 1.1 needs these four first; keep <cmocka.h> */
#include <stdarg.h> /* in its own block, or clang-format sorts it above them */
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "err.h"
#include "rules.h"
#include "task.h"

static const struct rules_config clean = {.p_noise = 0, .seed = 1};

static struct rules_verdict judge(const struct rules_config *cfg, const char *prompt,
                                  enum rules_pref pref, const char *pair, const char *a,
                                  const char *b)
{
    struct task_prompt p;
    struct rules_verdict v;
    assert_int_equal(task_prompt_parse(prompt, &p), ERR_OK);
    assert_int_equal(rules_judge(cfg, &p, pref, pair, a, strlen(a), b, strlen(b), &v), ERR_OK);
    assert_true((v.winner == RULES_FIRST && v.p_first == 1.0) ||
                (v.winner == RULES_SECOND && v.p_first == 0.0) ||
                (v.winner == RULES_TIE && v.p_first == 0.5));
    return v;
}

/* ------------------------------------------------------------------ instructions */

static void test_instructions_recognised(void **state)
{
    (void)state;
    enum rules_pref p;
    static const char *const none[] = {NULL, "", "   \n\t"};
    for (size_t i = 0; i < 3; i++) {
        p = RULES_PREFER_LONGER;
        assert_int_equal(rules_instruction_parse(none[i], &p), ERR_OK);
        assert_int_equal(p, RULES_PREFER_NONE);
    }
    static const char *const shorter[] = {
        "prefer shorter responses",
        "Prefer shorter responses.",
        "Be concise!",
        "Which response is more helpful and SHORT?",
        "brevity matters",
        "Keep it brief",
    };
    for (size_t i = 0; i < sizeof(shorter) / sizeof(shorter[0]); i++) {
        assert_int_equal(rules_instruction_parse(shorter[i], &p), ERR_OK);
        assert_int_equal(p, RULES_PREFER_SHORTER);
    }
    static const char *const longer[] = {"prefer longer responses", "Give detailed answers",
                                         "Thorough, please."};
    for (size_t i = 0; i < sizeof(longer) / sizeof(longer[0]); i++) {
        assert_int_equal(rules_instruction_parse(longer[i], &p), ERR_OK);
        assert_int_equal(p, RULES_PREFER_LONGER);
    }
    static const char *const bad[] = {
        "be helpful", "short but detailed", "take a shortcut", "shortness", "longitude",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(rules_instruction_parse(bad[i], &p), ERR_INVAL);
    assert_int_equal(rules_instruction_parse("short", NULL), ERR_INVAL);
    assert_string_equal(rules_pref_name(RULES_PREFER_SHORTER), "shorter");
    assert_string_equal(rules_pref_name(RULES_PREFER_NONE), "none");
}

/* ------------------------------------------------------------------ the rules */

static void test_correct_beats_wrong_in_both_orders(void **state)
{
    (void)state;
    const char *q = "What is 47 + 38?";
    const char *right = "Let me add them: 47 plus 38 is 85. The answer is 85.", *wrong = "84";
    for (int pref = 0; pref < 3; pref++) { /* correctness comes before any length preference */
        struct rules_verdict v = judge(&clean, q, (enum rules_pref)pref, "p", right, wrong);
        assert_int_equal(v.winner, RULES_FIRST);
        assert_int_equal(v.reason, RULES_BY_CORRECTNESS);
        assert_true(v.first_correct);
        assert_false(v.second_correct);
        assert_false(v.flipped);
        v = judge(&clean, q, (enum rules_pref)pref, "p", wrong, right);
        assert_int_equal(v.winner, RULES_SECOND);
        assert_true(v.p_first == 0.0);
    }
}

static void test_length_rule_when_asked(void **state)
{
    (void)state;
    const char *q = "Reverse the word planet.";
    const char *terse = "tenalp", *verbose = "Spelled in reverse, planet becomes tenalp. The "
                                             "answer is tenalp.";
    struct rules_verdict v = judge(&clean, q, RULES_PREFER_SHORTER, "p", verbose, terse);
    assert_int_equal(v.winner, RULES_SECOND);
    assert_int_equal(v.reason, RULES_BY_LENGTH);
    assert_int_equal(v.second_len, 6);
    v = judge(&clean, q, RULES_PREFER_SHORTER, "p", terse, verbose);
    assert_int_equal(v.winner, RULES_FIRST);
    v = judge(&clean, q, RULES_PREFER_LONGER, "p", terse, verbose);
    assert_int_equal(v.winner, RULES_SECOND);
    /* No instruction: both correct is a tie, whatever the lengths. */
    v = judge(&clean, q, RULES_PREFER_NONE, "p", terse, verbose);
    assert_int_equal(v.winner, RULES_TIE);
    assert_int_equal(v.reason, RULES_BY_TIE);
    /* Both wrong: the length rule applies too. */
    v = judge(&clean, q, RULES_PREFER_SHORTER, "p", "planet", "The answer is tenapl.");
    assert_int_equal(v.winner, RULES_FIRST);
    assert_false(v.first_correct || v.second_correct);
    /* Equal length is a tie; surrounding whitespace does not count. */
    v = judge(&clean, q, RULES_PREFER_SHORTER, "p", "  tenalp\n", "TENALP");
    assert_int_equal(v.winner, RULES_TIE);
    assert_int_equal(v.first_len, v.second_len);
}

static void test_garbage_and_empty_responses(void **state)
{
    (void)state;
    struct task_prompt p;
    struct rules_verdict v;
    assert_int_equal(task_prompt_parse("Sort in ascending order: 42, 7, 19.", &p), ERR_OK);
    const char junk[] = "\xff\x00\x01 42, 7, 19 \xc3";
    assert_int_equal(
        rules_judge(&clean, &p, RULES_PREFER_SHORTER, "p", junk, sizeof(junk) - 1, NULL, 0, &v),
        ERR_OK);
    assert_false(v.first_correct || v.second_correct);
    assert_int_equal(v.winner, RULES_SECOND); /* both wrong, the empty one is shorter */
    assert_int_equal(rules_judge(&clean, &p, RULES_PREFER_NONE, "p", "7, 19, 42", 9, "", 0, &v),
                     ERR_OK);
    assert_int_equal(v.winner, RULES_FIRST);
}

static void test_bad_arguments(void **state)
{
    (void)state;
    struct task_prompt p;
    struct rules_verdict v;
    struct rules_config noisy = {.p_noise = 0.1, .seed = 3};
    assert_int_equal(task_prompt_parse("What is 1 + 1?", &p), ERR_OK);
    assert_int_equal(rules_judge(&noisy, &p, RULES_PREFER_NONE, NULL, "2", 1, "3", 1, &v),
                     ERR_INVAL); /* noise needs a pair id */
    assert_int_equal(rules_judge(&noisy, &p, RULES_PREFER_NONE, "", "2", 1, "3", 1, &v), ERR_INVAL);
    assert_int_equal(rules_judge(&clean, &p, RULES_PREFER_NONE, NULL, "2", 1, "3", 1, &v),
                     ERR_OK); /* without noise it does not */
    struct rules_config bad = {.p_noise = 1.5, .seed = 0};
    assert_int_equal(rules_config_check(&bad), ERR_INVAL);
    assert_int_equal(rules_judge(&bad, &p, RULES_PREFER_NONE, "x", "2", 1, "3", 1, &v), ERR_INVAL);
    bad.p_noise = NAN;
    assert_int_equal(rules_config_check(&bad), ERR_INVAL);
    bad.p_noise = -0.01;
    assert_int_equal(rules_config_check(&bad), ERR_INVAL);
    assert_int_equal(rules_config_check(&noisy), ERR_OK);
    assert_int_equal(rules_judge(&clean, &p, (enum rules_pref)7, "x", "2", 1, "3", 1, &v),
                     ERR_INVAL);
    assert_int_equal(rules_judge(&clean, NULL, RULES_PREFER_NONE, "x", "2", 1, "3", 1, &v),
                     ERR_INVAL);
    assert_int_equal(rules_judge(&clean, &p, RULES_PREFER_NONE, "x", NULL, 1, "3", 1, &v),
                     ERR_INVAL);
    assert_int_equal(rules_judge(&clean, &p, RULES_PREFER_NONE, "x", "2", 1, "3", 1, NULL),
                     ERR_INVAL);
}

/* ------------------------------------------------------------------ noise */

/* 10,000 pairs, one right and one wrong response each, alternating which comes first. */
static void test_noise_rate_order_and_determinism(void **state)
{
    (void)state;
    enum { N = 10000 };
    struct rules_config cfg = {.p_noise = 0.25, .seed = 2024};
    struct rules_config other_seed = {.p_noise = 0.25, .seed = 2025};
    static bool flipped[N];
    int flips = 0, differ_other_seed = 0;
    for (int i = 0; i < N; i++) {
        struct task_prompt p;
        struct rules_verdict ab, ba, again, o;
        char id[32];
        assert_int_equal(task_prompt_at(5, TASK_SPLIT_EVAL, (uint64_t)i, &p), ERR_OK);
        snprintf(id, sizeof(id), "pair-%d", i);
        const char *right = p.answer, *wrong = "certainly not";
        const char *a = i % 2 ? right : wrong, *b = i % 2 ? wrong : right;
        assert_int_equal(
            rules_judge(&cfg, &p, RULES_PREFER_SHORTER, id, a, strlen(a), b, strlen(b), &ab),
            ERR_OK);
        assert_int_equal(
            rules_judge(&cfg, &p, RULES_PREFER_SHORTER, id, b, strlen(b), a, strlen(a), &ba),
            ERR_OK);
        /* Both orders agree: p_AB = 1 - p_BA, and the flip is the pair's, not the order's. */
        assert_true(ab.p_first == 1.0 - ba.p_first);
        assert_int_equal(ab.flipped, ba.flipped);
        /* A flipped label is the opposite of the clean one. */
        enum rules_winner clean_winner = i % 2 ? RULES_FIRST : RULES_SECOND;
        assert_int_equal(ab.winner == clean_winner, !ab.flipped);
        flipped[i] = ab.flipped;
        flips += ab.flipped;
        assert_int_equal(
            rules_judge(&cfg, &p, RULES_PREFER_SHORTER, id, a, strlen(a), b, strlen(b), &again),
            ERR_OK);
        assert_memory_equal(&ab, &again, sizeof(ab));
        assert_int_equal(
            rules_judge(&other_seed, &p, RULES_PREFER_SHORTER, id, a, strlen(a), b, strlen(b), &o),
            ERR_OK);
        differ_other_seed += o.flipped != ab.flipped;
    }
    double rate = flips / (double)N;
    double tol = 3.5 * sqrt(0.25 * 0.75 / N); /* about 0.015 */
    if (fabs(rate - 0.25) > tol)
        fail_msg("flip rate %.4f, configured 0.25", rate);
    assert_true(differ_other_seed > N / 4); /* another seed flips other pairs */
    /* Judged again in reverse order, with other responses of the same correctness: same flips. */
    for (int i = N - 1; i >= 0; i--) {
        struct task_prompt p;
        struct rules_verdict v;
        char id[32];
        assert_int_equal(task_prompt_at(5, TASK_SPLIT_EVAL, (uint64_t)i, &p), ERR_OK);
        snprintf(id, sizeof(id), "pair-%d", i);
        char right[TASK_ANSWER_MAX + 20];
        snprintf(right, sizeof(right), "The answer is %s.", p.answer);
        assert_int_equal(
            rules_judge(&cfg, &p, RULES_PREFER_NONE, id, right, strlen(right), "", 0, &v), ERR_OK);
        assert_int_equal(v.flipped, flipped[i]);
    }
}

static void test_ties_are_never_flipped(void **state)
{
    (void)state;
    struct rules_config all = {.p_noise = 1.0, .seed = 9};
    struct rules_verdict v;
    for (int i = 0; i < 200; i++) {
        char id[16];
        snprintf(id, sizeof(id), "t%d", i);
        v = judge(&all, "What is 2 + 2?", RULES_PREFER_NONE, id, "4", "The answer is 4.");
        assert_int_equal(v.winner, RULES_TIE);
        assert_false(v.flipped);
        v = judge(&all, "What is 2 + 2?", RULES_PREFER_SHORTER, id, "4", "The answer is 4.");
        assert_int_equal(v.winner, RULES_SECOND); /* p_noise 1 flips every decided label */
        assert_true(v.flipped);
        assert_int_equal(v.reason, RULES_BY_LENGTH);
    }
}

/* ------------------------------------------------------------------ from request text */

static void test_judge_from_request_text(void **state)
{
    (void)state;
    struct rules_verdict v;
    /* A built-in prompt: the reference is recomputed. */
    assert_int_equal(rules_judge_text(&clean, "User: Subtract 58 from 23.\nAssistant:", NULL,
                                      "Prefer shorter responses.", "p1", "-35", 3,
                                      "The answer is -35.", 18, &v),
                     ERR_OK);
    assert_true(v.first_correct && v.second_correct);
    assert_int_equal(v.winner, RULES_FIRST);
    /* An imported prompt with a reference: the kind comes from the reference's shape. */
    assert_int_equal(rules_judge_text(&clean, "What is six times seven?", "42", "", "p2",
                                      "It is 41.", 9, "forty-two, i.e. 42", 18, &v),
                     ERR_OK);
    assert_int_equal(v.winner, RULES_SECOND);
    assert_int_equal(rules_judge_text(&clean, "Order 3, 1, 2 please.", "1, 2, 3", NULL, "p3",
                                      "3 2 1", 5, "1 2 3", 5, &v),
                     ERR_OK);
    assert_int_equal(v.winner, RULES_SECOND);
    /* A reference on a built-in prompt is used as given, read by the family's kind. */
    assert_int_equal(
        rules_judge_text(&clean, "What is 1 + 1?", "3", NULL, "p4", "2", 1, "3", 1, &v), ERR_OK);
    assert_int_equal(v.winner, RULES_SECOND);
    assert_int_equal(
        rules_judge_text(&clean, "Tell me a joke.", NULL, NULL, "p5", "a", 1, "b", 1, &v),
        ERR_NOTFOUND);
    assert_int_equal(
        rules_judge_text(&clean, "Tell me a joke.", "two words", NULL, "p5", "a", 1, "b", 1, &v),
        ERR_INVAL);
    assert_int_equal(
        rules_judge_text(&clean, "What is 1 + 1?", NULL, "be nice", "p6", "2", 1, "3", 1, &v),
        ERR_INVAL);
    assert_int_equal(
        rules_judge_text(&clean, "What is 1 + 1?", "tenalp", NULL, "p7", "2", 1, "3", 1, &v),
        ERR_INVAL); /* a word is no answer to an addition */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_instructions_recognised),
        cmocka_unit_test(test_correct_beats_wrong_in_both_orders),
        cmocka_unit_test(test_length_rule_when_asked),
        cmocka_unit_test(test_garbage_and_empty_responses),
        cmocka_unit_test(test_bad_arguments),
        cmocka_unit_test(test_noise_rate_order_and_determinism),
        cmocka_unit_test(test_ties_are_never_flipped),
        cmocka_unit_test(test_judge_from_request_text),
    };
    return cmocka_run_group_tests_name("task_rules", tests, NULL, NULL);
}
