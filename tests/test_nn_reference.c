/* test_nn_reference.c - the engine against the PyTorch reference (tests/nn_reference.py), through
 * committed fixtures in tests/fixtures/nn:
 *  - ref_model/ (written by PyTorch) loads, and on a right-padded batch gives the reference's
 *    logits, response log-prob sums, rewards, SFT/DPO/reward-model losses and every parameter
 *    gradient of each loss;
 *  - c_model/ (written by this engine) gives, here, the logits PyTorch computed after loading it;
 *  - the contrastive losses (SimCSE, SwAV, Sinkhorn-Knopp) on fixed features and prototypes give
 *    the reference's loss and input gradients, in both instance modes and with a zero feature;
 *    SimCSE on ref_model's last hidden states gives every parameter gradient.
 * Tolerances (the reference computes in fp64 from the same fp32 weights): logits and log-probs
 * 1e-4 absolute + 1e-4 relative; losses 1e-5 relative; gradients 2e-5 + 1e-3 x the largest
 * gradient entry of the same tensor. The contrastive losses on features see the same fp32
 * inputs and compute in fp64 too, so they are held tighter: losses, codes and gradients
 * CL_RTOL (1e-5) relative to each entry plus CL_RTOL x 1e-2 of the tensor's largest entry.
 * OAIF_NN_WRITE_FIXTURES=1 rewrites c_model/ (then rerun nn_reference.py). */
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
#include "config.h"
#include "err.h"
#include "loss.h"
#include "model.h"
#include "safetensors.h"
#include "stfixture.h"

#define DIR OAIF_FIXTURES "/nn"

struct ref {
    st_file_t *fx;
    nn_model_t *m;
    int B, T, V;
    int tok[64], len[8], plen[8];
};

static int teardown(void **state)
{
    struct ref *r = *state;
    st_close(&r->fx);
    nn_model_destroy(&r->m);
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
        st_open(&r->fx, DIR "/ref_fixtures.safetensors", err, sizeof err)) {
        fprintf(stderr, "%s\n", err);
        teardown(state);
        return -1;
    }
    const struct st_tensor *t = st_find(r->fx, "batch.tokens");
    r->B = (int)t->shape[0];
    r->T = (int)t->shape[1];
    r->V = nn_model_config(r->m)->vocab_size;
    float *tok = stfx_get(r->fx, "batch.tokens", (size_t)r->B * r->T);
    float *len = stfx_get(r->fx, "batch.lengths", (size_t)r->B);
    float *pl = stfx_get(r->fx, "batch.prompts", (size_t)r->B);
    for (int i = 0; i < r->B * r->T; i++)
        r->tok[i] = (int)tok[i];
    for (int b = 0; b < r->B; b++) {
        r->len[b] = (int)len[b];
        r->plen[b] = (int)pl[b];
    }
    free(tok);
    free(len);
    free(pl);
    if (nn_model_reserve(r->m, r->B, r->T, true)) {
        teardown(state);
        return -1;
    }
    return 0;
}

static void forward(struct ref *r, float *lp)
{
    struct nn_batch b = {.B = r->B, .T = r->T, .tokens = r->tok, .lengths = r->len};
    assert_int_equal(nn_model_forward(r->m, &b, NULL), ERR_OK);
    assert_int_equal(nn_model_seq_logprobs(r->m, r->plen, lp, NULL), ERR_OK);
}

static void close_to(const char *what, double got, double want, double atol, double rtol)
{
    if (!(fabs(got - want) <= atol + rtol * fabs(want)))
        fail_msg("%s: engine %.8g, PyTorch %.8g", what, got, want);
}

/* Every parameter gradient against "<prefix>.grad.<name>". */
static void compare_grads(struct ref *r, const char *prefix)
{
    char name[160];
    for (size_t i = 0; i < nn_model_num_tensors(r->m); i++) {
        const struct nn_tensor *t = nn_model_tensor(r->m, i);
        snprintf(name, sizeof name, "%s.grad.%s", prefix, t->name);
        float *want = stfx_get(r->fx, name, t->numel);
        double gmax = 0.0;
        for (size_t j = 0; j < t->numel; j++)
            gmax = fmax(gmax, fabs(want[j]));
        for (size_t j = 0; j < t->numel; j++) {
            char what[200];
            snprintf(what, sizeof what, "%s[%zu]", name, j);
            close_to(what, t->grad[j], want[j], 2e-5 + 1e-3 * gmax, 0.0);
        }
        free(want);
    }
}

static void test_logits_logprobs_rewards_match_torch(void **state)
{
    struct ref *r = *state;
    float lp[8];
    forward(r, lp);
    const float *lg = nn_model_logits(r->m);
    float *want = stfx_get(r->fx, "logits", (size_t)r->B * r->T * r->V);
    for (int b = 0; b < r->B; b++)
        for (int t = 0; t < r->len[b]; t++)
            for (int v = 0; v < r->V; v++) {
                size_t i = ((size_t)b * r->T + t) * r->V + v;
                close_to("logit", lg[i], want[i], 1e-4, 1e-4);
            }
    free(want);
    want = stfx_get(r->fx, "seq_logp", (size_t)r->B);
    for (int b = 0; b < r->B; b++)
        close_to("seq_logp", lp[b], want[b], 1e-4, 1e-4);
    free(want);
    want = stfx_get(r->fx, "rewards", (size_t)r->B);
    for (int b = 0; b < r->B; b++)
        close_to("reward", nn_model_rewards(r->m)[b], want[b], 1e-4, 1e-4);
    free(want);
}

static void test_sft_loss_and_grads_match_torch(void **state)
{
    struct ref *r = *state;
    float lp[8], dlp[8];
    int ntok[8];
    double loss;
    forward(r, lp);
    for (int b = 0; b < r->B; b++)
        ntok[b] = r->len[b] - r->plen[b];
    assert_int_equal(nn_loss_sft(r->B, lp, ntok, 0, dlp, &loss), ERR_OK);
    float *want = stfx_get(r->fx, "ce.loss", 1);
    close_to("ce.loss", loss, want[0], 0.0, 1e-5);
    free(want);
    nn_model_zero_grad(r->m);
    struct nn_bwd_in in = {.dlogp = dlp};
    assert_int_equal(nn_model_backward(r->m, &in), ERR_OK);
    compare_grads(r, "ce");
}

static void test_dpo_loss_and_grads_match_torch(void **state)
{
    struct ref *r = *state;
    float lp[8], c[4], rj[4], rc[4], rr[4], dc[4], dr[4], dlp[8];
    forward(r, lp);
    float *ref = stfx_get(r->fx, "dpo.ref_logp", (size_t)r->B);
    int N = r->B / 2;
    for (int i = 0; i < N; i++) {
        c[i] = lp[2 * i];
        rj[i] = lp[2 * i + 1];
        rc[i] = ref[2 * i];
        rr[i] = ref[2 * i + 1];
    }
    free(ref);
    struct nn_pref_opts o = {.kind = NN_PREF_DPO, .beta = 0.1f};
    struct nn_pref_stats st;
    assert_int_equal(nn_loss_pref(&o, N, c, rj, rc, rr, NULL, dc, dr, &st), ERR_OK);
    float *want = stfx_get(r->fx, "dpo.loss", 1);
    close_to("dpo.loss", st.loss, want[0], 0.0, 1e-5);
    free(want);
    for (int i = 0; i < N; i++) {
        dlp[2 * i] = dc[i];
        dlp[2 * i + 1] = dr[i];
    }
    nn_model_zero_grad(r->m);
    struct nn_bwd_in in = {.dlogp = dlp};
    assert_int_equal(nn_model_backward(r->m, &in), ERR_OK);
    compare_grads(r, "dpo");
}

static void test_reward_model_loss_and_grads_match_torch(void **state)
{
    struct ref *r = *state;
    float lp[8], c[4], rj[4], dc[4], dr[4], drw[8];
    struct nn_batch b = {.B = r->B, .T = r->T, .tokens = r->tok, .lengths = r->len};
    struct nn_fwd_opts fo = {.logits = false};
    assert_int_equal(nn_model_forward(r->m, &b, &fo), ERR_OK);
    assert_int_equal(nn_model_seq_logprobs(r->m, r->plen, lp, NULL), ERR_INVAL); /* no logits */
    const float *rw = nn_model_rewards(r->m);
    int N = r->B / 2;
    for (int i = 0; i < N; i++) {
        c[i] = rw[2 * i];
        rj[i] = rw[2 * i + 1];
    }
    float *margin = stfx_get(r->fx, "rm.margin", (size_t)N);
    struct nn_rm_opts o = {.label_smoothing = 0.1f, .center = 0.01f};
    struct nn_rm_stats st;
    assert_int_equal(nn_loss_rm(&o, N, c, rj, margin, NULL, dc, dr, &st), ERR_OK);
    free(margin);
    float *want = stfx_get(r->fx, "rm.loss", 1);
    close_to("rm.loss", st.loss, want[0], 0.0, 1e-5);
    free(want);
    for (int i = 0; i < N; i++) {
        drw[2 * i] = dc[i];
        drw[2 * i + 1] = dr[i];
    }
    nn_model_zero_grad(r->m);
    struct nn_bwd_in in = {.dreward = drw};
    assert_int_equal(nn_model_backward(r->m, &in), ERR_OK);
    compare_grads(r, "rm");
}

/* SimCSE on differences of the last hidden states of pairs (0, 1), (2, 3), the two views being
 * the same forward: the features' gradient is dh + dh2, fed back through dlast_hidden. */
static void test_simcse_through_the_model_matches_torch(void **state)
{
    struct ref *r = *state;
    const int C = nn_model_config(r->m)->hidden_size, N = r->B / 2;
    struct nn_batch b = {.B = r->B, .T = r->T, .tokens = r->tok, .lengths = r->len};
    struct nn_fwd_opts fo = {.logits = false};
    assert_int_equal(nn_model_forward(r->m, &b, &fo), ERR_OK);
    const float *last = nn_model_last_hidden(r->m);
    float h[8 * 64], dh[8 * 64], dh2[8 * 64], dlast[8 * 64];
    assert_true(r->B * C <= 8 * 64);
    for (int i = 0; i < N; i++) { /* [h(y+); h(y-)] */
        memcpy(h + (size_t)i * C, last + (size_t)(2 * i) * C, C * sizeof(float));
        memcpy(h + (size_t)(N + i) * C, last + (size_t)(2 * i + 1) * C, C * sizeof(float));
    }
    struct nn_simcse_opts o = {.mode = NN_CL_DIFFERENCES, .temperature = 0.5f};
    double loss;
    assert_int_equal(nn_loss_simcse(&o, r->B, C, h, h, dh, dh2, &loss, NULL), ERR_OK);
    float *want = stfx_get(r->fx, "simcse.loss", 1);
    close_to("simcse.loss", loss, want[0], 0.0, 1e-5);
    free(want);
    for (int i = 0; i < N; i++)
        for (int c = 0; c < C; c++) {
            dlast[(size_t)(2 * i) * C + c] = dh[(size_t)i * C + c] + dh2[(size_t)i * C + c];
            dlast[(size_t)(2 * i + 1) * C + c] =
                dh[(size_t)(N + i) * C + c] + dh2[(size_t)(N + i) * C + c];
        }
    nn_model_zero_grad(r->m);
    struct nn_bwd_in in = {.dlast_hidden = dlast};
    assert_int_equal(nn_model_backward(r->m, &in), ERR_OK);
    compare_grads(r, "simcse");
}

#define CL_RTOL 1e-5

/* got [n] against the fixture `name`, each entry within CL_RTOL of itself plus CL_RTOL x 1e-2
 * of the largest. */
static void cl_compare(struct ref *r, const char *name, const float *got, size_t n)
{
    float *want = stfx_get(r->fx, name, n);
    double wmax = 0.0, worst = 0.0;
    for (size_t i = 0; i < n; i++)
        wmax = fmax(wmax, fabs(want[i]));
    for (size_t i = 0; i < n; i++) {
        char what[200];
        snprintf(what, sizeof what, "%s[%zu]", name, i);
        close_to(what, got[i], want[i], CL_RTOL * 1e-2 * wmax, CL_RTOL);
        worst = fmax(worst, fabs(got[i] - want[i]) / (fabs(want[i]) + 1e-2 * wmax));
    }
    printf("    %-30s worst error %.1e of tolerance\n", name, worst / CL_RTOL);
    fflush(stdout); /* in order with cmocka's lines on stderr */
    free(want);
}

static void cl_compare_loss(struct ref *r, const char *name, double got)
{
    float f = (float)got;
    cl_compare(r, name, &f, 1);
}

/* the fixture's sizes: 3 pairs (6 features) of 8, 4 prototypes; Sinkhorn on 5 x 3 */
enum { CL_N = 6, CL_D = 8, CL_K = 4, CL_ND = CL_N * CL_D, CL_KD = CL_K * CL_D, SK_NK = 5 * 3 };

static void test_simcse_matches_torch(void **state)
{
    struct ref *r = *state;
    float *h = stfx_get(r->fx, "cl.h", CL_ND), *h2 = stfx_get(r->fx, "cl.h2", CL_ND);
    float *tie = stfx_get(r->fx, "cl.tie", CL_ND), dh[CL_ND], dh2[CL_ND];
    const char *cases[][2] = {
        {"simcse", "responses"}, {"simcse", "differences"}, {"simcse_tie", "differences"}};
    for (int c = 0; c < 3; c++) {
        char name[80];
        struct nn_simcse_opts o = {.temperature = 0.05f};
        o.mode = strcmp(cases[c][1], "responses") ? NN_CL_DIFFERENCES : NN_CL_RESPONSES;
        double loss;
        const float *first = strcmp(cases[c][0], "simcse") ? tie : h;
        assert_int_equal(nn_loss_simcse(&o, CL_N, CL_D, first, h2, dh, dh2, &loss, NULL), ERR_OK);
        snprintf(name, sizeof name, "cl.%s.%s.loss", cases[c][0], cases[c][1]);
        cl_compare_loss(r, name, loss);
        snprintf(name, sizeof name, "cl.%s.%s.dh", cases[c][0], cases[c][1]);
        cl_compare(r, name, dh, CL_ND);
        snprintf(name, sizeof name, "cl.%s.%s.dh2", cases[c][0], cases[c][1]);
        cl_compare(r, name, dh2, CL_ND);
    }
    free(h);
    free(h2);
    free(tie);
}

static void test_swav_matches_torch(void **state)
{
    struct ref *r = *state;
    float *h = stfx_get(r->fx, "cl.h", CL_ND), *h2 = stfx_get(r->fx, "cl.h2", CL_ND);
    float *C = stfx_get(r->fx, "cl.C", CL_KD);
    float dh[CL_ND], dh2[CL_ND], dC[CL_KD];
    static double work[1024];
    assert_true(nn_cl_work_size(CL_N, CL_D, CL_K) <= sizeof work);
    const char *modes[2] = {"responses", "differences"};
    for (int m = 0; m < 2; m++) {
        struct nn_swav_opts o = {.mode = m ? NN_CL_DIFFERENCES : NN_CL_RESPONSES,
                                 .K = CL_K,
                                 .temperature = 0.1f,
                                 .epsilon = 0.05f,
                                 .iterations = 3};
        double loss;
        char name[80];
        assert_int_equal(nn_loss_swav(&o, CL_N, CL_D, h, h2, C, NULL, dh, dh2, dC, &loss, work),
                         ERR_OK);
        snprintf(name, sizeof name, "cl.swav.%s.loss", modes[m]);
        cl_compare_loss(r, name, loss);
        snprintf(name, sizeof name, "cl.swav.%s.dh", modes[m]);
        cl_compare(r, name, dh, CL_ND);
        snprintf(name, sizeof name, "cl.swav.%s.dh2", modes[m]);
        cl_compare(r, name, dh2, CL_ND);
        snprintf(name, sizeof name, "cl.swav.%s.dC", modes[m]);
        cl_compare(r, name, dC, CL_KD);
    }
    free(h);
    free(h2);
    free(C);
}

static void test_sinkhorn_matches_torch(void **state)
{
    struct ref *r = *state;
    float *s = stfx_get(r->fx, "sinkhorn.scores", SK_NK), q[SK_NK];
    assert_int_equal(nn_sinkhorn(5, 3, 0.05f, 3, s, q), ERR_OK);
    cl_compare(r, "sinkhorn.q", q, SK_NK);
    free(s);
}

/* The shape of c_model/: small enough to commit. */
static void c_model_config(struct nn_config *c)
{
    nn_config_default(c);
    c->vocab_size = 40;
    c->hidden_size = 16;
    c->intermediate_size = 32;
    c->num_hidden_layers = 1;
    c->num_attention_heads = 2;
    c->num_key_value_heads = 1;
    c->max_position_embeddings = 16;
    c->tie_word_embeddings = true;
    c->bos_token_id = 1;
    c->eos_token_id = 2;
    c->pad_token_id = 0;
    snprintf(c->tokenizer, sizeof c->tokenizer, "bpe"); /* no byte vocabulary at V 40 */
}

static void test_c_written_checkpoint_loads_in_torch(void **state)
{
    (void)state;
    struct nn_config cfg;
    char err[512];
    c_model_config(&cfg);
    nn_model_t *fresh = NULL, *m = NULL;
    assert_int_equal(nn_model_new(&fresh, &cfg, err, sizeof err), ERR_OK);
    nn_model_init_random(fresh, 4242, 0.3f);
    if (nn_checkpoint_load(&m, DIR "/c_model", err, sizeof err))
        fail_msg("%s", err);
    /* the committed file is what this engine writes for this seed */
    assert_int_equal(nn_model_num_params(m), nn_model_num_params(fresh));
    assert_memory_equal(nn_model_params(m), nn_model_params(fresh),
                        nn_model_num_params(m) * sizeof(float));
    st_file_t *f = NULL;
    if (st_open(&f, DIR "/c_model_logits.safetensors", err, sizeof err))
        fail_msg("%s", err);
    const struct st_tensor *tt = st_find(f, "tokens");
    assert_non_null(tt);
    int B = (int)tt->shape[0], T = (int)tt->shape[1], V = cfg.vocab_size;
    float *tokf = stfx_get(f, "tokens", (size_t)B * T);
    float *want = stfx_get(f, "logits", (size_t)B * T * V);
    int *tok = malloc((size_t)B * T * sizeof(int)), *len = malloc((size_t)B * sizeof(int));
    for (int i = 0; i < B * T; i++)
        tok[i] = (int)tokf[i];
    for (int b = 0; b < B; b++)
        len[b] = T;
    assert_int_equal(nn_model_reserve(m, B, T, false), ERR_OK);
    struct nn_batch b = {.B = B, .T = T, .tokens = tok, .lengths = len};
    assert_int_equal(nn_model_forward(m, &b, NULL), ERR_OK);
    const float *lg = nn_model_logits(m);
    for (size_t i = 0; i < (size_t)B * T * V; i++)
        close_to("c_model logit", lg[i], want[i], 1e-4, 1e-4);
    free(tokf);
    free(want);
    free(tok);
    free(len);
    st_close(&f);
    nn_model_destroy(&m);
    nn_model_destroy(&fresh);
}

/* OAIF_NN_WRITE_FIXTURES=1: write c_model/ before testing. */
static int write_c_model(void)
{
    struct nn_config cfg;
    char err[512];
    nn_model_t *m = NULL;
    c_model_config(&cfg);
    int rc = nn_model_new(&m, &cfg, err, sizeof err);
    if (!rc) {
        nn_model_init_random(m, 4242, 0.3f);
        rc = nn_checkpoint_save(m, DIR "/c_model", err, sizeof err);
    }
    nn_model_destroy(&m);
    if (rc)
        fprintf(stderr, "%s\n", err);
    else
        printf("wrote %s/c_model: now run tests/nn_reference.py\n", DIR);
    return rc;
}

int main(void)
{
    const char *w = getenv("OAIF_NN_WRITE_FIXTURES");
    if (w && !strcmp(w, "1") && write_c_model())
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_logits_logprobs_rewards_match_torch),
        cmocka_unit_test(test_sft_loss_and_grads_match_torch),
        cmocka_unit_test(test_dpo_loss_and_grads_match_torch),
        cmocka_unit_test(test_reward_model_loss_and_grads_match_torch),
        cmocka_unit_test(test_simcse_through_the_model_matches_torch),
        cmocka_unit_test(test_simcse_matches_torch),
        cmocka_unit_test(test_swav_matches_torch),
        cmocka_unit_test(test_sinkhorn_matches_torch),
        cmocka_unit_test(test_c_written_checkpoint_loads_in_torch),
    };
    return cmocka_run_group_tests_name("nn_reference", tests, setup, teardown);
}
