/* test_nn_rope.c - rotary scaling (config.json's rope_scaling: llama3, linear, dynamic NTK)
 * against the independent PyTorch reference of tests/nn_reference.py (fixtures in
 * tests/fixtures/nn/rope, written by `nn_reference.py --rope`):
 *  - each type's config.json loads, and a model with head dim 128 whose weights both sides draw
 *    from splitmix64 gives the reference's logits at T 16, 256 and 1024 (two rows each, the
 *    second shorter: dynamic NTK frequencies follow each row's own length);
 *  - the same model with plain RoPE misses them by far (where the scaling changes anything), so
 *    the comparison can fail; dynamic NTK up to its original context is plain RoPE;
 *  - decoding through the KV cache gives the forward's last logits (dynamic past its context);
 *  - config.json: "rope_type" and the older "type", unsupported types and missing keys refused
 *    by name, a save and load keeping the scaling (dynamic's context back to the original).
 * Tolerance: 1e-4 absolute + 1e-4 relative, as test_nn_reference (the reference computes in fp64
 * from the same fp32 weights and fp32 frequencies; the engine's fp32 angles t x inv_freq round by
 * up to 6e-5 at T 1024). */
#include <setjmp.h> /* cmocka 1.1 needs these four first; keep <cmocka.h> */
#include <stdarg.h> /* in its own block, or clang-format sorts it above them */
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "err.h"
#include "model.h"
#include "safetensors.h"
#include "stfixture.h"

#define DIR       OAIF_FIXTURES "/nn/rope"
#define SEED      20240723u /* ROPE_SEED */
#define NPOS      16        /* ROPE_POS */
#define ATOL      1e-4
#define RTOL      1e-4
#define MAXT      1024
#define NCASES    3
#define PLAIN_GAP 50.0 /* plain RoPE must miss by this many tolerances */

static const char *const cases[NCASES] = {"llama3", "linear", "dynamic"};
static const int Ts[] = {16, 256, 1024};

/* The reference's weights (splitmix_params): the same splitmix64 sequence over the tensors in
 * Hugging Face order. */
static void fill_weights(nn_model_t *m)
{
    uint64_t state = SEED;
    for (size_t i = 0; i < nn_model_num_tensors(m); i++) {
        const struct nn_tensor *t = nn_model_tensor(m, i);
        bool embed = !strcmp(t->name, "model.embed_tokens.weight");
        for (size_t j = 0; j < t->numel; j++) {
            float u = (float)(nn_rng_next(&state) >> 40) * (1.0f / 16777216.0f) - 0.5f;
            t->data[j] = t->ndim == 1 ? u * 0.25f + 1.0f : embed ? u : u * 0.25f;
        }
    }
}

static nn_model_t *load_case(const char *name, bool plain)
{
    char path[512], err[512];
    struct nn_config c;
    snprintf(path, sizeof path, "%s/%s/config.json", DIR, name);
    if (nn_config_load(&c, path, err, sizeof err))
        fail_msg("%s", err);
    if (plain)
        memset(&c.rope_scaling, 0, sizeof c.rope_scaling); /* same context, plain RoPE */
    nn_model_t *m = NULL;
    if (nn_model_new(&m, &c, err, sizeof err))
        fail_msg("%s", err);
    fill_weights(m);
    return m;
}

struct batch {
    int T, tok[2 * MAXT], len[2], pos[2 * NPOS];
    float *want; /* [2, NPOS, V] */
};

static void get_batch(st_file_t *fx, const char *name, int T, int V, struct batch *bt)
{
    char key[96];
    bt->T = T;
    snprintf(key, sizeof key, "%s.T%d.tokens", name, T);
    float *tok = stfx_get(fx, key, (size_t)2 * T);
    snprintf(key, sizeof key, "%s.T%d.lengths", name, T);
    float *len = stfx_get(fx, key, 2);
    snprintf(key, sizeof key, "%s.T%d.pos", name, T);
    float *pos = stfx_get(fx, key, 2 * NPOS);
    snprintf(key, sizeof key, "%s.T%d.logits", name, T);
    bt->want = stfx_get(fx, key, (size_t)2 * NPOS * V);
    for (int i = 0; i < 2 * T; i++)
        bt->tok[i] = (int)tok[i];
    for (int b = 0; b < 2; b++)
        bt->len[b] = (int)len[b];
    for (int i = 0; i < 2 * NPOS; i++)
        bt->pos[i] = (int)pos[i];
    free(tok);
    free(len);
    free(pos);
}

/* Largest |engine - reference| / (ATOL + RTOL |reference|) over the kept logits of `m`. */
static double worst(nn_model_t *m, const struct batch *bt, int V)
{
    assert_int_equal(nn_model_reserve(m, 2, bt->T, false), ERR_OK);
    struct nn_batch b = {.B = 2, .T = bt->T, .tokens = bt->tok, .lengths = bt->len};
    assert_int_equal(nn_model_forward(m, &b, NULL), ERR_OK);
    const float *lg = nn_model_logits(m);
    double w = 0.0;
    for (int r = 0; r < 2; r++)
        for (int k = 0; k < NPOS; k++)
            for (int v = 0; v < V; v++) {
                double got = lg[((size_t)r * bt->T + bt->pos[r * NPOS + k]) * V + v];
                double want = bt->want[((size_t)r * NPOS + k) * V + v];
                w = fmax(w, fabs(got - want) / (ATOL + RTOL * fabs(want)));
            }
    return w;
}

/* The fixture file, and a batch buffer (both freed by the caller). */
static st_file_t *open_fixtures(struct batch **bt)
{
    char err[512];
    st_file_t *fx = NULL;
    if (st_open(&fx, DIR "/rope_logits.safetensors", err, sizeof err))
        fail_msg("%s", err);
    *bt = calloc(1, sizeof **bt);
    assert_non_null(*bt);
    return fx;
}

static void test_logits_match_reference(void **state)
{
    (void)state;
    struct batch *bt;
    st_file_t *fx = open_fixtures(&bt);
    for (int c = 0; c < NCASES; c++) {
        nn_model_t *m = load_case(cases[c], false), *plain = load_case(cases[c], true);
        int V = nn_model_config(m)->vocab_size;
        for (size_t i = 0; i < sizeof Ts / sizeof Ts[0]; i++) {
            get_batch(fx, cases[c], Ts[i], V, bt);
            double w = worst(m, bt, V), wp = worst(plain, bt, V);
            printf("%-8s T %4d: worst error %.3f of the tolerance; plain RoPE %.1f\n", cases[c],
                   Ts[i], w, wp);
            if (!(w <= 1.0))
                fail_msg("%s T %d: logits off the reference by %.2f tolerances", cases[c], Ts[i],
                         w);
            /* dynamic NTK is plain RoPE up to its original context (256); the others change
             * frequencies everywhere, visibly from T 256 (llama3 only moves wavelengths past
             * 2048 positions, which barely turn in 16) */
            bool same = !strcmp(cases[c], "dynamic") && Ts[i] <= 256;
            bool differs = Ts[i] >= 256 && !same;
            if (same && !(wp <= 1.0))
                fail_msg("dynamic T %d: differs from plain RoPE (%.2f)", Ts[i], wp);
            if (differs && !(wp >= PLAIN_GAP))
                fail_msg("%s T %d: plain RoPE is within %.1f tolerances: the test cannot tell",
                         cases[c], Ts[i], wp);
            free(bt->want);
        }
        nn_model_destroy(&m);
        nn_model_destroy(&plain);
    }
    free(bt);
    st_close(&fx);
}

/* The KV-cache decoder gives the forward's logits: row 0 prefilled in one call (its frequencies
 * those of its whole length, as the forward's), then the next token's logits. */
static void test_decode_matches_forward(void **state)
{
    (void)state;
    struct batch *bt;
    st_file_t *fx = open_fixtures(&bt);
    for (int c = 0; c < NCASES; c++) {
        nn_model_t *m = load_case(cases[c], false);
        int V = nn_model_config(m)->vocab_size, T = MAXT;
        get_batch(fx, cases[c], T, V, bt);
        assert_true(worst(m, bt, V) <= 1.0);
        const float *lg = nn_model_logits(m);
        nn_kv_cache_t *kv = NULL;
        assert_int_equal(nn_kv_cache_new(&kv, m, 1, T), ERR_OK);
        float *out = malloc((size_t)V * sizeof(float));
        assert_non_null(out);
        int n = bt->len[0];
        assert_int_equal(nn_model_decode(m, kv, bt->tok, &n, n, out), ERR_OK);
        for (int v = 0; v < V; v++) {
            double want = lg[(size_t)(n - 1) * V + v];
            if (!(fabs(out[v] - want) <= ATOL + RTOL * fabs(want)))
                fail_msg("%s: decode logit %d %.7g, forward %.7g", cases[c], v, out[v], want);
        }
        free(out);
        nn_kv_cache_destroy(&kv);
        free(bt->want);
        nn_model_destroy(&m);
    }
    free(bt);
    st_close(&fx);
}

/* ------------------------------------------------------------------ config.json */

struct tmp {
    char dir[64], path[128];
};

static void tmp_write(struct tmp *t, const char *rope)
{
    snprintf(t->dir, sizeof t->dir, "/tmp/test_nn_rope.XXXXXX");
    assert_non_null(mkdtemp(t->dir));
    snprintf(t->path, sizeof t->path, "%s/config.json", t->dir);
    FILE *f = fopen(t->path, "w");
    assert_non_null(f);
    fprintf(f,
            "{\"vocab_size\": 64, \"hidden_size\": 64, \"intermediate_size\": 96,"
            " \"num_hidden_layers\": 1, \"num_attention_heads\": 2,"
            " \"max_position_embeddings\": 512, \"rope_theta\": 500000.0, %s}\n",
            rope);
    assert_int_equal(fclose(f), 0);
}

static void tmp_remove(struct tmp *t)
{
    unlink(t->path);
    rmdir(t->dir);
}

/* Loading `rope` fails with ERR_INVAL and a message containing each of `needles`. */
static void expect_refused(const char *rope, const char *n1, const char *n2)
{
    struct tmp t = {0};
    struct nn_config c;
    char err[512] = "";
    tmp_write(&t, rope);
    assert_int_equal(nn_config_load(&c, t.path, err, sizeof err), ERR_INVAL);
    if (!strstr(err, t.path) || !strstr(err, n1) || (n2 && !strstr(err, n2)))
        fail_msg("for %s: \"%s\" should name the file, %s and %s", rope, err, n1, n2 ? n2 : "-");
    tmp_remove(&t);
}

static void test_unsupported_and_incomplete_refused(void **state)
{
    (void)state;
    expect_refused("\"rope_scaling\": {\"rope_type\": \"yarn\", \"factor\": 4.0}", "rope_scaling",
                   "\"yarn\" is not supported");
    expect_refused("\"rope_scaling\": {\"type\": \"longrope\", \"factor\": 4.0}", "longrope",
                   "not supported");
    expect_refused("\"rope_scaling\": {\"factor\": 4.0}", "rope_scaling", "rope_type");
    expect_refused("\"rope_scaling\": {\"rope_type\": \"linear\"}", "linear", "\"factor\"");
    expect_refused("\"rope_scaling\": {\"rope_type\": \"llama3\", \"factor\": 8.0,"
                   " \"low_freq_factor\": 1.0, \"high_freq_factor\": 4.0}",
                   "llama3", "original_max_position_embeddings");
    expect_refused("\"rope_scaling\": {\"rope_type\": \"llama3\", \"factor\": 8.0,"
                   " \"low_freq_factor\": 4.0, \"high_freq_factor\": 1.0,"
                   " \"original_max_position_embeddings\": 8192}",
                   "low_freq_factor", "high_freq_factor");
    expect_refused("\"rope_scaling\": {\"rope_type\": \"linear\", \"factor\": 0.5}", "linear",
                   "factor is 0.5");
    expect_refused("\"rope_scaling\": [1, 2]", "rope_scaling", "object");
}

static void load_ok(const char *rope, struct nn_config *c)
{
    struct tmp t = {0};
    char err[512];
    tmp_write(&t, rope);
    if (nn_config_load(c, t.path, err, sizeof err))
        fail_msg("%s: %s", rope, err);
    tmp_remove(&t);
}

static void test_spellings_and_round_trip(void **state)
{
    (void)state;
    struct nn_config a, b;
    /* transformers' "type" (before rope_type), "default", null and transformers 5's
     * rope_parameters with the theta inside */
    load_ok("\"rope_scaling\": {\"type\": \"linear\", \"factor\": 2.0}", &a);
    assert_int_equal(a.rope_scaling.type, NN_ROPE_LINEAR);
    assert_true(a.rope_scaling.factor == 2.0f);
    load_ok("\"rope_scaling\": {\"rope_type\": \"default\"}", &a);
    assert_int_equal(a.rope_scaling.type, NN_ROPE_DEFAULT);
    load_ok("\"rope_scaling\": null", &a);
    assert_int_equal(a.rope_scaling.type, NN_ROPE_DEFAULT);
    load_ok("\"rope_parameters\": {\"rope_type\": \"linear\", \"factor\": 2.0, \"rope_theta\": "
            "1000.0}",
            &a);
    assert_int_equal(a.rope_scaling.type, NN_ROPE_LINEAR);
    assert_true(a.rope_theta == 1000.0f);

    /* dynamic: the engine's context is original x factor; saved, config.json has the original */
    load_ok("\"rope_scaling\": {\"rope_type\": \"dynamic\", \"factor\": 2.5}", &a);
    assert_int_equal(a.rope_scaling.type, NN_ROPE_DYNAMIC);
    assert_int_equal(a.rope_scaling.original_max_position_embeddings, 512);
    assert_int_equal(a.max_position_embeddings, 1280);
    assert_false(nn_config_rope_grows(&a, 512));
    assert_true(nn_config_rope_grows(&a, 513));

    const char *llama3 = "\"rope_scaling\": {\"rope_type\": \"llama3\", \"factor\": 8.0,"
                         " \"low_freq_factor\": 1.0, \"high_freq_factor\": 4.0,"
                         " \"original_max_position_embeddings\": 8192}";
    const char *ropes[] = {"\"rope_scaling\": {\"rope_type\": \"dynamic\", \"factor\": 2.5}",
                           llama3};
    for (int i = 0; i < 2; i++) {
        load_ok(ropes[i], &a);
        char dir[64] = "/tmp/test_nn_rope.XXXXXX", path[128], err[512];
        assert_non_null(mkdtemp(dir));
        snprintf(path, sizeof path, "%s/config.json", dir);
        if (nn_config_save(&a, path, err, sizeof err) || nn_config_load(&b, path, err, sizeof err))
            fail_msg("%s", err);
        unlink(path);
        rmdir(dir);
        assert_int_equal(b.rope_scaling.type, a.rope_scaling.type);
        assert_true(b.rope_scaling.factor == a.rope_scaling.factor);
        assert_true(b.rope_scaling.low_freq_factor == a.rope_scaling.low_freq_factor);
        assert_true(b.rope_scaling.high_freq_factor == a.rope_scaling.high_freq_factor);
        assert_int_equal(b.rope_scaling.original_max_position_embeddings,
                         a.rope_scaling.original_max_position_embeddings);
        assert_int_equal(b.max_position_embeddings, a.max_position_embeddings);
    }

    /* llama3 on head dim 32, theta 5e5: wavelengths past 8192 are divided by 8, those under
     * 2048 kept, the ones between on the ramp */
    load_ok(llama3, &a);
    float plain[16], scaled[16];
    struct nn_config p = a;
    memset(&p.rope_scaling, 0, sizeof p.rope_scaling);
    nn_config_rope_inv_freq(&p, 0, plain);
    nn_config_rope_inv_freq(&a, 0, scaled);
    for (int i = 0; i < 16; i++) {
        double wl = 2.0 * M_PI / plain[i];
        if (wl < 2048.0)
            assert_true(scaled[i] == plain[i]);
        else if (wl > 8192.0)
            assert_true(scaled[i] == plain[i] / 8.0f);
        else
            assert_true(scaled[i] < plain[i] && scaled[i] > plain[i] / 8.0f);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_logits_match_reference),
        cmocka_unit_test(test_decode_matches_forward),
        cmocka_unit_test(test_unsupported_and_incomplete_refused),
        cmocka_unit_test(test_spellings_and_round_trip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
