/* test_trainer_pref - the DPO-family step on tokenized pairs: its loss is the formula's on the
 * model's own log-probs, micro-batching changes nothing, a policy equal to its reference starts
 * at log 2, and steps on a fixed set of pairs teach the model to prefer the chosen responses. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "pref.h"

#define NPAIRS 6

struct fx {
    nn_model_t *policy, *ref;
    int toks[NPAIRS][3][12];
    struct trainer_pair pairs[NPAIRS];
};

static nn_model_t *tiny(uint64_t seed)
{
    struct nn_config c;
    nn_config_default(&c);
    c.hidden_size = 32;
    c.intermediate_size = 64;
    c.num_hidden_layers = 2;
    c.num_attention_heads = 4;
    c.num_key_value_heads = 2;
    c.max_position_embeddings = 32;
    nn_model_t *m = NULL;
    char err[256];
    assert_int_equal(nn_model_new(&m, &c, err, sizeof err), ERR_OK);
    nn_model_init_random(m, seed, 0.05f);
    return m;
}

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof *f);
    f->policy = tiny(1);
    f->ref = tiny(1);
    uint64_t rng = 42;
    for (int i = 0; i < NPAIRS; i++) {
        int lens[3] = {3 + i % 3, 2 + i % 4, 4 + (i + 1) % 5};
        for (int part = 0; part < 3; part++)
            for (int t = 0; t < lens[part]; t++)
                f->toks[i][part][t] = (int)(nn_rng_next(&rng) % 256);
        f->pairs[i] = (struct trainer_pair){
            .prompt = f->toks[i][0],
            .prompt_len = lens[0],
            .chosen = f->toks[i][1],
            .chosen_len = lens[1],
            .rejected = f->toks[i][2],
            .rejected_len = lens[2],
            .target = 0.8f,
        };
    }
    float rc[NPAIRS], rr[NPAIRS];
    assert_int_equal(trainer_logprobs(f->ref, f->pairs, NPAIRS, 4, rc, rr), ERR_OK);
    for (int i = 0; i < NPAIRS; i++) {
        f->pairs[i].ref_chosen = rc[i];
        f->pairs[i].ref_rejected = rr[i];
    }
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    nn_model_destroy(&f->policy);
    nn_model_destroy(&f->ref);
    free(f);
    return 0;
}

static struct trainer_step_opts opts(enum nn_pref_kind kind, int micro)
{
    struct trainer_step_opts o = {
        .loss = {.kind = kind, .beta = kind == NN_PREF_IPO ? 1.0f : 0.1f, .eps = 0.1f},
        .adamw = {.beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f},
        .lr = 0.0f, /* lr 0: the step measures without moving (a known batch) */
        .clip = 0.0f,
        .micro = micro,
    };
    return o;
}

static void test_policy_equal_to_reference_starts_at_log2(void **state)
{
    struct fx *f = *state;
    nn_adamw_t *opt = nn_adamw_new(nn_model_num_params(f->policy));
    struct trainer_step_stats st;
    struct trainer_step_opts o = opts(NN_PREF_DPO, 0);
    assert_int_equal(trainer_pref_step(f->policy, opt, f->pairs, NPAIRS, &o, &st), ERR_OK);
    assert_true(fabs(st.pref.loss - log(2.0)) < 1e-6);
    assert_true(fabs(st.pref.margin) < 1e-6);
    assert_true(fabs(st.kl) < 1e-4);
    double lc = 0, lr = 0;
    for (int i = 0; i < NPAIRS; i++) {
        lc += f->pairs[i].chosen_len;
        lr += f->pairs[i].rejected_len;
    }
    assert_true(fabs(st.len_chosen - lc / NPAIRS) < 1e-9);
    assert_true(fabs(st.len_rejected - lr / NPAIRS) < 1e-9);
    nn_adamw_destroy(&opt);
}

/* Each loss on a known batch: the step reports the formula's value on the policy's log-probs,
 * and micro-batches of 1, 4 and all give the same loss and the same gradient. */
static void test_each_loss_matches_formula_and_micro_batching(void **state)
{
    struct fx *f = *state;
    /* Move the policy off the reference so h != 0. */
    nn_model_init_random(f->policy, 7, 0.05f);
    float lc[NPAIRS], lr[NPAIRS], rc[NPAIRS], rr[NPAIRS], tg[NPAIRS];
    assert_int_equal(trainer_logprobs(f->policy, f->pairs, NPAIRS, 0, lc, lr), ERR_OK);
    for (int i = 0; i < NPAIRS; i++) {
        rc[i] = f->pairs[i].ref_chosen;
        rr[i] = f->pairs[i].ref_rejected;
        tg[i] = f->pairs[i].target;
    }
    size_t np = nn_model_num_params(f->policy);
    float *g_all = malloc(np * sizeof *g_all);
    enum nn_pref_kind kinds[] = {NN_PREF_DPO,  NN_PREF_IPO,    NN_PREF_SLIC,
                                 NN_PREF_CDPO, NN_PREF_ROBUST, NN_PREF_SOFT};
    for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
        struct trainer_step_opts o = opts(kinds[k], 0);
        struct nn_pref_stats want;
        assert_int_equal(nn_loss_pref(&o.loss, NPAIRS, lc, lr, rc, rr, tg, NULL, NULL, &want),
                         ERR_OK);
        int micros[] = {0, 1, 4};
        for (int mi = 0; mi < 3; mi++) {
            o.micro = micros[mi];
            nn_adamw_t *opt = nn_adamw_new(np);
            struct trainer_step_stats st;
            assert_int_equal(trainer_pref_step(f->policy, opt, f->pairs, NPAIRS, &o, &st), ERR_OK);
            if (fabs(st.pref.loss - want.loss) > 1e-5 * (1 + fabs(want.loss)))
                fail_msg("kind %d micro %d: loss %.8f, formula %.8f", kinds[k], micros[mi],
                         st.pref.loss, want.loss);
            assert_true(fabs(st.pref.accuracy - want.accuracy) < 1e-9);
            const float *g = nn_model_grads(f->policy);
            if (mi == 0) {
                memcpy(g_all, g, np * sizeof *g);
            } else {
                double num = 0, den = 0;
                for (size_t i = 0; i < np; i++) {
                    num += ((double)g[i] - g_all[i]) * ((double)g[i] - g_all[i]);
                    den += (double)g_all[i] * g_all[i];
                }
                if (!(sqrt(num) <= 1e-4 * sqrt(den) + 1e-9))
                    fail_msg("kind %d micro %d: gradient differs (rel %.3g)", kinds[k], micros[mi],
                             sqrt(num / (den + 1e-30)));
            }
            nn_adamw_destroy(&opt);
        }
    }
    free(g_all);
}

/* RPO's NLL term: the loss grows by alpha times the chosen responses' mean per-token NLL (or
 * their summed NLL, with nll_sum), and its gradient is the loss's (a step of eps against the
 * gradient lowers the loss by eps |g|). */
static void test_nll_term_adds_to_loss_and_gradient(void **state)
{
    struct fx *f = *state;
    nn_model_init_random(f->policy, 9, 0.05f);
    float lc[NPAIRS], lr[NPAIRS];
    assert_int_equal(trainer_logprobs(f->policy, f->pairs, NPAIRS, 0, lc, lr), ERR_OK);
    size_t np = nn_model_num_params(f->policy);
    nn_adamw_t *opt = nn_adamw_new(np);
    struct trainer_step_opts o = opts(NN_PREF_DPO, 3);
    struct trainer_step_stats plain, with;
    assert_int_equal(trainer_pref_step(f->policy, opt, f->pairs, NPAIRS, &o, &plain), ERR_OK);
    o.nll = 0.5f;
    assert_int_equal(trainer_pref_step(f->policy, opt, f->pairs, NPAIRS, &o, &with), ERR_OK);
    double nll = 0;
    for (int i = 0; i < NPAIRS; i++)
        nll += -(double)lc[i] / f->pairs[i].chosen_len / NPAIRS;
    assert_true(nll > 0);
    double want = plain.pref.loss + 0.5 * nll;
    if (fabs(with.pref.loss - want) > 1e-5 * (1 + want))
        fail_msg("loss with the NLL term %.8f, want %.8f", with.pref.loss, want);

    /* nll_sum: the chosen responses' NLL summed over their tokens, not averaged */
    struct trainer_step_stats summed;
    o.nll_sum = true;
    assert_int_equal(trainer_pref_step(f->policy, opt, f->pairs, NPAIRS, &o, &summed), ERR_OK);
    double nll_sum = 0;
    for (int i = 0; i < NPAIRS; i++)
        nll_sum += -(double)lc[i] / NPAIRS;
    want = plain.pref.loss + 0.5 * nll_sum;
    if (fabs(summed.pref.loss - want) > 1e-5 * (1 + want))
        fail_msg("loss with the summed NLL term %.8f, want %.8f", summed.pref.loss, want);
    assert_true(nll_sum > nll); /* the chosen responses are longer than one token */
    o.nll_sum = false;
    assert_int_equal(trainer_pref_step(f->policy, opt, f->pairs, NPAIRS, &o, &with), ERR_OK);

    /* directional check of the gradient of the whole loss */
    float *g = malloc(np * sizeof *g), *p = nn_model_params(f->policy);
    memcpy(g, nn_model_grads(f->policy), np * sizeof *g);
    double gn = 0;
    for (size_t i = 0; i < np; i++)
        gn += (double)g[i] * g[i];
    gn = sqrt(gn);
    const double eps = 1e-3;
    for (size_t i = 0; i < np; i++)
        p[i] -= (float)(eps * g[i] / gn);
    struct trainer_step_stats moved;
    assert_int_equal(trainer_pref_step(f->policy, opt, f->pairs, NPAIRS, &o, &moved), ERR_OK);
    double drop = with.pref.loss - moved.pref.loss;
    if (fabs(drop - eps * gn) > 0.05 * eps * gn)
        fail_msg("loss fell by %.6g, the gradient says %.6g", drop, eps * gn);
    free(g);
    nn_adamw_destroy(&opt);
}

static void test_steps_teach_the_preference(void **state)
{
    struct fx *f = *state;
    nn_adamw_t *opt = nn_adamw_new(nn_model_num_params(f->policy));
    struct trainer_step_opts o = opts(NN_PREF_DPO, 4);
    o.lr = 3e-3f;
    o.clip = 1.0f;
    struct trainer_step_stats first, st;
    assert_int_equal(trainer_pref_step(f->policy, opt, f->pairs, NPAIRS, &o, &first), ERR_OK);
    for (int i = 0; i < 40; i++)
        assert_int_equal(trainer_pref_step(f->policy, opt, f->pairs, NPAIRS, &o, &st), ERR_OK);
    assert_true(st.pref.loss < first.pref.loss - 0.2);
    assert_true(st.pref.accuracy > 0.99);
    assert_true(st.pref.margin > 0.5);
    nn_adamw_destroy(&opt);
}

static void test_bad_pairs_are_refused(void **state)
{
    struct fx *f = *state;
    float a[1], b[1];
    struct trainer_pair p = f->pairs[0];
    p.chosen_len = 0;
    assert_int_equal(trainer_logprobs(f->policy, &p, 1, 0, a, b), ERR_INVAL);
    static int longer[40];
    p = f->pairs[0];
    p.rejected = longer;
    p.rejected_len = 40; /* past the 32 positions of the model */
    assert_int_equal(trainer_logprobs(f->policy, &p, 1, 0, a, b), ERR_INVAL);
    assert_int_equal(trainer_logprobs(f->policy, &p, 0, 0, a, b), ERR_INVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_policy_equal_to_reference_starts_at_log2, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_each_loss_matches_formula_and_micro_batching, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_nll_term_adds_to_loss_and_gradient, setup, teardown),
        cmocka_unit_test_setup_teardown(test_steps_teach_the_preference, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_pairs_are_refused, setup, teardown),
    };
    return cmocka_run_group_tests_name("trainer_pref", tests, NULL, NULL);
}
