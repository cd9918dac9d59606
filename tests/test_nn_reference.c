/* test_nn_reference.c - the engine against the PyTorch reference (tests/nn_reference.py), through
 * committed fixtures in tests/fixtures/nn:
 *  - ref_model/ (written by PyTorch) loads, and on a right-padded batch gives the reference's
 *    logits, response log-prob sums, rewards, SFT/DPO/reward-model losses and every parameter
 *    gradient of each loss;
 *  - c_model/ (written by this engine) gives, here, the logits PyTorch computed after loading it.
 * Tolerances (the reference computes in fp64 from the same fp32 weights): logits and log-probs
 * 1e-4 absolute + 1e-4 relative; losses 1e-5 relative; gradients 2e-5 + 1e-3 x the largest
 * gradient entry of the same tensor.
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

#define DIR OAIF_FIXTURES "/nn"

struct ref {
    st_file_t *fx;
    nn_model_t *m;
    int B, T, V;
    int tok[64], len[8], plen[8];
};

/* A fixture tensor as a malloc'd fp32 array of exactly n values. */
static float *fx_get(st_file_t *f, const char *name, size_t n)
{
    const struct st_tensor *t = st_find(f, name);
    if (!t) {
        fail_msg("fixture %s missing", name);
        return NULL;
    }
    size_t numel = 1;
    for (int i = 0; i < t->ndim; i++)
        numel *= (size_t)t->shape[i];
    assert_int_equal(numel, n);
    float *p = malloc(n * sizeof(float));
    assert_non_null(p);
    char err[256];
    if (st_read_f32(f, name, p, t->ndim, t->shape, err, sizeof err))
        fail_msg("%s", err);
    return p;
}

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
    float *tok = fx_get(r->fx, "batch.tokens", (size_t)r->B * r->T);
    float *len = fx_get(r->fx, "batch.lengths", (size_t)r->B);
    float *pl = fx_get(r->fx, "batch.prompts", (size_t)r->B);
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
        float *want = fx_get(r->fx, name, t->numel);
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
    float *want = fx_get(r->fx, "logits", (size_t)r->B * r->T * r->V);
    for (int b = 0; b < r->B; b++)
        for (int t = 0; t < r->len[b]; t++)
            for (int v = 0; v < r->V; v++) {
                size_t i = ((size_t)b * r->T + t) * r->V + v;
                close_to("logit", lg[i], want[i], 1e-4, 1e-4);
            }
    free(want);
    want = fx_get(r->fx, "seq_logp", (size_t)r->B);
    for (int b = 0; b < r->B; b++)
        close_to("seq_logp", lp[b], want[b], 1e-4, 1e-4);
    free(want);
    want = fx_get(r->fx, "rewards", (size_t)r->B);
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
    float *want = fx_get(r->fx, "ce.loss", 1);
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
    float *ref = fx_get(r->fx, "dpo.ref_logp", (size_t)r->B);
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
    float *want = fx_get(r->fx, "dpo.loss", 1);
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
    float *margin = fx_get(r->fx, "rm.margin", (size_t)N);
    struct nn_rm_opts o = {.label_smoothing = 0.1f, .center = 0.01f};
    struct nn_rm_stats st;
    assert_int_equal(nn_loss_rm(&o, N, c, rj, margin, NULL, dc, dr, &st), ERR_OK);
    free(margin);
    float *want = fx_get(r->fx, "rm.loss", 1);
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
    float *tokf = fx_get(f, "tokens", (size_t)B * T);
    float *want = fx_get(f, "logits", (size_t)B * T * V);
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
        cmocka_unit_test(test_c_written_checkpoint_loads_in_torch),
    };
    return cmocka_run_group_tests_name("nn_reference", tests, setup, teardown);
}
