/* test_trainer_strength - what a pair's preference strength does to its loss in the trainer
 * (strength.h, and pref.h's trainer_pref_loss), on hand-made pairs without a model:
 *  - each Strength action gives its effect (flip, drop, the pair's epsilon, target, margin), and a
 *    Strength that says something impossible is refused, naming the field;
 *  - a flipped pair is trained with the flipped order: its loss is the one of the other label and
 *    the gradient pushes the originally chosen response down;
 *  - each label treatment and margin gives the formula of ALGORITHMS.md for every loss, and the
 *    gradient agrees with central differences of the loss;
 *  - the estimate request id is a function of the pair and its label. */
#include <setjmp.h> /* cmocka 1.1 needs these four first; keep <cmocka.h> */
#include <stdarg.h> /* in its own block, or clang-format sorts it above them */
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "err.h"
#include "pref.h"
#include "strength.h"

static double log_sig(double x)
{
    return x >= 0 ? -log1p(exp(-x)) : x - log1p(exp(x));
}

static Oaif__V1__Strength strength(Oaif__V1__StrengthAction a)
{
    Oaif__V1__Strength s = OAIF__V1__STRENGTH__INIT;
    s.action = a;
    return s;
}

static void test_each_action_has_its_effect(void **state)
{
    (void)state;
    struct trainer_strength_effect e;
    char why[200];
    Oaif__V1__Strength s = strength(OAIF__V1__STRENGTH_ACTION__STRENGTH_ACTION_KEEP);
    assert_int_equal(trainer_strength_effect(&s, &e, why, sizeof why), ERR_OK);
    assert_false(e.flip || e.drop);
    assert_int_equal(e.label, TRAINER_LABEL_AS_LOSS);
    assert_true(e.margin == 0.0f);

    s = strength(OAIF__V1__STRENGTH_ACTION__STRENGTH_ACTION_FLIP);
    assert_int_equal(trainer_strength_effect(&s, &e, why, sizeof why), ERR_OK);
    assert_true(e.flip && !e.drop);
    assert_int_equal(e.label, TRAINER_LABEL_AS_LOSS);

    s = strength(OAIF__V1__STRENGTH_ACTION__STRENGTH_ACTION_DROP);
    assert_int_equal(trainer_strength_effect(&s, &e, why, sizeof why), ERR_OK);
    assert_true(e.drop && !e.flip);

    s = strength(OAIF__V1__STRENGTH_ACTION__STRENGTH_ACTION_SMOOTH);
    s.smoothing = 0.15;
    s.margin = 3; /* only the action's own field counts */
    assert_int_equal(trainer_strength_effect(&s, &e, why, sizeof why), ERR_OK);
    assert_int_equal(e.label, TRAINER_LABEL_SMOOTH);
    assert_float_equal(e.label_arg, 0.15, 1e-7);
    assert_true(e.margin == 0.0f && !e.flip && !e.drop);

    s = strength(OAIF__V1__STRENGTH_ACTION__STRENGTH_ACTION_SOFT);
    s.soft_target = 0.3;
    assert_int_equal(trainer_strength_effect(&s, &e, why, sizeof why), ERR_OK);
    assert_int_equal(e.label, TRAINER_LABEL_SOFT);
    assert_float_equal(e.label_arg, 0.3, 1e-7);

    s = strength(OAIF__V1__STRENGTH_ACTION__STRENGTH_ACTION_MARGIN);
    s.margin = -0.75;
    assert_int_equal(trainer_strength_effect(&s, &e, why, sizeof why), ERR_OK);
    assert_int_equal(e.label, TRAINER_LABEL_AS_LOSS);
    assert_float_equal(e.margin, -0.75, 1e-7);
    assert_int_equal(e.action, OAIF__V1__STRENGTH_ACTION__STRENGTH_ACTION_MARGIN);
}

/* What each effect writes into the pair the loss reads (hand_pair's below, as labeled). */
static void test_each_effect_shapes_the_loss_inputs(void **state)
{
    (void)state;
    static const int prompt[2] = {1, 2}, a[3] = {5, 6, 7}, b[4] = {8, 9, 10, 11};
    const struct trainer_pair labeled = {.prompt = prompt,
                                         .prompt_len = 2,
                                         .chosen = a,
                                         .chosen_len = 3,
                                         .rejected = b,
                                         .rejected_len = 4,
                                         .ref_chosen = -11.0f,
                                         .ref_rejected = -13.0f,
                                         .target = 1.0f};
    struct {
        Oaif__V1__StrengthAction action;
        double smoothing, soft_target, margin;
        bool swapped;
        enum trainer_pair_label label;
        float arg, m;
    } cases[] = {
        {OAIF__V1__STRENGTH_ACTION__STRENGTH_ACTION_KEEP, 0, 0, 0, false, TRAINER_LABEL_AS_LOSS, 0,
         0},
        {OAIF__V1__STRENGTH_ACTION__STRENGTH_ACTION_FLIP, 0, 0, 0, true, TRAINER_LABEL_AS_LOSS, 0,
         0},
        {OAIF__V1__STRENGTH_ACTION__STRENGTH_ACTION_SMOOTH, 0.25, 0, 0, false, TRAINER_LABEL_SMOOTH,
         0.25f, 0},
        {OAIF__V1__STRENGTH_ACTION__STRENGTH_ACTION_SOFT, 0, 0.625, 0, false, TRAINER_LABEL_SOFT,
         0.625f, 0},
        {OAIF__V1__STRENGTH_ACTION__STRENGTH_ACTION_MARGIN, 0, 0, 1.5, false, TRAINER_LABEL_AS_LOSS,
         0, 1.5f},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        Oaif__V1__Strength s = strength(cases[i].action);
        s.smoothing = cases[i].smoothing;
        s.soft_target = cases[i].soft_target;
        s.margin = cases[i].margin;
        struct trainer_strength_effect e;
        char why[200];
        assert_int_equal(trainer_strength_effect(&s, &e, why, sizeof why), ERR_OK);
        struct trainer_pair p = labeled;
        trainer_strength_shape(&e, &p);
        assert_ptr_equal(p.chosen, cases[i].swapped ? b : a);
        assert_ptr_equal(p.rejected, cases[i].swapped ? a : b);
        assert_int_equal(p.chosen_len, cases[i].swapped ? 4 : 3);
        assert_true(p.ref_chosen == (cases[i].swapped ? -13.0f : -11.0f));
        assert_true(p.ref_rejected == (cases[i].swapped ? -11.0f : -13.0f));
        assert_ptr_equal(p.prompt, prompt);
        assert_int_equal(p.label, cases[i].label);
        assert_true(p.label_arg == cases[i].arg);
        assert_true(p.margin == cases[i].m);
        assert_true(p.target == 1.0f);
    }
}

static void test_impossible_strengths_are_refused(void **state)
{
    (void)state;
    struct trainer_strength_effect e;
    char why[200];
    assert_int_equal(trainer_strength_effect(NULL, &e, why, sizeof why), ERR_INVAL);
    assert_non_null(strstr(why, "no strength"));
    Oaif__V1__Strength s = strength(OAIF__V1__STRENGTH_ACTION__STRENGTH_ACTION_UNSPECIFIED);
    assert_int_equal(trainer_strength_effect(&s, &e, why, sizeof why), ERR_INVAL);
    assert_non_null(strstr(why, "strength.action 0"));
    s = strength(OAIF__V1__STRENGTH_ACTION__STRENGTH_ACTION_SMOOTH);
    s.smoothing = 0.5;
    assert_int_equal(trainer_strength_effect(&s, &e, why, sizeof why), ERR_INVAL);
    assert_non_null(strstr(why, "strength.smoothing 0.5"));
    s = strength(OAIF__V1__STRENGTH_ACTION__STRENGTH_ACTION_SOFT);
    s.soft_target = NAN;
    assert_int_equal(trainer_strength_effect(&s, &e, why, sizeof why), ERR_INVAL);
    assert_non_null(strstr(why, "strength.soft_target"));
    s = strength(OAIF__V1__STRENGTH_ACTION__STRENGTH_ACTION_MARGIN);
    s.margin = 1e300; /* finite as a double, not as the float the loss takes */
    assert_int_equal(trainer_strength_effect(&s, &e, why, sizeof why), ERR_INVAL);
    assert_non_null(strstr(why, "strength.margin"));
    assert_int_equal(e.action, 0);
}

/* A hand-made pair: policy log-probs of chosen -10, of rejected -12; reference -11 and -11.
 * h = (-10 + 11) - (-12 + 11) = 2. */
static struct trainer_pair hand_pair(const int *a, const int *b)
{
    static const int prompt[2] = {1, 2};
    return (struct trainer_pair){.prompt = prompt,
                                 .prompt_len = 2,
                                 .chosen = a,
                                 .chosen_len = 3,
                                 .rejected = b,
                                 .rejected_len = 4,
                                 .ref_chosen = -11.0f,
                                 .ref_rejected = -11.0f,
                                 .target = 1.0f};
}

static void test_a_flipped_pair_trains_with_the_flipped_order(void **state)
{
    (void)state;
    static const int a[3] = {5, 6, 7}, b[4] = {8, 9, 10, 11};
    struct nn_pref_opts o = {.kind = NN_PREF_DPO, .beta = 0.1f};
    struct trainer_pair p = hand_pair(a, b);
    float lp[2] = {-10.0f, -12.0f}; /* log pi of a, of b */
    float dc, dr;
    struct nn_pref_stats st;
    assert_int_equal(trainer_pref_loss(&o, 1, &lp[0], &lp[1], &p, &dc, &dr, &st), ERR_OK);
    assert_float_equal(st.loss, -log_sig(0.1 * 2), 1e-6);
    assert_true(dc < 0 && dr > 0); /* descent raises log pi(a), lowers log pi(b) */

    Oaif__V1__Strength s = strength(OAIF__V1__STRENGTH_ACTION__STRENGTH_ACTION_FLIP);
    struct trainer_strength_effect e;
    char why[200];
    assert_int_equal(trainer_strength_effect(&s, &e, why, sizeof why), ERR_OK);
    trainer_strength_shape(&e, &p);
    assert_ptr_equal(p.chosen, b);
    assert_int_equal(p.chosen_len, 4);
    assert_ptr_equal(p.rejected, a);
    assert_int_equal(p.rejected_len, 3);
    assert_float_equal(p.ref_chosen, -11.0, 0);
    /* the policy's log-probs follow the tokens: b is now chosen */
    float fc, fr;
    assert_int_equal(trainer_pref_loss(&o, 1, &lp[1], &lp[0], &p, &fc, &fr, &st), ERR_OK);
    assert_float_equal(st.loss, -log_sig(0.1 * -2), 1e-6); /* the other label's loss */
    assert_true(st.loss > log(2.0));
    assert_true(st.accuracy == 0.0);
    /* descent now lowers log pi(a) (rejected) and raises log pi(b): the gradient on each response
     * changed sign */
    assert_true(fr > 0 && fc < 0);
    assert_true(fr * dc < 0);
}

/* The loss of ALGORITHMS.md for kind k at h, under label (l, arg) and margin m, written out. */
static double want_loss(enum nn_pref_kind k, double beta, double eps, double h,
                        enum trainer_pair_label l, double arg, double m)
{
    double z = beta * h - m, hp = z / beta;
    double p = l == TRAINER_LABEL_SMOOTH ? 1 - arg : l == TRAINER_LABEL_SOFT ? arg : 1;
    switch (k) {
    case NN_PREF_DPO:
        return -p * log_sig(z) - (1 - p) * log_sig(-z);
    case NN_PREF_CDPO:
        if (l == TRAINER_LABEL_AS_LOSS)
            p = 1 - eps;
        return -p * log_sig(z) - (1 - p) * log_sig(-z);
    case NN_PREF_ROBUST:
        if (l == TRAINER_LABEL_SOFT)
            return -p * log_sig(z) - (1 - p) * log_sig(-z);
        if (l == TRAINER_LABEL_SMOOTH)
            eps = arg;
        return (-(1 - eps) * log_sig(z) + eps * log_sig(-z)) / (1 - 2 * eps);
    case NN_PREF_IPO: {
        double c = 1 / (2 * beta);
        return p * (hp - c) * (hp - c) + (1 - p) * (-hp - c) * (-hp - c);
    }
    case NN_PREF_SLIC:
        return p * fmax(0, 1 - z) + (1 - p) * fmax(0, 1 + z);
    default:
        return NAN;
    }
}

static void test_each_treatment_is_the_formula_and_its_gradient(void **state)
{
    (void)state;
    static const int a[3] = {5, 6, 7}, b[4] = {8, 9, 10, 11};
    enum nn_pref_kind kinds[] = {NN_PREF_DPO, NN_PREF_IPO, NN_PREF_SLIC, NN_PREF_CDPO,
                                 NN_PREF_ROBUST};
    struct {
        enum trainer_pair_label l;
        float arg;
    } labels[] = {{TRAINER_LABEL_AS_LOSS, 0},
                  {TRAINER_LABEL_SMOOTH, 0.2f},
                  {TRAINER_LABEL_SOFT, 0.7f},
                  {TRAINER_LABEL_SOFT, 0.1f}};
    float margins[] = {0.0f, 0.4f, -1.5f};
    /* log-probs of chosen and rejected of three pairs, off the hinge's kink */
    float lc[3] = {-10.0f, -7.25f, -20.5f}, lr[3] = {-12.0f, -9.0f, -18.0f};
    for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
        float beta = kinds[k] == NN_PREF_IPO ? 0.5f : kinds[k] == NN_PREF_SLIC ? 0.3f : 0.1f;
        struct nn_pref_opts o = {.kind = kinds[k], .beta = beta, .eps = 0.1f};
        for (size_t li = 0; li < sizeof labels / sizeof labels[0]; li++) {
            for (size_t mi = 0; mi < sizeof margins / sizeof margins[0]; mi++) {
                struct trainer_pair p[3];
                double want = 0;
                for (int i = 0; i < 3; i++) {
                    p[i] = hand_pair(a, b);
                    p[i].ref_chosen = -11.0f + (float)i;
                    p[i].ref_rejected = -10.5f;
                    p[i].label = labels[li].l;
                    p[i].label_arg = labels[li].arg;
                    p[i].margin = margins[mi] * (float)(i + 1);
                    double h =
                        ((double)lc[i] - p[i].ref_chosen) - ((double)lr[i] - p[i].ref_rejected);
                    want += want_loss(kinds[k], beta, 0.1, h, labels[li].l, labels[li].arg,
                                      p[i].margin) /
                            3;
                }
                float dc[3], dr[3];
                struct nn_pref_stats st;
                assert_int_equal(trainer_pref_loss(&o, 3, lc, lr, p, dc, dr, &st), ERR_OK);
                if (fabs(st.loss - want) > 1e-5 * (1 + fabs(want)))
                    fail_msg("kind %d label %d (%g) margin %g: loss %.8f, formula %.8f", kinds[k],
                             labels[li].l, labels[li].arg, margins[mi], st.loss, want);
                /* central differences in each log-prob */
                for (int i = 0; i < 3; i++) {
                    for (int side = 0; side < 2; side++) {
                        float *x = side ? &lr[i] : &lc[i], x0 = *x;
                        const float step = 1e-2f;
                        struct nn_pref_stats up, down;
                        *x = x0 + step;
                        assert_int_equal(trainer_pref_loss(&o, 3, lc, lr, p, NULL, NULL, &up),
                                         ERR_OK);
                        *x = x0 - step;
                        assert_int_equal(trainer_pref_loss(&o, 3, lc, lr, p, NULL, NULL, &down),
                                         ERR_OK);
                        *x = x0;
                        double fd = (up.loss - down.loss) / (2.0 * step);
                        double g = side ? dr[i] : dc[i];
                        if (fabs(fd - g) > 1e-4 * (1 + fabs(fd)))
                            fail_msg("kind %d label %d margin %g pair %d side %d: gradient %.8f, "
                                     "central difference %.8f",
                                     kinds[k], labels[li].l, margins[mi], i, side, g, fd);
                    }
                }
                /* the implicit rewards are those of h, without the margin */
                double rc = 0;
                for (int i = 0; i < 3; i++)
                    rc += beta * ((double)lc[i] - p[i].ref_chosen) / 3;
                assert_float_equal(st.reward_chosen, rc, 1e-6);
            }
        }
    }
}

/* Without treatment the loss is nn_loss_pref's, value and gradient, for every kind. */
static void test_untreated_pairs_are_the_loss_as_configured(void **state)
{
    (void)state;
    static const int a[3] = {5, 6, 7}, b[4] = {8, 9, 10, 11};
    float lc[2] = {-3.0f, -8.5f}, lr[2] = {-4.0f, -6.0f}, rc[2] = {-3.5f, -8.0f},
          rr[2] = {-3.0f, -7.0f}, tg[2] = {0.8f, 0.35f};
    struct trainer_pair p[2];
    for (int i = 0; i < 2; i++) {
        p[i] = hand_pair(a, b);
        p[i].ref_chosen = rc[i];
        p[i].ref_rejected = rr[i];
        p[i].target = tg[i];
    }
    enum nn_pref_kind kinds[] = {NN_PREF_DPO,  NN_PREF_IPO,    NN_PREF_SLIC,
                                 NN_PREF_CDPO, NN_PREF_ROBUST, NN_PREF_SOFT};
    for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
        struct nn_pref_opts o = {.kind = kinds[k], .beta = 0.3f, .eps = 0.2f};
        float wc[2], wr[2], gc[2], gr[2];
        struct nn_pref_stats want, got;
        assert_int_equal(nn_loss_pref(&o, 2, lc, lr, rc, rr, tg, wc, wr, &want), ERR_OK);
        assert_int_equal(trainer_pref_loss(&o, 2, lc, lr, p, gc, gr, &got), ERR_OK);
        assert_float_equal(got.loss, want.loss, 1e-6);
        assert_float_equal(got.margin, want.margin, 1e-6);
        assert_float_equal(got.accuracy, want.accuracy, 0);
        for (int i = 0; i < 2; i++) {
            assert_float_equal(gc[i], wc[i], 1e-6);
            assert_float_equal(gr[i], wr[i], 1e-6);
        }
    }
}

static void test_bad_treatments_are_refused(void **state)
{
    (void)state;
    static const int a[3] = {5, 6, 7}, b[4] = {8, 9, 10, 11};
    struct trainer_pair p = hand_pair(a, b);
    float lc = -1.0f, lr = -2.0f;
    struct nn_pref_opts o = {.kind = NN_PREF_ROBUST, .beta = 0.1f, .eps = 0.1f};
    p.label = TRAINER_LABEL_SMOOTH;
    p.label_arg = 0.5f; /* robust DPO divides by 1 - 2 eps */
    assert_int_equal(trainer_pref_loss(&o, 1, &lc, &lr, &p, NULL, NULL, NULL), ERR_INVAL);
    p.label = TRAINER_LABEL_SOFT;
    p.label_arg = 1.5f;
    assert_int_equal(trainer_pref_loss(&o, 1, &lc, &lr, &p, NULL, NULL, NULL), ERR_INVAL);
    p.label = TRAINER_LABEL_AS_LOSS;
    p.margin = INFINITY;
    assert_int_equal(trainer_pref_loss(&o, 1, &lc, &lr, &p, NULL, NULL, NULL), ERR_INVAL);
    p.margin = 0;
    assert_int_equal(trainer_pref_loss(&o, 0, &lc, &lr, &p, NULL, NULL, NULL), ERR_INVAL);
    assert_int_equal(trainer_pref_loss(&o, 1, &lc, &lr, &p, NULL, NULL, NULL), ERR_OK);
}

static void test_request_id_follows_pair_and_label(void **state)
{
    (void)state;
    char id[64], id2[64];
    assert_true(
        trainer_strength_request_id("s-t-3-1", OAIF__V1__WINNER__WINNER_FIRST, id, sizeof id));
    assert_string_equal(id, "e-s-t-3-1-1");
    assert_true(
        trainer_strength_request_id("s-t-3-1", OAIF__V1__WINNER__WINNER_SECOND, id2, sizeof id2));
    assert_string_equal(id2, "e-s-t-3-1-2");
    assert_false(trainer_strength_request_id("s-t-3-1", OAIF__V1__WINNER__WINNER_FIRST, id, 11));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_each_action_has_its_effect),
        cmocka_unit_test(test_each_effect_shapes_the_loss_inputs),
        cmocka_unit_test(test_impossible_strengths_are_refused),
        cmocka_unit_test(test_a_flipped_pair_trains_with_the_flipped_order),
        cmocka_unit_test(test_each_treatment_is_the_formula_and_its_gradient),
        cmocka_unit_test(test_untreated_pairs_are_the_loss_as_configured),
        cmocka_unit_test(test_bad_treatments_are_refused),
        cmocka_unit_test(test_request_id_follows_pair_and_label),
    };
    return cmocka_run_group_tests_name("trainer_strength", tests, NULL, NULL);
}
