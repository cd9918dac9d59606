/* bench_nn.c - the engine's training step against the machine's limit and against PyTorch
 * (bench_nn_torch.py), in the same run, under both OpenBLAS kernel settings. Not a test (not
 * registered in ctest).
 *
 *   build/tests/bench/bench_nn [--threads N] [--steps N] [--repeat N] [--no-torch] [--quick]
 *                              [--coretype NAME] [--one]
 *
 * Kernel settings: OpenBLAS picks its kernels at load time from OPENBLAS_CORETYPE when that is
 * set (it may be preset, e.g. to Haswell, which on an AVX-512 machine is about half the speed).
 * The bench measures with the setting it was started with, then re-executes itself with
 * OPENBLAS_CORETYPE removed, so OpenBLAS detects the CPU's own kernels, and prints both. With
 * OPENBLAS_CORETYPE unset it measures the native kernels only, unless --coretype NAME asks for a
 * preset pass first. --one measures the current setting only.
 *
 * For each shape (S: 6 layers, width 384, 6 heads, vocab 8192, T 256, batch 4, and the built-in
 * demo shape) it prints:
 *   FLOPs   the step's matrix FLOPs: forward, backward (input and weight gradients) of every
 *           linear layer and the LM head, and the attention products counted on the causal
 *           triangle only (q k^T and P v forward; four products backward)
 *   sgemm   the rate of cblas_sgemm on the step's own linear-layer GEMMs (the same shapes and
 *           transposes as the engine's calls, each once per layer), each layer on operands of its
 *           own as in a step, measured in this run; "shared" is the rate with one set of buffers
 *           for all layers (the previous layer's operands in cache: faster than any step can
 *           have them), printed beside it with the fraction it gives
 *   limit   FLOPs / sgemm rate: the step time if every matrix FLOP ran at that rate and nothing
 *           else took time; the engine's fraction of it is limit / engine time
 *   engine  one full step (forward, SFT cross-entropy over all tokens, backward, global-norm
 *           clipping, AdamW), the median of --repeat runs of --steps steps after a warm-up step
 *   PyTorch the same step (bench_nn_torch.py), 1 thread and N threads, the median of --repeat
 *           runs interleaved with the engine's; ratio = engine tokens/s / PyTorch tokens/s
 * Medians because the machine may be shared; the ratios come from runs of the same minutes.
 *
 * bench_nn_phases is this file built with -DNN_PHASES against a copy of the engine with its phase
 * timers on (model.h): where one step of shape S goes, phase by phase, with each GEMM phase's
 * rate next to cblas_sgemm's measured in the same run:
 *
 *   build/tests/bench/bench_nn_phases [--threads N] [--steps N] [--coretype NAME]
 *                                    [--attention blas|fused]   (blas: the OpenBLAS attention) */
#include <cblas.h>
#include <omp.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "benchstat.h"
#include "config.h"
#include "loss.h"
#include "model.h"
#include "optim.h"

#ifndef BENCH_DIR
#define BENCH_DIR "tests/bench"
#endif

#define MAX_REPEAT 32

struct shape {
    const char *name;
    int layers, hidden, heads, kv_heads, inter, vocab, T, B;
};

/* One setting's results for one shape, carried across the re-execution in argv. */
struct result {
    double flops, rate, engine, torch1, torchn; /* FLOP, FLOP/s, tokens/s x3 */
    double rate_shared;                         /* FLOP/s, one set of buffers (sgemm_rate) */
};

static void shape_config(const struct shape *s, struct nn_config *c)
{
    nn_config_default(c);
    c->num_hidden_layers = s->layers;
    c->hidden_size = s->hidden;
    c->num_attention_heads = s->heads;
    c->num_key_value_heads = s->kv_heads;
    c->intermediate_size = s->inter;
    c->vocab_size = s->vocab;
    c->max_position_embeddings = s->T > 256 ? s->T : 256;
    c->tie_word_embeddings = false;
    if (s->vocab != 259) {
        c->bos_token_id = c->eos_token_id = c->pad_token_id = -1;
        snprintf(c->tokenizer, sizeof c->tokenizer, "bpe");
    }
}

/* The linear-layer GEMMs of one step, as the engine calls them (common/nn/model.c matmul and
 * matmul_bwd): y [N, out] = x [N, in] w^T; dx [N, in] = dy w; dw [out, in] += dy^T x. */
struct gemm {
    int in, out, count; /* count: layers that have it */
};

static int step_gemms(const struct shape *s, struct gemm *g)
{
    int D = s->hidden / s->heads, W = s->heads * D + 2 * s->kv_heads * D;
    int n = 0;
    g[n++] = (struct gemm){s->hidden, W, s->layers};
    g[n++] = (struct gemm){s->heads * D, s->hidden, s->layers};
    g[n++] = (struct gemm){s->hidden, 2 * s->inter, s->layers};
    g[n++] = (struct gemm){s->inter, s->hidden, s->layers};
    g[n++] = (struct gemm){s->hidden, s->vocab, 1};
    return n;
}

/* The step's matrix FLOPs; *linear gets the linear layers' share. */
static double step_flops(const struct shape *s, double *linear)
{
    struct gemm g[8];
    int n = step_gemms(s, g);
    double N = (double)s->B * s->T, lin = 0.0;
    for (int i = 0; i < n; i++)
        lin += 3.0 * 2.0 * N * g[i].in * g[i].out * g[i].count; /* y, dx, dw */
    double D = (double)s->hidden / s->heads, tri = (double)s->T * (s->T + 1) / 2.0;
    double att = 6.0 * 2.0 * s->B * s->heads * D * tri * s->layers; /* 2 fwd + 4 bwd products */
    *linear = lin;
    return lin + att;
}

/* FLOP/s of cblas_sgemm on the step's linear GEMMs: the best of `reps` passes over all of them.
 * per_layer: each layer's products on operands of their own (weights, inputs, outputs, weight
 * gradients; the input gradient one buffer all layers share, as the engine's backward scratch),
 * as a step has them; otherwise one set of buffers serves every layer, so a layer's products find
 * the previous layer's operands of the same shape in cache (3-12% faster here: a rate no step
 * can reach, the measurement of sessions before 12). */
static double sgemm_rate(const struct shape *s, int reps, bool per_layer)
{
    struct gemm g[8];
    int n = step_gemms(s, g), N = s->B * s->T;
    size_t need = 0, big = 0; /* floats: every layer's x, w, dw, y; the largest shape's */
    for (int i = 0; i < n; i++) {
        size_t w = (size_t)g[i].in * g[i].out;
        size_t x = (size_t)N * g[i].in, y = (size_t)N * g[i].out;
        need += per_layer ? (size_t)g[i].count * (x + 2 * w + y) : 0;
        big = x > big ? x : big;
        big = w > big ? w : big;
        big = y > big ? y : big;
    }
    if (!per_layer)
        need = 4 * big; /* one x, w, y, dw of the largest shape */
    float *mem = malloc((need + big) * sizeof(float));
    if (!mem)
        return -1;
    uint64_t r = 3;
    for (size_t i = 0; i < need + big; i++)
        mem[i] = 0.02f * nn_rng_normal(&r); /* dx: never fed back, values stay normal */
    float *dx = mem + need;
    double lin = 0.0;
    step_flops(s, &lin);
    double best = 1e30;
    for (int rep = 0; rep <= reps; rep++) { /* pass 0 warms up */
        double t0 = bench_now();
        float *at = mem;
        for (int i = 0; i < n; i++) {
            int in = g[i].in, out = g[i].out;
            for (int c = 0; c < g[i].count; c++) {
                float *x = at, *w, *y, *dw;
                if (per_layer) {
                    w = x + (size_t)N * in;
                    dw = w + (size_t)in * out;
                    y = dw + (size_t)in * out;
                    at = y + (size_t)N * out;
                } else {
                    w = x + big;
                    dw = w + big;
                    y = dw + big;
                }
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, out, in, 1.0f, x, in, w, in,
                            0.0f, y, out);
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, in, out, 1.0f, y, out, w,
                            in, 0.0f, dx, in);
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, out, in, N, 1.0f, y, out, x,
                            in, 1.0f, dw, in);
            }
        }
        double dt = bench_now() - t0;
        if (rep > 0 && dt < best)
            best = dt;
    }
    free(mem);
    return lin / best;
}

/* Seconds outside the model's forward and backward, for bench_nn_phases: zeroing the gradients,
 * the log-probs and the loss, clipping and AdamW. */
static double t_zero, t_loss, t_adamw;

/* --attention blas: the OpenBLAS attention instead of the fused kernels (model.h) */
static bool attention_blas;

/* Engine training tokens/s over `steps` steps after a warm-up step; -1 on failure. */
static double train_engine(const struct shape *s, int steps, size_t *nparams)
{
    struct nn_config c;
    shape_config(s, &c);
    nn_model_t *m = NULL;
    char err[256];
    if (nn_model_new(&m, &c, err, sizeof err)) {
        fprintf(stderr, "%s\n", err);
        return -1;
    }
    nn_model_init_random(m, 1, 0.02f);
    if (attention_blas)
        nn_model_set_fused_attention(m, false);
    if (nn_model_reserve(m, s->B, s->T, true)) {
        nn_model_destroy(&m);
        return -1;
    }
    size_t n = nn_model_num_params(m);
    *nparams = n;
    nn_adamw_t *opt = nn_adamw_new(n);
    int *tok = malloc((size_t)s->B * s->T * sizeof(int)), *len = malloc((size_t)s->B * sizeof(int));
    int *ntok = malloc((size_t)s->B * sizeof(int));
    float *lp = malloc((size_t)s->B * sizeof(float)), *dlp = malloc((size_t)s->B * sizeof(float));
    uint64_t r = 5;
    for (int i = 0; i < s->B * s->T; i++)
        tok[i] = (int)(nn_rng_next(&r) % (uint64_t)s->vocab);
    for (int b = 0; b < s->B; b++)
        len[b] = s->T;
    struct nn_batch batch = {.B = s->B, .T = s->T, .tokens = tok, .lengths = len};
    struct nn_adamw_opts ao = {.beta1 = 0.9f, .beta2 = 0.95f, .eps = 1e-8f, .weight_decay = 0.1f};
    double t0 = 0.0;
    for (int it = 0; it <= steps; it++) {
        if (it == 1) {
            t0 = bench_now(); /* step 0 warms up */
            t_zero = t_loss = t_adamw = 0.0;
#ifdef NN_PHASES
            nn_phases_reset();
#endif
        }
        double loss, a = bench_now();
        nn_model_zero_grad(m);
        t_zero += bench_now() - a;
        nn_model_forward(m, &batch, NULL);
        a = bench_now();
        nn_model_seq_logprobs(m, NULL, lp, ntok);
        nn_loss_sft(s->B, lp, ntok, 0, dlp, &loss);
        t_loss += bench_now() - a;
        struct nn_bwd_in in = {.dlogp = dlp};
        nn_model_backward(m, &in);
        a = bench_now();
        nn_adamw_step_clip(opt, nn_model_params(m), nn_model_grads(m), n, 1e-4f, 1.0f, &ao, NULL);
        t_adamw += bench_now() - a;
    }
    double dt = bench_now() - t0;
    free(tok);
    free(len);
    free(ntok);
    free(lp);
    free(dlp);
    nn_adamw_destroy(&opt);
    nn_model_destroy(&m);
    return (double)s->B * s->T * steps / dt;
}

/* PyTorch training tokens/s from bench_nn_torch.py; -1 if it cannot run. */
static double train_torch(const struct shape *s, int steps, int threads)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd,
             "/usr/bin/python3 %s/bench_nn_torch.py --layers %d --hidden %d --heads %d "
             "--kv-heads %d --inter %d --vocab %d --T %d --B %d --steps %d --threads %d "
             "2>/dev/null",
             BENCH_DIR, s->layers, s->hidden, s->heads, s->kv_heads, s->inter, s->vocab, s->T, s->B,
             steps, threads);
    FILE *p = popen(cmd, "r");
    if (!p)
        return -1;
    char line[256];
    double tps = -1;
    while (fgets(line, sizeof line, p))
        if (!strncmp(line, "tokens_per_s ", 13))
            tps = atof(line + 13);
    pclose(p);
    return tps;
}

static void print_ratio(double e, double t)
{
    if (t > 0)
        printf(" %6.2fx", e / t);
    else
        printf(" %7s", "n/a");
}

static void print_tps(double t)
{
    if (t > 0)
        printf(" %9.0f", t);
    else
        printf(" %9s", "n/a");
}

static const struct shape shapes[] = {
    {"S", 6, 384, 6, 6, 1024, 8192, 256, 4},
    {"demo", 4, 128, 4, 2, 352, 259, 128, 4},
};
#define NSHAPES ((int)(sizeof shapes / sizeof shapes[0]))

/* The summary row of one setting and shape. */
static void print_row(const char *core, const char *shape, const struct result *r, int threads)
{
    double tokens = 0;
    for (int i = 0; i < NSHAPES; i++)
        if (!strcmp(shapes[i].name, shape))
            tokens = (double)shapes[i].B * shapes[i].T;
    double limit = r->flops / r->rate; /* seconds per step */
    printf("%-10s %-5s %7.1f %7.1f %8.3f %8.0f %8.0f %5.0f%% %7.1f %5.0f%%", core, shape,
           r->flops / 1e9, r->rate / 1e9, limit, tokens / limit, r->engine,
           100.0 * r->engine * limit / tokens, r->rate_shared / 1e9,
           100.0 * r->engine * (r->flops / r->rate_shared) / tokens);
    print_tps(r->torch1);
    print_tps(r->torchn);
    print_ratio(r->engine, r->torch1);
    print_ratio(r->engine, r->torchn);
    printf("   (%d threads)\n", threads);
}

static void print_header(void)
{
    printf("%-10s %-5s %7s %7s %8s %8s %8s %6s %7s %6s %9s %9s %7s %7s\n", "core", "shape", "GFLOP",
           "GFLOP/s", "limit s", "limit", "engine", "of lim", "shared", "of sh", "torch 1",
           "torch N", "vs 1", "vs N");
}

#ifdef NN_PHASES
/* bench_nn_phases: one step of shape S, phase by phase. */
static int phases_main(int argc, char **argv)
{
    int threads = omp_get_max_threads(), steps = 10;
    const char *coretype = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--threads") && i + 1 < argc)
            threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--steps") && i + 1 < argc)
            steps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--coretype") && i + 1 < argc)
            coretype = argv[++i];
        else if (!strcmp(argv[i], "--attention") && i + 1 < argc &&
                 (!strcmp(argv[i + 1], "blas") || !strcmp(argv[i + 1], "fused")))
            attention_blas = !strcmp(argv[++i], "blas");
        else {
            fprintf(stderr, "usage: bench_nn_phases [--threads N] [--steps N] [--coretype NAME] "
                            "[--attention blas|fused]\n");
            return 2;
        }
    }
    if (threads < 1 || steps < 1) {
        fprintf(stderr, "bench_nn_phases: --threads and --steps >= 1\n");
        return 2;
    }
    if (coretype &&
        (!getenv("OPENBLAS_CORETYPE") || strcmp(getenv("OPENBLAS_CORETYPE"), coretype))) {
        setenv("OPENBLAS_CORETYPE", coretype, 1); /* OpenBLAS reads it when it loads */
        execv("/proc/self/exe", argv);
        perror("bench_nn_phases: re-executing with OPENBLAS_CORETYPE");
        return 1;
    }
    omp_set_num_threads(threads);
    openblas_set_num_threads(threads);
    const struct shape *s = &shapes[0];
    double rate = sgemm_rate(s, 2, true), shared = sgemm_rate(s, 2, false);
    size_t np = 0;
    double tps = train_engine(s, steps, &np);
    if (rate <= 0 || tps <= 0)
        return 1;
    double step = (double)s->B * s->T / tps, lin = 0.0, all = step_flops(s, &lin);
    printf("OpenBLAS core: %s, %d threads; shape %s (%.2fM parameters), %d steps after a warm-up\n",
           openblas_get_corename(), threads, s->name, (double)np / 1e6, steps);
    printf("step %.1f ms (%.0f tokens/s); sgemm %.1f GFLOP/s on the step's GEMMs, this run, each "
           "layer on its own operands; limit %.1f ms: %.0f%% of it\n"
           "(one set of buffers for all layers: sgemm %.1f GFLOP/s, limit %.1f ms, %.0f%%)\n\n",
           1e3 * step, tps, rate / 1e9, 1e3 * all / rate, 100.0 * all / rate / step, shared / 1e9,
           1e3 * all / shared, 100.0 * all / shared / step);
    /* each GEMM phase's FLOPs: y, dx and dw of step_gemms' products, in its order */
    struct gemm g[8];
    step_gemms(s, g);
    double N = (double)s->B * s->T;
    const char *gname[] = {"gemm qkv", "gemm o", "gemm gate+up", "gemm down", "gemm head"};
    const char *names[40];
    double sec[40];
    int n = nn_phases_get(names, sec, 36);
    names[n] = "zero gradients", sec[n++] = t_zero;
    names[n] = "log-probs and loss", sec[n++] = t_loss;
    names[n] = "clipping and AdamW", sec[n++] = t_adamw;
    printf("%-26s %10s %7s %8s %9s\n", "phase (forward + backward)", "ms / step", "share", "GFLOP",
           "GFLOP/s");
    double sum = 0.0;
    for (int i = 0; i < n; i++) {
        double ms = 1e3 * sec[i] / steps, fl = 0.0;
        for (int k = 0; k < 5; k++)
            if (!strcmp(names[i], gname[k]))
                fl = 3.0 * 2.0 * N * g[k].in * g[k].out * g[k].count;
        if (!strcmp(names[i], "attention"))
            fl = all - lin;
        sum += ms;
        printf("%-26s %10.1f %6.1f%%", names[i], ms, 100.0 * ms / (1e3 * step));
        if (fl > 0)
            printf(" %8.2f %9.1f", fl / 1e9, fl / (ms / 1e3) / 1e9);
        printf("\n");
    }
    printf("%-26s %10.1f %6.1f%%  (the rest: the step's loop, timers)\n", "sum", sum,
           100.0 * sum / (1e3 * step));
    return 0;
}
#endif

int main(int argc, char **argv)
{
#ifdef NN_PHASES
    return phases_main(argc, argv);
#endif
    int threads = omp_get_max_threads(), steps = 3, repeat = 3;
    bool torch = true, quick = false, one = false;
    const char *coretype = NULL, *prev = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--threads") && i + 1 < argc)
            threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--steps") && i + 1 < argc)
            steps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--repeat") && i + 1 < argc)
            repeat = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--coretype") && i + 1 < argc)
            coretype = argv[++i];
        else if (!strcmp(argv[i], "--prev") && i + 1 < argc)
            prev = argv[++i]; /* internal: the first setting's results */
        else if (!strcmp(argv[i], "--no-torch"))
            torch = false;
        else if (!strcmp(argv[i], "--quick"))
            quick = true;
        else if (!strcmp(argv[i], "--one"))
            one = true;
        else {
            fprintf(stderr, "usage: bench_nn [--threads N] [--steps N] [--repeat N] [--no-torch] "
                            "[--quick] [--coretype NAME] [--one]\n");
            return 2;
        }
    }
    if (threads < 1 || steps < 1 || repeat < 1 || repeat > MAX_REPEAT) {
        fprintf(stderr, "bench_nn: --threads and --steps >= 1, --repeat in [1, %d]\n", MAX_REPEAT);
        return 2;
    }
    if (coretype && !prev &&
        (!getenv("OPENBLAS_CORETYPE") || strcmp(getenv("OPENBLAS_CORETYPE"), coretype))) {
        /* OpenBLAS read the variable when it loaded: too late for this process, start again */
        setenv("OPENBLAS_CORETYPE", coretype, 1);
        execv("/proc/self/exe", argv);
        perror("bench_nn: re-executing with OPENBLAS_CORETYPE");
        return 1;
    }
    omp_set_num_threads(threads);
    openblas_set_num_threads(threads);
    const char *ct = getenv("OPENBLAS_CORETYPE");
    char core[64];
    snprintf(core, sizeof core, "%s", openblas_get_corename());
    if (!prev)
        printf("BLAS: %s\nthreads: %d (OpenMP and OpenBLAS; PyTorch N = the same)\n",
               openblas_get_config(), threads);
    printf("\nOpenBLAS core: %s (OPENBLAS_CORETYPE %s%s)\n", core, ct ? ct : "unset",
           ct ? ", preset" : ": detected from the CPU");
    printf("%-5s %8s %8s %9s %9s %9s %9s %9s %9s %9s %9s %7s\n", "shape", "params", "GFLOP",
           "sgemm GF/s", "limit t/s", "engine", "of limit", "shared", "of shared", "torch 1",
           "torch N", "vs N");
    fflush(stdout);
    struct result res[NSHAPES];
    memset(res, 0, sizeof res);
    for (int i = quick ? 1 : 0; i < NSHAPES; i++) {
        const struct shape *s = &shapes[i];
        size_t np = 0;
        double e[MAX_REPEAT] = {0}, t1[MAX_REPEAT] = {0}, tn[MAX_REPEAT] = {0},
               rt[MAX_REPEAT] = {0}, rs[MAX_REPEAT] = {0};
        for (int r = 0; r < repeat; r++) { /* interleaved: the machine may be shared */
            rt[r] = sgemm_rate(s, 2, true);
            rs[r] = sgemm_rate(s, 2, false);
            e[r] = train_engine(s, steps, &np);
            t1[r] = torch ? train_torch(s, steps, 1) : -1;
            tn[r] = torch && threads > 1 ? train_torch(s, steps, threads) : t1[r];
        }
        double lin;
        struct result *o = &res[i];
        o->flops = step_flops(s, &lin);
        o->rate = bench_median(rt, repeat);
        o->rate_shared = bench_median(rs, repeat);
        o->engine = bench_median(e, repeat);
        o->torch1 = bench_median(t1, repeat);
        o->torchn = bench_median(tn, repeat);
        double limit_tps = (double)s->B * s->T / (o->flops / o->rate);
        double shared_tps = (double)s->B * s->T / (o->flops / o->rate_shared);
        printf("%-5s %7.2fM %8.1f %9.1f %9.0f %9.0f %8.0f%% %9.1f %8.0f%%", s->name,
               (double)np / 1e6, o->flops / 1e9, o->rate / 1e9, limit_tps, o->engine,
               100.0 * o->engine / limit_tps, o->rate_shared / 1e9, 100.0 * o->engine / shared_tps);
        print_tps(o->torch1);
        print_tps(o->torchn);
        print_ratio(o->engine, o->torchn);
        printf("\n");
        fflush(stdout);
    }
    /* results so far: "core:shape:flops:rate:engine:torch1:torchn:rate_shared;..." */
    char mine[1024] = "";
    for (int i = quick ? 1 : 0; i < NSHAPES; i++) {
        size_t k = strlen(mine);
        snprintf(mine + k, sizeof mine - k, "%s:%s:%.6g:%.6g:%.6g:%.6g:%.6g:%.6g;", core,
                 shapes[i].name, res[i].flops, res[i].rate, res[i].engine, res[i].torch1,
                 res[i].torchn, res[i].rate_shared);
    }
    if (!one && !prev && ct) { /* now the CPU's own kernels */
        unsetenv("OPENBLAS_CORETYPE");
        char **args = calloc((size_t)argc + 3, sizeof *args);
        if (!args)
            return 1;
        int n = 0;
        for (int i = 0; i < argc; i++) {
            if (!strcmp(argv[i], "--coretype") && i + 1 < argc) {
                i++;
                continue;
            }
            args[n++] = argv[i];
        }
        args[n++] = "--prev";
        args[n++] = mine;
        execv("/proc/self/exe", args);
        perror("bench_nn: re-executing without OPENBLAS_CORETYPE");
        return 1;
    }
    if (!prev)
        return 0;
    /* both settings, side by side */
    printf("\nsummary (limit = matrix FLOPs / sgemm rate of this run, each layer on its own "
           "operands; of lim = engine / limit; shared, of sh: the same with one set of buffers for "
           "all layers; vs = engine / PyTorch, same run)\n");
    print_header();
    char all[2048];
    snprintf(all, sizeof all, "%s%s", prev, mine);
    for (char *save = NULL, *rec = strtok_r(all, ";", &save); rec;
         rec = strtok_r(NULL, ";", &save)) {
        char c[64], sh[16];
        struct result r;
        if (sscanf(rec, "%63[^:]:%15[^:]:%lf:%lf:%lf:%lf:%lf:%lf", c, sh, &r.flops, &r.rate,
                   &r.engine, &r.torch1, &r.torchn, &r.rate_shared) == 8)
            print_row(c, sh, &r, threads);
    }
    return 0;
}
