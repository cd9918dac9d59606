/* test_nn_loss.c - SFT, the DPO family, Bradley-Terry and the contrastive losses (SimCSE, SwAV,
 * Sinkhorn-Knopp): known values, the relations between the losses, finite-difference gradients
 * (fp64, exact fp32 steps), bad arguments, and one timing of the contrastive losses at the
 * paper's sizes. (Against PyTorch: test_nn_reference.c.) */
#include <setjmp.h> /* cmocka 1.1 needs these four first; keep <cmocka.h> */
#include <stdarg.h> /* in its own block, or clang-format sorts it above them */
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

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

/* --- contrastive --- */

enum { CB = 3, CN = 2 * CB, CD = 5, CK = 3, CBD = CB * CD, CNK = CN * CK };

/* Features on a 1/32 grid in [-1.5, 1.5] (and prototypes on a 1/64 grid), so that steps of
 * 1/1024 are exact in fp32. */
static void cl_fill(float *x, int n, int mul, int add, float scale)
{
    for (int i = 0; i < n; i++)
        x[i] = (float)((i * mul + add) % 97 - 48) * scale;
}

struct cl_case {
    int swav; /* 0: SimCSE, 1: SwAV */
    enum nn_cl_mode mode;
    float tau;
    float h[CN * CD], h2[CN * CD], C[CK * CD];
    float codes[2 * CN *
                CK]; /* SwAV's codes, fixed so that the loss is a function to differentiate */
};

static double cl_value(struct cl_case *c)
{
    double loss = NAN;
    if (c->swav) {
        struct nn_swav_opts o = {c->mode, CK, c->tau, 0.05f, 3};
        assert_int_equal(
            nn_loss_swav(&o, CN, CD, c->h, c->h2, c->C, c->codes, NULL, NULL, NULL, &loss, NULL),
            ERR_OK);
    } else {
        struct nn_simcse_opts o = {c->mode, c->tau};
        assert_int_equal(nn_loss_simcse(&o, CN, CD, c->h, c->h2, NULL, NULL, &loss, NULL), ERR_OK);
    }
    return loss;
}

/* Central differences (4 points) of the loss on every entry of x against g. */
static void cl_check_fd(struct cl_case *c, float *x, const float *g, int n, const char *what)
{
    const float e = 1.0f / 1024.0f, st[4] = {e, -e, 2 * e, -2 * e};
    for (int i = 0; i < n; i++) {
        float x0 = x[i];
        double f[4];
        for (int q = 0; q < 4; q++) {
            x[i] = x0 + st[q];
            f[q] = cl_value(c);
        }
        x[i] = x0;
        double fd = (8.0 * (f[0] - f[1]) - (f[2] - f[3])) / (12.0 * e);
        if (!(fabs(g[i] - fd) <= 1e-6 + 1e-4 * fabs(fd)))
            fail_msg("%s[%d]: gradient %.9g, finite differences %.9g", what, i, g[i], fd);
    }
}

/* The codes SwAV's loss computes for x [CN, CD] (its instances), as the loss does: scores of
 * the normalised instances against C, rounded to fp32, then Sinkhorn. */
static void cl_codes(enum nn_cl_mode mode, const float *h, const float *C, float *q)
{
    float x[CN * CD];
    assert_int_equal(nn_cl_instances(mode, CB, CD, h, h + CBD, x), ERR_OK);
    for (int i = 0; i < CN; i++) {
        double r = 0.0;
        for (int d = 0; d < CD; d++)
            r += (double)x[i * CD + d] * x[i * CD + d];
        r = fmax(sqrt(r), NN_CL_NORM_EPS);
        for (int k = 0; k < CK; k++) {
            double s = 0.0;
            for (int d = 0; d < CD; d++)
                s += x[i * CD + d] / r * C[k * CD + d];
            q[i * CK + k] = (float)s;
        }
    }
    assert_int_equal(nn_sinkhorn(CN, CK, 0.05f, 3, q, q), ERR_OK);
}

static void cl_case_init(struct cl_case *c, int swav, enum nn_cl_mode mode, float tau)
{
    memset(c, 0, sizeof *c);
    c->swav = swav;
    c->mode = mode;
    c->tau = tau;
    cl_fill(c->h, CN * CD, 37, 11, 1.0f / 32);
    cl_fill(c->h2, CN * CD, 53, 29, 1.0f / 32);
    cl_fill(c->C, CK * CD, 41, 7, 1.0f / 64);
    if (swav) {
        cl_codes(mode, c->h, c->C, c->codes);
        cl_codes(mode, c->h2, c->C, c->codes + CNK);
    }
}

static void test_simcse_gradients(void **state)
{
    (void)state;
    const float taus[2] = {0.05f, 0.5f};
    for (int m = 0; m < 2; m++)
        for (int t = 0; t < 2; t++) {
            struct cl_case c;
            float dh[CN * CD], dh2[CN * CD];
            cl_case_init(&c, 0, m ? NN_CL_DIFFERENCES : NN_CL_RESPONSES, taus[t]);
            struct nn_simcse_opts o = {c.mode, c.tau};
            double loss;
            assert_int_equal(nn_loss_simcse(&o, CN, CD, c.h, c.h2, dh, dh2, &loss, NULL), ERR_OK);
            assert_true(loss > 0.0);
            cl_check_fd(&c, c.h, dh, CN * CD, "simcse dh");
            cl_check_fd(&c, c.h2, dh2, CN * CD, "simcse dh2");
            /* a cosine does not see a feature's length: responses' gradients are orthogonal to
             * their feature */
            for (int i = 0; m == 0 && i < CN; i++) {
                double a = 0.0, b = 0.0;
                for (int d = 0; d < CD; d++) {
                    a += (double)dh[i * CD + d] * c.h[i * CD + d];
                    b += (double)dh2[i * CD + d] * c.h2[i * CD + d];
                }
                assert_near(a, 0.0, 1e-7);
                assert_near(b, 0.0, 1e-7);
            }
        }
}

static void test_swav_gradients_with_fixed_codes(void **state)
{
    (void)state;
    for (int m = 0; m < 2; m++) {
        struct cl_case c;
        float dh[CN * CD], dh2[CN * CD], dC[CK * CD];
        cl_case_init(&c, 1, m ? NN_CL_DIFFERENCES : NN_CL_RESPONSES, 0.1f);
        struct nn_swav_opts o = {c.mode, CK, c.tau, 0.05f, 3};
        double loss, own;
        assert_int_equal(
            nn_loss_swav(&o, CN, CD, c.h, c.h2, c.C, c.codes, dh, dh2, dC, &loss, NULL), ERR_OK);
        /* the codes the loss computes itself are these */
        assert_int_equal(
            nn_loss_swav(&o, CN, CD, c.h, c.h2, c.C, NULL, NULL, NULL, NULL, &own, NULL), ERR_OK);
        assert_near(own, loss, 1e-6 * loss);
        cl_check_fd(&c, c.h, dh, CN * CD, "swav dh");
        cl_check_fd(&c, c.h2, dh2, CN * CD, "swav dh2");
        cl_check_fd(&c, c.C, dC, CK * CD, "swav dC");
    }
}

/* A caller whose chosen and rejected features are separate blocks: instances by the helper, the
 * loss on instances (responses mode), the gradient back by the helper; finite differences on
 * hc and hr through all three. Also: the same as the loss's own differences mode. */
static float g_hc[CB * CD], g_hr[CB * CD], g_h2[CN * CD];

static double chain_value(enum nn_cl_mode mode, float *dhc, float *dhr)
{
    float x[CN * CD], dx[CN * CD];
    struct nn_simcse_opts o = {NN_CL_RESPONSES, 0.1f};
    double loss;
    assert_int_equal(nn_cl_instances(mode, CB, CD, g_hc, g_hr, x), ERR_OK);
    assert_int_equal(nn_loss_simcse(&o, CN, CD, x, g_h2, dhc ? dx : NULL, NULL, &loss, NULL),
                     ERR_OK);
    if (dhc)
        assert_int_equal(nn_cl_instances_backward(mode, CB, CD, dx, dhc, dhr), ERR_OK);
    return loss;
}

static void test_instances_chain_rule(void **state)
{
    (void)state;
    for (int m = 0; m < 2; m++) {
        enum nn_cl_mode mode = m ? NN_CL_DIFFERENCES : NN_CL_RESPONSES;
        float dhc[CB * CD], dhr[CB * CD], h[CN * CD], dh[CN * CD];
        cl_fill(g_hc, CB * CD, 37, 11, 1.0f / 32);
        cl_fill(g_hr, CB * CD, 61, 5, 1.0f / 32);
        cl_fill(h, CN * CD, 53, 29, 1.0f / 32);
        /* view 2's instances, from its own chosen and rejected rows */
        assert_int_equal(nn_cl_instances(mode, CB, CD, h, h + CBD, g_h2), ERR_OK);
        chain_value(mode, dhc, dhr);
        const float e = 1.0f / 1024.0f, st[4] = {e, -e, 2 * e, -2 * e};
        for (int side = 0; side < 2; side++) {
            float *x = side ? g_hr : g_hc, *g = side ? dhr : dhc;
            for (int i = 0; i < CB * CD; i++) {
                float x0 = x[i];
                double f[4];
                for (int q = 0; q < 4; q++) {
                    x[i] = x0 + st[q];
                    f[q] = chain_value(mode, NULL, NULL);
                }
                x[i] = x0;
                double fd = (8.0 * (f[0] - f[1]) - (f[2] - f[3])) / (12.0 * e);
                if (!(fabs(g[i] - fd) <= 1e-6 + 1e-4 * fabs(fd)))
                    fail_msg("mode %d %s[%d]: %.9g, finite differences %.9g", m,
                             side ? "dhr" : "dhc", i, g[i], fd);
            }
        }
        /* the loss's own mode on [hc; hr] gives the same loss and gradient */
        struct nn_simcse_opts o = {mode, 0.1f};
        float hh[CN * CD], hh2[CN * CD];
        double loss;
        memcpy(hh, g_hc, sizeof g_hc);
        memcpy(hh + CBD, g_hr, sizeof g_hr);
        cl_fill(hh2, CN * CD, 53, 29, 1.0f / 32);
        assert_int_equal(nn_loss_simcse(&o, CN, CD, hh, hh2, dh, NULL, &loss, NULL), ERR_OK);
        assert_near(loss, chain_value(mode, NULL, NULL), 1e-12);
        for (int i = 0; i < CB * CD; i++) {
            assert_near(dh[i], dhc[i], 1e-7);
            assert_near(dh[CB * CD + i], dhr[i], 1e-7);
        }
        /* in place */
        memcpy(h, hh, sizeof h);
        assert_int_equal(nn_cl_instances(mode, CB, CD, h, h + CBD, h), ERR_OK);
        float x[CN * CD];
        assert_int_equal(nn_cl_instances(mode, CB, CD, g_hc, g_hr, x), ERR_OK);
        assert_memory_equal(h, x, sizeof x);
    }
}

/* Identical views, orthogonal across instances: u_i . u_j = [i == j], so
 * l_i = log(1 + (N - 1) e^(-1/tau)); d loss / d h_i is sum_{j != i} u_j / (|h_i| N tau Z) with
 * Z = e^(1/tau) + N - 1 (the u_i part is projected out), and the same for the other view. */
static void test_simcse_orthogonal_identical_views(void **state)
{
    (void)state;
    enum { n = 4, D = 6 };
    const float taus[3] = {1.0f, 0.5f, 0.05f};
    for (int t = 0; t < 3; t++) {
        float h[n * D] = {0}, dh[n * D], dh2[n * D];
        for (int i = 0; i < n; i++)
            h[i * D + i] = (float)(i + 1) * (i % 2 ? -1.0f : 0.5f); /* lengths do not matter */
        struct nn_simcse_opts o = {NN_CL_RESPONSES, taus[t]};
        double loss, tau = taus[t], Z = exp(1.0 / tau) + n - 1;
        assert_int_equal(nn_loss_simcse(&o, n, D, h, h, dh, dh2, &loss, NULL), ERR_OK);
        assert_near(loss, log1p((n - 1) * exp(-1.0 / tau)), 1e-12 + 1e-9 * loss);
        for (int i = 0; i < n; i++) {
            double r = fabs(h[i * D + i]);
            for (int d = 0; d < D; d++) {
                /* u_j = sign(h_j) e_j */
                double want =
                    d == i || d >= n ? 0.0 : copysign(1.0, h[d * D + d]) / (r * n * tau * Z);
                assert_near(dh[i * D + d], want, 1e-7 * fabs(want) + 1e-12);
                assert_near(dh2[i * D + d], want, 1e-7 * fabs(want) + 1e-12);
            }
        }
    }
}

/* A zero feature has cosine 0 with everything: a finite loss, finite gradients. */
static void test_simcse_zero_feature_is_finite(void **state)
{
    (void)state;
    enum { n = 3, D = 4 };
    float h[n * D] = {0}, dh[n * D], dh2[n * D];
    h[1 * D + 1] = 2.0f;
    h[2 * D + 2] = 0.25f; /* row 0 is zero */
    struct nn_simcse_opts o = {NN_CL_RESPONSES, 0.05f};
    double loss;
    assert_int_equal(nn_loss_simcse(&o, n, D, h, h, dh, dh2, &loss, NULL), ERR_OK);
    /* l_0 = log 3 (all similarities 0), l_1 = l_2 = log(1 + 2 e^(-1/tau)) */
    assert_near(loss, (log(3.0) + 2.0 * log1p(2.0 * exp(-20.0))) / 3.0, 1e-12);
    for (int i = 0; i < n * D; i++)
        assert_true(isfinite(dh[i]) && isfinite(dh2[i]));
    /* a pair whose two responses have the same feature, in differences mode */
    float p[4 * D] = {1, 2, 3, 4, 0.5f, 0, 0, 0, 1, 2, 3, 4, -1, 1, 0, 0}, dp[4 * D], dp2[4 * D];
    o.mode = NN_CL_DIFFERENCES;
    assert_int_equal(nn_loss_simcse(&o, 4, D, p, p, dp, dp2, &loss, NULL), ERR_OK);
    assert_true(isfinite(loss));
    for (int i = 0; i < 4 * D; i++)
        assert_true(isfinite(dp[i]) && isfinite(dp2[i]));
    struct nn_swav_opts so = {NN_CL_DIFFERENCES, 2, 0.1f, 0.05f, 3};
    float C[2 * D] = {1, 0, 0, 0, 0, 1, 0, 0}, dC[2 * D];
    assert_int_equal(nn_loss_swav(&so, 4, D, p, p, C, NULL, dp, dp2, dC, &loss, NULL), ERR_OK);
    assert_true(isfinite(loss));
    for (int i = 0; i < 4 * D; i++)
        assert_true(isfinite(dp[i]) && isfinite(dp2[i]));
    for (int i = 0; i < 2 * D; i++)
        assert_true(isfinite(dC[i]));
}

/* Sums of q [rows, cols] along each row and each column. */
static void sums(const float *q, int rows, int cols, double *row, double *col)
{
    for (int i = 0; i < rows; i++)
        row[i] = 0.0;
    for (int k = 0; k < cols; k++)
        col[k] = 0.0;
    for (int i = 0; i < rows; i++)
        for (int k = 0; k < cols; k++) {
            row[i] += q[i * cols + k];
            col[k] += q[i * cols + k];
        }
}

/* 3 samples, 2 prototypes, epsilon 1 so that exp(scores) is the matrix A. SwAV's normalisation:
 * each sample's codes sum to 1; each prototype's column sums to N/K = 3/2 once converged. */
static void test_sinkhorn_known_matrices(void **state)
{
    (void)state;
    double row[3], col[2];
    /* A = [[1, 1], [1, 1], [2, 1]]: columns sum to 4 and 3. One iteration by hand: columns to
     * 1/2 each: [1/8, 1/6] twice and [1/4, 1/6]; rows to 1 (after the final x N): [3/7, 4/7]
     * twice and [3/5, 2/5]; so the prototypes' sums are 51/35 and 54/35, not yet 3/2. */
    float s[6] = {0.0f, 0.0f, 0.0f, 0.0f, logf(2.0f), 0.0f}, q[6];
    const double one[6] = {3.0 / 7, 4.0 / 7, 3.0 / 7, 4.0 / 7, 3.0 / 5, 2.0 / 5};
    assert_int_equal(nn_sinkhorn(3, 2, 1.0f, 1, s, q), ERR_OK);
    for (int i = 0; i < 6; i++)
        assert_near(q[i], one[i], 1e-6);
    sums(q, 3, 2, row, col);
    assert_near(col[0], 51.0 / 35, 1e-6);
    assert_near(col[1], 54.0 / 35, 1e-6);
    /* more iterations: rows stay at 1, columns converge to 3/2 */
    const int its[3] = {3, 10, 100};
    const double tol[3] = {2e-2, 1e-4, 1e-6};
    for (int t = 0; t < 3; t++) {
        assert_int_equal(nn_sinkhorn(3, 2, 1.0f, its[t], s, q), ERR_OK);
        sums(q, 3, 2, row, col);
        for (int i = 0; i < 3; i++)
            assert_near(row[i], 1.0, 1e-6);
        assert_near(col[0], 1.5, tol[t]);
        assert_near(col[1], 1.5, tol[t]);
    }
    /* A = [[2, 1], [1, 2], [1, 1]]: equal column sums, a fixed point after one iteration:
     * rows [2/3, 1/3], [1/3, 2/3], [1/2, 1/2]; columns 3/2. In place, scores shifted by a
     * constant (which cancels) and scaled with epsilon. */
    float a[6] = {logf(2.0f), 0.0f, 0.0f, logf(2.0f), 0.0f, 0.0f};
    const double fix[6] = {2.0 / 3, 1.0 / 3, 1.0 / 3, 2.0 / 3, 0.5, 0.5};
    for (int i = 0; i < 6; i++)
        a[i] = (a[i] + 7.0f) * 0.05f;
    assert_int_equal(nn_sinkhorn(3, 2, 0.05f, 3, a, a), ERR_OK);
    for (int i = 0; i < 6; i++)
        assert_near(a[i], fix[i], 1e-5);
    /* scores far apart: what underflows stays zero, nothing is NaN */
    float far[4] = {1000.0f, 0.0f, 0.0f, 0.0f};
    assert_int_equal(nn_sinkhorn(2, 2, 0.05f, 3, far, q), ERR_OK);
    assert_near(q[0], 1.0, 1e-6);
    for (int i = 1; i < 4; i++)
        assert_near(q[i], 0.0, 0.0);
}

static void test_contrastive_rejects_bad_arguments(void **state)
{
    (void)state;
    float h[CN * CD] = {0}, C[CK * CD] = {0}, q[CN * CK], x[CN * CD];
    double loss;
    struct nn_simcse_opts so = {NN_CL_RESPONSES, 0.05f};
    assert_int_equal(nn_loss_simcse(&so, 0, CD, h, h, NULL, NULL, &loss, NULL), ERR_INVAL);
    assert_int_equal(nn_loss_simcse(&so, CN, 0, h, h, NULL, NULL, &loss, NULL), ERR_INVAL);
    assert_int_equal(nn_loss_simcse(&so, CN, CD, NULL, h, NULL, NULL, &loss, NULL), ERR_INVAL);
    assert_int_equal(nn_loss_simcse(NULL, CN, CD, h, h, NULL, NULL, &loss, NULL), ERR_INVAL);
    assert_int_equal(nn_loss_simcse(&so, 5, CD, h, h, NULL, NULL, &loss, NULL), ERR_OK);
    so.mode = NN_CL_DIFFERENCES; /* pairs: an even count */
    assert_int_equal(nn_loss_simcse(&so, 5, CD, h, h, NULL, NULL, &loss, NULL), ERR_INVAL);
    so.mode = (enum nn_cl_mode)7;
    assert_int_equal(nn_loss_simcse(&so, CN, CD, h, h, NULL, NULL, &loss, NULL), ERR_INVAL);
    so.mode = NN_CL_RESPONSES;
    so.temperature = 0.0f;
    assert_int_equal(nn_loss_simcse(&so, CN, CD, h, h, NULL, NULL, &loss, NULL), ERR_INVAL);
    so.temperature = NAN;
    assert_int_equal(nn_loss_simcse(&so, CN, CD, h, h, NULL, NULL, &loss, NULL), ERR_INVAL);

    struct nn_swav_opts ok = {NN_CL_RESPONSES, CK, 0.1f, 0.05f, 3}, o = ok;
    assert_int_equal(nn_loss_swav(&o, CN, CD, h, h, C, NULL, NULL, NULL, NULL, &loss, NULL),
                     ERR_OK);
    assert_int_equal(nn_loss_swav(&o, CN, CD, h, h, NULL, NULL, NULL, NULL, NULL, &loss, NULL),
                     ERR_INVAL);
    o.K = 0;
    assert_int_equal(nn_loss_swav(&o, CN, CD, h, h, C, NULL, NULL, NULL, NULL, &loss, NULL),
                     ERR_INVAL);
    o = ok;
    o.epsilon = -1.0f;
    assert_int_equal(nn_loss_swav(&o, CN, CD, h, h, C, NULL, NULL, NULL, NULL, &loss, NULL),
                     ERR_INVAL);
    o = ok;
    o.iterations = 0;
    assert_int_equal(nn_loss_swav(&o, CN, CD, h, h, C, NULL, NULL, NULL, NULL, &loss, NULL),
                     ERR_INVAL);
    o = ok;
    o.temperature = 0.0f;
    assert_int_equal(nn_loss_swav(&o, CN, CD, h, h, C, NULL, NULL, NULL, NULL, &loss, NULL),
                     ERR_INVAL);
    o = ok;
    o.mode = NN_CL_DIFFERENCES;
    assert_int_equal(nn_loss_swav(&o, 5, CD, h, h, C, NULL, NULL, NULL, NULL, &loss, NULL),
                     ERR_INVAL);

    assert_int_equal(nn_sinkhorn(0, CK, 0.05f, 3, q, q), ERR_INVAL);
    assert_int_equal(nn_sinkhorn(CN, 0, 0.05f, 3, q, q), ERR_INVAL);
    assert_int_equal(nn_sinkhorn(CN, CK, 0.0f, 3, q, q), ERR_INVAL);
    assert_int_equal(nn_sinkhorn(CN, CK, 0.05f, 0, q, q), ERR_INVAL);
    assert_int_equal(nn_sinkhorn(CN, CK, 0.05f, 3, NULL, q), ERR_INVAL);
    assert_int_equal(nn_cl_instances(NN_CL_RESPONSES, 0, CD, h, h, x), ERR_INVAL);
    assert_int_equal(nn_cl_instances((enum nn_cl_mode)7, CB, CD, h, h, x), ERR_INVAL);
    assert_int_equal(nn_cl_instances_backward(NN_CL_DIFFERENCES, CB, CD, x, NULL, h), ERR_INVAL);
    assert_int_equal(nn_swav_normalize(0, CD, C), ERR_INVAL);
    assert_true(nn_cl_work_size(0, CD, 0) == 0);
    assert_true(nn_cl_work_size(CN, CD, -1) == 0);
    assert_true(nn_cl_work_size(CN, CD, CK) > nn_cl_work_size(CN, CD, 0));
    double work[512];
    assert_true(nn_cl_work_size(CN, CD, 0) <= sizeof work);
    so.temperature = 0.05f;
    assert_int_equal(nn_loss_simcse(&so, CN, CD, h, h, NULL, NULL, &loss, work), ERR_OK);
    assert_int_equal(nn_loss_simcse(&so, CN, CD, h, h, NULL, NULL, &loss, (char *)work + 4),
                     ERR_INVAL); /* not aligned for double */
    /* zero prototypes stay zero, others get unit rows */
    C[0] = 3.0f;
    C[1] = 4.0f;
    assert_int_equal(nn_swav_normalize(CK, CD, C), ERR_OK);
    assert_near(C[0], 0.6, 1e-7);
    assert_near(C[1], 0.8, 1e-7);
    assert_near(C[CD], 0.0, 0.0);
}

static double seconds(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* One timing at the paper's sizes: a batch of 16 pairs (n = 32 features), D = 256, K = 50,
 * with the scratch passed in; mean of 20 calls after one warm-up, the loss and every gradient.
 * One thread: the losses use neither OpenMP nor BLAS. Printed, not asserted. */
static void test_contrastive_timing(void **state)
{
    (void)state;
    enum { n = 32, D = 256, K = 50, REPS = 20 };
    float *h = malloc(sizeof(float) * n * D), *h2 = malloc(sizeof(float) * n * D);
    float *dh = malloc(sizeof(float) * n * D), *dh2 = malloc(sizeof(float) * n * D);
    float *C = malloc(sizeof(float) * K * D), *dC = malloc(sizeof(float) * K * D);
    float *q = malloc(sizeof(float) * n * K);
    void *work = malloc(nn_cl_work_size(n, D, K));
    assert_true(h && h2 && dh && dh2 && C && dC && q && work);
    cl_fill(h, n * D, 37, 11, 1.0f / 32);
    cl_fill(h2, n * D, 53, 29, 1.0f / 32);
    cl_fill(C, K * D, 41, 7, 1.0f / 64);
    assert_int_equal(nn_swav_normalize(K, D, C), ERR_OK);
    cl_fill(q, n * K, 59, 3, 1.0f / 64);
    double loss;
    for (int v = 0; v < 5; v++) {
        enum nn_cl_mode mode = v % 2 ? NN_CL_DIFFERENCES : NN_CL_RESPONSES;
        struct nn_simcse_opts so = {mode, 0.05f};
        struct nn_swav_opts wo = {mode, K, 0.1f, 0.05f, 3};
        double t0 = 0.0;
        for (int r = 0; r <= REPS; r++) {
            if (r == 1)
                t0 = seconds();
            int rc = v < 2   ? nn_loss_simcse(&so, n, D, h, h2, dh, dh2, &loss, work)
                     : v < 4 ? nn_loss_swav(&wo, n, D, h, h2, C, NULL, dh, dh2, dC, &loss, work)
                             : nn_sinkhorn(n, K, 0.05f, 3, q, q);
            assert_int_equal(rc, ERR_OK);
        }
        const char *name[5] = {"SimCSE, responses", "SimCSE, differences", "SwAV, responses",
                               "SwAV, differences", "Sinkhorn alone, 3 iterations"};
        printf("    %-28s n %d, D %d, K %d: %7.1f us per call\n", name[v], n, D, K,
               1e6 * (seconds() - t0) / REPS);
        fflush(stdout); /* in order with cmocka's lines on stderr */
    }
    free(h);
    free(h2);
    free(dh);
    free(dh2);
    free(C);
    free(dC);
    free(q);
    free(work);
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
        cmocka_unit_test(test_simcse_orthogonal_identical_views),
        cmocka_unit_test(test_simcse_zero_feature_is_finite),
        cmocka_unit_test(test_simcse_gradients),
        cmocka_unit_test(test_swav_gradients_with_fixed_codes),
        cmocka_unit_test(test_instances_chain_rule),
        cmocka_unit_test(test_sinkhorn_known_matrices),
        cmocka_unit_test(test_contrastive_rejects_bad_arguments),
        cmocka_unit_test(test_contrastive_timing),
    };
    return cmocka_run_group_tests_name("nn_loss", tests, NULL, NULL);
}
