/* model.c - the Llama-family decoder: forward, backward, log-probs, KV-cache decoding.
 *
 * Notation in shape comments: B rows, T padded length, C width, H query heads, KVH key/value
 * heads, D = C / H head size, QD = H * D, KVD = KVH * D, W = QD + 2 * KVD (q, k, v side by side),
 * F intermediate size, V vocabulary, L layers.
 *
 * Parameters are in Hugging Face order; within a layer q, k, v are consecutive, so the three
 * [out, C] matrices form one [W, C] matrix and one sgemm computes them; gate and up likewise
 * form one [2F, C] matrix. */
#include "model.h"

#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attention.h"
#include "err.h"

#define NAME_LEN   80
#define DEC_CHUNK  256   /* tokens per chunk in nn_model_decode */
#define DROP_SITES 2     /* dropout sites per layer: attention output, MLP output */
#define PAR_MIN    32768 /* elements below which an elementwise loop runs on one thread */

/* Phase timers, for tests/bench/bench_nn_phases only (built with -DNN_PHASES; model.h): PHASE(name)
 * adds the wall time since the previous mark to `name`. Marks sit between the calls of the
 * forward and the backward, on the calling thread; in every other build they are nothing. */
#ifdef NN_PHASES
#include <time.h>

#define PHASES_MAX 32
static struct {
    const char *name[PHASES_MAX];
    double sec[PHASES_MAX];
    int n;
    double last;
} phases;

static double phase_clock(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void phase_mark(const char *name)
{
    double now = phase_clock();
    int i = 0;
    while (i < phases.n && strcmp(phases.name[i], name))
        i++;
    if (i == phases.n && phases.n < PHASES_MAX)
        phases.name[phases.n++] = name;
    if (i < phases.n && phases.last > 0.0)
        phases.sec[i] += now - phases.last;
    phases.last = now;
}

void nn_phases_reset(void)
{
    memset(&phases, 0, sizeof phases);
}

int nn_phases_get(const char **names, double *sec, int max)
{
    int n = phases.n < max ? phases.n : max;
    for (int i = 0; i < n; i++) {
        names[i] = phases.name[i];
        sec[i] = phases.sec[i];
    }
    return n;
}
#define PHASE_START() (phases.last = phase_clock())
#define PHASE(name)   phase_mark(name)
#else
#define PHASE_START() ((void)0)
#define PHASE(name)   ((void)0)
#endif

/* Offsets (floats) of one layer's tensors from the start of the layer. */
enum { LT_Q, LT_K, LT_V, LT_O, LT_GATE, LT_UP, LT_DOWN, LT_LN1, LT_LN2, LT_COUNT };

struct nn_model {
    struct nn_config cfg;
    int L, C, H, KVH, D, F, V, QD, KVD, W, Tmax;
    size_t nparams;
    float *params; /* [nparams] */
    float *grads;  /* [nparams] or NULL */
    struct nn_tensor *tensors;
    size_t ntensors;
    char *names; /* [ntensors, NAME_LEN] */
    size_t off_embed, off_layers, layer_size, off_lt[LT_COUNT], off_norm, off_head, off_score;
    float *rope_cos, *rope_sin; /* [Tmax, D/2] */

    /* reserved sizes and buffers */
    int capB, capT, nthr;
    bool train;
    bool att_fused; /* attention on attention.h's kernels (else OpenBLAS products) */
    float *acts;
    float *bwd;
    int *tok, *len, *plen; /* [capB * capT], [capB], [capB] */
    float *resid;          /* [L+1, B, T, C] residual stream entering each layer, then the last */
    float *resid_mid;      /* [L, B, T, C] after the attention residual add */
    float *xn1, *xn2;      /* [L, B, T, C] normed inputs of attention and MLP */
    float *rstd1, *rstd2;  /* [L, B, T] */
    float *qkv;            /* [L, B, T, W] q and k after rotation */
    float *att_lse;        /* [L, B, H, T] log-sum-exp of each attention row */
    float *atty;           /* [L, B, T, QD] attention output before o_proj */
    float *gu;             /* [L, B, T, 2F] gate | up */
    float *hm;             /* [L, B, T, F] silu(gate) * up */
    float *xf, *rstdf;     /* [B, T, C], [B, T] final norm */
    float *tmp;            /* [B, T, C] branch outputs before the residual add */
    float *logits;         /* [B, T, V]; backward overwrites it with d loss / d logits */
    float *lse;            /* [B, T] log-sum-exp of logits rows used by seq_logprobs */
    float *last;           /* [B, C] */
    float *rewards;        /* [B] */
    float *scratch;        /* [nthr, att_scratch(T, D)] attention work space per thread */
    float *dres, *dxn, *dqkv, *datty, *dgu, *dh, *dtmp; /* backward scratch, [B, T, *] */

    /* the last forward */
    int B, T;
    bool have_fwd, have_logits, have_lp;
    float drop_p;
    uint64_t drop_seed;
};

/* ------------------------------------------------------------------------------------------ */
/* random numbers */

static uint64_t mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

uint64_t nn_rng_next(uint64_t *state)
{
    *state += 0x9e3779b97f4a7c15ULL;
    return mix64(*state);
}

float nn_rng_uniform(uint64_t *state)
{
    return (float)(nn_rng_next(state) >> 40) * (1.0f / 16777216.0f);
}

float nn_rng_normal(uint64_t *state)
{
    double u1 = ((double)(nn_rng_next(state) >> 11) + 1.0) * (1.0 / 9007199254740993.0);
    double u2 = (double)(nn_rng_next(state) >> 11) * (1.0 / 9007199254740992.0);
    return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}

/* Dropout keep-scale for one element: 0 or 1 / (1 - p), a pure function of its coordinates. */
static inline float drop_scale(uint64_t seed, int layer, int site, int b, int t, int c, float p)
{
    uint64_t key = seed ^ mix64(((uint64_t)(layer * DROP_SITES + site) << 48) ^
                                ((uint64_t)b << 32) ^ ((uint64_t)t << 16) ^ (uint64_t)c);
    float u = (float)(mix64(key) >> 40) * (1.0f / 16777216.0f);
    return u < p ? 0.0f : 1.0f / (1.0f - p);
}

/* ------------------------------------------------------------------------------------------ */
/* construction */

static void set_err(char *err, size_t errlen, const char *msg, const char *field)
{
    if (err && errlen)
        snprintf(err, errlen, "model config: %s: %s", field, msg);
}

static void add_tensor(nn_model_t *m, size_t *off, const char *name, int ndim, int64_t d0,
                       int64_t d1)
{
    struct nn_tensor *t = &m->tensors[m->ntensors];
    char *nm = m->names + m->ntensors * NAME_LEN;
    snprintf(nm, NAME_LEN, "%s", name);
    t->name = nm;
    t->ndim = ndim;
    t->shape[0] = d0;
    t->shape[1] = ndim == 2 ? d1 : 0;
    t->numel = (size_t)d0 * (size_t)(ndim == 2 ? d1 : 1);
    t->offset = *off;
    *off += t->numel;
    m->ntensors++;
}

int nn_model_new(nn_model_t **out, const struct nn_config *cfg, char *err, size_t errlen)
{
    *out = NULL;
    const struct {
        int v;
        const char *name;
    } pos[] = {{cfg->vocab_size, "vocab_size"},
               {cfg->hidden_size, "hidden_size"},
               {cfg->intermediate_size, "intermediate_size"},
               {cfg->num_hidden_layers, "num_hidden_layers"},
               {cfg->num_attention_heads, "num_attention_heads"},
               {cfg->num_key_value_heads, "num_key_value_heads"},
               {cfg->max_position_embeddings, "max_position_embeddings"}};
    for (size_t i = 0; i < sizeof pos / sizeof pos[0]; i++) {
        if (pos[i].v < 1) {
            set_err(err, errlen, "must be positive", pos[i].name);
            return ERR_INVAL;
        }
    }
    if (cfg->hidden_size % cfg->num_attention_heads ||
        (cfg->hidden_size / cfg->num_attention_heads) % 2) {
        set_err(err, errlen, "hidden_size / num_attention_heads must be an even integer",
                "num_attention_heads");
        return ERR_INVAL;
    }
    if (cfg->num_attention_heads % cfg->num_key_value_heads) {
        set_err(err, errlen, "must divide num_attention_heads", "num_key_value_heads");
        return ERR_INVAL;
    }
    if (!(cfg->rms_norm_eps > 0.0f) || !(cfg->rope_theta > 0.0f)) {
        set_err(err, errlen, "must be positive", "rms_norm_eps/rope_theta");
        return ERR_INVAL;
    }
    /* rope scaling's parameters (and dynamic's head dim cap) as config.c checks them */
    if (cfg->rope_scaling.type != NN_ROPE_DEFAULT && nn_config_validate(cfg, err, errlen))
        return ERR_INVAL;
    nn_model_t *m = calloc(1, sizeof *m);
    if (!m)
        return ERR_NOMEM;
    m->cfg = *cfg;
    m->L = cfg->num_hidden_layers;
    m->C = cfg->hidden_size;
    m->H = cfg->num_attention_heads;
    m->KVH = cfg->num_key_value_heads;
    m->D = m->C / m->H;
    m->F = cfg->intermediate_size;
    m->V = cfg->vocab_size;
    m->QD = m->H * m->D;
    m->KVD = m->KVH * m->D;
    m->W = m->QD + 2 * m->KVD;
    m->Tmax = cfg->max_position_embeddings;
    m->att_fused = nn_att_available() && m->D % 16 == 0;

    size_t cap = 4 + (size_t)m->L * LT_COUNT;
    m->tensors = calloc(cap, sizeof *m->tensors);
    m->names = calloc(cap, NAME_LEN);
    if (!m->tensors || !m->names)
        goto out_nomem;
    size_t off = 0;
    char nm[NAME_LEN];
    m->off_embed = off;
    add_tensor(m, &off, "model.embed_tokens.weight", 2, m->V, m->C);
    m->off_layers = off;
    for (int l = 0; l < m->L; l++) {
        size_t l0 = off;
        static const char *const lname[LT_COUNT] = {
            "self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj",
            "self_attn.o_proj", "mlp.gate_proj",    "mlp.up_proj",
            "mlp.down_proj",    "input_layernorm",  "post_attention_layernorm"};
        const int64_t rows[LT_COUNT] = {m->QD, m->KVD, m->KVD, m->C, m->F, m->F, m->C, m->C, m->C};
        const int64_t cols[LT_COUNT] = {m->C, m->C, m->C, m->QD, m->C, m->C, m->F, 0, 0};
        for (int i = 0; i < LT_COUNT; i++) {
            if (l == 0)
                m->off_lt[i] = off - l0;
            snprintf(nm, sizeof nm, "model.layers.%d.%s.weight", l, lname[i]);
            add_tensor(m, &off, nm, cols[i] ? 2 : 1, rows[i], cols[i]);
        }
        m->layer_size = off - l0;
    }
    m->off_norm = off;
    add_tensor(m, &off, "model.norm.weight", 1, m->C, 0);
    m->off_head = m->off_embed;
    if (!cfg->tie_word_embeddings) {
        m->off_head = off;
        add_tensor(m, &off, "lm_head.weight", 2, m->V, m->C);
    }
    m->off_score = 0;
    if (cfg->reward_head) {
        m->off_score = off;
        add_tensor(m, &off, "score.weight", 2, 1, m->C);
    }
    m->nparams = off;
    m->params = calloc(m->nparams, sizeof(float));
    int half = m->D / 2;
    m->rope_cos = malloc((size_t)m->Tmax * (size_t)half * 2 * sizeof(float));
    if (!m->params || !m->rope_cos)
        goto out_nomem;
    m->rope_sin = m->rope_cos + (size_t)m->Tmax * half;
    for (size_t i = 0; i < m->ntensors; i++)
        m->tensors[i].data = m->params + m->tensors[i].offset;
    /* As Hugging Face (fp32): inv_freq from the config's rope scaling (nn_config_rope_inv_freq;
     * dynamic NTK's frequencies for rows past its original context are computed per row, see
     * rope_grown), angle = pos * inv_freq. The sin table is scratch for inv_freq first. */
    nn_config_rope_inv_freq(cfg, 0, m->rope_sin);
    for (int i = half - 1; i >= 0; i--) {
        float inv = m->rope_sin[i];
        for (int t = 0; t < m->Tmax; t++) {
            float a = (float)t * inv;
            m->rope_cos[(size_t)t * half + i] = cosf(a);
            m->rope_sin[(size_t)t * half + i] = sinf(a);
        }
    }
    m->nthr = 1;
    *out = m;
    return ERR_OK;
out_nomem:
    nn_model_destroy(&m);
    return ERR_NOMEM;
}

void nn_model_destroy(nn_model_t **mp)
{
    if (!mp || !*mp)
        return;
    nn_model_t *m = *mp;
    free(m->params);
    free(m->grads);
    free(m->tensors);
    free(m->names);
    free(m->rope_cos);
    free(m->acts);
    free(m->bwd);
    free(m->tok);
    free(m);
    *mp = NULL;
}

const struct nn_config *nn_model_config(const nn_model_t *m)
{
    return &m->cfg;
}

void nn_model_init_random(nn_model_t *m, uint64_t seed, float std)
{
    for (size_t i = 0; i < m->ntensors; i++) {
        struct nn_tensor *t = &m->tensors[i];
        if (t->ndim == 1) {
            for (size_t j = 0; j < t->numel; j++)
                t->data[j] = 1.0f;
            continue;
        }
        /* One stream per tensor, so a tensor's values do not depend on the ones before it. */
        uint64_t s = seed ^ mix64(0x51ed270b27d5ba3ULL + i);
        for (size_t j = 0; j < t->numel; j++)
            t->data[j] = std * nn_rng_normal(&s);
    }
}

size_t nn_model_num_params(const nn_model_t *m)
{
    return m->nparams;
}

float *nn_model_params(nn_model_t *m)
{
    return m->params;
}

const float *nn_model_params_const(const nn_model_t *m)
{
    return m->params;
}

float *nn_model_grads(nn_model_t *m)
{
    return m->grads;
}

size_t nn_model_num_tensors(const nn_model_t *m)
{
    return m->ntensors;
}

const struct nn_tensor *nn_model_tensor(const nn_model_t *m, size_t i)
{
    return i < m->ntensors ? &m->tensors[i] : NULL;
}

const struct nn_tensor *nn_model_find_tensor(const nn_model_t *m, const char *name)
{
    for (size_t i = 0; i < m->ntensors; i++)
        if (!strcmp(m->tensors[i].name, name))
            return &m->tensors[i];
    return NULL;
}

/* Attention work space of one thread for sequences of T tokens: the OpenBLAS path keeps two
 * [T, T] score blocks; the fused one P and dS as [T, T16] (rows padded to whole vectors), K^T and
 * V^T as [D, T16], and one float a row. */
#define ROUND16(x) (((x) + 15) & ~15)
static size_t att_scratch(int T, int D)
{
    size_t t16 = ROUND16((size_t)T);
    return 2 * t16 * (t16 + (size_t)D) + t16;
}

int nn_model_reserve(nn_model_t *m, int B, int T, bool train)
{
    if (B < 1 || T < 1 || T > m->Tmax)
        return ERR_INVAL;
    int nthr = omp_get_max_threads();
    if (B <= m->capB && T <= m->capT && (!train || m->train) && nthr <= m->nthr)
        return ERR_OK;
    if (B < m->capB)
        B = m->capB;
    if (T < m->capT)
        T = m->capT;
    if (nthr < m->nthr)
        nthr = m->nthr;
    train = train || m->train;
    size_t BT = (size_t)B * T, L = (size_t)m->L, C = m->C;
    size_t n_acts = (L + 1) * BT * C + 3 * L * BT * C + 2 * L * BT + L * BT * m->W +
                    L * (size_t)B * m->H * T + L * BT * m->QD + L * BT * 3 * m->F + BT * C + BT +
                    BT * C + BT * m->V + BT + (size_t)B * C + B +
                    (size_t)nthr * att_scratch(T, m->D);
    size_t n_bwd = train ? BT * (3 * C + (size_t)m->W + (size_t)m->QD + 3 * (size_t)m->F) : 0;
    float *acts = malloc(n_acts * sizeof(float));
    float *bwd = train ? malloc(n_bwd * sizeof(float)) : NULL;
    int *tok = malloc((BT + 2 * (size_t)B) * sizeof(int));
    float *grads = train && !m->grads ? calloc(m->nparams, sizeof(float)) : NULL;
    if (!acts || (train && !bwd) || !tok || (train && !m->grads && !grads)) {
        free(acts);
        free(bwd);
        free(tok);
        free(grads);
        return ERR_NOMEM;
    }
    free(m->acts);
    free(m->bwd);
    free(m->tok);
    m->acts = acts;
    m->bwd = bwd;
    m->tok = tok;
    m->len = tok + BT;
    m->plen = m->len + B;
    if (grads) {
        m->grads = grads;
        for (size_t i = 0; i < m->ntensors; i++)
            m->tensors[i].grad = m->grads + m->tensors[i].offset;
    }
    float *p = acts;
#define CARVE(ptr, n)                                                                              \
    do {                                                                                           \
        (ptr) = p;                                                                                 \
        p += (n);                                                                                  \
    } while (0)
    CARVE(m->resid, (L + 1) * BT * C);
    CARVE(m->resid_mid, L * BT * C);
    CARVE(m->xn1, L * BT * C);
    CARVE(m->xn2, L * BT * C);
    CARVE(m->rstd1, L * BT);
    CARVE(m->rstd2, L * BT);
    CARVE(m->qkv, L * BT * m->W);
    CARVE(m->att_lse, L * (size_t)B * m->H * T);
    CARVE(m->atty, L * BT * m->QD);
    CARVE(m->gu, L * BT * 2 * m->F);
    CARVE(m->hm, L * BT * m->F);
    CARVE(m->xf, BT * C);
    CARVE(m->rstdf, BT);
    CARVE(m->tmp, BT * C);
    CARVE(m->logits, BT * m->V);
    CARVE(m->lse, BT);
    CARVE(m->last, (size_t)B * C);
    CARVE(m->rewards, (size_t)B);
    CARVE(m->scratch, (size_t)nthr * att_scratch(T, m->D));
    if (train) {
        p = bwd;
        CARVE(m->dres, BT * C);
        CARVE(m->dxn, BT * C);
        CARVE(m->dqkv, BT * m->W);
        CARVE(m->datty, BT * m->QD);
        CARVE(m->dgu, BT * 2 * m->F);
        CARVE(m->dh, BT * m->F);
        CARVE(m->dtmp, BT * C);
    }
#undef CARVE
    m->capB = B;
    m->capT = T;
    m->nthr = nthr;
    m->train = train;
    m->have_fwd = m->have_logits = m->have_lp = false;
    return ERR_OK;
}

/* ------------------------------------------------------------------------------------------ */
/* layers */

/* y [N, out] = x [N, in] @ w[out, in]^T (+ y if beta = 1) */
static void matmul(float *y, const float *x, const float *w, int N, int in, int out, float beta)
{
    if (N == 1) { /* one row (decoding): a matrix-vector product, no packing of w */
        cblas_sgemv(CblasRowMajor, CblasNoTrans, out, in, 1.0f, w, in, x, 1, beta, y, 1);
        return;
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, out, in, 1.0f, x, in, w, in, beta, y,
                out);
}

/* dx [N, in] (= or +=) dy [N, out] @ w [out, in]; dw [out, in] += dy^T @ x */
static void matmul_bwd(float *dx, float *dw, const float *dy, const float *x, const float *w, int N,
                       int in, int out, float beta_dx)
{
    if (dx)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, in, out, 1.0f, dy, out, w, in,
                    beta_dx, dx, in);
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, out, in, N, 1.0f, dy, out, x, in, 1.0f, dw,
                in);
}

/* ------------------------------------------------------------------------------------------ */
/* row kernels: the elementwise work between the matrix products. The build targets baseline
 * x86-64 (SSE2); on x86-64 with GCC each kernel is also compiled for AVX2+FMA and AVX-512 and the
 * loader picks the best the CPU has (target_clones). exp_poly is a branch-free exp that the
 * compiler vectorizes (glibc's expf is a scalar call). */

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define NN_VEC __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define NN_VEC
#endif

/* exp(x) for x in [-87, 88] (clamped outside): 2^n e^r with |r| <= ln2 / 2, degree-6 Taylor
 * polynomial; relative error about 2e-7. */
static inline float exp_poly(float x)
{
    x = x < -87.0f ? -87.0f : x;
    x = x > 88.0f ? 88.0f : x;
    float n = (x * 1.44269504f + 12582912.0f) - 12582912.0f; /* round to nearest */
    float r = x - n * 0.693145751953125f;
    r = r - n * 1.428606765330187e-06f;
    float p = 1.0f / 720.0f;
    p = p * r + 1.0f / 120.0f;
    p = p * r + 1.0f / 24.0f;
    p = p * r + 1.0f / 6.0f;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    int32_t e = ((int32_t)n + 127) << 23;
    float sc;
    memcpy(&sc, &e, sizeof sc);
    return p * sc;
}

NN_VEC static float row_max(const float *x, int n)
{
    float mx = x[0];
#pragma omp simd reduction(max : mx)
    for (int i = 1; i < n; i++)
        mx = x[i] > mx ? x[i] : mx;
    return mx;
}

/* sum_i exp(x[i] - shift) */
NN_VEC static float row_exp_sum(const float *x, int n, float shift)
{
    float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
    for (int i = 0; i < n; i++)
        sum += exp_poly(x[i] - shift);
    return sum;
}

/* y[i] = a * exp(x[i] - shift) (y may be x) */
NN_VEC static void row_exp_scale(float *y, const float *x, int n, float shift, float a)
{
#pragma omp simd
    for (int i = 0; i < n; i++)
        y[i] = a * exp_poly(x[i] - shift);
}

/* Softmax in place over x[0, n); returns the log-sum-exp. */
NN_VEC static float row_softmax(float *x, int n)
{
    float mx = x[0], sum = 0.0f;
#pragma omp simd reduction(max : mx)
    for (int i = 1; i < n; i++)
        mx = x[i] > mx ? x[i] : mx;
#pragma omp simd reduction(+ : sum)
    for (int i = 0; i < n; i++) {
        x[i] = exp_poly(x[i] - mx);
        sum += x[i];
    }
    float inv = 1.0f / sum;
#pragma omp simd
    for (int i = 0; i < n; i++)
        x[i] *= inv;
    /* sum >= 1: the largest entry contributes exp(0) */
    // cppcheck-suppress invalidFunctionArg
    return mx + logf(sum);
}

/* d[i] = a[i, :] . b[i, :] for n rows of D, both ld apart */
NN_VEC static void rows_dot(float *d, const float *a, const float *b, int ld, int n, int D)
{
    for (int i = 0; i < n; i++) {
        const float *x = a + (size_t)i * ld, *y = b + (size_t)i * ld;
        float s = 0.0f;
#pragma omp simd reduction(+ : s)
        for (int c = 0; c < D; c++)
            s += x[c] * y[c];
        d[i] = s;
    }
}

/* x[i] = exp(x[i] - shift); returns their sum */
NN_VEC static float row_exp_store_sum(float *x, int n, float shift)
{
    float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
    for (int i = 0; i < n; i++) {
        x[i] = exp_poly(x[i] - shift);
        sum += x[i];
    }
    return sum;
}

NN_VEC static void row_scale(float *x, int n, float a)
{
#pragma omp simd
    for (int i = 0; i < n; i++)
        x[i] *= a;
}

/* p[i] = exp(s[i] - lse) in place of the scores s, g[i] = p[i] * (g[i] - delta): the softmax
 * backward of one row given delta = sum_j p[j] g[j] */
NN_VEC static void row_p_ds(float *p, float *g, int n, float lse, float delta)
{
#pragma omp simd
    for (int i = 0; i < n; i++) {
        float e = exp_poly(p[i] - lse);
        p[i] = e;
        g[i] = e * (g[i] - delta);
    }
}

/* g[i] = p[i] * (g[i] - sum_j p[j] g[j]) : the softmax backward of one row */
NN_VEC static void row_softmax_bwd(float *g, const float *p, int n)
{
    float dot = 0.0f;
#pragma omp simd reduction(+ : dot)
    for (int i = 0; i < n; i++)
        dot += p[i] * g[i];
#pragma omp simd
    for (int i = 0; i < n; i++)
        g[i] = p[i] * (g[i] - dot);
}

/* h = silu(g) * u */
NN_VEC static void row_swiglu(float *h, const float *g, const float *u, int n)
{
#pragma omp simd
    for (int j = 0; j < n; j++)
        h[j] = g[j] / (1.0f + exp_poly(-g[j])) * u[j];
}

NN_VEC static void row_swiglu_bwd(float *dg, float *du, const float *dh, const float *g,
                                  const float *u, int n)
{
#pragma omp simd
    for (int j = 0; j < n; j++) {
        float s = 1.0f / (1.0f + exp_poly(-g[j]));
        du[j] = dh[j] * g[j] * s;
        dg[j] = dh[j] * u[j] * s * (1.0f + g[j] * (1.0f - s));
    }
}

NN_VEC static float row_rmsnorm(float *o, const float *x, const float *w, int C, float eps)
{
    float ss = 0.0f;
#pragma omp simd reduction(+ : ss)
    for (int c = 0; c < C; c++)
        ss += x[c] * x[c];
    float r = 1.0f / sqrtf(ss / (float)C + eps);
#pragma omp simd
    for (int c = 0; c < C; c++)
        o[c] = (x[c] * r) * w[c];
    return r;
}

NN_VEC static void row_rmsnorm_bwd(float *dx, const float *g, const float *x, const float *w,
                                   float r, int C)
{
    float dot = 0.0f;
#pragma omp simd reduction(+ : dot)
    for (int c = 0; c < C; c++)
        dot += g[c] * w[c] * x[c];
    float k = r * r * r * dot / (float)C;
#pragma omp simd
    for (int c = 0; c < C; c++)
        dx[c] += r * g[c] * w[c] - k * x[c];
}

NN_VEC static float row_dot(const float *a, const float *b, int n)
{
    float d = 0.0f;
#pragma omp simd reduction(+ : d)
    for (int i = 0; i < n; i++)
        d += a[i] * b[i];
    return d;
}

NN_VEC static void row_axpy(float *y, const float *x, int n, float a)
{
#pragma omp simd
    for (int i = 0; i < n; i++)
        y[i] += a * x[i];
}

/* out[i] = x[i] / rms(x[i]) * w ; rstd[i] = 1 / rms(x[i]) */
static void rmsnorm_fwd(float *out, float *rstd, const float *x, const float *w, int N, int C,
                        float eps)
{
#pragma omp parallel for schedule(static) if ((size_t)N * C >= PAR_MIN)
    for (int i = 0; i < N; i++)
        rstd[i] = row_rmsnorm(out + (size_t)i * C, x + (size_t)i * C, w, C, eps);
}

/* dx += d rmsnorm / dx . dout ; dw += sum_i dout[i] * x[i] * rstd[i] */
static void rmsnorm_bwd(float *dx, float *dw, const float *dout, const float *x, const float *w,
                        const float *rstd, int N, int C)
{
#pragma omp parallel for schedule(static) if ((size_t)N * C >= PAR_MIN)
    for (int i = 0; i < N; i++)
        row_rmsnorm_bwd(dx + (size_t)i * C, dout + (size_t)i * C, x + (size_t)i * C, w, rstd[i], C);
    int nb = (C + 63) / 64;
#pragma omp parallel for schedule(static) if ((size_t)N * C >= PAR_MIN)
    for (int blk = 0; blk < nb; blk++) {
        int c0 = blk * 64, c1 = c0 + 64 < C ? c0 + 64 : C;
        float acc[64] = {0};
        for (int i = 0; i < N; i++) {
            const float *xi = x + (size_t)i * C, *gi = dout + (size_t)i * C;
            float r = rstd[i];
            for (int c = c0; c < c1; c++)
                acc[c - c0] += gi[c] * xi[c] * r;
        }
        for (int c = c0; c < c1; c++)
            dw[c] += acc[c - c0];
    }
}

/* Rotate `nh` heads of size D at x (stride D) for position t; inverse rotation if `inv`. */
static inline void rope_apply(float *x, int nh, int D, const float *cs, const float *sn, bool inv)
{
    int half = D / 2;
    for (int h = 0; h < nh; h++) {
        float *a = x + (size_t)h * D, *b = a + half;
        for (int i = 0; i < half; i++) {
            float c = cs[i], s = inv ? -sn[i] : sn[i];
            float x1 = a[i], x2 = b[i];
            a[i] = x1 * c - x2 * s;
            b[i] = x2 * c + x1 * s;
        }
    }
}

/* Attention works on blocks of ATT_BLK query rows: block [i0, i0 + rows) needs keys [0, i0 + rows)
 * only, so the products skip most of the masked upper triangle (about 5/8 of the full square at
 * T 256, tending to 1/2 for long sequences). */
#define ATT_BLK 64

/* Attention for one layer, q and k in qkv already rotated. Each (row, head) runs on one thread,
 * in one of two ways: OpenBLAS products over blocks of ATT_BLK query rows (*_blas), or the fused
 * kernels (m->att_fused, *_fused): attention.h's tiles of NN_ATT_MR query rows, which compute only
 * the keys their rows see (to the next 16), keep the scores in a [NN_ATT_MR, T16] block in L1, and
 * pack and call nothing per block as OpenBLAS does. Both give the same results within fp32
 * rounding. The forward saves the log-sum-exp of every score row; the backward recomputes the
 * probabilities from it (no [T, T] per head stored).
 *
 * Rows of q, k, v (and of their gradients) are W apart, rows of y and dy QD apart; n is the row's
 * length, and the callers zero the padding rows [n, T) of the results. */

/* The fused path's work space (att_scratch): P and dS [T, T16], K^T and V^T [D, T16], delta [T16]
 * (the forward uses the first [NN_ATT_MR, T16] as its score block, K^T where the backward has it).
 */
struct att_work {
    float *P, *dS, *Kt, *Vt, *delta;
};

static struct att_work att_work_at(const nn_model_t *m, float *base)
{
    size_t t16 = ROUND16((size_t)m->T), D = (size_t)m->D;
    struct att_work w = {.P = base, .dS = base + (size_t)m->T * t16};
    w.Kt = w.dS + (size_t)m->T * t16;
    w.Vt = w.Kt + D * t16;
    w.delta = w.Vt + D * t16;
    return w;
}

static void head_fwd_blas(const nn_model_t *m, float *S, int n, const float *q, const float *k,
                          const float *v, float *y, float *ls)
{
    int D = m->D, W = m->W, QD = m->QD;
    float scale = 1.0f / sqrtf((float)D);
    for (int i0 = 0; i0 < n; i0 += ATT_BLK) {
        int rows = n - i0 < ATT_BLK ? n - i0 : ATT_BLK, kc = i0 + rows;
        /* S [rows, kc] = scale * q_blk k^T */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, kc, D, scale, q + (size_t)i0 * W,
                    W, k, W, 0.0f, S, kc);
        for (int r = 0; r < rows; r++) {
            int i = i0 + r;
            float *row = S + (size_t)r * kc;
            ls[i] = row_softmax(row, i + 1);
            for (int j = i + 1; j < kc; j++)
                row[j] = 0.0f;
        }
        /* y_blk [rows, D] = P [rows, kc] @ v [kc, D] */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, D, kc, 1.0f, S, kc, v, W, 0.0f,
                    y + (size_t)i0 * QD, QD);
    }
}

/* The tile over whole vectors of `cols` columns (a multiple of 16), 64 at a time. */
static void att_cols(int mr, int cols, int K, const float *a, ptrdiff_t ars, ptrdiff_t acs,
                     const float *b, ptrdiff_t ldb, float *c, ptrdiff_t ldc, float alpha, bool add)
{
    for (int j0 = 0; j0 < cols; j0 += 64) {
        int nv = (cols - j0) / 16 < 4 ? (cols - j0) / 16 : 4;
        nn_att_tile(nv, mr, K, a, ars, acs, b + j0, ldb, c + j0, ldc, alpha, add);
    }
}

static void head_fwd_fused(const nn_model_t *m, float *base, int n, const float *q, const float *k,
                           const float *v, float *y, float *ls)
{
    int D = m->D, W = m->W, QD = m->QD, T16 = ROUND16(m->T);
    float scale = 1.0f / sqrtf((float)D);
    struct att_work w = att_work_at(m, base);
    float *S = w.P; /* [NN_ATT_MR, T16] */
    nn_att_pack_t(w.Kt, T16, k, W, n, ROUND16(n), D);
    for (int i0 = 0; i0 < n; i0 += NN_ATT_MR) {
        int mr = n - i0 < NN_ATT_MR ? n - i0 : NN_ATT_MR, kc = i0 + mr;
        float inv[NN_ATT_MR];
        /* S [mr, kc] = scale q_tile k^T, then exp(S - max) unnormalized */
        att_cols(mr, ROUND16(kc), D, q + (size_t)i0 * W, W, 1, w.Kt, T16, S, T16, scale, false);
        for (int r = 0; r < mr; r++) {
            int i = i0 + r, nr = ROUND16(i + 1);
            float *row = S + (size_t)r * T16;
            for (int j = i + 1; j < nr; j++)
                row[j] = -INFINITY; /* whole vectors, no scalar tails: exp_poly -> 1e-38 */
            float mx = row_max(row, nr), sum = row_exp_store_sum(row, nr, mx);
            ls[i] = mx + logf(sum); /* sum >= 1 */
            inv[r] = 1.0f / sum;
            for (int j = i + 1; j < kc; j++)
                row[j] = 0.0f;
        }
        /* y_tile [mr, D] = exp(S - max) v / sum */
        att_cols(mr, D, kc, S, T16, 1, v, W, y + (size_t)i0 * QD, QD, 1.0f, false);
        for (int r = 0; r < mr; r++)
            row_scale(y + (size_t)(i0 + r) * QD, D, inv[r]);
    }
}

static void attention_fwd(nn_model_t *m, float *atty, float *lse, const float *qkv)
{
    int B = m->B, T = m->T, H = m->H, D = m->D, W = m->W, QD = m->QD, grp = m->H / m->KVH;
#pragma omp parallel for collapse(2) schedule(dynamic) num_threads(m->nthr)
    for (int b = 0; b < B; b++) {
        for (int h = 0; h < H; h++) {
            int n = m->len[b], kvh = h / grp;
            float *S = m->scratch + (size_t)omp_get_thread_num() * att_scratch(T, D);
            const float *q = qkv + (size_t)b * T * W + (size_t)h * D;
            const float *k = qkv + (size_t)b * T * W + QD + (size_t)kvh * D;
            const float *v = k + m->KVD;
            float *y = atty + (size_t)b * T * QD + (size_t)h * D;
            float *ls = lse + ((size_t)b * H + h) * T;
            if (m->att_fused)
                head_fwd_fused(m, S, n, q, k, v, y, ls);
            else
                head_fwd_blas(m, S, n, q, k, v, y, ls);
            for (int i = n; i < T; i++)
                memset(y + (size_t)i * QD, 0, (size_t)D * sizeof(float));
        }
    }
}

/* One head's backward on OpenBLAS products: dq, and dk, dv added to (the caller zeroes them). */
static void head_bwd_blas(const nn_model_t *m, float *S, int n, const float *q, const float *k,
                          const float *v, const float *dy, const float *ls, float *dq, float *dk,
                          float *dv)
{
    int T = m->T, D = m->D, W = m->W, QD = m->QD;
    float scale = 1.0f / sqrtf((float)D), *dP = S + (size_t)T * T;
    for (int i0 = 0; i0 < n; i0 += ATT_BLK) {
        int rows = n - i0 < ATT_BLK ? n - i0 : ATT_BLK, kc = i0 + rows;
        const float *qb = q + (size_t)i0 * W, *dyb = dy + (size_t)i0 * QD;
        /* recompute P [rows, kc] from the saved log-sum-exp */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, kc, D, scale, qb, W, k, W, 0.0f,
                    S, kc);
        for (int r = 0; r < rows; r++) {
            float *row = S + (size_t)r * kc;
            int i = i0 + r;
            row_exp_scale(row, row, i + 1, ls[i], 1.0f);
            for (int j = i + 1; j < kc; j++)
                row[j] = 0.0f;
        }
        /* dP = dy_blk v^T ; dv += P^T dy_blk */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, kc, D, 1.0f, dyb, QD, v, W, 0.0f,
                    dP, kc);
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, kc, D, rows, 1.0f, S, kc, dyb, QD,
                    1.0f, dv, W);
        /* dS = P * (dP - rowsum(P * dP)) */
        for (int r = 0; r < rows; r++) {
            float *g = dP + (size_t)r * kc;
            int i = i0 + r;
            row_softmax_bwd(g, S + (size_t)r * kc, i + 1);
            for (int j = i + 1; j < kc; j++)
                g[j] = 0.0f;
        }
        /* dq_blk = scale dS k ; dk += scale dS^T q_blk */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, D, kc, scale, dP, kc, k, W,
                    0.0f, dq + (size_t)i0 * W, W);
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, kc, D, rows, scale, dP, kc, qb, W,
                    1.0f, dk, W);
    }
}

/* One head's backward on the fused kernels, K^T and V^T packed in w by the caller: for each query
 * tile, P from the saved log-sum-exp, dP = dy v^T, and dS = P (dP - delta) with delta_i = dy_i .
 * y_i (= sum_j P_ij dP_ij, one dot of D instead of a pass over the row), kept whole as [n, T16];
 * dq from each tile; then dv and dk over key tiles, each reading only the rows i >= its keys. The
 * group's first head writes dk and dv (`first`), the others add to them. */
static void head_bwd_fused(const nn_model_t *m, const struct att_work *w, int n, const float *q,
                           const float *k, const float *dy, const float *y, const float *ls,
                           float *dq, float *dk, float *dv, bool first)
{
    int D = m->D, W = m->W, QD = m->QD, T16 = ROUND16(m->T);
    float scale = 1.0f / sqrtf((float)D), *delta = w->delta;
    rows_dot(delta, dy, y, QD, n, D);
    for (int i0 = 0; i0 < n; i0 += NN_ATT_MR) {
        int mr = n - i0 < NN_ATT_MR ? n - i0 : NN_ATT_MR, kc = i0 + mr, kc16 = ROUND16(kc);
        float *P = w->P + (size_t)i0 * T16, *dS = w->dS + (size_t)i0 * T16;
        att_cols(mr, kc16, D, q + (size_t)i0 * W, W, 1, w->Kt, T16, P, T16, scale, false);
        att_cols(mr, kc16, D, dy + (size_t)i0 * QD, QD, 1, w->Vt, T16, dS, T16, 1.0f, false);
        for (int r = 0; r < mr; r++) {
            int i = i0 + r, nr = ROUND16(i + 1);
            float *pr = P + (size_t)r * T16, *gr = dS + (size_t)r * T16;
            for (int j = i + 1; j < nr; j++) { /* whole vectors, as in the forward; */
                pr[j] = -INFINITY;             /* dP = delta makes dS exactly 0, */
                gr[j] = delta[i];              /* not 1e-38 * x: no denormals */
            }
            row_p_ds(pr, gr, nr, ls[i], delta[i]);
            for (int j = i + 1; j < kc; j++) /* columns past kc are never read */
                pr[j] = gr[j] = 0.0f;
        }
        /* dq_tile = scale dS k */
        att_cols(mr, D, kc, dS, T16, 1, k, W, dq + (size_t)i0 * W, W, scale, false);
    }
    /* key tile [j0, j0 + mj): dv (+)= P^T dy, dk (+)= scale dS^T q over rows i >= j0 (the rows
     * of one tile were zeroed past their own position up to the tile's end) */
    for (int j0 = 0; j0 < n; j0 += NN_ATT_MR) {
        int mj = n - j0 < NN_ATT_MR ? n - j0 : NN_ATT_MR, depth = n - j0;
        size_t at = (size_t)j0 * T16 + (size_t)j0;
        att_cols(mj, D, depth, w->P + at, 1, T16, dy + (size_t)j0 * QD, QD, dv + (size_t)j0 * W, W,
                 1.0f, !first);
        att_cols(mj, D, depth, w->dS + at, 1, T16, q + (size_t)j0 * W, W, dk + (size_t)j0 * W, W,
                 scale, !first);
    }
}

/* Attention backward: datty -> dqkv (q and k gradients with respect to the rotated values).
 * Parallel over (row, kv head): the heads of one group share dk, dv. */
static void attention_bwd(nn_model_t *m, float *dqkv, const float *datty, const float *qkv,
                          const float *lse, const float *atty)
{
    int B = m->B, T = m->T, H = m->H, D = m->D, W = m->W, QD = m->QD, KVH = m->KVH;
    int grp = H / KVH, T16 = ROUND16(T);
#pragma omp parallel for collapse(2) schedule(dynamic) num_threads(m->nthr)
    for (int b = 0; b < B; b++) {
        for (int kvh = 0; kvh < KVH; kvh++) {
            int n = m->len[b];
            float *S = m->scratch + (size_t)omp_get_thread_num() * att_scratch(T, D);
            struct att_work w = att_work_at(m, S);
            const float *k = qkv + (size_t)b * T * W + QD + (size_t)kvh * D;
            const float *v = k + m->KVD;
            float *dk = dqkv + (size_t)b * T * W + QD + (size_t)kvh * D;
            float *dv = dk + m->KVD;
            if (m->att_fused) {
                nn_att_pack_t(w.Kt, T16, k, W, n, ROUND16(n), D);
                nn_att_pack_t(w.Vt, T16, v, W, n, ROUND16(n), D);
            }
            /* the fused path writes rows [0, n) with the group's first head; OpenBLAS adds */
            for (int i = m->att_fused ? n : 0; i < T; i++) {
                memset(dk + (size_t)i * W, 0, (size_t)D * sizeof(float));
                memset(dv + (size_t)i * W, 0, (size_t)D * sizeof(float));
            }
            for (int h = kvh * grp; h < (kvh + 1) * grp; h++) {
                const float *q = qkv + (size_t)b * T * W + (size_t)h * D;
                const float *dy = datty + (size_t)b * T * QD + (size_t)h * D;
                const float *ls = lse + ((size_t)b * H + h) * T;
                float *dq = dqkv + (size_t)b * T * W + (size_t)h * D;
                if (m->att_fused)
                    head_bwd_fused(m, &w, n, q, k, dy, atty + (size_t)b * T * QD + (size_t)h * D,
                                   ls, dq, dk, dv, h == kvh * grp);
                else
                    head_bwd_blas(m, S, n, q, k, v, dy, ls, dq, dk, dv);
                for (int i = n; i < T; i++)
                    memset(dq + (size_t)i * W, 0, (size_t)D * sizeof(float));
            }
        }
    }
}

bool nn_model_set_fused_attention(nn_model_t *m, bool on)
{
    m->att_fused = on && m->D % 16 == 0;
    return m->att_fused;
}

/* Rotate the q and k heads at `row` for position t of a dynamic-NTK sequence of seq_len tokens
 * past the original context: transformers recomputes inv_freq from the sequence length seen
 * (max(position_ids) + 1 of the forward call), so the frequencies are computed here rather than
 * read from the model's table. The config caps the head dim (NN_ROPE_DYNAMIC_MAX_HEAD_DIM). */
static void rope_grown(const nn_model_t *m, float *row, int seq_len, int t, bool inv)
{
    float cs[NN_ROPE_DYNAMIC_MAX_HEAD_DIM / 2], sn[NN_ROPE_DYNAMIC_MAX_HEAD_DIM / 2];
    int half = m->D / 2;
    nn_config_rope_inv_freq(&m->cfg, seq_len, cs);
    for (int i = 0; i < half; i++) {
        float a = (float)t * cs[i];
        cs[i] = cosf(a);
        sn[i] = sinf(a);
    }
    rope_apply(row, m->H + m->KVH, m->D, cs, sn, inv);
}

/* Rotate (or un-rotate the gradient of) q and k of every row of a [B, T, W] buffer. A dynamic-NTK
 * row longer than the original context gets the frequencies of its own length, as transformers
 * gives that sequence run alone (so a row's results do not depend on the batch's padding). */
static void rope_rows(const nn_model_t *m, float *qkv, bool inv)
{
    int B = m->B, T = m->T, half = m->D / 2;
#pragma omp parallel for collapse(2)                                                               \
    schedule(static) if ((size_t)B * T * (m->H + m->KVH) * m->D >= PAR_MIN)
    for (int b = 0; b < B; b++) {
        for (int t = 0; t < T; t++) {
            float *row = qkv + ((size_t)b * T + t) * m->W;
            if (nn_config_rope_grows(&m->cfg, m->len[b])) {
                rope_grown(m, row, m->len[b], t, inv);
                continue;
            }
            const float *cs = m->rope_cos + (size_t)t * half, *sn = m->rope_sin + (size_t)t * half;
            rope_apply(row, m->H + m->KVH, m->D, cs, sn, inv);
        }
    }
}

/* resid_out = resid_in + dropout(branch) */
static void residual_add(const nn_model_t *m, float *out, const float *in, const float *branch,
                         int layer, int site)
{
    int B = m->B, T = m->T, C = m->C;
    float p = m->drop_p;
#pragma omp parallel for collapse(2) schedule(static) if ((size_t)B * T * C >= PAR_MIN)
    for (int b = 0; b < B; b++) {
        for (int t = 0; t < T; t++) {
            size_t r = ((size_t)b * T + t) * C;
            if (p > 0.0f) {
                for (int c = 0; c < C; c++)
                    out[r + c] = in[r + c] +
                                 branch[r + c] * drop_scale(m->drop_seed, layer, site, b, t, c, p);
            } else {
                for (int c = 0; c < C; c++)
                    out[r + c] = in[r + c] + branch[r + c];
            }
        }
    }
}

/* d branch = dropout mask applied to d resid (returns dres itself without dropout) */
static const float *residual_bwd(const nn_model_t *m, float *dst, const float *dres, int layer,
                                 int site)
{
    if (!(m->drop_p > 0.0f))
        return dres;
    int B = m->B, T = m->T, C = m->C;
#pragma omp parallel for collapse(2) schedule(static) if ((size_t)B * T * C >= PAR_MIN)
    for (int b = 0; b < B; b++) {
        for (int t = 0; t < T; t++) {
            size_t r = ((size_t)b * T + t) * C;
            for (int c = 0; c < C; c++)
                dst[r + c] =
                    dres[r + c] * drop_scale(m->drop_seed, layer, site, b, t, c, m->drop_p);
        }
    }
    return dst;
}

static inline float *layer_w(const nn_model_t *m, float *base, int l, int which)
{
    return base + m->off_layers + (size_t)l * m->layer_size + m->off_lt[which];
}

/* ------------------------------------------------------------------------------------------ */
/* forward and backward */

int nn_model_forward(nn_model_t *m, const struct nn_batch *bt, const struct nn_fwd_opts *opts)
{
    struct nn_fwd_opts def = {.logits = true};
    if (!opts)
        opts = &def;
    if (!bt || bt->B < 1 || bt->T < 1 || !bt->tokens || !bt->lengths)
        return ERR_INVAL;
    if (bt->B > m->capB || bt->T > m->capT)
        return ERR_TOOBIG;
    if (!(opts->dropout >= 0.0f && opts->dropout < 1.0f))
        return ERR_INVAL;
    int B = bt->B, T = bt->T, C = m->C, V = m->V, F = m->F;
    for (int b = 0; b < B; b++) {
        if (bt->lengths[b] < 1 || bt->lengths[b] > T)
            return ERR_INVAL;
        for (int t = 0; t < bt->lengths[b]; t++) {
            int id = bt->tokens[(size_t)b * T + t];
            if (id < 0 || id >= V)
                return ERR_INVAL;
        }
    }
    m->B = B;
    m->T = T;
    m->drop_p = opts->dropout;
    m->drop_seed = opts->dropout_seed;
    m->have_fwd = m->have_logits = m->have_lp = false;
    size_t BT = (size_t)B * T;
    for (int b = 0; b < B; b++) {
        m->len[b] = bt->lengths[b];
        for (int t = 0; t < T; t++)
            m->tok[(size_t)b * T + t] = t < bt->lengths[b] ? bt->tokens[(size_t)b * T + t] : -1;
    }
    const float *P = m->params;
    PHASE_START();
    /* embedding; pad rows are zero */
#pragma omp parallel for schedule(static) if (BT * C >= PAR_MIN)
    for (size_t r = 0; r < BT; r++) {
        int id = m->tok[r];
        if (id >= 0)
            memcpy(m->resid + r * C, P + m->off_embed + (size_t)id * C, (size_t)C * sizeof(float));
        else
            memset(m->resid + r * C, 0, (size_t)C * sizeof(float));
    }
    PHASE("embedding");
    float eps = m->cfg.rms_norm_eps;
    for (int l = 0; l < m->L; l++) {
        float *x = m->resid + (size_t)l * BT * C, *xo = x + BT * C;
        float *xm = m->resid_mid + (size_t)l * BT * C;
        float *xn1 = m->xn1 + (size_t)l * BT * C, *xn2 = m->xn2 + (size_t)l * BT * C;
        float *qkv = m->qkv + (size_t)l * BT * m->W, *atty = m->atty + (size_t)l * BT * m->QD;
        float *gu = m->gu + (size_t)l * BT * 2 * F, *hm = m->hm + (size_t)l * BT * F;
        float *tmp = m->tmp;
        rmsnorm_fwd(xn1, m->rstd1 + (size_t)l * BT, x, layer_w(m, m->params, l, LT_LN1), (int)BT, C,
                    eps);
        PHASE("rmsnorm");
        matmul(qkv, xn1, layer_w(m, m->params, l, LT_Q), (int)BT, C, m->W, 0.0f);
        PHASE("gemm qkv");
        rope_rows(m, qkv, false);
        PHASE("rotary");
        attention_fwd(m, atty, m->att_lse + (size_t)l * B * m->H * T, qkv);
        PHASE("attention");
        matmul(tmp, atty, layer_w(m, m->params, l, LT_O), (int)BT, m->QD, C, 0.0f);
        PHASE("gemm o");
        residual_add(m, xm, x, tmp, l, 0);
        PHASE("residual");
        rmsnorm_fwd(xn2, m->rstd2 + (size_t)l * BT, xm, layer_w(m, m->params, l, LT_LN2), (int)BT,
                    C, eps);
        PHASE("rmsnorm");
        matmul(gu, xn2, layer_w(m, m->params, l, LT_GATE), (int)BT, C, 2 * F, 0.0f);
        PHASE("gemm gate+up");
#pragma omp parallel for schedule(static) if (BT * F >= PAR_MIN)
        for (size_t r = 0; r < BT; r++)
            row_swiglu(hm + r * F, gu + r * 2 * F, gu + r * 2 * F + F, F);
        PHASE("swiglu");
        matmul(tmp, hm, layer_w(m, m->params, l, LT_DOWN), (int)BT, F, C, 0.0f);
        PHASE("gemm down");
        residual_add(m, xo, xm, tmp, l, 1);
        PHASE("residual");
    }
    rmsnorm_fwd(m->xf, m->rstdf, m->resid + (size_t)m->L * BT * C, P + m->off_norm, (int)BT, C,
                eps);
    PHASE("rmsnorm");
    for (int b = 0; b < B; b++) {
        const float *h = m->xf + ((size_t)b * T + m->len[b] - 1) * C;
        memcpy(m->last + (size_t)b * C, h, (size_t)C * sizeof(float));
        if (m->cfg.reward_head) {
            double r = 0.0;
            for (int c = 0; c < C; c++)
                r += (double)h[c] * P[m->off_score + c];
            m->rewards[b] = (float)r;
        }
    }
    PHASE("embedding"); /* the last hidden states and rewards: small */
    if (opts->logits)
        matmul(m->logits, m->xf, P + m->off_head, (int)BT, C, V, 0.0f);
    PHASE("gemm head");
    m->have_fwd = true;
    m->have_logits = opts->logits;
    return ERR_OK;
}

const float *nn_model_logits(const nn_model_t *m)
{
    return m->have_logits ? m->logits : NULL;
}

const float *nn_model_hidden(const nn_model_t *m)
{
    return m->have_fwd ? m->xf : NULL;
}

const float *nn_model_last_hidden(const nn_model_t *m)
{
    return m->have_fwd ? m->last : NULL;
}

const float *nn_model_rewards(const nn_model_t *m)
{
    return m->have_fwd && m->cfg.reward_head ? m->rewards : NULL;
}

float nn_logsumexp(const float *x, int n)
{
    float mx = row_max(x, n), sum = row_exp_sum(x, n, mx);
    return mx + logf(fmaxf(sum, 1.0f)); /* the max term is 1 */
}

int nn_model_seq_logprobs(nn_model_t *m, const int *prompt_lens, float *logp, int *ntok)
{
    if (!m->have_logits || !logp)
        return ERR_INVAL;
    int B = m->B, T = m->T, V = m->V;
    for (int b = 0; b < B; b++) {
        int p = prompt_lens ? prompt_lens[b] : 1;
        if (p < 1 || p > m->len[b])
            return ERR_INVAL;
        m->plen[b] = p;
    }
    /* lse[b, t] for the rows that predict a response token: t in [plen - 1, len - 1) */
#pragma omp parallel for collapse(2) schedule(static)
    for (int b = 0; b < B; b++) {
        for (int t = 0; t < T; t++) {
            if (t < m->plen[b] - 1 || t >= m->len[b] - 1)
                continue;
            m->lse[(size_t)b * T + t] = nn_logsumexp(m->logits + ((size_t)b * T + t) * V, V);
        }
    }
    for (int b = 0; b < B; b++) {
        double s = 0.0;
        for (int t = m->plen[b] - 1; t < m->len[b] - 1; t++) {
            size_t r = (size_t)b * T + t;
            s += (double)m->logits[r * V + m->tok[r + 1]] - m->lse[r];
        }
        logp[b] = (float)s;
        if (ntok)
            ntok[b] = m->len[b] - m->plen[b];
    }
    m->have_lp = true;
    return ERR_OK;
}

int nn_model_zero_grad(nn_model_t *m)
{
    if (!m->grads)
        return ERR_INVAL;
    size_t chunk = 1u << 16, n = m->nparams;
#pragma omp parallel for schedule(static) if (n >= PAR_MIN)
    for (size_t c0 = 0; c0 < n; c0 += chunk)
        memset(m->grads + c0, 0, (c0 + chunk < n ? chunk : n - c0) * sizeof(float));
    return ERR_OK;
}

int nn_model_backward(nn_model_t *m, const struct nn_bwd_in *in)
{
    if (!m->train || !m->have_fwd || !in)
        return ERR_INVAL;
    if (in->dlogp && !m->have_lp)
        return ERR_INVAL;
    if (in->dreward && !m->cfg.reward_head)
        return ERR_INVAL;
    int B = m->B, T = m->T, C = m->C, V = m->V, F = m->F;
    size_t BT = (size_t)B * T;
    const float *P = m->params;
    float *G = m->grads;
    float *dxf = m->dxn; /* [BT, C] */
    PHASE_START();
    if (in->dlogp) {
        /* d logits = dlogp[b] * (onehot(next) - softmax) on response rows, 0 elsewhere */
#pragma omp parallel for collapse(2) schedule(static)
        for (int b = 0; b < B; b++) {
            for (int t = 0; t < T; t++) {
                size_t r = (size_t)b * T + t;
                float *row = m->logits + r * V;
                if (t < m->plen[b] - 1 || t >= m->len[b] - 1 || in->dlogp[b] == 0.0f) {
                    memset(row, 0, (size_t)V * sizeof(float));
                    continue;
                }
                float g = in->dlogp[b];
                row_exp_scale(row, row, V, m->lse[r], -g);
                row[m->tok[r + 1]] += g;
            }
        }
        PHASE("softmax grad of logits");
        matmul_bwd(dxf, G + m->off_head, m->logits, m->xf, P + m->off_head, (int)BT, C, V, 0.0f);
    } else {
        memset(dxf, 0, BT * C * sizeof(float));
    }
    m->have_logits = m->have_lp = false;
    for (int b = 0; b < B; b++) {
        size_t r = (size_t)b * T + m->len[b] - 1;
        float *d = dxf + r * C;
        if (in->dlast_hidden)
            for (int c = 0; c < C; c++)
                d[c] += in->dlast_hidden[(size_t)b * C + c];
        if (in->dreward && in->dreward[b] != 0.0f) {
            float g = in->dreward[b];
            for (int c = 0; c < C; c++) {
                d[c] += g * P[m->off_score + c];
                G[m->off_score + c] += g * m->xf[r * C + c];
            }
        }
    }
    PHASE("gemm head");
    memset(m->dres, 0, BT * C * sizeof(float));
    rmsnorm_bwd(m->dres, G + m->off_norm, dxf, m->resid + (size_t)m->L * BT * C, P + m->off_norm,
                m->rstdf, (int)BT, C);
    PHASE("rmsnorm");
    for (int l = m->L - 1; l >= 0; l--) {
        float *x = m->resid + (size_t)l * BT * C;
        float *xm = m->resid_mid + (size_t)l * BT * C;
        float *xn1 = m->xn1 + (size_t)l * BT * C, *xn2 = m->xn2 + (size_t)l * BT * C;
        float *qkv = m->qkv + (size_t)l * BT * m->W, *atty = m->atty + (size_t)l * BT * m->QD;
        float *gu = m->gu + (size_t)l * BT * 2 * F, *hm = m->hm + (size_t)l * BT * F;
        /* MLP branch */
        const float *db = residual_bwd(m, m->dtmp, m->dres, l, 1);
        PHASE("residual");
        matmul_bwd(m->dh, layer_w(m, G, l, LT_DOWN), db, hm, layer_w(m, m->params, l, LT_DOWN),
                   (int)BT, F, C, 0.0f);
        PHASE("gemm down");
#pragma omp parallel for schedule(static) if (BT * F >= PAR_MIN)
        for (size_t r = 0; r < BT; r++)
            row_swiglu_bwd(m->dgu + r * 2 * F, m->dgu + r * 2 * F + F, m->dh + r * F,
                           gu + r * 2 * F, gu + r * 2 * F + F, F);
        PHASE("swiglu");
        matmul_bwd(m->dxn, layer_w(m, G, l, LT_GATE), m->dgu, xn2,
                   layer_w(m, m->params, l, LT_GATE), (int)BT, C, 2 * F, 0.0f);
        PHASE("gemm gate+up");
        rmsnorm_bwd(m->dres, layer_w(m, G, l, LT_LN2), m->dxn, xm, layer_w(m, m->params, l, LT_LN2),
                    m->rstd2 + (size_t)l * BT, (int)BT, C);
        PHASE("rmsnorm");
        /* attention branch */
        db = residual_bwd(m, m->dtmp, m->dres, l, 0);
        PHASE("residual");
        matmul_bwd(m->datty, layer_w(m, G, l, LT_O), db, atty, layer_w(m, m->params, l, LT_O),
                   (int)BT, m->QD, C, 0.0f);
        PHASE("gemm o");
        attention_bwd(m, m->dqkv, m->datty, qkv, m->att_lse + (size_t)l * B * m->H * T, atty);
        PHASE("attention");
        rope_rows(m, m->dqkv, true);
        PHASE("rotary");
        matmul_bwd(m->dxn, layer_w(m, G, l, LT_Q), m->dqkv, xn1, layer_w(m, m->params, l, LT_Q),
                   (int)BT, C, m->W, 0.0f);
        PHASE("gemm qkv");
        rmsnorm_bwd(m->dres, layer_w(m, G, l, LT_LN1), m->dxn, x, layer_w(m, m->params, l, LT_LN1),
                    m->rstd1 + (size_t)l * BT, (int)BT, C);
        PHASE("rmsnorm");
    }
    /* embedding: rows of one token id may repeat, so accumulate serially over positions */
    float *gE = G + m->off_embed;
    for (size_t r = 0; r < BT; r++) {
        int id = m->tok[r];
        if (id < 0)
            continue;
        const float *d = m->dres + r * C;
        float *e = gE + (size_t)id * C;
#pragma omp simd
        for (int c = 0; c < C; c++)
            e[c] += d[c];
    }
    PHASE("embedding");
    return ERR_OK;
}

/* ------------------------------------------------------------------------------------------ */
/* KV-cache decoding */

struct nn_kv_cache {
    int B, T, L, KVD, C, W, QD, F, V, nthr;
    int *pos;                /* [B] */
    float *k, *v;            /* [L, B, T, KVD] */
    float *work;             /* one allocation for the chunk buffers below */
    float *x, *xn;           /* [DEC_CHUNK, C] */
    float *qkv;              /* [DEC_CHUNK, W] */
    float *y;                /* [DEC_CHUNK, QD] */
    float *tmp;              /* [DEC_CHUNK, C] */
    float *gu;               /* [DEC_CHUNK, 2F] */
    float *hm;               /* [DEC_CHUNK, F] */
    float *sc;               /* [nthr, T] attention scores */
    float *lastx;            /* [B, C] final hidden of each row's last fed token */
    float *lastn;            /* [B, C] compacted normed rows */
    float *lg;               /* [B, V] compacted logits */
    int *crow, *cpos, *ctok; /* [DEC_CHUNK] */
    const int *counts;       /* [B] the current nn_model_decode's counts (dynamic NTK) */
};

int nn_kv_cache_new(nn_kv_cache_t **out, const nn_model_t *m, int B, int T)
{
    *out = NULL;
    if (B < 1 || T < 1 || T > m->Tmax)
        return ERR_INVAL;
    nn_kv_cache_t *c = calloc(1, sizeof *c);
    if (!c)
        return ERR_NOMEM;
    c->B = B;
    c->T = T;
    c->L = m->L;
    c->KVD = m->KVD;
    c->C = m->C;
    c->W = m->W;
    c->QD = m->QD;
    c->F = m->F;
    c->V = m->V;
    c->nthr = omp_get_max_threads();
    size_t kvn = (size_t)m->L * B * T * m->KVD;
    size_t wn = (size_t)DEC_CHUNK * (3 * (size_t)m->C + m->W + m->QD + 3 * (size_t)m->F) +
                (size_t)c->nthr * T + 2 * (size_t)B * m->C + (size_t)B * m->V;
    c->pos = calloc((size_t)B + 3 * (size_t)DEC_CHUNK, sizeof(int));
    c->k = malloc(2 * kvn * sizeof(float));
    c->work = malloc(wn * sizeof(float));
    if (!c->pos || !c->k || !c->work) {
        nn_kv_cache_destroy(&c);
        return ERR_NOMEM;
    }
    c->v = c->k + kvn;
    float *p = c->work;
    c->x = p, p += (size_t)DEC_CHUNK * m->C;
    c->xn = p, p += (size_t)DEC_CHUNK * m->C;
    c->tmp = p, p += (size_t)DEC_CHUNK * m->C;
    c->qkv = p, p += (size_t)DEC_CHUNK * m->W;
    c->y = p, p += (size_t)DEC_CHUNK * m->QD;
    c->gu = p, p += (size_t)DEC_CHUNK * 2 * m->F;
    c->hm = p, p += (size_t)DEC_CHUNK * m->F;
    c->sc = p, p += (size_t)c->nthr * T;
    c->lastx = p, p += (size_t)B * m->C;
    c->lastn = p, p += (size_t)B * m->C;
    c->lg = p;
    c->crow = c->pos + B;
    c->cpos = c->crow + DEC_CHUNK;
    c->ctok = c->cpos + DEC_CHUNK;
    *out = c;
    return ERR_OK;
}

void nn_kv_cache_destroy(nn_kv_cache_t **cp)
{
    if (!cp || !*cp)
        return;
    nn_kv_cache_t *c = *cp;
    free(c->pos);
    free(c->k);
    free(c->work);
    free(c);
    *cp = NULL;
}

void nn_kv_cache_reset(nn_kv_cache_t *c)
{
    memset(c->pos, 0, (size_t)c->B * sizeof(int));
}

int nn_kv_cache_pos(const nn_kv_cache_t *c, int b)
{
    return b >= 0 && b < c->B ? c->pos[b] : 0;
}

/* Run N packed tokens (c->crow/cpos/ctok) through every layer, writing their k, v into the
 * cache; leaves the final hidden (before the final norm) in c->x. */
static void decode_chunk(nn_model_t *m, nn_kv_cache_t *c, int N)
{
    int C = m->C, D = m->D, W = m->W, QD = m->QD, KVD = m->KVD, F = m->F, half = m->D / 2;
    int grp = m->H / m->KVH, T = c->T;
    float scale = 1.0f / sqrtf((float)D), eps = m->cfg.rms_norm_eps;
    for (int i = 0; i < N; i++)
        memcpy(c->x + (size_t)i * C, m->params + m->off_embed + (size_t)c->ctok[i] * C,
               (size_t)C * sizeof(float));
    for (int l = 0; l < m->L; l++) {
        float *kc = c->k + (size_t)l * c->B * T * KVD, *vc = c->v + (size_t)l * c->B * T * KVD;
        rmsnorm_fwd(c->xn, c->tmp, c->x, layer_w(m, m->params, l, LT_LN1), N, C, eps);
        matmul(c->qkv, c->xn, layer_w(m, m->params, l, LT_Q), N, C, W, 0.0f);
        for (int i = 0; i < N; i++) {
            float *row = c->qkv + (size_t)i * W;
            int t = c->cpos[i], r = c->crow[i], seq_len = c->pos[r] + c->counts[r];
            if (nn_config_rope_grows(&m->cfg, seq_len))
                rope_grown(m, row, seq_len, t, false); /* the call's length, as transformers */
            else
                rope_apply(row, m->H + m->KVH, D, m->rope_cos + (size_t)t * half,
                           m->rope_sin + (size_t)t * half, false);
            size_t at = ((size_t)c->crow[i] * T + t) * KVD;
            memcpy(kc + at, row + QD, (size_t)KVD * sizeof(float));
            memcpy(vc + at, row + QD + KVD, (size_t)KVD * sizeof(float));
        }
#pragma omp parallel for collapse(2) schedule(dynamic)                                             \
    num_threads(c->nthr) if ((size_t)N * m->H * m->D * (size_t)(c->cpos[N - 1] + 1) >= PAR_MIN)
        for (int i = 0; i < N; i++) {
            for (int h = 0; h < m->H; h++) {
                float *s = c->sc + (size_t)omp_get_thread_num() * T;
                int t = c->cpos[i], kvh = h / grp;
                const float *q = c->qkv + (size_t)i * W + (size_t)h * D;
                const float *kr = kc + (size_t)c->crow[i] * T * KVD + (size_t)kvh * D;
                const float *vr = vc + (size_t)c->crow[i] * T * KVD + (size_t)kvh * D;
                for (int j = 0; j <= t; j++)
                    s[j] = scale * row_dot(q, kr + (size_t)j * KVD, D);
                row_softmax(s, t + 1);
                float *y = c->y + (size_t)i * QD + (size_t)h * D;
                memset(y, 0, (size_t)D * sizeof(float));
                for (int j = 0; j <= t; j++)
                    row_axpy(y, vr + (size_t)j * KVD, D, s[j]);
            }
        }
        matmul(c->x, c->y, layer_w(m, m->params, l, LT_O), N, QD, C, 1.0f); /* x += o(y) */
        rmsnorm_fwd(c->xn, c->tmp, c->x, layer_w(m, m->params, l, LT_LN2), N, C, eps);
        matmul(c->gu, c->xn, layer_w(m, m->params, l, LT_GATE), N, C, 2 * F, 0.0f);
#pragma omp parallel for schedule(static) if ((size_t)N * F >= PAR_MIN)
        for (int i = 0; i < N; i++)
            row_swiglu(c->hm + (size_t)i * F, c->gu + (size_t)i * 2 * F,
                       c->gu + (size_t)i * 2 * F + F, F);
        matmul(c->x, c->hm, layer_w(m, m->params, l, LT_DOWN), N, F, C, 1.0f); /* x += mlp */
    }
}

int nn_model_decode(nn_model_t *m, nn_kv_cache_t *c, const int *tokens, const int *counts, int n,
                    float *logits)
{
    if (c->C != m->C || c->L != m->L || c->W != m->W || c->V != m->V || n < 0)
        return ERR_INVAL;
    int B = c->B, C = m->C, V = m->V;
    for (int b = 0; b < B; b++) {
        if (counts[b] < 0 || counts[b] > n)
            return ERR_INVAL;
        if (c->pos[b] + counts[b] > c->T)
            return ERR_TOOBIG;
        for (int j = 0; j < counts[b]; j++)
            if (tokens[(size_t)b * n + j] < 0 || tokens[(size_t)b * n + j] >= V)
                return ERR_INVAL;
    }
    int N = 0;
    c->counts = counts;
    for (int b = 0; b < B; b++) {
        for (int j = 0; j < counts[b]; j++) {
            c->crow[N] = b;
            c->cpos[N] = c->pos[b] + j;
            c->ctok[N] = tokens[(size_t)b * n + j];
            N++;
            if (N == DEC_CHUNK) {
                decode_chunk(m, c, N);
                for (int i = 0; i < N; i++)
                    if (c->cpos[i] == c->pos[c->crow[i]] + counts[c->crow[i]] - 1)
                        memcpy(c->lastx + (size_t)c->crow[i] * C, c->x + (size_t)i * C,
                               (size_t)C * sizeof(float));
                N = 0;
            }
        }
    }
    if (N > 0) {
        decode_chunk(m, c, N);
        for (int i = 0; i < N; i++)
            if (c->cpos[i] == c->pos[c->crow[i]] + counts[c->crow[i]] - 1)
                memcpy(c->lastx + (size_t)c->crow[i] * C, c->x + (size_t)i * C,
                       (size_t)C * sizeof(float));
    }
    int na = 0;
    for (int b = 0; b < B; b++) {
        if (!counts[b])
            continue;
        memcpy(c->lastn + (size_t)na * C, c->lastx + (size_t)b * C, (size_t)C * sizeof(float));
        na++;
        c->pos[b] += counts[b];
    }
    if (!na)
        return ERR_OK;
    rmsnorm_fwd(c->lastn, c->tmp, c->lastn, m->params + m->off_norm, na, C, m->cfg.rms_norm_eps);
    matmul(c->lg, c->lastn, m->params + m->off_head, na, C, V, 0.0f);
    na = 0;
    for (int b = 0; b < B; b++) {
        if (!counts[b])
            continue;
        memcpy(logits + (size_t)b * V, c->lg + (size_t)na * V, (size_t)V * sizeof(float));
        na++;
    }
    return ERR_OK;
}
