/* bench_nn.c - engine throughput, side by side with PyTorch (bench_nn_torch.py) on the same
 * shapes and thread count. Not a test (not registered in ctest).
 *
 *   build/tests/bench/bench_nn [--threads N] [--steps N] [--no-torch] [--quick] [--blas-native]
 *                              [--repeat N]
 *
 * OpenBLAS picks its kernels at load time from OPENBLAS_CORETYPE when that is set (it may be
 * preset, e.g. to Haswell, which on an AVX-512 machine is about half the speed); --blas-native
 * re-runs the bench with it removed, so OpenBLAS detects the CPU itself. Both print the core.
 *
 * Every number is the best of --repeat runs (3), engine and PyTorch interleaved: the machine may
 * be shared, and the best run is the one least disturbed.
 * Training: tokens/s of one full step (forward, SFT cross-entropy over all tokens, backward,
 * global-norm clipping, AdamW) on shape S (6 layers, width 384, 6 heads, vocab 8192, T 256,
 * batch 4) and the built-in demo shape (nn_config_default: 4 layers, width 128, 4 heads, vocab
 * 259 bytes, T 128, batch 4). Decoding: new tokens/s at batch 1 and 32 with the KV cache on a
 * ~14M-parameter model (shape S, tied embeddings), 16-token prompts, 128 new tokens, greedy. */
#include <cblas.h>
#include <omp.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "loss.h"
#include "model.h"
#include "optim.h"
#include "sample.h"

#ifndef BENCH_DIR
#define BENCH_DIR "tests/bench"
#endif

struct shape {
    const char *name;
    int layers, hidden, heads, kv_heads, inter, vocab, T, B;
};

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void shape_config(const struct shape *s, struct nn_config *c, bool tie)
{
    nn_config_default(c);
    c->num_hidden_layers = s->layers;
    c->hidden_size = s->hidden;
    c->num_attention_heads = s->heads;
    c->num_key_value_heads = s->kv_heads;
    c->intermediate_size = s->inter;
    c->vocab_size = s->vocab;
    c->max_position_embeddings = s->T > 256 ? s->T : 256;
    c->tie_word_embeddings = tie;
    if (s->vocab != 259) {
        c->bos_token_id = c->eos_token_id = c->pad_token_id = -1;
        snprintf(c->tokenizer, sizeof c->tokenizer, "bpe");
    }
}

/* Engine training tokens/s; -1 on failure. */
static double train_engine(const struct shape *s, int steps, size_t *nparams)
{
    struct nn_config c;
    shape_config(s, &c, false);
    nn_model_t *m = NULL;
    char err[256];
    if (nn_model_new(&m, &c, err, sizeof err)) {
        fprintf(stderr, "%s\n", err);
        return -1;
    }
    nn_model_init_random(m, 1, 0.02f);
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
        if (it == 1)
            t0 = now(); /* step 0 warms up */
        double loss;
        nn_model_zero_grad(m);
        nn_model_forward(m, &batch, NULL);
        nn_model_seq_logprobs(m, NULL, lp, ntok);
        nn_loss_sft(s->B, lp, ntok, 0, dlp, &loss);
        struct nn_bwd_in in = {.dlogp = dlp};
        nn_model_backward(m, &in);
        nn_grad_clip(nn_model_grads(m), n, 1.0f);
        nn_adamw_step(opt, nn_model_params(m), nn_model_grads(m), n, 1e-4f, &ao);
    }
    double dt = now() - t0;
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

static double decode_engine(const struct shape *s, int B, int new_tokens)
{
    struct nn_config c;
    shape_config(s, &c, true);
    nn_model_t *m = NULL;
    if (nn_model_new(&m, &c, NULL, 0))
        return -1;
    nn_model_init_random(m, 2, 0.02f);
    enum { PL = 16 };
    int *prompt = malloc((size_t)B * PL * sizeof(int)),
        *out = malloc((size_t)B * new_tokens * sizeof(int));
    int *ntok = malloc((size_t)B * sizeof(int));
    const int **pp = malloc((size_t)B * sizeof(int *));
    int *pl = malloc((size_t)B * sizeof(int));
    uint64_t r = 9;
    for (int i = 0; i < B * PL; i++)
        prompt[i] = (int)(nn_rng_next(&r) % (uint64_t)s->vocab);
    for (int b = 0; b < B; b++) {
        pp[b] = prompt + b * PL;
        pl[b] = PL;
    }
    struct nn_sample_opts o = {.max_new_tokens = new_tokens, .eos_token_id = -1};
    double t0 = now();
    nn_sample(m, B, (const int *const *)pp, pl, &o, out, ntok, NULL);
    double dt = now() - t0;
    long total = 0;
    for (int b = 0; b < B; b++)
        total += ntok[b];
    free(prompt);
    free(out);
    free(ntok);
    free(pp);
    free(pl);
    nn_model_destroy(&m);
    return (double)total / dt;
}

int main(int argc, char **argv)
{
    int threads = omp_get_max_threads(), steps = 3, repeat = 3;
    bool torch = true, quick = false;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--threads") && i + 1 < argc)
            threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--steps") && i + 1 < argc)
            steps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--repeat") && i + 1 < argc)
            repeat = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--no-torch"))
            torch = false;
        else if (!strcmp(argv[i], "--quick"))
            quick = true;
        else if (!strcmp(argv[i], "--blas-native")) {
            if (getenv("OPENBLAS_CORETYPE")) { /* too late for this process: start again */
                unsetenv("OPENBLAS_CORETYPE");
                execv("/proc/self/exe", argv);
                perror("bench_nn: re-executing without OPENBLAS_CORETYPE");
                return 1;
            }
        } else {
            fprintf(stderr, "usage: bench_nn [--threads N] [--steps N] [--no-torch] [--quick] "
                            "[--blas-native] [--repeat N]\n");
            return 2;
        }
    }
    if (threads < 1 || steps < 1 || repeat < 1)
        return 2;
    omp_set_num_threads(threads);
    openblas_set_num_threads(threads);
    const char *ct = getenv("OPENBLAS_CORETYPE");
    printf("BLAS: %s\n", openblas_get_config());
    printf("OpenBLAS core: %s (OPENBLAS_CORETYPE %s)\n", openblas_get_corename(),
           ct ? ct : "unset: detected from the CPU");
    if (ct)
        printf(
            "note: OPENBLAS_CORETYPE is preset; --blas-native runs with the CPU's own kernels\n");
    printf("threads: %d (OpenMP and OpenBLAS; PyTorch set to the same)\n\n", threads);
    const struct shape shapes[] = {
        {"S", 6, 384, 6, 6, 1024, 8192, 256, 4},
        {"demo", 4, 128, 4, 2, 352, 259, 128, 4},
    };
    printf("training step (fwd + bwd + clip + AdamW), tokens/s\n");
    printf("%-6s %10s %12s %12s %8s\n", "shape", "params", "engine", "pytorch", "ratio");
    for (size_t i = quick ? 1 : 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        size_t np = 0;
        double e = -1, t = -1;
        for (int r = 0; r < repeat;
             r++) { /* interleaved, best of `repeat`: the machine is shared */
            double x = train_engine(&shapes[i], steps, &np);
            e = x > e ? x : e;
            x = torch ? train_torch(&shapes[i], steps, threads) : -1;
            t = x > t ? x : t;
        }
        if (t > 0)
            printf("%-6s %9.2fM %12.0f %12.0f %7.2fx\n", shapes[i].name, (double)np / 1e6, e, t,
                   e / t);
        else
            printf("%-6s %9.2fM %12.0f %12s %8s\n", shapes[i].name, (double)np / 1e6, e, "n/a",
                   "n/a");
        fflush(stdout);
    }
    struct nn_config c;
    shape_config(&shapes[0], &c, true);
    printf("\ndecoding with the KV cache (shape S, tied: %.1fM parameters), 16-token prompts, "
           "greedy\n",
           (double)nn_config_num_params(&c) / 1e6);
    printf("%-6s %12s\n", "batch", "tokens/s");
    const int batches[2] = {1, 32};
    for (int i = 0; i < 2; i++) {
        double d = -1;
        for (int r = 0; r < repeat; r++) {
            double x = decode_engine(&shapes[0], batches[i], quick ? 16 : 128);
            d = x > d ? x : d;
        }
        printf("%-6d %12.1f\n", batches[i], d);
        fflush(stdout);
    }
    return 0;
}
