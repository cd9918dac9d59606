/* test_rm_meta - MetaRM's step (services/trainer/rm_meta.h) without processes:
 *  - J(S) on hand-computed values, its gradient against central differences, ties (|d| = 0, or
 *    one rounding apart, has gradient 0), bad arguments;
 *  - the step against the PyTorch reference (tests/rm_meta_reference.py, the committed fixture
 *    tests/fixtures/nn/rm_meta.safetensors) on the tiny ref_model: J, dJ/dr and dJ/dtheta;
 *    g = the Bradley-Terry gradient at theta + eta dJ/dtheta for every parameter, the weights
 *    restored bit for bit after it, g not the plain gradient (which eta 0 gives); one AdamW step
 *    with g gives the reference's parameters.
 * Tolerances as test_nn_reference (fp64 reference from the same fp32 weights): J 1e-5 relative,
 * gradients 2e-5 + 1e-3 x the largest entry of the same tensor. */
#include <setjmp.h> /* cmocka 1.1 needs these four first; keep <cmocka.h> */
#include <stdarg.h> /* in its own block, or clang-format sorts it above them */
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoint.h"
#include "err.h"
#include "model.h"
#include "rm.h"
#include "rm_meta.h"
#include "safetensors.h"
#include "stfixture.h"

#define DIR OAIF_FIXTURES "/nn"

/* ---- J ------------------------------------------------------------------------------------ */

static double sig(double x)
{
    return 1.0 / (1.0 + exp(-x));
}

static void test_j_values(void **state)
{
    (void)state;
    /* one prompt, two responses: J = (2/4) s(1), dJ/dr = (2/4) s'(1) (-1, +1) */
    float r[2] = {0.0f, 1.0f}, dr[2];
    double J;
    assert_int_equal(trainer_rm_meta_j(1, 2, r, &J, dr), ERR_OK);
    double s = sig(1.0);
    assert_true(fabs(J - 0.5 * s) < 1e-12);
    assert_true(fabs(dr[0] + 0.5 * s * (1 - s)) < 1e-7);
    assert_true(fabs(dr[1] - 0.5 * s * (1 - s)) < 1e-7);
    /* two prompts of three: the mean of (2/9) sum over each prompt's three pairs */
    float r2[6] = {0.0f, 2.0f, -1.0f, 0.5f, 0.5f, 3.0f};
    assert_int_equal(trainer_rm_meta_j(2, 3, r2, &J, NULL), ERR_OK);
    double want = 0.5 * (2.0 / 9.0) * (sig(2) + sig(1) + sig(3) + sig(0) + sig(2.5) + sig(2.5));
    assert_true(fabs(J - want) < 1e-12);
}

static void test_j_ties(void **state)
{
    (void)state;
    /* all equal: J = (2/k^2) C(k,2) s(0) and no gradient (|d| at 0 has gradient 0) */
    float r[4] = {0.3f, 0.3f, 0.3f, 0.3f}, dr[4];
    double J;
    assert_int_equal(trainer_rm_meta_j(1, 4, r, &J, dr), ERR_OK);
    assert_true(fabs(J - 2.0 / 16.0 * 6.0 * 0.5) < 1e-12);
    for (int i = 0; i < 4; i++)
        assert_true(dr[i] == 0.0f);
    /* one rounding apart is still a tie (the same response in two rows of a batch); a real
     * difference is not */
    float near[2] = {0.3f, nextafterf(0.3f, 1.0f)}, apart[2] = {0.3f, 0.3001f};
    assert_int_equal(trainer_rm_meta_j(1, 2, near, &J, dr), ERR_OK);
    assert_true(dr[0] == 0.0f && dr[1] == 0.0f);
    assert_int_equal(trainer_rm_meta_j(1, 2, apart, &J, dr), ERR_OK);
    assert_true(dr[0] < 0.0f && dr[1] > 0.0f);
}

static void test_j_finite_differences(void **state)
{
    (void)state;
    enum { P = 3, K = 5 };
    float r[P * K], dr[P * K];
    uint64_t s = 7;
    for (int i = 0; i < P * K; i++)
        r[i] = 2.0f * nn_rng_normal(&s);
    double J;
    assert_int_equal(trainer_rm_meta_j(P, K, r, &J, dr), ERR_OK);
    double worst = 0.0;
    for (int i = 0; i < P * K; i++) {
        float x = r[i], hi = x + 1e-3f, lo = x - 1e-3f;
        double jh, jl;
        r[i] = hi;
        assert_int_equal(trainer_rm_meta_j(P, K, r, &jh, NULL), ERR_OK);
        r[i] = lo;
        assert_int_equal(trainer_rm_meta_j(P, K, r, &jl, NULL), ERR_OK);
        r[i] = x;
        double fd = (jh - jl) / ((double)hi - (double)lo);
        double e = fabs(fd - (double)dr[i]);
        worst = e > worst ? e : worst;
        if (e > 1e-6 + 1e-4 * fabs(fd))
            fail_msg("dJ/dr[%d]: %.9g, central difference %.9g", i, (double)dr[i], fd);
    }
    assert_true(worst < 1e-5);
}

static void test_j_bad(void **state)
{
    (void)state;
    float r[4] = {0, 1, 2, NAN};
    double J;
    assert_int_equal(trainer_rm_meta_j(0, 2, r, &J, NULL), ERR_INVAL);
    assert_int_equal(trainer_rm_meta_j(1, 1, r, &J, NULL), ERR_INVAL);
    assert_int_equal(trainer_rm_meta_j(1, TRAINER_RM_META_K_MAX + 1, r, &J, NULL), ERR_INVAL);
    assert_int_equal(trainer_rm_meta_j(1, 4, r, &J, NULL), ERR_INVAL);
    assert_int_equal(trainer_rm_meta_j(1, 3, r, &J, NULL), ERR_OK);
}

/* The set's digest covers every field: a response, a prompt, k and the version each change it. */
static void test_set_digest(void **state)
{
    (void)state;
    char p0[] = "q0", p1[] = "q1", r[4][8] = {"a", "b", "c", "d"};
    char *prompts[2] = {p0, p1}, *resp[4] = {r[0], r[1], r[2], r[3]};
    struct trainer_rm_meta_set s = {
        .policy_version = 3, .k = 2, .nprompts = 2, .prompts = prompts, .responses = resp};
    trainer_rm_meta_set_digest(&s);
    char first[65];
    memcpy(first, s.digest, sizeof first);
    assert_int_equal(strlen(first), 64);
    trainer_rm_meta_set_digest(&s);
    assert_string_equal(s.digest, first);
    r[3][0] = 'e';
    trainer_rm_meta_set_digest(&s);
    assert_string_not_equal(s.digest, first);
    r[3][0] = 'd';
    /* the same texts split differently between prompts and responses */
    char *swapped[2] = {p1, p0};
    s.prompts = swapped;
    trainer_rm_meta_set_digest(&s);
    assert_string_not_equal(s.digest, first);
    s.prompts = prompts;
    s.policy_version = 4;
    trainer_rm_meta_set_digest(&s);
    assert_string_not_equal(s.digest, first);
}

static void test_validate(void **state)
{
    (void)state;
    struct trainer_rm_meta_opts o = {.on = true,
                                     .lr = 1.0f,
                                     .k = 5,
                                     .prompts = 8,
                                     .batch = 2,
                                     .temperature = 1.0f,
                                     .max_new_tokens = 16,
                                     .policy_version = -1,
                                     .timeout_ms = 1000};
    char err[256];
    assert_int_equal(trainer_rm_meta_validate(&o, err, sizeof err), ERR_OK);
    struct {
        const char *flag;
        struct trainer_rm_meta_opts o;
    } bad[] = {{"--meta-lr", o},
               {"--meta-k", o},
               {"--meta-batch", o},
               {"--meta-temperature", o},
               {"--meta-policy-version", o}};
    bad[0].o.lr = -1.0f;
    bad[1].o.k = 1;
    bad[2].o.batch = 0;
    bad[3].o.temperature = 0.0f;
    bad[4].o.policy_version = -2;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(trainer_rm_meta_validate(&bad[i].o, err, sizeof err), ERR_INVAL);
        if (!strstr(err, bad[i].flag))
            fail_msg("'%s' does not name %s", err, bad[i].flag);
    }
    o.on = false; /* off: nothing else is looked at */
    o.k = 0;
    assert_int_equal(trainer_rm_meta_validate(&o, err, sizeof err), ERR_OK);
}

/* ---- the step against PyTorch --------------------------------------------------------------- */

struct ref {
    st_file_t *fx;
    nn_model_t *m;
    trainer_rm_loss_t *loss;
    int mtok[10 * 8], mlen[10], dtok[4 * 8], dlen[4], plen[4];
    float eta, alpha;
    float *scratch;
    struct trainer_rm_meta_batch mb;
    struct trainer_rm_batch b;
};

static void ints_of(st_file_t *f, const char *name, int *out, size_t n)
{
    float *v = stfx_get(f, name, n);
    for (size_t i = 0; i < n; i++)
        out[i] = (int)v[i];
    free(v);
}

static int teardown(void **state)
{
    struct ref *r = *state;
    st_close(&r->fx);
    trainer_rm_loss_destroy(&r->loss);
    nn_model_destroy(&r->m);
    free(r->scratch);
    free(r);
    return 0;
}

static int setup(void **state)
{
    struct ref *r = calloc(1, sizeof *r);
    char err[512];
    if (!r)
        return -1;
    *state = r;
    if (nn_checkpoint_load(&r->m, DIR "/ref_model", err, sizeof err) ||
        st_open(&r->fx, DIR "/rm_meta.safetensors", err, sizeof err)) {
        fprintf(stderr, "%s\n", err);
        teardown(state);
        return -1;
    }
    ints_of(r->fx, "meta.tokens", r->mtok, 80);
    ints_of(r->fx, "meta.lengths", r->mlen, 10);
    ints_of(r->fx, "pairs.tokens", r->dtok, 32);
    ints_of(r->fx, "pairs.lengths", r->dlen, 4);
    float *e = stfx_get(r->fx, "eta", 1), *a = stfx_get(r->fx, "alpha", 1);
    r->eta = *e;
    r->alpha = *a;
    free(e);
    free(a);
    for (int i = 0; i < 4; i++)
        r->plen[i] = 1;
    r->mb = (struct trainer_rm_meta_batch){
        .P = 2, .k = 5, .T = 8, .tokens = r->mtok, .lengths = r->mlen};
    r->b = (struct trainer_rm_batch){
        .B = 2, .T = 8, .tokens = r->dtok, .lengths = r->dlen, .prompt_lens = r->plen};
    struct trainer_rm_loss_opts lo = {0}; /* the plain Bradley-Terry loss, one view */
    r->scratch = malloc((nn_model_num_params(r->m) + 10) * sizeof(float));
    if (!r->scratch || nn_model_reserve(r->m, 10, 8, true) ||
        trainer_rm_loss_new(&r->loss, r->m, &lo, 2, 1, err, sizeof err)) {
        teardown(state);
        return -1;
    }
    return 0;
}

/* Whether every tensor's values (grads, or params) match the fixture's prefix + name; fails
 * with the first that does not, unless `expect_differ`, where it returns whether any differs. */
static bool tensors_match(struct ref *r, const char *prefix, bool grads, bool expect_differ)
{
    bool all = true;
    for (size_t i = 0; i < nn_model_num_tensors(r->m); i++) {
        const struct nn_tensor *t = nn_model_tensor(r->m, i);
        char name[256];
        snprintf(name, sizeof name, "%s%s", prefix, t->name);
        float *want = stfx_get(r->fx, name, t->numel);
        const float *got = grads ? t->grad : t->data;
        double mx = 0.0;
        for (size_t j = 0; j < t->numel; j++)
            mx = fabs(want[j]) > mx ? fabs(want[j]) : mx;
        for (size_t j = 0; j < t->numel; j++) {
            double tol = 2e-5 + 1e-3 * mx;
            if (fabs((double)got[j] - (double)want[j]) > tol) {
                if (!expect_differ)
                    fail_msg("%s[%zu]: engine %.8g, PyTorch %.8g", name, j, (double)got[j],
                             (double)want[j]);
                all = false;
                break;
            }
        }
        free(want);
    }
    return all;
}

static void test_j_at_theta(void **state)
{
    struct ref *r = *state;
    struct nn_batch nb = {.B = 10, .T = 8, .tokens = r->mtok, .lengths = r->mlen};
    struct nn_fwd_opts fo = {.logits = false};
    assert_int_equal(nn_model_forward(r->m, &nb, &fo), ERR_OK);
    float dr[10];
    double J;
    assert_int_equal(trainer_rm_meta_j(2, 5, nn_model_rewards(r->m), &J, dr), ERR_OK);
    float *wj = stfx_get(r->fx, "meta.J", 1), *wdr = stfx_get(r->fx, "meta.dr", 10);
    assert_true(fabs(J - wj[0]) <= 1e-5 * fabs(wj[0]));
    for (int i = 0; i < 10; i++)
        if (fabs(dr[i] - wdr[i]) > 1e-6 + 1e-4 * fabs(wdr[i]))
            fail_msg("dJ/dr[%d]: %.8g, PyTorch %.8g", i, (double)dr[i], (double)wdr[i]);
    free(wj);
    free(wdr);
    struct nn_bwd_in in = {.dreward = dr};
    assert_int_equal(nn_model_zero_grad(r->m), ERR_OK);
    assert_int_equal(nn_model_backward(r->m, &in), ERR_OK);
    tensors_match(r, "meta.dJ.", true, false);
}

static void test_grad_at_adapted(void **state)
{
    struct ref *r = *state;
    size_t np = nn_model_num_params(r->m);
    float *before = malloc(np * sizeof(float));
    assert_non_null(before);
    memcpy(before, nn_model_params(r->m), np * sizeof(float));
    char err[256];
    double J;
    struct trainer_rm_parts pt;
    assert_int_equal(trainer_rm_meta_grad(r->m, r->loss, &r->mb, r->eta, &r->b, 1, r->scratch, &J,
                                          &pt, err, sizeof err),
                     ERR_OK);
    float *wl = stfx_get(r->fx, "meta.loss", 1);
    assert_true(fabs(pt.total - wl[0]) <= 1e-5 * fabs(wl[0]));
    free(wl);
    tensors_match(r, "meta.g.", true, false);
    /* the adaptation matters here: the plain gradient is not g */
    assert_false(tensors_match(r, "meta.g0.", true, true));
    assert_memory_equal(before, nn_model_params(r->m), np * sizeof(float));
    /* eta 0 is the plain step */
    assert_int_equal(trainer_rm_meta_grad(r->m, r->loss, &r->mb, 0.0f, &r->b, 1, r->scratch, &J,
                                          &pt, err, sizeof err),
                     ERR_OK);
    tensors_match(r, "meta.g0.", true, false);
    free(before);
}

static void test_step_adamw(void **state)
{
    struct ref *r = *state;
    size_t np = nn_model_num_params(r->m);
    float *before = malloc(np * sizeof(float));
    nn_adamw_t *opt = nn_adamw_new(np);
    assert_non_null(before);
    assert_non_null(opt);
    assert_int_equal(nn_adamw_set_decay(opt, 0, np, false), ERR_OK);
    memcpy(before, nn_model_params(r->m), np * sizeof(float));
    char err[256];
    const struct nn_adamw_opts ao = {.beta1 = 0.9f, .beta2 = 0.95f, .eps = 1e-6f};
    assert_int_equal(trainer_rm_meta_step(r->m, r->loss, opt, NULL, &r->mb, r->eta, &r->b, 1,
                                          r->alpha, 0.0f, &ao, r->scratch, NULL, NULL, err,
                                          sizeof err),
                     ERR_OK);
    /* AdamW's first step moves each weight by about alpha g / |g|: where g is within fp32 noise
     * of 0 its sign is not the reference's, so there the move is only bounded by alpha */
    size_t checked = 0;
    for (size_t i = 0; i < nn_model_num_tensors(r->m); i++) {
        const struct nn_tensor *t = nn_model_tensor(r->m, i);
        char name[256];
        snprintf(name, sizeof name, "meta.g.%s", t->name);
        float *wg = stfx_get(r->fx, name, t->numel);
        snprintf(name, sizeof name, "meta.after.%s", t->name);
        float *wa = stfx_get(r->fx, name, t->numel);
        double mx = 0.0;
        for (size_t j = 0; j < t->numel; j++)
            mx = fabs(wg[j]) > mx ? fabs(wg[j]) : mx;
        for (size_t j = 0; j < t->numel; j++) {
            double got = t->data[j], moved = fabs(got - before[t->offset + j]);
            if (fabs(wg[j]) > 4 * (2e-5 + 1e-3 * mx)) {
                checked++;
                if (fabs(got - wa[j]) > 1e-6 + 1e-3 * r->alpha)
                    fail_msg("%s[%zu]: engine %.9g, PyTorch %.9g", name, j, got, (double)wa[j]);
            } else if (moved > r->alpha * 1.001) {
                fail_msg("%s[%zu] moved by %.3g, more than lr %g", name, j, moved,
                         (double)r->alpha);
            }
        }
        free(wg);
        free(wa);
    }
    assert_true(checked > np / 2);
    /* restore for the other tests */
    memcpy(nn_model_params(r->m), before, np * sizeof(float));
    nn_adamw_destroy(&opt);
    free(before);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_j_values),
        cmocka_unit_test(test_j_ties),
        cmocka_unit_test(test_j_finite_differences),
        cmocka_unit_test(test_j_bad),
        cmocka_unit_test(test_set_digest),
        cmocka_unit_test(test_validate),
        cmocka_unit_test_setup_teardown(test_j_at_theta, setup, teardown),
        cmocka_unit_test_setup_teardown(test_grad_at_adapted, setup, teardown),
        cmocka_unit_test_setup_teardown(test_step_adamw, setup, teardown),
    };
    return cmocka_run_group_tests_name("rm_meta", tests, NULL, NULL);
}
