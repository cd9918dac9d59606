/* bench_decode.c - the engine's decoding next to a plain C decoder of the kind llama2.c's run.c
 * is, in the same run, on a llama2.c-style 15M shape. Not a test (not registered in ctest).
 *
 *   build/tests/bench/bench_decode [--threads N] [--repeat N] [--new N] [--batch B]
 *
 * Shape: llama2.c's stories15M (dim 288, 6 layers, 6 heads, hidden 768, vocab 32000, 256
 * positions, tied embeddings), fp32, random weights (std 0.02), the same weights in both.
 *
 * The plain decoder (written here, our own code) is what run.c does: one token at a time, one
 * matrix-vector product per weight matrix per token, each parallel over its output rows with
 * OpenMP (the dot product vectorized as run.c's -Ofast build vectorizes it; compiled for AVX-512,
 * AVX2 and baseline, picked at load time), RMSNorm, rotary positions computed per token, attention
 * over the KV cache parallel over heads, SwiGLU, the tied classifier. It uses the engine's rotary
 * convention (Hugging Face rotate_half) so both compute the same model; greedy decoding.
 *
 * Rows: the engine's nn_sample (greedy, KV cache) on 1 prompt token and --new new tokens (255)
 * at batch 1 and at --batch (32) rows, and the plain decoder on the batch-1 sequence (it decodes
 * one sequence at a time, so its tokens/s at any batch is that). Each number is the median of
 * --repeat (5) interleaved runs; the batch-1 ratio engine / plain is taken from the medians. The
 * bench also checks both decoders chose the same tokens (near-ties may differ in fp32; it prints
 * how many agree). */
#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "benchstat.h"
#include "config.h"
#include "model.h"
#include "sample.h"

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define BENCH_VEC __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define BENCH_VEC
#endif

#define MAX_REPEAT 32

enum { DIM = 288, LAYERS = 6, HEADS = 6, HIDDEN = 768, VOCAB = 32000, SEQ = 256 };

/* ---- the plain decoder ------------------------------------------------------------------- */

/* Weights as run.c keeps them: per kind, all layers back to back. Pointers into the engine's
 * parameters (read through nn_model_find_tensor) would do as well; copies keep run.c's layout. */
struct plain {
    float *emb;                                        /* [VOCAB, DIM], also the classifier */
    float *att_norm, *ffn_norm, *final_norm;           /* [LAYERS, DIM], [LAYERS, DIM], [DIM] */
    float *wq, *wk, *wv, *wo;                          /* [LAYERS, DIM, DIM] */
    float *w1, *w2, *w3;                               /* gate [L, HIDDEN, DIM], down, up */
    float *x, *xb, *xb2, *hb, *hb2, *q, *att, *logits; /* run state */
    float *kc, *vc;                                    /* [LAYERS, SEQ, DIM] */
    float eps, theta;
};

static float *copy_tensor(const nn_model_t *m, const char *name, size_t n)
{
    const struct nn_tensor *t = nn_model_find_tensor(m, name);
    float *p = malloc(n * sizeof(float));
    if (!t || !p || t->numel != n) {
        fprintf(stderr, "bench_decode: tensor %s missing or of another size\n", name);
        exit(1);
    }
    memcpy(p, t->data, n * sizeof(float));
    return p;
}

static float *copy_layers(const nn_model_t *m, const char *suffix, size_t n)
{
    float *p = malloc((size_t)LAYERS * n * sizeof(float));
    if (!p)
        exit(1);
    for (int l = 0; l < LAYERS; l++) {
        char name[96];
        snprintf(name, sizeof name, "model.layers.%d.%s.weight", l, suffix);
        float *t = copy_tensor(m, name, n);
        memcpy(p + (size_t)l * n, t, n * sizeof(float));
        free(t);
    }
    return p;
}

static void plain_init(struct plain *w, const nn_model_t *m)
{
    const struct nn_config *c = nn_model_config(m);
    w->eps = c->rms_norm_eps;
    w->theta = c->rope_theta;
    w->emb = copy_tensor(m, "model.embed_tokens.weight", (size_t)VOCAB * DIM);
    w->final_norm = copy_tensor(m, "model.norm.weight", DIM);
    w->att_norm = copy_layers(m, "input_layernorm", DIM);
    w->ffn_norm = copy_layers(m, "post_attention_layernorm", DIM);
    w->wq = copy_layers(m, "self_attn.q_proj", (size_t)DIM * DIM);
    w->wk = copy_layers(m, "self_attn.k_proj", (size_t)DIM * DIM);
    w->wv = copy_layers(m, "self_attn.v_proj", (size_t)DIM * DIM);
    w->wo = copy_layers(m, "self_attn.o_proj", (size_t)DIM * DIM);
    w->w1 = copy_layers(m, "mlp.gate_proj", (size_t)HIDDEN * DIM);
    w->w2 = copy_layers(m, "mlp.down_proj", (size_t)DIM * HIDDEN);
    w->w3 = copy_layers(m, "mlp.up_proj", (size_t)HIDDEN * DIM);
    size_t state = 3 * DIM + 2 * HIDDEN + DIM + (size_t)HEADS * SEQ + VOCAB;
    float *s = calloc(state + 2 * (size_t)LAYERS * SEQ * DIM, sizeof(float));
    if (!s)
        exit(1);
    w->x = s, s += DIM;
    w->xb = s, s += DIM;
    w->xb2 = s, s += DIM;
    w->hb = s, s += HIDDEN;
    w->hb2 = s, s += HIDDEN;
    w->q = s, s += DIM;
    w->att = s, s += (size_t)HEADS * SEQ;
    w->logits = s, s += VOCAB;
    w->kc = s, s += (size_t)LAYERS * SEQ * DIM;
    w->vc = s;
}

static void plain_free(struct plain *w)
{
    float *p[] = {w->emb, w->final_norm, w->att_norm, w->ffn_norm, w->wq, w->wk,
                  w->wv,  w->wo,         w->w1,       w->w2,       w->w3, w->x};
    for (size_t i = 0; i < sizeof p / sizeof p[0]; i++)
        free(p[i]);
}

static void rmsnorm(float *o, const float *x, const float *w, int n, float eps)
{
    float ss = 0.0f;
    for (int j = 0; j < n; j++)
        ss += x[j] * x[j];
    ss = 1.0f / sqrtf(ss / (float)n + eps);
    for (int j = 0; j < n; j++)
        o[j] = w[j] * (ss * x[j]);
}

BENCH_VEC static float dot(const float *a, const float *b, int n)
{
    float v = 0.0f;
#pragma omp simd reduction(+ : v)
    for (int j = 0; j < n; j++)
        v += a[j] * b[j];
    return v;
}

/* xout [d] = w [d, n] @ x [n], parallel over rows: run.c's matmul */
static void matvec(float *xout, const float *x, const float *w, int n, int d)
{
#pragma omp parallel for
    for (int i = 0; i < d; i++)
        xout[i] = dot(w + (size_t)i * n, x, n);
}

static void softmax(float *x, int n)
{
    float mx = x[0], sum = 0.0f;
    for (int i = 1; i < n; i++)
        mx = x[i] > mx ? x[i] : mx;
    for (int i = 0; i < n; i++) {
        x[i] = expf(x[i] - mx);
        sum += x[i];
    }
    for (int i = 0; i < n; i++)
        x[i] /= sum;
}

/* Rotate each head of v (rotate_half: pairs i, i + D/2) for position pos, frequencies computed
 * per call as run.c computes them. */
static void rope(float *v, int pos, float theta)
{
    int D = DIM / HEADS, half = D / 2;
    for (int h = 0; h < HEADS; h++) {
        float *a = v + h * D;
        for (int i = 0; i < half; i++) {
            float f = 1.0f / powf(theta, (float)(2 * i) / (float)D), ang = (float)pos * f;
            float c = cosf(ang), s = sinf(ang), x1 = a[i], x2 = a[i + half];
            a[i] = x1 * c - x2 * s;
            a[i + half] = x2 * c + x1 * s;
        }
    }
}

/* One token at position pos; leaves the logits in w->logits. */
static void plain_forward(struct plain *w, int token, int pos)
{
    int D = DIM / HEADS;
    float scale = 1.0f / sqrtf((float)D);
    memcpy(w->x, w->emb + (size_t)token * DIM, DIM * sizeof(float));
    for (int l = 0; l < LAYERS; l++) {
        size_t lw = (size_t)l * DIM * DIM;
        float *k = w->kc + ((size_t)l * SEQ + pos) * DIM,
              *v = w->vc + ((size_t)l * SEQ + pos) * DIM;
        rmsnorm(w->xb, w->x, w->att_norm + l * DIM, DIM, w->eps);
        matvec(w->q, w->xb, w->wq + lw, DIM, DIM);
        matvec(k, w->xb, w->wk + lw, DIM, DIM);
        matvec(v, w->xb, w->wv + lw, DIM, DIM);
        rope(w->q, pos, w->theta);
        rope(k, pos, w->theta);
#pragma omp parallel for
        for (int h = 0; h < HEADS; h++) {
            const float *q = w->q + h * D;
            float *att = w->att + (size_t)h * SEQ;
            for (int t = 0; t <= pos; t++)
                att[t] = dot(q, w->kc + ((size_t)l * SEQ + t) * DIM + h * D, D) * scale;
            softmax(att, pos + 1);
            float *o = w->xb + h * D;
            memset(o, 0, (size_t)D * sizeof(float));
            for (int t = 0; t <= pos; t++) {
                const float *vt = w->vc + ((size_t)l * SEQ + t) * DIM + h * D;
                for (int i = 0; i < D; i++)
                    o[i] += att[t] * vt[i];
            }
        }
        matvec(w->xb2, w->xb, w->wo + lw, DIM, DIM);
        for (int i = 0; i < DIM; i++)
            w->x[i] += w->xb2[i];
        rmsnorm(w->xb, w->x, w->ffn_norm + l * DIM, DIM, w->eps);
        size_t lh = (size_t)l * HIDDEN * DIM;
        matvec(w->hb, w->xb, w->w1 + lh, DIM, HIDDEN);
        matvec(w->hb2, w->xb, w->w3 + lh, DIM, HIDDEN);
        for (int i = 0; i < HIDDEN; i++) {
            float g = w->hb[i];
            w->hb[i] = g / (1.0f + expf(-g)) * w->hb2[i];
        }
        matvec(w->xb, w->hb, w->w2 + lh, HIDDEN, DIM);
        for (int i = 0; i < DIM; i++)
            w->x[i] += w->xb[i];
    }
    rmsnorm(w->x, w->x, w->final_norm, DIM, w->eps);
    matvec(w->logits, w->x, w->emb, DIM, VOCAB);
}

/* Greedy decoding of n new tokens after `first`; tokens/s. */
static double plain_decode(struct plain *w, int first, int n, int *out)
{
    double t0 = bench_now();
    int tok = first;
    for (int pos = 0; pos < n; pos++) {
        plain_forward(w, tok, pos);
        int best = 0;
        for (int v = 1; v < VOCAB; v++)
            if (w->logits[v] > w->logits[best])
                best = v;
        out[pos] = tok = best;
    }
    return (double)n / (bench_now() - t0);
}

/* ---- the engine --------------------------------------------------------------------------- */

/* nn_sample greedy on B one-token prompts (row b's is first[b]), n new tokens each; tokens/s. */
static double engine_decode(nn_model_t *m, int B, const int *first, int n, int *out)
{
    const int **pp = malloc((size_t)B * sizeof *pp);
    int *pl = malloc((size_t)B * sizeof(int)), *ntok = malloc((size_t)B * sizeof(int));
    if (!pp || !pl || !ntok)
        exit(1);
    for (int b = 0; b < B; b++) {
        pp[b] = first + b;
        pl[b] = 1;
    }
    struct nn_sample_opts o = {.max_new_tokens = n, .eos_token_id = -1};
    double t0 = bench_now();
    int rc = nn_sample(m, B, (const int *const *)pp, pl, &o, out, ntok, NULL);
    double dt = bench_now() - t0;
    long total = 0;
    for (int b = 0; b < B; b++)
        total += ntok[b];
    free(pp);
    free(pl);
    free(ntok);
    if (rc) {
        fprintf(stderr, "bench_decode: nn_sample failed (%d)\n", rc);
        exit(1);
    }
    return (double)total / dt;
}

int main(int argc, char **argv)
{
    int threads = omp_get_max_threads(), repeat = 5, n = SEQ - 1, batch = 32;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--threads") && i + 1 < argc)
            threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--repeat") && i + 1 < argc)
            repeat = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--new") && i + 1 < argc)
            n = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--batch") && i + 1 < argc)
            batch = atoi(argv[++i]);
        else {
            fprintf(stderr,
                    "usage: bench_decode [--threads N] [--repeat N] [--new N] [--batch B]\n");
            return 2;
        }
    }
    if (threads < 1 || repeat < 1 || repeat > MAX_REPEAT || n < 1 || n > SEQ - 1 || batch < 1) {
        fprintf(stderr,
                "bench_decode: --threads >= 1, --repeat in [1, %d], --new in [1, %d], "
                "--batch >= 1\n",
                MAX_REPEAT, SEQ - 1);
        return 2;
    }
    omp_set_num_threads(threads);
    openblas_set_num_threads(threads);
    const char *ct = getenv("OPENBLAS_CORETYPE");
    printf("OpenBLAS core: %s (OPENBLAS_CORETYPE %s); threads: %d\n", openblas_get_corename(),
           ct ? ct : "unset", threads);
    struct nn_config c;
    nn_config_default(&c);
    c.num_hidden_layers = LAYERS;
    c.hidden_size = DIM;
    c.num_attention_heads = c.num_key_value_heads = HEADS;
    c.intermediate_size = HIDDEN;
    c.vocab_size = VOCAB;
    c.max_position_embeddings = SEQ;
    c.tie_word_embeddings = true;
    c.bos_token_id = c.eos_token_id = c.pad_token_id = -1;
    snprintf(c.tokenizer, sizeof c.tokenizer, "bpe");
    nn_model_t *m = NULL;
    char err[256];
    if (nn_model_new(&m, &c, err, sizeof err)) {
        fprintf(stderr, "bench_decode: %s\n", err);
        return 1;
    }
    nn_model_init_random(m, 7, 0.02f);
    printf("shape: llama2.c stories15M (dim %d, %d layers, %d heads, hidden %d, vocab %d, %d "
           "positions, tied; %.1fM parameters), fp32, random weights\n",
           DIM, LAYERS, HEADS, HIDDEN, VOCAB, SEQ, (double)nn_model_num_params(m) / 1e6);
    printf("greedy, 1 prompt token, %d new tokens; median of %d interleaved runs\n\n", n, repeat);
    struct plain w;
    plain_init(&w, m);
    int *first = malloc((size_t)batch * sizeof(int));
    int *eo = malloc((size_t)batch * n * sizeof(int)), *po = malloc((size_t)n * sizeof(int));
    if (!first || !eo || !po)
        return 1;
    uint64_t r = 11;
    for (int b = 0; b < batch; b++)
        first[b] = (int)(nn_rng_next(&r) % VOCAB);
    double e1[MAX_REPEAT] = {0}, eb[MAX_REPEAT] = {0}, p1[MAX_REPEAT] = {0};
    int agree = 0;
    for (int k = 0; k < repeat; k++) {
        e1[k] = engine_decode(m, 1, first, n, eo);
        p1[k] = plain_decode(&w, first[0], n, po);
        if (k == 0)
            while (agree < n && eo[agree] == po[agree])
                agree++;
        eb[k] = engine_decode(m, batch, first, n, eo);
    }
    double me1 = bench_median(e1, repeat), mp1 = bench_median(p1, repeat),
           meb = bench_median(eb, repeat);
    printf("%-44s %7s %12s %8s\n", "decoder", "batch", "tokens/s", "vs plain");
    printf("%-44s %7d %12.1f %7.2fx\n", "plain C (run.c-style, OpenMP over rows)", 1, mp1, 1.0);
    printf("%-44s %7d %12.1f %7.2fx\n", "engine (nn_sample, KV cache)", 1, me1, me1 / mp1);
    printf("%-44s %7d %12.1f %7.2fx\n", "engine (nn_sample, KV cache)", batch, meb, meb / mp1);
    printf("\nbatch 1: the two decoders chose the same first %d of %d tokens\n", agree, n);
    free(first);
    free(eo);
    free(po);
    plain_free(&w);
    nn_model_destroy(&m);
    return 0;
}
