/* test_nn_loss.c - SFT, the DPO family and Bradley-Terry: known values, the relations between
 * the losses, finite-difference gradients (fp64, exact fp32 steps) and bad arguments. */
#include <setjmp.h> /* cmocka 1.1 needs these four first; keep <cmocka.h> */
#include <stdarg.h> /* in its own block, or clang-format sorts it above them */
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <math.h>
#include <string.h>

#include "err.h"
#include "loss.h"

enum { N = 5 };

/* cmocka's assert_float_equal works in fp32; the losses are fp64. */
#define assert_near(a, b, tol)                                                                     \
    do {                                                                                           \
        double a_ = (a), b_ = (b);                                                                 \
        if (!(fabs(a_ - b_) <= (tol)))                                                             \
            fail_msg("%s = %.12g, expected %.12g (tolerance %g)", #a, a_, b_, (double)(tol));      \
    } while (0)

/* Values on a 1/64 grid, so that +-1/128 steps are exact in fp32. */
static const float LPC[N] = {-10.25f, -3.5f, -7.0f, -20.125f, -1.0f};
static const float LPR[N] = {-9.5f, -6.25f, -7.0f, -18.0f, -4.5f};
static const float RFC[N] = {-10.0f, -4.0f, -6.5f, -21.0f, -1.25f};
static const float RFR[N] = {-9.75f, -5.0f, -7.25f, -17.5f, -3.0f};
static const float TGT[N] = {1.0f, 0.75f, 0.5f, 0.25f, 0.0f};

static double pref_value(const struct nn_pref_opts *o, const float *c, const float *r)
{
    struct nn_pref_stats st;
    assert_int_equal(nn_loss_pref(o, N, c, r, RFC, RFR, TGT, NULL, NULL, &st), ERR_OK);
    return st.loss;
}

static void check_pref_gradient(const struct nn_pref_opts *o)
{
    float c[N], r[N], dc[N], dr[N];
    memcpy(c, LPC, sizeof c);
    memcpy(r, LPR, sizeof r);
    assert_int_equal(nn_loss_pref(o, N, c, r, RFC, RFR, TGT, dc, dr, NULL), ERR_OK);
    const float e = 1.0f / 128.0f;
    for (int side = 0; side < 2; side++) {
        float *x = side ? r : c, *g = side ? dr : dc;
        for (int i = 0; i < N; i++) {
            float x0 = x[i];
            double f[4];
            const float st[4] = {e, -e, 2 * e, -2 * e};
            for (int q = 0; q < 4; q++) {
                x[i] = x0 + st[q];
                f[q] = pref_value(o, c, r);
            }
            x[i] = x0;
            double fd = (8.0 * (f[0] - f[1]) - (f[2] - f[3])) / (12.0 * e);
            assert_near(g[i], fd, 1e-5 + 1e-4 * fabs(fd));
        }
    }
}

static void test_pref_gradients_every_kind(void **state)
{
    (void)state;
    const struct nn_pref_opts os[] = {
        {NN_PREF_DPO, 0.1f, 0.0f},    {NN_PREF_DPO, 2.0f, 0.0f},  {NN_PREF_IPO, 1.0f, 0.0f},
        {NN_PREF_IPO, 0.1f, 0.0f},    {NN_PREF_SLIC, 0.5f, 0.0f}, {NN_PREF_CDPO, 0.1f, 0.1f},
        {NN_PREF_ROBUST, 0.5f, 0.2f}, {NN_PREF_SOFT, 0.3f, 0.0f},
    };
    for (size_t k = 0; k < sizeof os / sizeof os[0]; k++)
        check_pref_gradient(&os[k]);
}

static void test_pref_known_values(void **state)
{
    (void)state;
    float z[1] = {-5.0f};
    struct nn_pref_stats st;
    /* h = 0: DPO = log 2, IPO = (1/(2b))^2, SLiC = 1 */
    struct nn_pref_opts o = {NN_PREF_DPO, 0.1f, 0.0f};
    assert_int_equal(nn_loss_pref(&o, 1, z, z, z, z, NULL, NULL, NULL, &st), ERR_OK);
    assert_near(st.loss, log(2.0), 1e-12);
    assert_near(st.accuracy, 0.0, 0.0);
    o.kind = NN_PREF_IPO;
    o.beta = 0.5f;
    assert_int_equal(nn_loss_pref(&o, 1, z, z, z, z, NULL, NULL, NULL, &st), ERR_OK);
    assert_near(st.loss, 1.0, 1e-12);
    o.kind = NN_PREF_SLIC;
    assert_int_equal(nn_loss_pref(&o, 1, z, z, z, z, NULL, NULL, NULL, &st), ERR_OK);
    assert_near(st.loss, 1.0, 1e-12);
    /* one pair, h = 1: implicit rewards and DPO value by hand */
    float c[1] = {-3.0f}, r[1] = {-6.0f}, rc[1] = {-4.0f}, rr[1] = {-6.0f}, dc, dr;
    o.kind = NN_PREF_DPO;
    o.beta = 0.1f;
    assert_int_equal(nn_loss_pref(&o, 1, c, r, rc, rr, NULL, &dc, &dr, &st), ERR_OK);
    assert_near(st.loss, log1p(exp(-0.1)), 1e-7);
    assert_near(st.reward_chosen, 0.1, 1e-7);
    assert_near(st.reward_rejected, 0.0, 1e-7);
    assert_near(st.margin, 0.1, 1e-7);
    assert_near(st.accuracy, 1.0, 0.0);
    assert_near(dc, -0.1 / (1.0 + exp(0.1)), 1e-7);
    assert_near(dr, -dc, 0.0);
    /* SLiC past the hinge: zero loss and gradient */
    o.kind = NN_PREF_SLIC;
    o.beta = 1.0f;
    assert_int_equal(nn_loss_pref(&o, 1, c, r, rc, rr, NULL, &dc, &dr, &st), ERR_OK);
    assert_near(st.loss, 0.0, 0.0);
    assert_near(dc, 0.0, 0.0);
}

/* cDPO with e = 0, robust with e = 0 and soft with t = 1 are DPO; cDPO e is soft t = 1 - e. */
static void test_pref_relations(void **state)
{
    (void)state;
    float ones[N] = {1, 1, 1, 1, 1}, nine[N] = {0.9f, 0.9f, 0.9f, 0.9f, 0.9f};
    struct nn_pref_stats a, b;
    struct nn_pref_opts dpo = {NN_PREF_DPO, 0.3f, 0.0f}, o = dpo;
    assert_int_equal(nn_loss_pref(&dpo, N, LPC, LPR, RFC, RFR, NULL, NULL, NULL, &a), ERR_OK);
    o.kind = NN_PREF_CDPO;
    assert_int_equal(nn_loss_pref(&o, N, LPC, LPR, RFC, RFR, NULL, NULL, NULL, &b), ERR_OK);
    assert_near(a.loss, b.loss, 1e-12);
    o.kind = NN_PREF_ROBUST;
    assert_int_equal(nn_loss_pref(&o, N, LPC, LPR, RFC, RFR, NULL, NULL, NULL, &b), ERR_OK);
    assert_near(a.loss, b.loss, 1e-12);
    o.kind = NN_PREF_SOFT;
    assert_int_equal(nn_loss_pref(&o, N, LPC, LPR, RFC, RFR, ones, NULL, NULL, &b), ERR_OK);
    assert_near(a.loss, b.loss, 1e-12);
    o.kind = NN_PREF_CDPO;
    o.eps = 0.1f;
    assert_int_equal(nn_loss_pref(&o, N, LPC, LPR, RFC, RFR, NULL, NULL, NULL, &a), ERR_OK);
    o.kind = NN_PREF_SOFT;
    assert_int_equal(nn_loss_pref(&o, N, LPC, LPR, RFC, RFR, nine, NULL, NULL, &b), ERR_OK);
    assert_near(a.loss, b.loss, 1e-7);
    /* robust DPO is unbiased: its expectation under e-flipped labels is the clean DPO loss */
    float h[1] = {0.0f}, x[1] = {2.0f}, zero[1] = {0.0f};
    struct nn_pref_opts rb = {NN_PREF_ROBUST, 1.0f, 0.2f}, d1 = {NN_PREF_DPO, 1.0f, 0.0f};
    struct nn_pref_stats fwd, flip, clean;
    assert_int_equal(nn_loss_pref(&rb, 1, x, h, zero, zero, NULL, NULL, NULL, &fwd), ERR_OK);
    assert_int_equal(nn_loss_pref(&rb, 1, h, x, zero, zero, NULL, NULL, NULL, &flip), ERR_OK);
    assert_int_equal(nn_loss_pref(&d1, 1, x, h, zero, zero, NULL, NULL, NULL, &clean), ERR_OK);
    assert_near(0.8 * fwd.loss + 0.2 * flip.loss, clean.loss, 1e-7);
}

static void test_pref_rejects_bad_arguments(void **state)
{
    (void)state;
    float bad[N] = {0.5f, 1.5f, 0.5f, 0.5f, 0.5f};
    struct nn_pref_opts o = {NN_PREF_SOFT, 0.1f, 0.0f};
    assert_int_equal(nn_loss_pref(&o, N, LPC, LPR, RFC, RFR, NULL, NULL, NULL, NULL), ERR_INVAL);
    assert_int_equal(nn_loss_pref(&o, N, LPC, LPR, RFC, RFR, bad, NULL, NULL, NULL), ERR_INVAL);
    o.kind = NN_PREF_CDPO;
    o.eps = 0.5f;
    assert_int_equal(nn_loss_pref(&o, N, LPC, LPR, RFC, RFR, NULL, NULL, NULL, NULL), ERR_INVAL);
    o.eps = 0.1f;
    o.beta = 0.0f;
    assert_int_equal(nn_loss_pref(&o, N, LPC, LPR, RFC, RFR, NULL, NULL, NULL, NULL), ERR_INVAL);
    o.beta = 0.1f;
    assert_int_equal(nn_loss_pref(&o, 0, LPC, LPR, RFC, RFR, NULL, NULL, NULL, NULL), ERR_INVAL);
    o.kind = (enum nn_pref_kind)42;
    assert_int_equal(nn_loss_pref(&o, N, LPC, LPR, RFC, RFR, NULL, NULL, NULL, NULL), ERR_INVAL);
}

static double rm_value(const struct nn_rm_opts *o, const float *c, const float *r, const float *mg,
                       const float *t)
{
    struct nn_rm_stats st;
    assert_int_equal(nn_loss_rm(o, N, c, r, mg, t, NULL, NULL, &st), ERR_OK);
    return st.loss;
}

static void test_rm_gradients(void **state)
{
    (void)state;
    const float margin[N] = {0.5f, -0.25f, 0.0f, 1.0f, 0.125f};
    const struct nn_rm_opts os[] = {{0.0f, 0.0f}, {0.1f, 0.01f}, {0.0f, 0.5f}};
    for (size_t k = 0; k < 3; k++) {
        for (int variant = 0; variant < 2; variant++) {
            const float *mg = variant ? margin : NULL, *t = variant ? TGT : NULL;
            float c[N], r[N], dc[N], dr[N];
            for (int i = 0; i < N; i++) {
                c[i] = LPC[i] / 8.0f;
                r[i] = LPR[i] / 8.0f;
            }
            assert_int_equal(nn_loss_rm(&os[k], N, c, r, mg, t, dc, dr, NULL), ERR_OK);
            const float e = 1.0f / 128.0f;
            for (int side = 0; side < 2; side++) {
                float *x = side ? r : c, *g = side ? dr : dc;
                for (int i = 0; i < N; i++) {
                    float x0 = x[i];
                    double f[4];
                    const float st[4] = {e, -e, 2 * e, -2 * e};
                    for (int q = 0; q < 4; q++) {
                        x[i] = x0 + st[q];
                        f[q] = rm_value(&os[k], c, r, mg, t);
                    }
                    x[i] = x0;
                    double fd = (8.0 * (f[0] - f[1]) - (f[2] - f[3])) / (12.0 * e);
                    assert_near(g[i], fd, 1e-6 + 1e-4 * fabs(fd));
                }
            }
        }
    }
}

static void test_rm_known_values(void **state)
{
    (void)state;
    float c[2] = {1.0f, -0.5f}, r[2] = {0.0f, 0.5f}, m[2] = {1.0f, 0.0f};
    struct nn_rm_opts o = {0.0f, 0.0f};
    struct nn_rm_stats st;
    assert_int_equal(nn_loss_rm(&o, 2, c, r, NULL, NULL, NULL, NULL, &st), ERR_OK);
    assert_near(st.loss, 0.5 * (log1p(exp(-1.0)) + log1p(exp(1.0))), 1e-12);
    assert_near(st.accuracy, 0.5, 0.0);
    assert_near(st.margin, 0.0, 1e-12);
    /* a margin of 1 on the first pair moves its d to 0 */
    assert_int_equal(nn_loss_rm(&o, 2, c, r, m, NULL, NULL, NULL, &st), ERR_OK);
    assert_near(st.loss, 0.5 * (log(2.0) + log1p(exp(1.0))), 1e-12);
    /* centering adds c mean((r_c + r_r)^2) = 0.01 * (1 + 0) / 2 */
    struct nn_rm_opts oc = {0.0f, 0.01f};
    struct nn_rm_stats sc;
    assert_int_equal(nn_loss_rm(&oc, 2, c, r, m, NULL, NULL, NULL, &sc), ERR_OK);
    assert_near(sc.loss - st.loss, 0.005, 1e-9);
    /* smoothing a equals explicit target 1 - a */
    float t[2] = {0.9f, 0.9f};
    struct nn_rm_opts os = {0.1f, 0.0f};
    struct nn_rm_stats s1, s2;
    assert_int_equal(nn_loss_rm(&os, 2, c, r, NULL, NULL, NULL, NULL, &s1), ERR_OK);
    assert_int_equal(nn_loss_rm(&o, 2, c, r, NULL, t, NULL, NULL, &s2), ERR_OK);
    assert_near(s1.loss, s2.loss, 1e-7);
    t[1] = -0.1f;
    assert_int_equal(nn_loss_rm(&o, 2, c, r, NULL, t, NULL, NULL, &s2), ERR_INVAL);
    os.label_smoothing = 2.0f;
    assert_int_equal(nn_loss_rm(&os, 2, c, r, NULL, NULL, NULL, NULL, &s2), ERR_INVAL);
}

static void test_sft_mean_over_response_tokens(void **state)
{
    (void)state;
    float lp[3] = {-6.0f, -2.0f, 0.0f}, d[3];
    int nt[3] = {3, 1, 0};
    double loss;
    assert_int_equal(nn_loss_sft(3, lp, nt, 0, d, &loss), ERR_OK);
    assert_near(loss, 2.0, 1e-12);
    for (int b = 0; b < 3; b++)
        assert_near(d[b], -0.25, 1e-9);
    /* a fixed denominator: the same tokens weigh the same whatever the batch's length */
    assert_int_equal(nn_loss_sft(3, lp, nt, 16.0, d, &loss), ERR_OK);
    assert_near(loss, 0.5, 1e-12);
    for (int b = 0; b < 3; b++)
        assert_near(d[b], -1.0 / 16, 1e-9);
    int none[3] = {0, 0, 0};
    assert_int_equal(nn_loss_sft(3, lp, none, 16.0, d, &loss), ERR_INVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sft_mean_over_response_tokens),
        cmocka_unit_test(test_pref_known_values),
        cmocka_unit_test(test_pref_relations),
        cmocka_unit_test(test_pref_gradients_every_kind),
        cmocka_unit_test(test_pref_rejects_bad_arguments),
        cmocka_unit_test(test_rm_known_values),
        cmocka_unit_test(test_rm_gradients),
    };
    return cmocka_run_group_tests_name("nn_loss", tests, NULL, NULL);
}
