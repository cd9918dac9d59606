/* trainer main: the online loop (OAIF) as a process. Options from the run file's `trainer`
 * section, the environment (TRAINER_*) and flags; `trainer --help` lists them. */
#include <inttypes.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "cfg.h"
#include "err.h"
#include "log.h"
#include "online.h"

struct trainer_opts {
    char *run, *ckpt_root, *sft_dir, *ledger, *curve_secret, *ledger_key, *instruction;
    int steps, batch, prompts_per_request, inflight, max_staleness, checkpoint_every, keep_last;
    int eval_n, eval_every;
    int loss, schedule, warmup, micro, top_k, max_new_tokens, max_prompts, builtin_prompts, seed,
        stop_after;
    double beta, eps, nll, lr, min_lr, clip, weight_decay, temperature, top_p;
    bool offline, progress, nll_sum;
    int64_t lease_ms;
};

static const struct cfg_choice losses[] = {{"dpo", 0},  {"ipo", 1},    {"slic", 2},
                                           {"cdpo", 3}, {"robust", 4}, {NULL, 0}};
static const struct cfg_choice schedules[] = {
    {"constant", 0}, {"cosine", 1}, {"inverse-sqrt", 2}, {NULL, 0}};

#define O struct trainer_opts
static const struct cfg_option options[] = {
    CFG_STRING_OPT(O, run, .key = "trainer.run", .def = "run", .env = "TRAINER_RUN",
                   .flag = "--run", .help = "Run name (ids of requests, steps, checkpoints)."),
    CFG_STRING_OPT(O, ckpt_root, .key = "trainer.checkpoint_dir", .def = "data/checkpoints",
                   .env = "TRAINER_CHECKPOINT_DIR", .flag = "--checkpoints",
                   .help = "Where policy checkpoints are written (policy-v<N>/)."),
    CFG_STRING_OPT(O, sft_dir, .key = "trainer.reference", .def = "data/checkpoints/sft-v000000",
                   .env = "TRAINER_REFERENCE", .flag = "--reference",
                   .help = "The SFT checkpoint: frozen reference and policy version 0."),
    CFG_STRING_OPT(O, ledger, .key = "bus.clients_endpoint", .def = "tcp://127.0.0.1:5555",
                   .env = "BUS_CLIENTS_ENDPOINT", .flag = "--ledger",
                   .help = "The ledger's client endpoint."),
    CFG_STRING_OPT(O, curve_secret, .key = "trainer.curve_secret_key", .def = NULL,
                   .env = "TRAINER_CURVE_SECRET_KEY", .flag = "--curve-secret",
                   .help = "This process's CURVE key pair file (with --ledger-key)."),
    CFG_STRING_OPT(O, ledger_key, .key = "bus.ledger_public_key", .def = NULL,
                   .env = "BUS_LEDGER_PUBLIC_KEY", .flag = "--ledger-key",
                   .help = "The ledger's public key file."),
    CFG_INT_OPT(O, steps, .key = "trainer.steps", .def = "100", .min = 0, .max = 10000000,
                .env = "TRAINER_STEPS", .flag = "--steps", .help = "Optimizer steps of the run."),
    CFG_INT_OPT(O, batch, .key = "trainer.batch", .def = "16", .min = 1, .max = 4096,
                .env = "TRAINER_BATCH", .flag = "--batch", .help = "Labeled pairs per step."),
    CFG_INT_OPT(O, prompts_per_request, .key = "trainer.prompts_per_request", .def = "16", .min = 1,
                .max = 4096, .env = "TRAINER_PROMPTS_PER_REQUEST", .flag = "--prompts-per-request",
                .help = "Prompts per sample request."),
    CFG_INT_OPT(O, inflight, .key = "trainer.inflight", .def = "2", .min = 1, .max = 1024,
                .env = "TRAINER_INFLIGHT", .flag = "--inflight",
                .help = "Sample requests in flight (sampling and judging overlap training)."),
    CFG_INT_OPT(O, max_staleness, .key = "trainer.max_staleness", .def = "1", .min = 0, .max = 1000,
                .env = "TRAINER_MAX_STALENESS", .flag = "--max-staleness",
                .help = "Pairs more versions behind than this are recorded as stale."),
    CFG_INT_OPT(O, checkpoint_every, .key = "trainer.checkpoint_every", .def = "10", .min = 1,
                .max = 1000000, .env = "TRAINER_CHECKPOINT_EVERY", .flag = "--checkpoint-every",
                .help = "Steps between checkpoints (and one at the end)."),
    CFG_INT_OPT(O, keep_last, .key = "trainer.keep_last", .def = "3", .min = 1, .max = 100000,
                .env = "TRAINER_KEEP_LAST", .flag = "--keep-last",
                .help = "Newest policy checkpoints kept on disk (besides SFT and the best)."),
    CFG_INT_OPT(O, eval_n, .key = "trainer.eval_n", .def = "0", .min = 0, .max = 100000,
                .env = "TRAINER_EVAL_N", .flag = "--eval-n",
                .help = "Eval-split prompts of the built-in task to score checkpoints on against "
                        "SFT (0: none; the best evaluated checkpoint is kept)."),
    CFG_INT_OPT(O, eval_every, .key = "trainer.eval_every", .def = "1", .min = 1, .max = 1000000,
                .env = "TRAINER_EVAL_EVERY", .flag = "--eval-every",
                .help = "Evaluate every this many checkpoints (and the last one)."),
    CFG_ENUM_OPT(O, loss, .key = "trainer.loss", .def = "dpo", .choices = losses,
                 .env = "TRAINER_LOSS", .flag = "--loss", .help = "The preference loss."),
    CFG_DOUBLE_OPT(O, beta, .key = "trainer.beta", .def = "0.1", .dmin = 1e-6, .dmax = 1000,
                   .env = "TRAINER_BETA", .flag = "--beta", .help = "Beta of the loss."),
    CFG_DOUBLE_OPT(O, eps, .key = "trainer.label_smoothing", .def = "0.1", .dmin = 0, .dmax = 0.499,
                   .env = "TRAINER_LABEL_SMOOTHING", .flag = "--label-smoothing",
                   .help = "Epsilon of cDPO and robust DPO."),
    CFG_DOUBLE_OPT(O, nll, .key = "trainer.nll", .def = "0", .dmin = 0, .dmax = 100,
                   .env = "TRAINER_NLL", .flag = "--nll",
                   .help = "Weight alpha of the chosen responses' per-token NLL added to the "
                           "preference loss (RPO; keeps their likelihood from falling; 0: off)."),
    CFG_BOOL_OPT(O, nll_sum, .key = "trainer.nll_sum", .def = "false", .env = "TRAINER_NLL_SUM",
                 .flag = "--nll-sum",
                 .help = "The NLL term summed over the chosen response's tokens, not averaged: "
                         "averaged, it weighs the first token of a short answer more than a "
                         "long one's and so shortens answers."),
    CFG_DOUBLE_OPT(O, lr, .key = "trainer.lr", .def = "5e-4", .dmin = 0, .dmax = 10,
                   .env = "TRAINER_LR", .flag = "--lr", .help = "Peak learning rate."),
    CFG_ENUM_OPT(O, schedule, .key = "trainer.schedule", .def = "constant", .choices = schedules,
                 .env = "TRAINER_SCHEDULE", .flag = "--schedule",
                 .help = "After the warm-up: constant, cosine, inverse-sqrt."),
    CFG_INT_OPT(O, warmup, .key = "trainer.warmup", .def = "10", .min = 0, .max = 10000000,
                .env = "TRAINER_WARMUP", .flag = "--warmup", .help = "Warm-up steps."),
    CFG_DOUBLE_OPT(O, min_lr, .key = "trainer.min_lr", .def = "0", .dmin = 0, .dmax = 10,
                   .env = "TRAINER_MIN_LR", .flag = "--min-lr", .help = "Cosine floor."),
    CFG_DOUBLE_OPT(O, clip, .key = "trainer.clip", .def = "1.0", .dmin = 0, .dmax = 1e6,
                   .env = "TRAINER_CLIP", .flag = "--clip", .help = "Global-norm clip (0: off)."),
    CFG_DOUBLE_OPT(O, weight_decay, .key = "trainer.weight_decay", .def = "0", .dmin = 0,
                   .dmax = 10, .env = "TRAINER_WEIGHT_DECAY", .flag = "--weight-decay",
                   .help = "AdamW decoupled weight decay."),
    CFG_INT_OPT(O, micro, .key = "trainer.micro_batch", .def = "16", .min = 1, .max = 4096,
                .env = "TRAINER_MICRO_BATCH", .flag = "--micro-batch",
                .help = "Pairs per forward (memory bound)."),
    CFG_DOUBLE_OPT(O, temperature, .key = "trainer.temperature", .def = "0.9", .dmin = 0,
                   .dmax = 10, .env = "TRAINER_TEMPERATURE", .flag = "--temperature",
                   .help = "Sampling temperature of the two responses."),
    CFG_DOUBLE_OPT(O, top_p, .key = "trainer.top_p", .def = "1", .dmin = 0, .dmax = 1,
                   .env = "TRAINER_TOP_P", .flag = "--top-p", .help = "Sampling top-p."),
    CFG_INT_OPT(O, top_k, .key = "trainer.top_k", .def = "0", .min = 0, .max = 1000000,
                .env = "TRAINER_TOP_K", .flag = "--top-k", .help = "Sampling top-k (0: off)."),
    CFG_INT_OPT(O, max_new_tokens, .key = "trainer.max_new_tokens", .def = "128", .min = 1,
                .max = 100000, .env = "TRAINER_MAX_NEW_TOKENS", .flag = "--max-new-tokens",
                .help = "Longest response sampled."),
    CFG_STRING_OPT(O, instruction, .key = "trainer.instruction", .def = "",
                   .env = "TRAINER_INSTRUCTION", .flag = "--instruction",
                   .help =
                       "What the judge is told to prefer (e.g. \"Prefer shorter responses.\")."),
    CFG_BOOL_OPT(O, offline, .key = "trainer.offline", .def = "false", .env = "TRAINER_OFFLINE",
                 .flag = "--offline",
                 .help = "Sample every pair from the SFT model (offline DPO)."),
    CFG_INT_OPT(O, max_prompts, .key = "trainer.max_prompts", .def = "0", .min = 0,
                .max = 100000000, .env = "TRAINER_MAX_PROMPTS", .flag = "--max-prompts",
                .help = "Train prompts read from the ledger (0: all)."),
    CFG_INT_OPT(O, builtin_prompts, .key = "trainer.builtin_prompts", .def = "2000", .min = 0,
                .max = 1000000, .env = "TRAINER_BUILTIN_PROMPTS", .flag = "--builtin-prompts",
                .help = "When the ledger holds no train prompts, put this many of the built-in "
                        "task's train split there first (0: fail instead)."),
    CFG_INT_OPT(O, seed, .key = "trainer.seed", .def = "1", .min = 0, .max = 2147483647,
                .env = "TRAINER_SEED", .flag = "--seed",
                .help = "Prompt order and sampling seeds."),
    CFG_DURATION_OPT(O, lease_ms, .key = "trainer.lease", .def = "0", .min = 0, .max = 86400000,
                     .env = "TRAINER_LEASE", .flag = "--lease",
                     .help = "Lease of each sample/annotate request (0: the ledger's default)."),
    CFG_BOOL_OPT(O, progress, .key = "trainer.progress", .def = "false", .env = "TRAINER_PROGRESS",
                 .flag = "--progress",
                 .help = "A progress bar on stderr instead of a log line every 10 steps."),
    CFG_INT_OPT(O, stop_after, .key = "trainer.stop_after_steps", .def = "0", .min = 0,
                .max = 10000000, .env = "TRAINER_STOP_AFTER_STEPS", .flag = "--stop-after-steps",
                .help = "Exit after this many steps of this process (tests)."),
};
#undef O

static const char *const sections[] = {"trainer", NULL};
static const struct cfg_spec spec = {
    .name = "trainer",
    .summary = "The online loop: sample, judge, and take DPO-family steps against the SFT model.",
    .sections = sections,
    .options = options,
    .n_options = sizeof options / sizeof options[0],
};

static volatile sig_atomic_t stop_requested;

static void on_stop_signal(int sig)
{
    (void)sig;
    stop_requested = 1;
}

int main(int argc, char **argv)
{
    struct trainer_opts o;
    log_init_from_env("trainer");
    int rc = cfg_load(&spec, &o, argc, argv, NULL);
    if (rc)
        return rc == CFG_HELP ? 0 : 2;
    cfg_log(&spec, &o);
    struct bus_curve curve;
    char why[600];
    if (bus_curve_client(&curve, o.curve_secret, o.ledger_key, "trainer.curve_secret_key", why,
                         sizeof why)) {
        log_error("%s", why);
        cfg_release(&spec, &o);
        return 2;
    }
    struct trainer_online_config c;
    trainer_online_defaults(&c);
    c.run = o.run;
    c.ckpt_root = o.ckpt_root;
    c.sft_dir = o.sft_dir;
    c.ledger = o.ledger;
    c.curve = &curve;
    c.steps = o.steps;
    c.batch = o.batch;
    c.prompts_per_request = o.prompts_per_request;
    c.inflight = o.inflight;
    c.max_staleness = o.max_staleness;
    c.checkpoint_every = o.checkpoint_every;
    c.keep_last = o.keep_last;
    c.eval_n = o.eval_n;
    c.eval_every = o.eval_every;
    static const enum nn_pref_kind kinds[] = {NN_PREF_DPO, NN_PREF_IPO, NN_PREF_SLIC, NN_PREF_CDPO,
                                              NN_PREF_ROBUST};
    c.step.loss.kind = kinds[o.loss];
    c.step.loss.beta = (float)o.beta;
    c.step.loss.eps = (float)o.eps;
    c.step.nll = (float)o.nll;
    c.step.nll_sum = o.nll_sum;
    c.step.adamw.weight_decay = (float)o.weight_decay;
    c.step.clip = (float)o.clip;
    c.step.micro = o.micro;
    static const enum nn_sched_kind sk[] = {NN_SCHED_CONSTANT, NN_SCHED_COSINE, NN_SCHED_INVSQRT};
    c.sched = (struct nn_sched){.kind = sk[o.schedule],
                                .lr = (float)o.lr,
                                .min_lr = (float)o.min_lr,
                                .warmup = o.warmup,
                                .total_steps = o.steps};
    c.temperature = (float)o.temperature;
    c.top_p = (float)o.top_p;
    c.top_k = o.top_k;
    c.max_new_tokens = o.max_new_tokens;
    c.instruction = o.instruction;
    c.offline = o.offline;
    c.max_prompts = o.max_prompts;
    c.builtin_prompts = o.builtin_prompts;
    c.seed = (uint64_t)o.seed;
    c.lease_ms = (unsigned)o.lease_ms;
    c.progress = o.progress;
    c.stop_after_steps = o.stop_after;
    struct sigaction sa = {.sa_handler = on_stop_signal};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    void *zctx = zmq_ctx_new();
    struct trainer_online_summary sum = {0};
    rc = zctx ? trainer_online_run(&c, zctx, &stop_requested, &sum) : ERR_NOMEM;
    char best[96] = "no checkpoint evaluated";
    if (sum.best_version > 0)
        snprintf(best, sizeof best, "best evaluated v%u (win rate %.1f%%)", sum.best_version,
                 100 * sum.best_win_rate);
    log_info("run '%s': step %d, policy v%u; this process: %d steps in %.1f s, %" PRIu64
             " pairs labeled, %" PRIu64 " trained, %" PRIu64 " ties, %" PRIu64 " stale, %" PRIu64
             " failed; %s; %s",
             c.run, sum.step, sum.version, sum.steps_done, sum.seconds, sum.labeled, sum.trained,
             sum.ties, sum.stale, sum.failed, best, err_str(rc));
    if (zctx)
        zmq_ctx_term(zctx);
    cfg_release(&spec, &o);
    return rc && rc != ERR_INTR ? 1 : 0;
}
