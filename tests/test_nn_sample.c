/* test_nn_sample.c - generation: greedy follows the full forward's argmax and is deterministic,
 * a seed reproduces a sample and rows do not depend on each other, EOS and stop strings stop,
 * the budget and the position limit hold; token selection frequencies under top-k / top-p; the
 * log-probs sampling returns equal a teacher-forced forward's. */
#include <setjmp.h> /* cmocka 1.1 needs these four first; keep <cmocka.h> */
#include <stdarg.h> /* in its own block, or clang-format sorts it above them */
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "err.h"
#include "model.h"
#include "sample.h"

enum { V = 26, MAXN = 12 };

static nn_model_t *model(void)
{
    struct nn_config c;
    nn_config_default(&c);
    c.vocab_size = V;
    c.hidden_size = 16;
    c.intermediate_size = 24;
    c.num_hidden_layers = 2;
    c.num_attention_heads = 2;
    c.num_key_value_heads = 1;
    c.max_position_embeddings = 24;
    c.bos_token_id = c.eos_token_id = c.pad_token_id = -1;
    snprintf(c.tokenizer, sizeof c.tokenizer, "bpe");
    nn_model_t *m = NULL;
    assert_int_equal(nn_model_new(&m, &c, NULL, 0), ERR_OK);
    nn_model_init_random(m, 17, 0.5f);
    return m;
}

static const int P0[] = {3, 7, 1, 12}, P1[] = {5}, P2[] = {20, 2, 2, 9, 14, 0, 4};
static const int *const PROMPTS[3] = {P0, P1, P2};
static const int PLEN[3] = {4, 1, 7};

static struct nn_sample_opts opts(float temp, uint64_t seed)
{
    struct nn_sample_opts o = {
        .temperature = temp, .seed = seed, .max_new_tokens = MAXN, .eos_token_id = -1};
    return o;
}

/* Letters: token i is the letter 'a' + i. */
static const char *letter(void *ctx, int id, size_t *len)
{
    (void)ctx;
    static const char abc[] = "abcdefghijklmnopqrstuvwxyz";
    *len = 1;
    return id >= 0 && id < 26 ? abc + id : NULL;
}

static void test_greedy_is_argmax_of_full_forward(void **state)
{
    (void)state;
    nn_model_t *m = model();
    struct nn_sample_opts o = opts(0.0f, 1);
    int tok[3 * MAXN], n[3], fin[3], tok2[3 * MAXN], n2[3];
    assert_int_equal(nn_sample(m, 3, PROMPTS, PLEN, &o, tok, n, fin), ERR_OK);
    assert_int_equal(nn_sample(m, 3, PROMPTS, PLEN, &o, tok2, n2, NULL), ERR_OK);
    assert_memory_equal(tok, tok2, sizeof tok);
    assert_memory_equal(n, n2, sizeof n);
    /* check row 2 token by token with the full (uncached) forward */
    int seq[24], len = PLEN[2];
    memcpy(seq, P2, sizeof P2);
    assert_int_equal(n[2], MAXN);
    assert_int_equal(fin[2], NN_FINISH_LENGTH);
    assert_int_equal(nn_model_reserve(m, 1, 24, false), ERR_OK);
    for (int i = 0; i < n[2]; i++) {
        struct nn_batch b = {.B = 1, .T = len, .tokens = seq, .lengths = &len};
        assert_int_equal(nn_model_forward(m, &b, NULL), ERR_OK);
        const float *lg = nn_model_logits(m) + (size_t)(len - 1) * V;
        int best = 0;
        for (int v = 1; v < V; v++)
            best = lg[v] > lg[best] ? v : best;
        assert_int_equal(tok[2 * MAXN + i], best);
        seq[len++] = best;
    }
    nn_model_destroy(&m);
}

static void test_seed_reproduces_and_rows_are_independent(void **state)
{
    (void)state;
    nn_model_t *m = model();
    struct nn_sample_opts o = opts(1.5f, 42);
    o.top_p = 0.95f;
    int a[3 * MAXN], b[3 * MAXN], c[3 * MAXN], one[MAXN], n[3], nb[3], nc[3], n1;
    assert_int_equal(nn_sample(m, 3, PROMPTS, PLEN, &o, a, n, NULL), ERR_OK);
    assert_int_equal(nn_sample(m, 3, PROMPTS, PLEN, &o, b, nb, NULL), ERR_OK);
    assert_memory_equal(a, b, sizeof a);
    /* row 0 alone gives what it gave in the batch */
    assert_int_equal(nn_sample(m, 1, PROMPTS, PLEN, &o, one, &n1, NULL), ERR_OK);
    assert_int_equal(n1, n[0]);
    assert_memory_equal(one, a, (size_t)n1 * sizeof(int));
    o.seed = 43;
    assert_int_equal(nn_sample(m, 3, PROMPTS, PLEN, &o, c, nc, NULL), ERR_OK);
    assert_memory_not_equal(a, c, sizeof a);
    /* the same prompt twice in one batch: two different samples */
    const int *const twice[2] = {P2, P2};
    const int tl[2] = {7, 7};
    assert_int_equal(nn_sample(m, 2, twice, tl, &o, a, n, NULL), ERR_OK);
    assert_memory_not_equal(a, a + MAXN, MAXN * sizeof(int));
    nn_model_destroy(&m);
}

static void test_eos_stops_a_row(void **state)
{
    (void)state;
    nn_model_t *m = model();
    struct nn_sample_opts o = opts(0.0f, 1);
    int tok[3 * MAXN], n[3], fin[3];
    assert_int_equal(nn_sample(m, 3, PROMPTS, PLEN, &o, tok, n, fin), ERR_OK);
    int eos = tok[2 * MAXN + 5], first = 0; /* the 6th token of row 2 becomes EOS */
    while (tok[2 * MAXN + first] != eos)
        first++;
    o.eos_token_id = eos;
    int tok2[3 * MAXN], n2[3], fin2[3];
    assert_int_equal(nn_sample(m, 3, PROMPTS, PLEN, &o, tok2, n2, fin2), ERR_OK);
    assert_int_equal(fin2[2], NN_FINISH_EOS);
    assert_int_equal(n2[2], first + 1);
    assert_int_equal(tok2[2 * MAXN + first], eos);
    assert_memory_equal(tok2 + 2 * MAXN, tok + 2 * MAXN, (size_t)n2[2] * sizeof(int));
    for (int b = 0; b < 2; b++) /* the other rows go on until EOS or the budget */
        assert_true(fin2[b] == NN_FINISH_EOS || n2[b] == MAXN);
    nn_model_destroy(&m);
}

static void test_stop_string_stops_a_row(void **state)
{
    (void)state;
    nn_model_t *m = model();
    struct nn_sample_opts o = opts(0.0f, 1);
    int tok[MAXN], n, fin;
    assert_int_equal(nn_sample(m, 1, PROMPTS, PLEN, &o, tok, &n, &fin), ERR_OK);
    char text[MAXN + 1], stop[3];
    for (int i = 0; i < n; i++)
        text[i] = (char)('a' + tok[i]);
    text[n] = '\0';
    memcpy(stop, text + 6, 2); /* the letters of tokens 6 and 7 */
    stop[2] = '\0';
    int expect = (int)(strstr(text, stop) - text) + 2;
    const char *stops[2] = {"not-a-letter-string", stop};
    o.stop = stops;
    o.nstop = 2;
    o.token_bytes = letter;
    int tok2[MAXN], n2, fin2;
    assert_int_equal(nn_sample(m, 1, PROMPTS, PLEN, &o, tok2, &n2, &fin2), ERR_OK);
    assert_int_equal(fin2, NN_FINISH_STOP);
    assert_int_equal(n2, expect);
    o.token_bytes = NULL;
    assert_int_equal(nn_sample(m, 1, PROMPTS, PLEN, &o, tok2, &n2, &fin2), ERR_INVAL);
    nn_model_destroy(&m);
}

static void test_position_limit_and_bad_arguments(void **state)
{
    (void)state;
    nn_model_t *m = model();
    struct nn_sample_opts o = opts(0.0f, 1);
    o.max_new_tokens = 30;
    int tok[30], n, fin, bad[2] = {3, 26};
    const int *const pp[1] = {P2};
    const int pl[1] = {7};
    assert_int_equal(nn_sample(m, 1, pp, pl, &o, tok, &n, &fin), ERR_OK);
    assert_int_equal(n, 24 - 7 + 1); /* 24 positions: the last generated token is not fed */
    assert_int_equal(fin, NN_FINISH_LENGTH);
    const int *const pb[1] = {bad};
    const int bl[1] = {2};
    assert_int_equal(nn_sample(m, 1, pb, bl, &o, tok, &n, &fin), ERR_INVAL);
    int longp[24] = {0};
    const int *const plong[1] = {longp};
    const int ll[1] = {24};
    assert_int_equal(nn_sample(m, 1, plong, ll, &o, tok, &n, &fin), ERR_TOOBIG);
    o.max_new_tokens = 0;
    assert_int_equal(nn_sample(m, 1, pp, pl, &o, tok, &n, &fin), ERR_INVAL);
    nn_model_destroy(&m);
}

/* p = (0.5, 0.3, 0.15, 0.05): top-p 0.7 keeps {0, 1} renormalized; top-k 3 never draws 3. */
static void test_token_frequencies_under_top_k_and_top_p(void **state)
{
    (void)state;
    float lg[4] = {logf(0.5f), logf(0.3f), logf(0.15f), logf(0.05f)}, probs[4];
    int idx[4], cnt[4] = {0};
    uint64_t rng = 7;
    enum { DRAWS = 20000 };
    for (int i = 0; i < DRAWS; i++)
        cnt[nn_sample_logits(lg, 4, 1.0f, 0, 0.7f, &rng, probs, idx)]++;
    assert_int_equal(cnt[2] + cnt[3], 0);
    assert_float_equal((double)cnt[0] / DRAWS, 0.625, 0.02);
    memset(cnt, 0, sizeof cnt);
    for (int i = 0; i < DRAWS; i++)
        cnt[nn_sample_logits(lg, 4, 1.0f, 3, 1.0f, &rng, probs, idx)]++;
    assert_int_equal(cnt[3], 0);
    assert_float_equal((double)cnt[2] / DRAWS, 0.15 / 0.95, 0.02);
    memset(cnt, 0, sizeof cnt);
    for (int i = 0; i < DRAWS; i++) /* top-k 3 then top-p 0.8 of that: {0, 1} */
        cnt[nn_sample_logits(lg, 4, 1.0f, 3, 0.8f, &rng, probs, idx)]++;
    assert_int_equal(cnt[2] + cnt[3], 0);
    memset(cnt, 0, sizeof cnt);
    for (int i = 0; i < DRAWS; i++) /* no filter: every token, in proportion */
        cnt[nn_sample_logits(lg, 4, 1.0f, 0, 1.0f, &rng, probs, idx)]++;
    assert_float_equal((double)cnt[3] / DRAWS, 0.05, 0.01);
    /* temperature 0 and top-k 1: argmax */
    assert_int_equal(nn_sample_logits(lg, 4, 0.0f, 0, 1.0f, &rng, probs, idx), 0);
    assert_int_equal(nn_sample_logits(lg, 4, 2.0f, 1, 1.0f, &rng, probs, idx), 0);
}

/* Sum over row b's new tokens of log softmax at temperature 1, from a teacher-forced forward's
 * logits over prompt + response (in double; a row that reached the context end has its last
 * token predicted by the last position, so the forward takes the first Tmax tokens). */
static double forced_logprob(nn_model_t *m, const int *prompt, int plen, const int *gen, int ng)
{
    int Tmax = nn_model_config(m)->max_position_embeddings, T = plen + ng < Tmax ? plen + ng : Tmax;
    int tok[64];
    memcpy(tok, prompt, (size_t)plen * sizeof(int));
    memcpy(tok + plen, gen, (size_t)(T - plen) * sizeof(int));
    assert_int_equal(nn_model_reserve(m, 1, T, false), ERR_OK);
    struct nn_batch b = {.B = 1, .T = T, .tokens = tok, .lengths = &T};
    assert_int_equal(nn_model_forward(m, &b, NULL), ERR_OK);
    const float *lg = nn_model_logits(m);
    double sum = 0.0;
    for (int k = 0; k < ng; k++) {
        const float *x = lg + (size_t)(plen + k - 1) * V;
        double z = 0.0;
        for (int v = 0; v < V; v++)
            z += exp((double)x[v]);
        sum += (double)x[gen[k]] - log(z);
    }
    return sum;
}

/* The log-probs sampling returns are the temperature-1 log-probs of the chosen tokens, equal to
 * a teacher-forced forward's within fp32 rounding: greedy, temperature 1, and temperatures and
 * filters other than 1 (which choose differently but must still report the policy's own
 * probability, as DPO needs), including a row cut by the context end. */
static void test_logprobs_equal_teacher_forced(void **state)
{
    (void)state;
    nn_model_t *m = model();
    static const int P3[18] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18};
    const int *const prompts[4] = {P0, P1, P2, P3};
    const int plen[4] = {4, 1, 7, 18};
    const struct {
        float temp, top_p;
        int top_k;
    } cases[] = {{0.0f, 1.0f, 0}, {1.0f, 1.0f, 0}, {0.7f, 0.8f, 0}, {1.6f, 1.0f, 5}};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        struct nn_sample_opts o = opts(cases[c].temp, 11 + c);
        o.top_p = cases[c].top_p;
        o.top_k = cases[c].top_k;
        int tok[4 * MAXN], n[4], tok2[4 * MAXN], n2[4];
        double lp[4];
        assert_int_equal(nn_sample_logp(m, 4, prompts, plen, &o, tok, n, NULL, lp), ERR_OK);
        /* the same tokens as without log-probs */
        assert_int_equal(nn_sample(m, 4, prompts, plen, &o, tok2, n2, NULL), ERR_OK);
        assert_memory_equal(n, n2, sizeof n);
        assert_int_equal(n[3], 7); /* 18 + 7 > 24 positions: cut by the context end */
        for (int b = 0; b < 4; b++) {
            assert_memory_equal(tok + b * MAXN, tok2 + b * MAXN, (size_t)n[b] * sizeof(int));
            double ref = forced_logprob(m, prompts[b], plen[b], tok + b * MAXN, n[b]);
            assert_true(ref < 0.0);
            assert_float_equal(lp[b], ref, 1e-5 * n[b] * (1.0 + fabs(ref) / n[b]));
        }
    }
    nn_model_destroy(&m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_greedy_is_argmax_of_full_forward),
        cmocka_unit_test(test_seed_reproduces_and_rows_are_independent),
        cmocka_unit_test(test_eos_stops_a_row),
        cmocka_unit_test(test_stop_string_stops_a_row),
        cmocka_unit_test(test_position_limit_and_bad_arguments),
        cmocka_unit_test(test_token_frequencies_under_top_k_and_top_p),
        cmocka_unit_test(test_logprobs_equal_teacher_forced),
    };
    return cmocka_run_group_tests_name("nn_sample", tests, NULL, NULL);
}
