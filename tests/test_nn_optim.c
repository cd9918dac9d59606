/* test_nn_optim.c - AdamW against a fp64 transcription of torch.optim.AdamW, weight-decay
 * masks, clipping, accumulation scaling and the schedules. */
#include <setjmp.h> /* cmocka 1.1 needs these four first; keep <cmocka.h> */
#include <stdarg.h> /* in its own block, or clang-format sorts it above them */
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <math.h>
#include <string.h>

#include "err.h"
#include "optim.h"

#define assert_near(a, b, tol)                                                                     \
    do {                                                                                           \
        double a_ = (a), b_ = (b);                                                                 \
        if (!(fabs(a_ - b_) <= (tol)))                                                             \
            fail_msg("%s = %.12g, expected %.12g (tolerance %g)", #a, a_, b_, (double)(tol));      \
    } while (0)

static void test_adamw_matches_reference(void **state)
{
    (void)state;
    enum { N = 6, STEPS = 5 };
    float p[N] = {0.5f, -1.0f, 2.0f, 0.0f, 3.0f, -0.25f};
    double rp[N], rm[N] = {0}, rv[N] = {0};
    for (int i = 0; i < N; i++)
        rp[i] = p[i];
    struct nn_adamw_opts o = {.beta1 = 0.9f, .beta2 = 0.95f, .eps = 1e-6f, .weight_decay = 0.1f};
    nn_adamw_t *opt = nn_adamw_new(N);
    assert_non_null(opt);
    assert_int_equal(nn_adamw_set_decay(opt, 4, 2, false), ERR_OK); /* last two: no decay */
    for (int t = 1; t <= STEPS; t++) {
        float g[N];
        for (int i = 0; i < N; i++)
            g[i] = (float)(sin(3.0 * i + t) * (i + 1));
        float lr = 0.01f * (float)t;
        assert_int_equal(nn_adamw_step(opt, p, g, N, lr, &o), ERR_OK);
        for (int i = 0; i < N; i++) {
            if (i < 4)
                rp[i] -= (double)lr * o.weight_decay * rp[i];
            rm[i] = o.beta1 * rm[i] + (1 - (double)o.beta1) * g[i];
            rv[i] = o.beta2 * rv[i] + (1 - (double)o.beta2) * (double)g[i] * g[i];
            double mh = rm[i] / (1 - pow(o.beta1, t)), vh = rv[i] / (1 - pow(o.beta2, t));
            rp[i] -= lr * mh / (sqrt(vh) + o.eps);
        }
    }
    for (int i = 0; i < N; i++)
        assert_near(p[i], rp[i], 1e-5);
    assert_int_equal(nn_adamw_steps(opt), STEPS);
    assert_int_equal(nn_adamw_size(opt), N);
    assert_near(nn_adamw_m(opt)[2], rm[2], 1e-6);
    assert_near(nn_adamw_v(opt)[2], rv[2], 1e-6);
    assert_int_equal(nn_adamw_step(opt, p, p, N - 1, 0.1f, &o), ERR_INVAL);
    assert_int_equal(nn_adamw_set_decay(opt, 5, 2, false), ERR_INVAL);
    o.beta1 = 1.0f;
    assert_int_equal(nn_adamw_step(opt, p, p, N, 0.1f, &o), ERR_INVAL);
    nn_adamw_destroy(&opt);
    assert_null(opt);
    nn_adamw_destroy(&opt);
}

/* Weight decay alone (zero gradient) shrinks decayed parameters by (1 - lr wd) per step. */
static void test_adamw_decoupled_decay(void **state)
{
    (void)state;
    float p[2] = {2.0f, 2.0f}, g[2] = {0.0f, 0.0f};
    struct nn_adamw_opts o = {.beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f, .weight_decay = 0.5f};
    nn_adamw_t *opt = nn_adamw_new(2);
    nn_adamw_set_decay(opt, 1, 1, false);
    for (int t = 0; t < 3; t++)
        assert_int_equal(nn_adamw_step(opt, p, g, 2, 0.1f, &o), ERR_OK);
    assert_near(p[0], 2.0 * pow(0.95, 3), 1e-6);
    assert_near(p[1], 2.0, 0.0);
    nn_adamw_destroy(&opt);
}

static void test_clip_and_scale(void **state)
{
    (void)state;
    float g[4] = {3.0f, 0.0f, -4.0f, 0.0f};
    assert_near(nn_grad_norm(g, 4), 5.0, 1e-12);
    assert_near(nn_grad_clip(g, 4, 10.0f), 5.0, 1e-12); /* under the limit: unchanged */
    assert_near(g[0], 3.0, 0.0);
    assert_near(nn_grad_clip(g, 4, 1.0f), 5.0, 1e-12);
    assert_near(g[0], 0.6, 1e-7);
    assert_near(g[2], -0.8, 1e-7);
    assert_near(nn_grad_norm(g, 4), 1.0, 1e-6);
    nn_grad_scale(g, 4, 0.5f);
    assert_near(g[2], -0.4, 1e-7);
    assert_near(nn_grad_clip(g, 4, 0.0f), 0.5, 1e-6); /* 0: no clipping */
}

/* nn_adamw_step_clip gives the parameters and moments of nn_grad_clip then nn_adamw_step bit
 * for bit, clipping or not, over three steps, and leaves the gradients as they were. */
static void test_step_clip_is_clip_then_step(void **state)
{
    (void)state;
    enum { N = 70000 }; /* more than one 64K chunk */
    static float g[N], g2[N], pa[N], pb[N];
    for (int i = 0; i < N; i++) {
        g[i] = 0.01f * (float)((i * 7919) % 201 - 100);
        pa[i] = pb[i] = 0.001f * (float)(i % 97);
    }
    nn_adamw_t *a = nn_adamw_new(N), *b = nn_adamw_new(N);
    assert_int_equal(nn_adamw_set_decay(a, 5, 100, false), ERR_OK);
    assert_int_equal(nn_adamw_set_decay(b, 5, 100, false), ERR_OK);
    struct nn_adamw_opts ao = {.beta1 = 0.9f, .beta2 = 0.95f, .eps = 1e-8f, .weight_decay = 0.1f};
    const float clips[3] = {1.0f, 1e6f, 0.0f}; /* clipped, under the limit, off */
    for (int step = 0; step < 3; step++) {
        memcpy(g2, g, sizeof g);
        double na = nn_grad_clip(g2, N, clips[step]), nb = -1.0;
        assert_int_equal(nn_adamw_step(a, pa, g2, N, 1e-3f, &ao), ERR_OK);
        assert_int_equal(nn_adamw_step_clip(b, pb, g, N, 1e-3f, clips[step], &ao, &nb), ERR_OK);
        assert_true(na == nb && na > 1.0);
        assert_memory_equal(pa, pb, sizeof pa);
        assert_memory_equal(nn_adamw_m(a), nn_adamw_m(b), 2 * N * sizeof(float));
    }
    assert_true(g[1] == 0.01f * (float)((7919 % 201) - 100)); /* not scaled */
    assert_int_equal(nn_adamw_step_clip(b, pb, g, N - 1, 1e-3f, 1.0f, &ao, NULL), ERR_INVAL);
    nn_adamw_destroy(&a);
    nn_adamw_destroy(&b);
}

static void test_schedules(void **state)
{
    (void)state;
    struct nn_sched s = {.kind = NN_SCHED_CONSTANT, .lr = 1.0f, .warmup = 4, .total_steps = 14};
    assert_near(nn_sched_lr(&s, 0), 0.25, 1e-7);
    assert_near(nn_sched_lr(&s, 3), 1.0, 1e-7);
    assert_near(nn_sched_lr(&s, 100), 1.0, 1e-7);
    s.kind = NN_SCHED_COSINE;
    s.min_lr = 0.1f;
    assert_near(nn_sched_lr(&s, 4), 1.0, 1e-7);
    assert_near(nn_sched_lr(&s, 9), 0.55, 1e-6); /* half way: (1 + 0.1) / 2 */
    assert_near(nn_sched_lr(&s, 14), 0.1, 1e-7);
    assert_near(nn_sched_lr(&s, 1000), 0.1, 1e-7);
    assert_true(nn_sched_lr(&s, 6) > nn_sched_lr(&s, 7));
    s.kind = NN_SCHED_INVSQRT;
    assert_near(nn_sched_lr(&s, 3), 1.0, 1e-7);
    assert_near(nn_sched_lr(&s, 15), 0.5, 1e-7); /* sqrt(4 / 16) */
    s.warmup = 0;
    s.kind = NN_SCHED_CONSTANT;
    assert_near(nn_sched_lr(&s, 0), 1.0, 0.0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_adamw_matches_reference),
        cmocka_unit_test(test_adamw_decoupled_decay),
        cmocka_unit_test(test_clip_and_scale),
        cmocka_unit_test(test_step_clip_is_clip_then_step),
        cmocka_unit_test(test_schedules),
    };
    return cmocka_run_group_tests_name("nn_optim", tests, NULL, NULL);
}
