/* test_evaluator - the evaluator's logic without sockets (evaluator.h): request ids that depend on
 * exactly what they ask (the baseline's not on the run or the version, so its answers are drawn
 * once), one evaluation's numbers from hand-made answers and judgements (a failed judgement left
 * out, never a tie; accuracy by the task's checker where the reference is checkable), and the
 * EvalResult built from them; the options' defaults. */
#include <setjmp.h> /* cmocka 1.1 needs these four first; keep <cmocka.h> */
#include <stdarg.h> /* in its own block, or clang-format sorts it above them */
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "evaluator.h"
#include "evaluator_opts.h"

static void test_ids_follow_what_is_asked(void **state)
{
    (void)state;
    struct evaluator_config c;
    assert_int_equal(evaluator_config_defaults(&c), ERR_OK);
    assert_null(c.run); /* unset: every run, each checkpoint's own */
    c.run = strdup("run");
    Oaif__V1__Prompt p1 = OAIF__V1__PROMPT__INIT, p2 = OAIF__V1__PROMPT__INIT;
    p1.id = "add-1";
    p2.id = "add-2";
    const Oaif__V1__Prompt *ps[2] = {&p1, &p2}, *rev[2] = {&p2, &p1};
    char a[256], b[256], k1[17], k2[17];
    assert_int_equal(evaluator_sample_id(a, sizeof a, &c, c.run, false, 3, "ab", ps, 2), ERR_OK);
    assert_int_equal(evaluator_sample_id(b, sizeof b, &c, c.run, false, 3, "ab", ps, 2), ERR_OK);
    assert_string_equal(a, b);
    assert_int_equal(strncmp(a, "evl-run-v3-", 11), 0);
    assert_int_equal(evaluator_sample_id(b, sizeof b, &c, c.run, false, 3, "ab", rev, 2), ERR_OK);
    assert_string_not_equal(a, b); /* other prompts in the batch: another request */
    /* the baseline's: neither the run nor the evaluated version matter, the checkpoint does */
    assert_int_equal(
        evaluator_sample_id(a, sizeof a, &c, c.run, true, 0, "0123456789abcdef", ps, 2), ERR_OK);
    free(c.run);
    c.run = strdup("other");
    assert_int_equal(
        evaluator_sample_id(b, sizeof b, &c, c.run, true, 0, "0123456789abcdef", ps, 2), ERR_OK);
    assert_string_equal(a, b);
    assert_int_equal(strncmp(a, "evl-base-v0-0123456789ab-", 25), 0);
    assert_int_equal(
        evaluator_sample_id(b, sizeof b, &c, c.run, true, 0, "fedcba9876543210", ps, 2), ERR_OK);
    assert_string_not_equal(a, b);
    /* another sampling setting: other answers, other ids */
    evaluator_setting_key(&c, k1);
    assert_int_equal(evaluator_judge_id(a, sizeof a, &c, c.run, 4, "add-1"), ERR_OK);
    c.sample_seed++;
    evaluator_setting_key(&c, k2);
    assert_string_not_equal(k1, k2);
    assert_int_equal(evaluator_judge_id(b, sizeof b, &c, c.run, 4, "add-1"), ERR_OK);
    assert_string_not_equal(a, b);
    assert_int_equal(strncmp(b, "evl-other-v4-annotate-eval-", 27), 0);
    assert_int_equal(evaluator_result_id(a, sizeof a, &c, c.run, 4), ERR_OK);
    assert_string_equal(a, "eval-other-v4-annotate-eval");
    assert_int_equal(evaluator_result_id(a, 10, &c, c.run, 4), ERR_TOOBIG);
    evaluator_config_release(&c);
}

static void test_summary_of_hand_made_judgements(void **state)
{
    (void)state;
    /* policy's answer first; references of the built-in task's kinds where given */
    const struct evaluator_item items[] = {
        /* win, right vs wrong */
        {"42", "42", "41", true, OAIF__V1__WINNER__WINNER_FIRST, true, -1, -1.5},
        /* tie, both right */
        {"7", "7", "7", true, OAIF__V1__WINNER__WINNER_TIE, true, -2, -2.5},
        /* loss */
        {"abc", "cba", "abc", true, OAIF__V1__WINNER__WINNER_SECOND, true, -3, -2},
        /* the judge failed */
        {NULL, "long answer", "x", false, OAIF__V1__WINNER__WINNER_FIRST, true, -4, -4},
        /* nothing to check */
        {"", "yes", "no", true, OAIF__V1__WINNER__WINNER_FIRST, true, -5, -6},
    };
    struct evaluator_summary s;
    char why[256];
    assert_int_equal(evaluator_summarize(items, 5, 500, 1, &s, why, sizeof why), ERR_OK);
    assert_int_equal(s.n, 5);
    assert_int_equal(s.judged, 4);
    assert_int_equal(s.wins, 2);
    assert_int_equal(s.ties, 1);
    assert_int_equal(s.losses, 1);
    assert_true(fabs(s.win_rate - 2.5 / 4) < 1e-12); /* the failure is not a tie */
    assert_true(s.win_rate_lo <= s.win_rate && s.win_rate <= s.win_rate_hi);
    assert_true(s.win_rate_se > 0);
    assert_int_equal(s.checked, 3);
    assert_true(fabs(s.accuracy - 2.0 / 3) < 1e-12);
    assert_true(fabs(s.baseline_accuracy - 2.0 / 3) < 1e-12);
    assert_true(fabs(s.mean_length - (2 + 1 + 3 + 11 + 3) / 5.0) < 1e-12);
    assert_true(fabs(s.baseline_mean_length - (2 + 1 + 3 + 1 + 2) / 5.0) < 1e-12);
    /* log pi - log pi_ref: 0.5 0.5 -1 0 1, over every answer (judged or not) */
    assert_true(s.has_kl);
    assert_true(fabs(s.kl - 0.2) < 1e-12);
    assert_true(s.kl_se > 0);

    struct evaluator_config c;
    assert_int_equal(evaluator_config_defaults(&c), ERR_OK);
    c.seed = 9;
    Oaif__V1__EvalResult r;
    Oaif__V1__Metric ms[4], *mp[4];
    evaluator_result(&r, ms, mp, 4, &c, "run", "eval-run-v2-annotate-eval", "annotate-eval:rules",
                     2, &s, 123);
    assert_int_equal(r.version, 2);
    assert_int_equal(r.prompts, 4);
    assert_int_equal(r.seed, 9);
    assert_true(r.win_rate == s.win_rate && r.lc_win_rate == s.lc_win_rate);
    assert_int_equal(r.n_metrics, 4);
    assert_true(r.kl == s.kl && r.kl_se == s.kl_se);
    assert_string_equal(r.metrics[0]->name, "judge_failures");
    assert_true(r.metrics[0]->value == 1);
    /* the reward ensemble's accuracy: recorded with its flag and pair count when measured, and
     * flagged absent (rm_accuracy 0 cannot say so) when not */
    Oaif__V1__Metric ms8[8], *mp8[8];
    evaluator_result(&r, ms8, mp8, 8, &c, "run", "eval-run-v2-annotate-eval", "annotate-eval:rules",
                     2, &s, 123);
    assert_int_equal(r.n_metrics, 5);
    assert_string_equal(r.metrics[4]->name, "has_rm_accuracy");
    assert_true(r.metrics[4]->value == 0 && r.rm_accuracy == 0);
    s.has_rm = true;
    s.rm_accuracy = 0.75;
    s.rm_pairs = 8;
    evaluator_result(&r, ms8, mp8, 8, &c, "run", "eval-run-v2-annotate-eval", "annotate-eval:rules",
                     2, &s, 123);
    assert_int_equal(r.n_metrics, 6);
    assert_true(r.metrics[4]->value == 1 && r.rm_accuracy == 0.75);
    assert_string_equal(r.metrics[5]->name, "rm_pairs");
    assert_true(r.metrics[5]->value == 8);
    char rid[128];
    c.rm_ensemble = "e"; /* borrowed: released before the table frees it */
    assert_int_equal(evaluator_rm_id(rid, sizeof rid, &c, "run", 3, "p-1"), ERR_OK);
    assert_string_equal(rid, "evl-run-v3-rm-e-p-1");
    c.rm_ensemble = NULL;
    evaluator_config_release(&c);

    /* one answer without its log-probs: no KL at all rather than a KL of the others */
    struct evaluator_item some[5];
    memcpy(some, items, sizeof some);
    some[2].has_logprobs = false;
    assert_int_equal(evaluator_summarize(some, 5, 0, 1, &s, why, sizeof why), ERR_OK);
    assert_false(s.has_kl);
    assert_true(s.kl == 0);

    const struct evaluator_item none[] = {{"1", "1", "2", false, 0, false, 0, 0}};
    assert_int_equal(evaluator_summarize(none, 1, 10, 1, &s, why, sizeof why), ERR_INVAL);
    assert_non_null(strstr(why, "none of the 1 judgements"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ids_follow_what_is_asked),
        cmocka_unit_test(test_summary_of_hand_made_judgements),
    };
    return cmocka_run_group_tests_name("evaluator", tests, NULL, NULL);
}
