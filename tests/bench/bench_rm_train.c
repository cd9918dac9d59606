/* bench_rm_train.c - reward-model training throughput (issue 13), tokens/s of oaif's full
 * training step next to PyTorch's (bench_rm_train_torch.py) on the same shapes and thread count,
 * in the same run. Not a test (not registered in ctest).
 *
 *   build/tests/bench/bench_rm_train [--threads N] [--steps N] [--repeat N] [--no-torch]
 *                                    [--quick] [--blas-native]
 *
 * One step is what `oaif rm train` does per batch (trainer_rm_step in services/trainer/rm.c,
 * called here as the trainer calls it, with the defaults of `oaif rm train`: Bradley-Terry loss
 * without margin, smoothing or centering, no contrastive or LM term so one view without dropout,
 * global-norm clip 1, AdamW lr 1e-4, betas 0.9 / 0.95, eps 1e-6, no weight decay): the forward
 * of the B chosen and B rejected sequences through the decoder with logits off, the scalar head
 * on each row's last token, the loss, the backward, the clip and AdamW. PyTorch runs the same
 * model (tests/nn_reference.py's Llama in torch.nn.functional) and the same step.
 *
 * Shapes (all 2B rows full, T tokens each, so both sides do the same work; tokens/s counts
 * 2 B T per step):
 *   builtin  the SFT model `oaif rm train` starts from on the built-in task
 *            (trainer_builtin_config: 2 layers, width 128, 8 heads of 16 with 4 KV heads, MLP
 *            352, byte vocabulary 259), --batch 16 pairs (the default), T 144: the mean padded
 *            length of a 16-pair batch of the task's demonstrations rendered as rm.c renders
 *            them (prompt template, BOS, response, EOS: 84 bytes on average, 146 per batch);
 *   S        bench_nn's shape S (6 layers, width 384, 6 heads, MLP 1024, vocab 8192) with a
 *            reward head, 8 pairs of 256 tokens.
 * Each number is the median of --repeat runs (5) of --steps timed steps (5; one untimed warm-up
 * step first), engine and PyTorch interleaved, since the machine may be shared; min and max are
 * printed beside it. The ratio is of the medians, engine / PyTorch; the target is 1.3.
 * OpenBLAS picks its kernels from OPENBLAS_CORETYPE when that is set; --blas-native re-runs the
 * bench without it (see bench_nn.c). The BLAS core and the load average at the start and the
 * end are printed: what else was running. */
#include <cblas.h>
#include <omp.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "err.h"
#include "model.h"
#include "optim.h"
#include "policy.h"
#include "rm.h"
#include "rm_loss.h"
#include "trainer_opts.h"

#ifndef BENCH_DIR
#define BENCH_DIR "tests/bench"
#endif

#define MAX_REPEAT 101

struct shape {
    const char *name;
    int layers, hidden, heads, kv_heads, inter, vocab; /* 0 layers: trainer_builtin_config */
    int pairs, T;
};

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void shape_config(const struct shape *s, struct nn_config *c)
{
    trainer_builtin_config(c);
    if (s->layers) {
        c->num_hidden_layers = s->layers;
        c->hidden_size = s->hidden;
        c->num_attention_heads = s->heads;
        c->num_key_value_heads = s->kv_heads;
        c->intermediate_size = s->inter;
        c->vocab_size = s->vocab;
        c->bos_token_id = c->eos_token_id = c->pad_token_id = -1;
        snprintf(c->tokenizer, sizeof c->tokenizer, "bpe");
    }
    if (c->max_position_embeddings < s->T)
        c->max_position_embeddings = s->T;
    c->reward_head = true;
}

/* Engine tokens/s over `steps` steps of trainer_rm_step; -1 on failure (printed). */
static double train_engine(const struct shape *s, const struct trainer_rm_opts *o, int steps,
                           size_t *nparams)
{
    struct nn_config c;
    shape_config(s, &c);
    struct trainer_rm_loss_opts lo;
    trainer_rm_loss_opts_of(o, &lo);
    int B = s->pairs, T = s->T, rows = 2 * B;
    nn_model_t *m = NULL;
    trainer_rm_loss_t *loss = NULL;
    nn_adamw_t *opt = NULL;
    int *tok = malloc((size_t)rows * T * sizeof(int)), *len = malloc((size_t)rows * sizeof(int));
    int *plen = malloc((size_t)rows * sizeof(int));
    char err[512] = "out of memory";
    double tps = -1;
    int rc = tok && len && plen ? nn_model_new(&m, &c, err, sizeof err) : ERR_NOMEM;
    if (!rc) {
        nn_model_init_random(m, 1, 0.02f);
        *nparams = nn_model_num_params(m);
        opt = nn_adamw_new(*nparams);
        rc = opt ? nn_model_reserve(m, rows, T, true) : ERR_NOMEM;
    }
    if (!rc)
        rc = trainer_rm_loss_new(&loss, m, &lo, B, 1, err, sizeof err);
    if (rc) {
        fprintf(stderr, "bench_rm_train: shape %s: %s (%s)\n", s->name, err, err_str(rc));
        goto out;
    }
    uint64_t r = 5;
    for (int i = 0; i < rows * T; i++)
        tok[i] = (int)(nn_rng_next(&r) % (uint64_t)c.vocab_size);
    for (int i = 0; i < rows; i++) {
        len[i] = T;
        plen[i] = T / 2;
    }
    struct trainer_rm_batch b = {
        .B = B, .T = T, .tokens = tok, .lengths = len, .prompt_lens = plen};
    double t0 = 0.0;
    for (int it = 0; it <= steps; it++) {
        if (it == 1)
            t0 = now(); /* step 0 warms up */
        struct trainer_rm_parts pt;
        rc = trainer_rm_step(loss, m, opt, NULL, &b, (uint64_t)it, o->lr, o->clip, &o->adamw, &pt,
                             err, sizeof err);
        if (rc) {
            fprintf(stderr, "bench_rm_train: shape %s: step %d: %s\n", s->name, it, err);
            goto out;
        }
    }
    tps = (double)rows * T * steps / (now() - t0);
out:
    free(tok);
    free(len);
    free(plen);
    trainer_rm_loss_destroy(&loss);
    nn_adamw_destroy(&opt);
    nn_model_destroy(&m);
    return tps;
}

/* PyTorch tokens/s from bench_rm_train_torch.py; -1 if it cannot run. */
static double train_torch(const struct shape *s, const struct trainer_rm_opts *o, int steps,
                          int threads)
{
    struct nn_config c;
    shape_config(s, &c);
    char cmd[1024];
    snprintf(cmd, sizeof cmd,
             "/usr/bin/python3 %s/bench_rm_train_torch.py --layers %d --hidden %d --heads %d "
             "--kv-heads %d --inter %d --vocab %d --T %d --pairs %d --steps %d --threads %d "
             "--lr %g --beta1 %g --beta2 %g --eps %g --weight-decay %g --clip %g 2>&1",
             BENCH_DIR, c.num_hidden_layers, c.hidden_size, c.num_attention_heads,
             c.num_key_value_heads, c.intermediate_size, c.vocab_size, s->T, s->pairs, steps,
             threads, (double)o->lr, (double)o->adamw.beta1, (double)o->adamw.beta2,
             (double)o->adamw.eps, (double)o->adamw.weight_decay, (double)o->clip);
    FILE *p = popen(cmd, "r");
    if (!p)
        return -1;
    char line[512];
    double tps = -1;
    while (fgets(line, sizeof line, p)) {
        if (!strncmp(line, "tokens_per_s ", 13))
            tps = atof(line + 13);
        else
            fprintf(stderr, "bench_rm_train_torch.py: %s", line);
    }
    pclose(p);
    return tps;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Sorts x[0..n) and returns its median. */
static double median(double *x, int n)
{
    qsort(x, (size_t)n, sizeof *x, cmp_double);
    return n % 2 ? x[n / 2] : 0.5 * (x[n / 2 - 1] + x[n / 2]);
}

static void print_load(const char *when)
{
    double l[3];
    if (getloadavg(l, 3) == 3)
        printf("load average %s: %.2f %.2f %.2f\n", when, l[0], l[1], l[2]);
}

int main(int argc, char **argv)
{
    int threads = omp_get_max_threads(), steps = 5, repeat = 5;
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
                perror("bench_rm_train: re-executing without OPENBLAS_CORETYPE");
                return 1;
            }
        } else {
            fprintf(stderr, "usage: bench_rm_train [--threads N] [--steps N] [--repeat N] "
                            "[--no-torch] [--quick] [--blas-native]\n");
            return 2;
        }
    }
    if (threads < 1 || steps < 1 || repeat < 1 || repeat > MAX_REPEAT) {
        fprintf(stderr, "bench_rm_train: --threads, --steps must be >= 1, --repeat in 1..%d\n",
                MAX_REPEAT);
        return 2;
    }
    struct trainer_rm_opts o;
    if (trainer_rm_defaults(&o)) {
        fprintf(stderr, "bench_rm_train: the defaults of oaif rm train do not load\n");
        return 1;
    }
    omp_set_num_threads(threads);
    openblas_set_num_threads(threads);
    const char *ct = getenv("OPENBLAS_CORETYPE");
    printf("BLAS: %s\n", openblas_get_config());
    printf("OpenBLAS core: %s (OPENBLAS_CORETYPE %s)\n", openblas_get_corename(),
           ct ? ct : "unset: detected from the CPU");
    printf("threads: %d (OpenMP and OpenBLAS; PyTorch set to the same); cores online: %ld\n",
           threads, sysconf(_SC_NPROCESSORS_ONLN));
    print_load("at the start");
    printf("step: fwd (chosen + rejected) + reward head + Bradley-Terry + bwd + clip %g + AdamW "
           "lr %g\nmedian of %d runs of %d steps, tokens/s (min..max)\n\n",
           (double)o.clip, (double)o.lr, repeat, steps);
    const struct shape shapes[] = {
        {"builtin", 0, 0, 0, 0, 0, 0, o.batch, 144},
        {"S", 6, 384, 6, 6, 1024, 8192, 8, 256},
    };
    printf("%-8s %8s %6s %26s %26s %7s\n", "shape", "params", "BxT", "engine", "pytorch", "ratio");
    int rc = 0;
    for (size_t i = 0; i < (quick ? 1 : sizeof shapes / sizeof shapes[0]); i++) {
        const struct shape *s = &shapes[i];
        size_t np = 0;
        double e[MAX_REPEAT], t[MAX_REPEAT];
        for (int r = 0; r < repeat; r++) { /* interleaved: the machine is shared */
            e[r] = train_engine(s, &o, steps, &np);
            t[r] = torch ? train_torch(s, &o, steps, threads) : -1;
        }
        double em = median(e, repeat), tm = median(t, repeat);
        char bt[32], es[64], ts[64] = "n/a", ratio[16] = "n/a";
        snprintf(bt, sizeof bt, "%dx%d", 2 * s->pairs, s->T);
        snprintf(es, sizeof es, "%.0f (%.0f..%.0f)", em, e[0], e[repeat - 1]);
        if (t[0] > 0) {
            snprintf(ts, sizeof ts, "%.0f (%.0f..%.0f)", tm, t[0], t[repeat - 1]);
            snprintf(ratio, sizeof ratio, "%.2fx", em / tm);
        } else if (torch) {
            rc = 1;
        }
        if (e[0] <= 0)
            rc = 1;
        printf("%-8s %7.2fM %6s %26s %26s %7s\n", s->name, (double)np / 1e6, bt, es, ts, ratio);
        fflush(stdout);
    }
    print_load("at the end");
    trainer_rm_release(&o);
    return rc;
}
