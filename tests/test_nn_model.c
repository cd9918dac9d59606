/* test_nn_model.c - the decoder: tensor layout, finite-difference gradients of every parameter
 * tensor (so every layer's backward), padding invariance, gradient accumulation, dropout, and
 * KV-cache decoding against the full forward. */
#include <setjmp.h> /* cmocka 1.1 needs these four first; keep <cmocka.h> */
#include <stdarg.h> /* in its own block, or clang-format sorts it above them */
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "model.h"

/* A tiny shape: V 11, C 8, 4 heads of 2 sharing 2 kv heads, F 12, 2 layers. */
static void tiny_config(struct nn_config *c)
{
    memset(c, 0, sizeof *c);
    c->vocab_size = 11;
    c->hidden_size = 8;
    c->intermediate_size = 12;
    c->num_hidden_layers = 2;
    c->num_attention_heads = 4;
    c->num_key_value_heads = 2;
    c->max_position_embeddings = 16;
    c->rms_norm_eps = 1e-5f;
    c->rope_theta = 10000.0f;
    c->tie_word_embeddings = false;
    c->bos_token_id = -1;
    c->eos_token_id = 10;
    c->pad_token_id = -1;
    c->reward_head = true;
    snprintf(c->tokenizer, sizeof c->tokenizer, "byte");
}

/* The attention path make_model asks for: -1 the model's default, 0 OpenBLAS, 1 fused. */
static int fused_attention = -1;

static nn_model_t *make_model(const struct nn_config *c, uint64_t seed, float std, int B, int T)
{
    nn_model_t *m = NULL;
    char err[200];
    assert_int_equal(nn_model_new(&m, c, err, sizeof err), ERR_OK);
    if (fused_attention >= 0)
        assert_int_equal(nn_model_set_fused_attention(m, fused_attention), fused_attention);
    nn_model_init_random(m, seed, std);
    /* norm weights away from 1 so their gradients are exercised non-trivially */
    uint64_t s = seed + 7;
    for (size_t i = 0; i < nn_model_num_tensors(m); i++) {
        const struct nn_tensor *t = nn_model_tensor(m, i);
        if (t->ndim == 1)
            for (size_t j = 0; j < t->numel; j++)
                t->data[j] = 1.0f + 0.3f * nn_rng_normal(&s);
    }
    assert_int_equal(nn_model_reserve(m, B, T, true), ERR_OK);
    return m;
}

static void random_tokens(int *tok, size_t n, int V, uint64_t seed)
{
    for (size_t i = 0; i < n; i++)
        tok[i] = (int)(nn_rng_next(&seed) % (uint64_t)V);
}

/* The scalar the gradient checks differentiate:
 * J = sum_b wl[b] logp[b] + wr[b] reward[b] + sum_bc wh[b,c] last_hidden[b,c]. */
struct probe {
    const struct nn_batch *batch;
    const int *plen;
    const struct nn_fwd_opts *opts;
    float wl[8], wr[8], wh[256]; /* wh: B * C <= 256 */
};

static double probe_eval(nn_model_t *m, const struct probe *p)
{
    int B = p->batch->B, C = nn_model_config(m)->hidden_size;
    float lp[8];
    assert_int_equal(nn_model_forward(m, p->batch, p->opts), ERR_OK);
    assert_int_equal(nn_model_seq_logprobs(m, p->plen, lp, NULL), ERR_OK);
    const float *r = nn_model_rewards(m), *h = nn_model_last_hidden(m);
    double J = 0.0;
    for (int b = 0; b < B; b++) {
        J += (double)p->wl[b] * lp[b] + (double)p->wr[b] * r[b];
        for (int c = 0; c < C; c++)
            J += (double)p->wh[b * C + c] * h[b * C + c];
    }
    return J;
}

static void probe_backward(nn_model_t *m, const struct probe *p)
{
    probe_eval(m, p);
    assert_int_equal(nn_model_zero_grad(m), ERR_OK);
    struct nn_bwd_in in = {.dlogp = p->wl, .dreward = p->wr, .dlast_hidden = p->wh};
    assert_int_equal(nn_model_backward(m, &in), ERR_OK);
}

/* Central differences on a sample of entries of every tensor, plus a directional derivative
 * over all parameters. fp32 model, fp64 accumulation of J, 4-point stencil with eps 3e-3 (the
 * tiny model is strongly curved), tolerance 2% + 2e-3. */
static void check_gradients_shape(const struct nn_config *cfg, const struct nn_fwd_opts *opts,
                                  uint64_t seed, int B, int T, const int *len, const int *plen)
{
    int *tok = malloc((size_t)B * T * sizeof(int));
    assert_non_null(tok);
    random_tokens(tok, (size_t)B * T, cfg->vocab_size, seed);
    struct nn_batch batch = {.B = B, .T = T, .tokens = tok, .lengths = len};
    nn_model_t *m = make_model(cfg, seed, 0.5f, B, T);
    struct probe p = {.batch = &batch, .plen = plen, .opts = opts};
    uint64_t s = seed * 31 + 1;
    for (int i = 0; i < 8; i++) {
        p.wl[i] = nn_rng_normal(&s) * 0.5f;
        p.wr[i] = nn_rng_normal(&s);
    }
    assert_true(B * cfg->hidden_size <= 256);
    for (int i = 0; i < 256; i++)
        p.wh[i] = nn_rng_normal(&s);
    probe_backward(m, &p);
    size_t n = nn_model_num_params(m);
    float *g = malloc(n * sizeof(float)), *dir = malloc(n * sizeof(float));
    assert_non_null(g);
    assert_non_null(dir);
    memcpy(g, nn_model_grads(m), n * sizeof(float));
    float *w = nn_model_params(m);
    const float eps = 3e-3f;
    int bad = 0;
    for (size_t ti = 0; ti < nn_model_num_tensors(m); ti++) {
        const struct nn_tensor *t = nn_model_tensor(m, ti);
        double gmax = 0.0;
        for (size_t j = 0; j < t->numel; j++)
            gmax = fmax(gmax, fabs(g[t->offset + j]));
        assert_true(gmax > 0.0); /* every tensor takes part */
        for (int k = 0; k < 6; k++) {
            size_t j = t->offset + nn_rng_next(&s) % t->numel;
            float w0 = w[j];
            double f[4];
            const float st[4] = {eps, -eps, 2 * eps, -2 * eps};
            for (int q = 0; q < 4; q++) {
                w[j] = w0 + st[q];
                f[q] = probe_eval(m, &p);
            }
            w[j] = w0;
            /* 4-point central stencil: O(eps^4) truncation error */
            double fd = (8.0 * (f[0] - f[1]) - (f[2] - f[3])) / (12.0 * eps), an = g[j];
            if (fabs(fd - an) > 0.02 * fmax(fabs(fd), fabs(an)) + 2e-3) {
                printf("grad %s[%zu]: analytic %.6f finite-difference %.6f\n", t->name,
                       j - t->offset, an, fd);
                bad++;
            }
        }
    }
    /* directional derivative along a random unit direction */
    double norm = 0.0, dot = 0.0;
    for (size_t j = 0; j < n; j++) {
        dir[j] = nn_rng_normal(&s);
        norm += (double)dir[j] * dir[j];
    }
    float *w0 = malloc(n * sizeof(float));
    assert_non_null(w0);
    memcpy(w0, w, n * sizeof(float));
    for (size_t j = 0; j < n; j++) {
        dir[j] = (float)(dir[j] / sqrt(norm));
        dot += (double)dir[j] * g[j];
    }
    for (size_t j = 0; j < n; j++)
        w[j] = w0[j] + eps * dir[j];
    double jp = probe_eval(m, &p);
    for (size_t j = 0; j < n; j++)
        w[j] = w0[j] - eps * dir[j];
    double jm = probe_eval(m, &p);
    memcpy(w, w0, n * sizeof(float));
    double fd = (jp - jm) / (2.0 * eps);
    if (fabs(fd - dot) > 0.02 * fmax(fabs(fd), fabs(dot)) + 2e-3) {
        printf("directional: analytic %.6f finite-difference %.6f\n", dot, fd);
        bad++;
    }
    assert_int_equal(bad, 0);
    free(w0);
    free(g);
    free(dir);
    free(tok);
    nn_model_destroy(&m);
    assert_null(m);
}

static void check_gradients(const struct nn_config *cfg, const struct nn_fwd_opts *opts,
                            uint64_t seed)
{
    const int len[3] = {7, 4, 5}, plen[3] = {3, 1, 4};
    check_gradients_shape(cfg, opts, seed, 3, 7, len, plen);
}

/* Sequences longer than one attention block (64 query rows), one of them padded. */
static void test_gradients_long_sequences(void **state)
{
    (void)state;
    struct nn_config c;
    tiny_config(&c);
    c.num_hidden_layers = 1;
    c.max_position_embeddings = 160;
    const int len[2] = {150, 97}, plen[2] = {5, 70};
    check_gradients_shape(&c, NULL, 4, 2, 150, len, plen);
}

/* A head size of 16, so the fused attention runs (its tiles of 6 query rows and 64 keys, a
 * ragged last tile, padded rows, GQA), forced on where the CPU lacks AVX-512; then the same on
 * the OpenBLAS products. */
static void test_gradients_fused_attention(void **state)
{
    (void)state;
    struct nn_config c;
    tiny_config(&c);
    c.hidden_size = 64;
    c.intermediate_size = 24;
    c.num_hidden_layers = 1;
    c.max_position_embeddings = 80;
    const int len[3] = {75, 23, 7}, plen[3] = {60, 1, 4};
    for (int fused = 1; fused >= 0; fused--) {
        fused_attention = fused;
        check_gradients_shape(&c, NULL, 5, 3, 75, len, plen);
    }
    fused_attention = -1;
}

/* The fused attention against the OpenBLAS products with `heads` heads sharing `kv_heads` of
 * width C, three rows of other lengths: logits, log-probs and every gradient agree within fp32
 * rounding. */
static void fused_matches_openblas(int C, int heads, int kv_heads, int T, const int *len)
{
    enum { B = 3 };
    struct nn_config c;
    tiny_config(&c);
    c.vocab_size = 50;
    c.hidden_size = C;
    c.intermediate_size = 96;
    c.num_attention_heads = heads;
    c.num_key_value_heads = kv_heads;
    c.max_position_embeddings = T;
    c.eos_token_id = 49;
    int *tok = malloc((size_t)B * T * sizeof(int)), plen[B];
    for (int b = 0; b < B; b++)
        plen[b] = len[b] > 1 ? len[b] / 3 + 1 : 1;
    assert_non_null(tok);
    random_tokens(tok, (size_t)B * T, c.vocab_size, 123);
    struct nn_batch batch = {.B = B, .T = T, .tokens = tok, .lengths = len};
    float dl[B] = {0.9f, -0.6f, 1.3f}, dr[B] = {0.4f, -1.1f, 0.3f}, lp[2][B];
    float *logits[2], *grads[2];
    size_t n = 0, nl = (size_t)B * T * c.vocab_size;
    for (int fused = 1; fused >= 0; fused--) {
        fused_attention = fused;
        nn_model_t *m = make_model(&c, 21, 0.1f, B, T);
        n = nn_model_num_params(m);
        logits[fused] = malloc(nl * sizeof(float));
        grads[fused] = malloc(n * sizeof(float));
        assert_non_null(logits[fused]);
        assert_non_null(grads[fused]);
        assert_int_equal(nn_model_forward(m, &batch, NULL), ERR_OK);
        memcpy(logits[fused], nn_model_logits(m), nl * sizeof(float));
        assert_int_equal(nn_model_seq_logprobs(m, plen, lp[fused], NULL), ERR_OK);
        assert_int_equal(nn_model_zero_grad(m), ERR_OK);
        struct nn_bwd_in in = {.dlogp = dl, .dreward = dr};
        assert_int_equal(nn_model_backward(m, &in), ERR_OK);
        memcpy(grads[fused], nn_model_grads(m), n * sizeof(float));
        nn_model_destroy(&m);
    }
    fused_attention = -1;
    for (int b = 0; b < B; b++)
        for (int t = 0; t < len[b]; t++)
            for (int v = 0; v < c.vocab_size; v++) {
                size_t i = ((size_t)b * T + t) * c.vocab_size + v;
                assert_float_equal(logits[1][i], logits[0][i], 2e-5 + 2e-5 * fabs(logits[0][i]));
            }
    for (int b = 0; b < B; b++)
        assert_float_equal(lp[1][b], lp[0][b], 1e-4 * (1.0 + fabs(lp[0][b])));
    double gmax = 0.0, dmax = 0.0;
    for (size_t j = 0; j < n; j++) {
        gmax = fmax(gmax, fabs(grads[0][j]));
        dmax = fmax(dmax, fabs(grads[1][j] - grads[0][j]));
    }
    assert_true(gmax > 0.0);
    if (dmax > 1e-5 * gmax)
        printf("largest gradient difference %.3g, largest gradient %.3g\n", dmax, gmax);
    assert_true(dmax <= 1e-5 * gmax);
    for (int i = 0; i < 2; i++) {
        free(logits[i]);
        free(grads[i]);
    }
    free(tok);
}

/* Head sizes 64 (GQA: two heads a kv head), 128 (two column blocks of the tiles) and 48 (a
 * block of three vectors); rows of 150, 97 and 13 tokens, then of 1, 2 and 17 (tiles of one row,
 * a row shorter than a vector, one just past it). */
static void test_fused_attention_matches_openblas(void **state)
{
    (void)state;
    const int longer[3] = {150, 97, 13}, shorter[3] = {1, 2, 17};
    fused_matches_openblas(256, 4, 2, 150, longer);
    fused_matches_openblas(256, 2, 1, 150, longer);
    fused_matches_openblas(144, 3, 3, 150, longer);
    fused_matches_openblas(256, 4, 2, 17, shorter);
}

static void test_gradients_gqa_untied_reward_head(void **state)
{
    (void)state;
    struct nn_config c;
    tiny_config(&c);
    check_gradients(&c, NULL, 1);
}

static void test_gradients_tied_mha(void **state)
{
    (void)state;
    struct nn_config c;
    tiny_config(&c);
    c.tie_word_embeddings = true;
    c.num_key_value_heads = 4;
    c.num_hidden_layers = 1;
    check_gradients(&c, NULL, 2);
}

static void test_gradients_with_dropout(void **state)
{
    (void)state;
    struct nn_config c;
    tiny_config(&c);
    c.num_attention_heads = 2;
    c.num_key_value_heads = 1;
    struct nn_fwd_opts o = {.logits = true, .dropout = 0.2f, .dropout_seed = 99};
    check_gradients(&c, &o, 3);
}

static void test_tensor_names_follow_hf_order(void **state)
{
    (void)state;
    struct nn_config c;
    tiny_config(&c);
    nn_model_t *m = NULL;
    assert_int_equal(nn_model_new(&m, &c, NULL, 0), ERR_OK);
    assert_int_equal(nn_model_num_tensors(m), 1 + 9 * 2 + 1 + 1 + 1);
    assert_string_equal(nn_model_tensor(m, 0)->name, "model.embed_tokens.weight");
    assert_string_equal(nn_model_tensor(m, 1)->name, "model.layers.0.self_attn.q_proj.weight");
    assert_string_equal(nn_model_tensor(m, 9)->name,
                        "model.layers.0.post_attention_layernorm.weight");
    assert_string_equal(nn_model_tensor(m, 19)->name, "model.norm.weight");
    assert_string_equal(nn_model_tensor(m, 20)->name, "lm_head.weight");
    assert_string_equal(nn_model_tensor(m, 21)->name, "score.weight");
    assert_null(nn_model_tensor(m, 22));
    const struct nn_tensor *k = nn_model_find_tensor(m, "model.layers.1.self_attn.k_proj.weight");
    assert_non_null(k);
    assert_int_equal(k->shape[0], 4); /* 2 kv heads x head_dim 2 */
    assert_int_equal(k->shape[1], 8);
    const struct nn_tensor *d = nn_model_find_tensor(m, "model.layers.1.mlp.down_proj.weight");
    assert_int_equal(d->shape[0], 8);
    assert_int_equal(d->shape[1], 12);
    size_t off = 0;
    for (size_t i = 0; i < nn_model_num_tensors(m); i++) {
        assert_int_equal(nn_model_tensor(m, i)->offset, off);
        off += nn_model_tensor(m, i)->numel;
    }
    assert_int_equal(off, nn_model_num_params(m));
    /* V*C + L*(C*(QD+2KVD) + C*QD + 3*C*F + 2C) + C + V*C + C */
    assert_int_equal(off, 88 + 2 * (8 * 16 + 64 + 3 * 96 + 16) + 8 + 88 + 8);
    assert_null(nn_model_find_tensor(m, "nope"));
    nn_model_destroy(&m);
    c.tie_word_embeddings = true;
    c.reward_head = false;
    assert_int_equal(nn_model_new(&m, &c, NULL, 0), ERR_OK);
    assert_null(nn_model_find_tensor(m, "lm_head.weight"));
    assert_null(nn_model_find_tensor(m, "score.weight"));
    nn_model_destroy(&m);
    nn_model_destroy(&m); /* NULL-safe */
}

static void test_new_rejects_bad_shapes(void **state)
{
    (void)state;
    struct nn_config c;
    nn_model_t *m = NULL;
    char err[200] = "";
    tiny_config(&c);
    c.num_key_value_heads = 3;
    assert_int_equal(nn_model_new(&m, &c, err, sizeof err), ERR_INVAL);
    assert_non_null(strstr(err, "num_key_value_heads"));
    assert_null(m);
    tiny_config(&c);
    c.hidden_size = 12; /* head_dim 3: odd, rotary needs pairs */
    assert_int_equal(nn_model_new(&m, &c, err, sizeof err), ERR_INVAL);
    tiny_config(&c);
    c.vocab_size = 0;
    assert_int_equal(nn_model_new(&m, &c, err, sizeof err), ERR_INVAL);
    assert_non_null(strstr(err, "vocab_size"));
}

static void test_forward_rejects_bad_batches(void **state)
{
    (void)state;
    struct nn_config c;
    tiny_config(&c);
    nn_model_t *m = make_model(&c, 5, 0.1f, 2, 4);
    int tok[8] = {1, 2, 3, 4, 5, 6, 7, 8}, len[2] = {4, 2};
    struct nn_batch b = {.B = 2, .T = 4, .tokens = tok, .lengths = len};
    assert_int_equal(nn_model_forward(m, &b, NULL), ERR_OK);
    tok[1] = 11;
    assert_int_equal(nn_model_forward(m, &b, NULL), ERR_INVAL);
    tok[1] = 2;
    tok[7] = 99; /* a pad position: ignored */
    assert_int_equal(nn_model_forward(m, &b, NULL), ERR_OK);
    len[1] = 0;
    assert_int_equal(nn_model_forward(m, &b, NULL), ERR_INVAL);
    len[1] = 2;
    b.B = 3;
    assert_int_equal(nn_model_forward(m, &b, NULL), ERR_TOOBIG);
    b.B = 2;
    int pl[2] = {1, 3};
    float lp[2];
    assert_int_equal(nn_model_forward(m, &b, NULL), ERR_OK);
    assert_int_equal(nn_model_seq_logprobs(m, pl, lp, NULL), ERR_INVAL); /* 3 > length 2 */
    assert_int_equal(nn_model_reserve(m, 1, 17, false), ERR_INVAL);      /* past max positions */
    nn_model_destroy(&m);
}

/* A padded batch gives, row by row, what each sequence gives alone: logits, log-probs, rewards,
 * and the summed gradient of the rows is the batch gradient (so accumulation works too). */
static void test_padding_invariance_and_accumulation(void **state)
{
    (void)state;
    enum { B = 3, T = 9 };
    struct nn_config c;
    tiny_config(&c);
    int tok[B * T], len[B] = {9, 3, 6}, plen[B] = {2, 2, 5};
    random_tokens(tok, B * T, c.vocab_size, 77);
    for (int b = 0; b < B; b++)
        for (int t = len[b]; t < T; t++)
            tok[b * T + t] = 0;
    nn_model_t *m = make_model(&c, 11, 0.3f, B, T);
    size_t n = nn_model_num_params(m);
    int V = c.vocab_size;
    struct nn_batch batch = {.B = B, .T = T, .tokens = tok, .lengths = len};
    float lp[B], rw[B], dl[B] = {0.7f, -1.3f, 0.4f}, dr[B] = {0.2f, 0.5f, -0.9f};
    float *logits = malloc((size_t)B * T * V * sizeof(float)), *gb = malloc(n * sizeof(float));
    float *gsum = calloc(n, sizeof(float));
    assert_int_equal(nn_model_forward(m, &batch, NULL), ERR_OK);
    memcpy(logits, nn_model_logits(m), (size_t)B * T * V * sizeof(float));
    assert_int_equal(nn_model_seq_logprobs(m, plen, lp, NULL), ERR_OK);
    memcpy(rw, nn_model_rewards(m), sizeof rw);
    nn_model_zero_grad(m);
    struct nn_bwd_in in = {.dlogp = dl, .dreward = dr};
    assert_int_equal(nn_model_backward(m, &in), ERR_OK);
    memcpy(gb, nn_model_grads(m), n * sizeof(float));
    nn_model_zero_grad(m);
    for (int b = 0; b < B; b++) {
        struct nn_batch one = {.B = 1, .T = len[b], .tokens = tok + b * T, .lengths = &len[b]};
        float lp1;
        int nt;
        assert_int_equal(nn_model_forward(m, &one, NULL), ERR_OK);
        const float *lg = nn_model_logits(m);
        for (int i = 0; i < len[b] * V; i++)
            assert_float_equal(lg[i], logits[(size_t)b * T * V + i], 1e-5);
        assert_int_equal(nn_model_seq_logprobs(m, &plen[b], &lp1, &nt), ERR_OK);
        assert_int_equal(nt, len[b] - plen[b]);
        assert_float_equal(lp1, lp[b], 1e-4);
        assert_float_equal(nn_model_rewards(m)[0], rw[b], 1e-5);
        struct nn_bwd_in in1 = {.dlogp = &dl[b], .dreward = &dr[b]};
        assert_int_equal(nn_model_backward(m, &in1), ERR_OK); /* accumulates */
    }
    memcpy(gsum, nn_model_grads(m), n * sizeof(float));
    for (size_t j = 0; j < n; j++)
        assert_float_equal(gsum[j], gb[j], 1e-4 + 1e-4 * fabs(gb[j]));
    free(logits);
    free(gb);
    free(gsum);
    nn_model_destroy(&m);
}

static void test_dropout_views(void **state)
{
    (void)state;
    struct nn_config c;
    tiny_config(&c);
    nn_model_t *m = make_model(&c, 3, 0.3f, 1, 6);
    int tok[6] = {1, 5, 2, 9, 3, 4}, len = 6;
    struct nn_batch b = {.B = 1, .T = 6, .tokens = tok, .lengths = &len};
    float h0[8], h1[8], h2[8], h3[8];
    assert_int_equal(nn_model_forward(m, &b, NULL), ERR_OK);
    memcpy(h0, nn_model_last_hidden(m), sizeof h0);
    struct nn_fwd_opts o = {.dropout = 0.3f, .dropout_seed = 1};
    assert_int_equal(nn_model_forward(m, &b, &o), ERR_OK);
    assert_null(nn_model_logits(m)); /* not asked for */
    memcpy(h1, nn_model_last_hidden(m), sizeof h1);
    assert_int_equal(nn_model_forward(m, &b, &o), ERR_OK);
    memcpy(h2, nn_model_last_hidden(m), sizeof h2);
    o.dropout_seed = 2;
    assert_int_equal(nn_model_forward(m, &b, &o), ERR_OK);
    memcpy(h3, nn_model_last_hidden(m), sizeof h3);
    assert_memory_equal(h1, h2, sizeof h1);
    assert_memory_not_equal(h1, h3, sizeof h1);
    assert_memory_not_equal(h0, h1, sizeof h1);
    o.dropout = 1.0f;
    assert_int_equal(nn_model_forward(m, &b, &o), ERR_INVAL);
    nn_model_destroy(&m);
}

/* Prefill in uneven pieces, then one token at a time, rows of different lengths: the logits
 * after each fed token equal the full forward's logits at that position. */
static void test_kv_cache_matches_full_forward(void **state)
{
    (void)state;
    enum { B = 3, T = 140 };
    struct nn_config c;
    tiny_config(&c);
    c.max_position_embeddings = T;
    int V = c.vocab_size;
    int tok[B * T], len[B] = {140, 66, 100};
    random_tokens(tok, B * T, V, 5);
    nn_model_t *m = make_model(&c, 21, 0.4f, B, T);
    struct nn_batch batch = {.B = B, .T = T, .tokens = tok, .lengths = len};
    assert_int_equal(nn_model_forward(m, &batch, NULL), ERR_OK);
    const float *full = nn_model_logits(m);
    nn_kv_cache_t *kc = NULL;
    assert_int_equal(nn_kv_cache_new(&kc, m, B, T), ERR_OK);
    float lg[B * 11];
    int first[B] = {3, 1, 70}, cnt[B], feed[B * T];
    for (int b = 0; b < B; b++) {
        cnt[b] = first[b];
        for (int j = 0; j < first[b]; j++)
            feed[b * 70 + j] = tok[b * T + j];
    }
    assert_int_equal(nn_model_decode(m, kc, feed, cnt, 70, lg), ERR_OK);
    for (int b = 0; b < B; b++) {
        assert_int_equal(nn_kv_cache_pos(kc, b), first[b]);
        for (int v = 0; v < V; v++)
            assert_float_equal(lg[b * V + v], full[((size_t)b * T + first[b] - 1) * V + v], 1e-4);
    }
    for (int step = 0; step < T; step++) {
        int two[2 * B], n = step % 3 == 0 ? 2 : 1; /* sometimes 2 tokens per row */
        for (int b = 0; b < B; b++) {
            int p = nn_kv_cache_pos(kc, b);
            cnt[b] = len[b] - p < n ? len[b] - p : n;
            for (int j = 0; j < cnt[b]; j++)
                two[b * n + j] = tok[b * T + p + j];
        }
        assert_int_equal(nn_model_decode(m, kc, two, cnt, n, lg), ERR_OK);
        for (int b = 0; b < B; b++) {
            if (!cnt[b])
                continue;
            int p = nn_kv_cache_pos(kc, b) - 1;
            for (int v = 0; v < V; v++)
                assert_float_equal(lg[b * V + v], full[((size_t)b * T + p) * V + v], 1e-4);
        }
    }
    int one[B] = {1, 1, 1}, c1[B] = {1, 0, 0};
    assert_int_equal(nn_model_decode(m, kc, one, c1, 1, lg), ERR_TOOBIG); /* row 0 is full */
    nn_kv_cache_reset(kc);
    assert_int_equal(nn_kv_cache_pos(kc, 0), 0);
    nn_kv_cache_destroy(&kc);
    assert_null(kc);
    nn_model_destroy(&m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tensor_names_follow_hf_order),
        cmocka_unit_test(test_new_rejects_bad_shapes),
        cmocka_unit_test(test_forward_rejects_bad_batches),
        cmocka_unit_test(test_gradients_gqa_untied_reward_head),
        cmocka_unit_test(test_gradients_tied_mha),
        cmocka_unit_test(test_gradients_with_dropout),
        cmocka_unit_test(test_gradients_long_sequences),
        cmocka_unit_test(test_gradients_fused_attention),
        cmocka_unit_test(test_fused_attention_matches_openblas),
        cmocka_unit_test(test_padding_invariance_and_accumulation),
        cmocka_unit_test(test_dropout_views),
        cmocka_unit_test(test_kv_cache_matches_full_forward),
    };
    return cmocka_run_group_tests_name("nn_model", tests, NULL, NULL);
}
