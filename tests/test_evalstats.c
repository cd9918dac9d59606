/* test_evalstats.c - the evaluation statistics (evalstats.h) on hand-made outcomes: all ties, all
 * wins, hand-computed means and errors, a length-gamed policy whose length-controlled win rate
 * falls well below its raw one, KL on known log-probabilities, the bootstrap interval's coverage
 * of a known rate, Student's t against its tables, and paired comparisons with and without an
 * effect. */
#include <setjmp.h> /* cmocka 1.1 needs these four first; keep <cmocka.h> */
#include <stdarg.h> /* in its own block, or clang-format sorts it above them */
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <math.h>
#include <stdlib.h>

#include "err.h"
#include "evalstats.h"

/* A seeded uniform in [0, 1) for the tests' own draws (not the library's stream). */
static double unif(uint64_t *s)
{
    *s = *s * 6364136223846793005ULL + 1442695040888963407ULL;
    return (double)(*s >> 11) * 0x1.0p-53;
}

static void test_all_ties_are_one_half_with_no_spread(void **state)
{
    (void)state;
    double y[50], lp[50], lb[50];
    uint64_t s = 7;
    for (int i = 0; i < 50; i++) {
        y[i] = 0.5;
        lp[i] = 10 + 40 * unif(&s);
        lb[i] = 10 + 40 * unif(&s);
    }
    struct evalstats_winrate w;
    assert_int_equal(evalstats_win_rate(y, 50, 1000, 1, &w), ERR_OK);
    assert_int_equal(w.ties, 50);
    assert_int_equal(w.wins + w.losses, 0);
    assert_true(w.rate.mean == 0.5 && w.rate.se == 0);
    assert_true(w.rate.lo == 0.5 && w.rate.hi == 0.5);
    struct evalstats_lc lc;
    assert_int_equal(evalstats_lc_win_rate(y, lp, lb, 50, &lc), ERR_OK);
    assert_true(fabs(lc.lc - 0.5) < 1e-9);
    assert_true(fabs(lc.phi) < 1e-9);
}

static void test_all_wins_are_one_and_lc_stays_near_one(void **state)
{
    (void)state;
    double y[40], lp[40], lb[40];
    uint64_t s = 8;
    for (int i = 0; i < 40; i++) {
        y[i] = 1;
        lp[i] = 5 + 50 * unif(&s);
        lb[i] = 5 + 50 * unif(&s);
    }
    struct evalstats_winrate w;
    assert_int_equal(evalstats_win_rate(y, 40, 1000, 1, &w), ERR_OK);
    assert_int_equal(w.wins, 40);
    assert_true(w.rate.mean == 1 && w.rate.se == 0 && w.rate.lo == 1 && w.rate.hi == 1);
    struct evalstats_lc lc;
    assert_int_equal(evalstats_lc_win_rate(y, lp, lb, 40, &lc), ERR_OK);
    assert_true(lc.lc > 0.999); /* separable: the ridge keeps theta finite, not small */
    assert_true(isfinite(lc.theta) && lc.iterations < 200);
}

static void test_mean_se_and_counts_by_hand(void **state)
{
    (void)state;
    double y[4] = {1, 0, 0.5, 1};
    struct evalstats_winrate w;
    assert_int_equal(evalstats_win_rate(y, 4, 0, 1, &w), ERR_OK);
    assert_int_equal(w.wins, 2);
    assert_int_equal(w.ties, 1);
    assert_int_equal(w.losses, 1);
    assert_true(fabs(w.rate.mean - 0.625) < 1e-12);
    /* squared deviations 0.140625 0.390625 0.015625 0.140625, sum 0.6875, / 3, sqrt, / 2 */
    assert_true(fabs(w.rate.sd - sqrt(0.6875 / 3)) < 1e-12);
    assert_true(fabs(w.rate.se - sqrt(0.6875 / 3) / 2) < 1e-12);
    assert_true(w.rate.lo == w.rate.mean && w.rate.hi == w.rate.mean); /* no resamples */
}

static void test_bad_outcomes_are_refused(void **state)
{
    (void)state;
    double y[3] = {1, 1.5, 0}, l[3] = {1, 2, 3}, nan[1] = {NAN};
    struct evalstats_winrate w;
    struct evalstats_lc lc;
    struct evalstats_mean m;
    assert_int_equal(evalstats_win_rate(y, 3, 10, 1, &w), ERR_INVAL);
    assert_int_equal(evalstats_win_rate(nan, 1, 10, 1, &w), ERR_INVAL);
    assert_int_equal(evalstats_win_rate(y, 0, 10, 1, &w), ERR_INVAL);
    assert_int_equal(evalstats_lc_win_rate(y, l, l, 3, &lc), ERR_INVAL);
    assert_int_equal(evalstats_mean_ci(nan, 1, 10, 1, &m), ERR_INVAL);
    double pos[1] = {0.5}, neg[1] = {-1};
    assert_int_equal(evalstats_kl(pos, neg, 1, 0, 1, &m), ERR_INVAL); /* log-prob above 0 */
}

/* A policy that wins by being long: where it answers longer than the baseline it wins 85% of the
 * time, where shorter 20%, and it answers longer on 80% of the prompts. Its raw win rate is about
 * 0.72; at equal length it is no better than a coin, and the LC win rate must say so. */
static void test_length_gamed_policy_lc_falls_well_below_raw(void **state)
{
    (void)state;
    enum { N = 400 };
    double y[N], lp[N], lb[N];
    uint64_t s = 11;
    for (int i = 0; i < N; i++) {
        lb[i] = 20 + 20 * unif(&s);
        bool longer = unif(&s) < 0.8;
        lp[i] = longer ? lb[i] + 10 + 40 * unif(&s) : lb[i] - 5 - 10 * unif(&s);
        y[i] = unif(&s) < (longer ? 0.85 : 0.2) ? 1 : 0;
    }
    struct evalstats_winrate w;
    struct evalstats_lc lc;
    assert_int_equal(evalstats_win_rate(y, N, 1000, 3, &w), ERR_OK);
    assert_int_equal(evalstats_lc_win_rate(y, lp, lb, N, &lc), ERR_OK);
    print_message("raw %.3f [%.3f, %.3f]  lc %.3f (theta %.3f phi %.3f, %d steps)\n", w.rate.mean,
                  w.rate.lo, w.rate.hi, lc.lc, lc.theta, lc.phi, lc.iterations);
    assert_true(w.rate.mean > 0.65);
    assert_true(lc.lc < w.rate.mean - 0.15);
    assert_true(lc.phi > 1); /* longer wins */
    /* Unbiased by length (the same outcomes, lengths drawn apart from them): LC stays near raw. */
    for (int i = 0; i < N; i++)
        lp[i] = lb[i] + 40 * (unif(&s) - 0.5);
    assert_int_equal(evalstats_lc_win_rate(y, lp, lb, N, &lc), ERR_OK);
    assert_true(fabs(lc.lc - w.rate.mean) < 0.05);
}

/* The bootstrap interval of a Bernoulli(0.7) rate over 100 prompts covers 0.7 in about 95% of 300
 * independent draws, and is deterministic under its seed. */
static void test_bootstrap_interval_covers_the_true_rate(void **state)
{
    (void)state;
    enum { N = 100, REPS = 300 };
    double y[N];
    uint64_t s = 99;
    int covered = 0;
    double width = 0, se = 0;
    for (int r = 0; r < REPS; r++) {
        for (int i = 0; i < N; i++)
            y[i] = unif(&s) < 0.7 ? 1 : 0;
        struct evalstats_winrate w;
        assert_int_equal(evalstats_win_rate(y, N, 500, (uint64_t)r, &w), ERR_OK);
        assert_true(w.rate.lo <= w.rate.mean && w.rate.mean <= w.rate.hi);
        covered += w.rate.lo <= 0.7 && 0.7 <= w.rate.hi;
        width += w.rate.hi - w.rate.lo;
        se += w.rate.se;
    }
    print_message("coverage %d/%d, mean width %.4f, 3.92 se %.4f\n", covered, REPS, width / REPS,
                  3.92 * se / REPS);
    assert_true(covered >= 0.90 * REPS && covered <= 0.99 * REPS);
    assert_true(fabs(width / REPS - 3.92 * se / REPS) < 0.15 * 3.92 * se / REPS);
    /* Continuous values, so that two streams cannot land on the same grid point by chance. */
    for (int i = 0; i < N; i++)
        y[i] = unif(&s);
    struct evalstats_mean a, b, c;
    assert_int_equal(evalstats_mean_ci(y, N, 500, 5, &a), ERR_OK);
    assert_int_equal(evalstats_mean_ci(y, N, 500, 5, &b), ERR_OK);
    assert_int_equal(evalstats_mean_ci(y, N, 500, 6, &c), ERR_OK);
    assert_true(a.lo == b.lo && a.hi == b.hi);
    assert_true(a.lo != c.lo && a.hi != c.hi);
}

static void test_kl_on_known_log_probs(void **state)
{
    (void)state;
    double lp[3] = {-1, -2, -3}, lr[3] = {-1.5, -2.5, -2};
    struct evalstats_mean m;
    assert_int_equal(evalstats_kl(lp, lr, 3, 0, 1, &m), ERR_OK);
    assert_true(fabs(m.mean) < 1e-12); /* 0.5 + 0.5 - 1 */
    /* One-token answers from pi = (0.7, 0.2, 0.1) scored against a uniform pi_ref: the estimate's
     * interval covers the true KL = sum pi log(pi / ref). */
    const double pi[3] = {0.7, 0.2, 0.1};
    double kl = 0;
    for (int k = 0; k < 3; k++)
        kl += pi[k] * log(pi[k] * 3);
    enum { N = 4000 };
    double *a = malloc(N * sizeof *a), *b = malloc(N * sizeof *b);
    assert_non_null(a);
    assert_non_null(b);
    uint64_t s = 5;
    for (int i = 0; i < N; i++) {
        double u = unif(&s);
        int k = u < 0.7 ? 0 : u < 0.9 ? 1 : 2;
        a[i] = log(pi[k]);
        b[i] = log(1.0 / 3);
    }
    assert_int_equal(evalstats_kl(a, b, N, 1000, 2, &m), ERR_OK);
    print_message("KL true %.4f, estimate %.4f [%.4f, %.4f] se %.4f\n", kl, m.mean, m.lo, m.hi,
                  m.se);
    assert_true(m.lo <= kl && kl <= m.hi);
    assert_true(fabs(m.mean - kl) < 3 * m.se);
    free(a);
    free(b);
}

static void test_t_distribution_matches_its_tables(void **state)
{
    (void)state;
    assert_true(fabs(evalstats_t_quantile(0.975, 1) - 12.7062) < 1e-3);
    assert_true(fabs(evalstats_t_quantile(0.975, 2) - 4.3027) < 1e-3);
    assert_true(fabs(evalstats_t_quantile(0.975, 10) - 2.2281) < 1e-3);
    assert_true(fabs(evalstats_t_quantile(0.975, 1e6) - 1.95996) < 1e-3);
    assert_true(fabs(evalstats_t_quantile(0.025, 4) + 2.7764) < 1e-3);
    assert_true(fabs(evalstats_t_p(2.2281, 10) - 0.05) < 1e-4);
    assert_true(fabs(evalstats_t_p(0, 5) - 1) < 1e-12);
}

static void test_paired_difference_with_an_effect_is_a_finding(void **state)
{
    (void)state;
    double a[3] = {0.50, 0.60, 0.55}, b[3] = {0.60, 0.72, 0.63};
    struct evalstats_paired p;
    assert_int_equal(evalstats_paired(a, b, 3, 2000, 1, &p), ERR_OK);
    /* d = 0.10 0.12 0.08: mean 0.1, sd 0.02, se 0.02 / sqrt 3, t_{0.975,2} = 4.3027 */
    assert_true(fabs(p.mean - 0.1) < 1e-12);
    assert_true(fabs(p.sd - 0.02) < 1e-12);
    assert_true(fabs(p.t - 0.1 / (0.02 / sqrt(3))) < 1e-9);
    assert_true(fabs(p.t_lo - (0.1 - 4.3027 * 0.02 / sqrt(3))) < 1e-4);
    assert_true(fabs(p.t_hi - (0.1 + 4.3027 * 0.02 / sqrt(3))) < 1e-4);
    assert_true(p.boot_lo >= 0.08 - 1e-12 && p.boot_hi <= 0.12 + 1e-12);
    assert_true(p.p < 0.05 && p.finding);
}

static void test_paired_difference_without_an_effect_is_not(void **state)
{
    (void)state;
    double a[4] = {0.5, 0.5, 0.5, 0.5}, b[4] = {0.6, 0.4, 0.55, 0.45};
    struct evalstats_paired p;
    assert_int_equal(evalstats_paired(a, b, 4, 2000, 1, &p), ERR_OK);
    assert_true(fabs(p.mean) < 1e-12);
    assert_true(p.t_lo < 0 && p.t_hi > 0 && p.boot_lo < 0 && p.boot_hi > 0);
    assert_false(p.finding);
    assert_true(p.p > 0.9);
    /* One seed: the point alone, never a finding. */
    assert_int_equal(evalstats_paired(a, b, 1, 2000, 1, &p), ERR_OK);
    assert_true(p.mean > 0.09 && p.t_lo == p.mean && p.boot_hi == p.mean && !p.finding);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_all_ties_are_one_half_with_no_spread),
        cmocka_unit_test(test_all_wins_are_one_and_lc_stays_near_one),
        cmocka_unit_test(test_mean_se_and_counts_by_hand),
        cmocka_unit_test(test_bad_outcomes_are_refused),
        cmocka_unit_test(test_length_gamed_policy_lc_falls_well_below_raw),
        cmocka_unit_test(test_bootstrap_interval_covers_the_true_rate),
        cmocka_unit_test(test_kl_on_known_log_probs),
        cmocka_unit_test(test_t_distribution_matches_its_tables),
        cmocka_unit_test(test_paired_difference_with_an_effect_is_a_finding),
        cmocka_unit_test(test_paired_difference_without_an_effect_is_not),
    };
    return cmocka_run_group_tests_name("evalstats", tests, NULL, NULL);
}
