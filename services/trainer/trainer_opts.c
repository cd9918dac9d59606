/* trainer_opts.c - see trainer_opts.h. */
#include "trainer_opts.h"

#include <stdlib.h>
#include <string.h>

#include "buscheck.h"
#include "busopts.h"
#include "ckpt.h"
#include "err.h"
#include "nn_threads.h"

#define STR_(x) #x
#define STR(x)  STR_(x) /* the text of a macro's value */

/* Defaults that more than one table below shares, each written here alone. */
#define CHECKPOINT_ROOT CKPT_DEFAULT_ROOT              /* oaif sft and the trainer write there */
#define SFT_CHECKPOINT  CHECKPOINT_ROOT "/sft-v000000" /* version 0, as oaif sft writes it */
#define EVAL_PROMPTS    "350" /* eval-split prompts: SFT's evaluation, and oaif eval's */
#define EVAL_MAX_NEW    "128" /* most tokens of an eval answer: the same two */

static const struct cfg_choice losses[] = {
    {"dpo", NN_PREF_DPO},   {"ipo", NN_PREF_IPO},       {"slic", NN_PREF_SLIC},
    {"cdpo", NN_PREF_CDPO}, {"robust", NN_PREF_ROBUST}, {NULL, 0},
};
static const struct cfg_choice schedules[] = {
    {"constant", NN_SCHED_CONSTANT},
    {"cosine", NN_SCHED_COSINE},
    {"inverse-sqrt", NN_SCHED_INVSQRT},
    {NULL, 0},
};

#define O struct trainer_online_config
static const struct cfg_option options[] = {
    CFG_STRING_OPT(O, run, .key = "trainer.run", .def = "run", .env = "TRAINER_RUN",
                   .flag = "--run", .help = "Run name (ids of requests, steps, checkpoints)."),
    CFG_STRING_OPT(O, ckpt_root, .key = "trainer.checkpoint_dir", .def = CHECKPOINT_ROOT,
                   .env = "TRAINER_CHECKPOINT_DIR", .flag = "--checkpoints",
                   .help = "Where policy checkpoints are written (policy-v<N>/)."),
    CFG_STRING_OPT(O, sft_dir, .key = "trainer.reference", .def = SFT_CHECKPOINT,
                   .env = "TRAINER_REFERENCE", .flag = "--reference",
                   .help = "The SFT checkpoint: frozen reference and policy version 0."),
    BUS_OPT_CLIENTS(O, ledger),
    BUS_OPT_LEDGER_KEY(O, ledger_public_key),
    BUS_OPT_CURVE_SECRET(O, curve_secret_key, "trainer", "TRAINER"),
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
    CFG_INT_OPT(O, max_unusable_labels, .key = "trainer.max_unusable_labels", .def = "5000",
                .min = 0, .max = 1000000000, .env = "TRAINER_MAX_UNUSABLE_LABELS",
                .flag = "--max-unusable-labels",
                .help = "Stop when this many labels in a row gave no pair to train on: ties, no "
                        "verdict, failed judgements (0: never). A warning comes at 4 batches."),
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
    CFG_ENUM_OPT(O, step.loss.kind, .key = "trainer.loss", .def = "dpo", .choices = losses,
                 .env = "TRAINER_LOSS", .flag = "--loss", .help = "The preference loss."),
    CFG_FLOAT_OPT(O, step.loss.beta, .key = "trainer.beta", .def = "0.1", .dmin = 1e-6,
                  .dmax = 1000, .env = "TRAINER_BETA", .flag = "--beta",
                  .help = "Beta of the loss."),
    CFG_FLOAT_OPT(O, step.loss.eps, .key = "trainer.label_smoothing", .def = "0.1", .dmin = 0,
                  .dmax = 0.499, .env = "TRAINER_LABEL_SMOOTHING", .flag = "--label-smoothing",
                  .help = "Epsilon of cDPO and robust DPO."),
    CFG_FLOAT_OPT(O, step.nll, .key = "trainer.nll", .def = "0", .dmin = 0, .dmax = 100,
                  .env = "TRAINER_NLL", .flag = "--nll",
                  .help = "Weight alpha of the chosen responses' per-token NLL added to the "
                          "preference loss (RPO; keeps their likelihood from falling; 0: off)."),
    CFG_BOOL_OPT(O, step.nll_sum, .key = "trainer.nll_sum", .def = "false",
                 .env = "TRAINER_NLL_SUM", .flag = "--nll-sum",
                 .help = "The NLL term summed over the chosen response's tokens, not averaged: "
                         "averaged, it weighs the first token of a short answer more than a "
                         "long one's and so shortens answers."),
    CFG_FLOAT_OPT(O, sched.lr, .key = "trainer.lr", .def = "5e-4", .dmin = 0, .dmax = 10,
                  .env = "TRAINER_LR", .flag = "--lr", .help = "Peak learning rate."),
    CFG_ENUM_OPT(O, sched.kind, .key = "trainer.schedule", .def = "constant", .choices = schedules,
                 .env = "TRAINER_SCHEDULE", .flag = "--schedule",
                 .help = "After the warm-up: constant, cosine, inverse-sqrt."),
    CFG_LONG_OPT(O, sched.warmup, .key = "trainer.warmup", .def = "10", .min = 0, .max = 10000000,
                 .env = "TRAINER_WARMUP", .flag = "--warmup", .help = "Warm-up steps."),
    CFG_FLOAT_OPT(O, sched.min_lr, .key = "trainer.min_lr", .def = "0", .dmin = 0, .dmax = 10,
                  .env = "TRAINER_MIN_LR", .flag = "--min-lr", .help = "Cosine floor."),
    CFG_FLOAT_OPT(O, step.clip, .key = "trainer.clip", .def = "1.0", .dmin = 0, .dmax = 1e6,
                  .env = "TRAINER_CLIP", .flag = "--clip", .help = "Global-norm clip (0: off)."),
    CFG_FLOAT_OPT(O, step.adamw.weight_decay, .key = "trainer.weight_decay", .def = "0", .dmin = 0,
                  .dmax = 10, .env = "TRAINER_WEIGHT_DECAY", .flag = "--weight-decay",
                  .help = "AdamW decoupled weight decay."),
    CFG_FLOAT_OPT(O, step.adamw.beta1, .key = "trainer.adam_beta1", .def = "0.9", .dmin = 0,
                  .dmax = 0.9999, .env = "TRAINER_ADAM_BETA1", .flag = "--adam-beta1",
                  .help = "AdamW's first-moment decay."),
    CFG_FLOAT_OPT(O, step.adamw.beta2, .key = "trainer.adam_beta2", .def = "0.999", .dmin = 0,
                  .dmax = 0.99999, .env = "TRAINER_ADAM_BETA2", .flag = "--adam-beta2",
                  .help = "AdamW's second-moment decay."),
    CFG_FLOAT_OPT(O, step.adamw.eps, .key = "trainer.adam_eps", .def = "1e-8", .dmin = 1e-12,
                  .dmax = 1, .env = "TRAINER_ADAM_EPS", .flag = "--adam-eps",
                  .help = "AdamW's epsilon."),
    CFG_INT_OPT(O, step.micro, .key = "trainer.micro_batch", .def = "16", .min = 1, .max = 4096,
                .env = "TRAINER_MICRO_BATCH", .flag = "--micro-batch",
                .help = "Pairs per forward (memory bound)."),
    CFG_FLOAT_OPT(O, temperature, .key = "trainer.temperature", .def = "0.9", .dmin = 0, .dmax = 10,
                  .env = "TRAINER_TEMPERATURE", .flag = "--temperature",
                  .help = "Sampling temperature of the two responses."),
    CFG_FLOAT_OPT(O, top_p, .key = "trainer.top_p", .def = "1", .dmin = 0, .dmax = 1,
                  .env = "TRAINER_TOP_P", .flag = "--top-p", .help = "Sampling top-p."),
    CFG_INT_OPT(O, top_k, .key = "trainer.top_k", .def = "0", .min = 0, .max = 1000000,
                .env = "TRAINER_TOP_K", .flag = "--top-k", .help = "Sampling top-k (0: off)."),
    CFG_INT_OPT(O, max_new_tokens, .key = "trainer.max_new_tokens", .def = "128", .min = 1,
                .max = 100000, .env = "TRAINER_MAX_NEW_TOKENS", .flag = "--max-new-tokens",
                .help = "Longest response sampled (the built-in task's longest demonstrations are "
                        "about 100 bytes)."),
    CFG_STRING_OPT(O, instruction, .key = "trainer.instruction", .def = "",
                   .env = "TRAINER_INSTRUCTION", .flag = "--instruction",
                   .help =
                       "What the judge is told to prefer (e.g. \"Prefer shorter responses.\")."),
    CFG_BOOL_OPT(O, offline, .key = "trainer.offline", .def = "false", .env = "TRAINER_OFFLINE",
                 .flag = "--offline",
                 .help = "Sample every pair from the SFT model (offline DPO)."),
    CFG_STRING_OPT(O, offline_from, .key = "trainer.offline_from", .env = "TRAINER_OFFLINE_FROM",
                   .flag = "--offline-from",
                   .help = "With --offline: sample every pair from this checkpoint instead, a "
                           "model other than the SFT model, as the OAIF paper's offline data "
                           "were. It is published as the deployment's version 0 (what its "
                           "sampler and evaluator take for version 0); the policy still starts "
                           "from, and is held to, the SFT model."),
    CFG_INT_OPT(O, max_prompts, .key = "trainer.max_prompts", .def = "0", .min = 0,
                .max = 100000000, .env = "TRAINER_MAX_PROMPTS", .flag = "--max-prompts",
                .help = "Train prompts read from the ledger (0: all)."),
    CFG_INT_OPT(O, builtin_prompts, .key = "trainer.builtin_prompts", .def = "2000", .min = 0,
                .max = BUS_PUT_RECORDS_MAX, /* one put */ .env = "TRAINER_BUILTIN_PROMPTS",
                .flag = "--builtin-prompts",
                .help = "When the ledger holds no train prompts, put this many of the built-in "
                        "task's train split there first (0: fail instead)."),
    CFG_UINT64_OPT(O, seed, .key = "trainer.seed", .def = "1", .min = 0, .max = 2147483647,
                   .env = "TRAINER_SEED", .flag = "--seed",
                   .help = "Prompt order and sampling seeds."),
    CFG_DURATION_OPT(O, lease_ms, .key = "trainer.lease", .def = "0", .min = 0, .max = 86400000,
                     .env = "TRAINER_LEASE", .flag = "--lease",
                     .help = "Lease of each sample/annotate request (0: the ledger's default)."),
    CFG_BOOL_OPT(O, progress, .key = "trainer.progress", .def = "false", .env = "TRAINER_PROGRESS",
                 .flag = "--progress",
                 .help = "A progress bar on stderr instead of a log line every 10 steps."),
    CFG_BOOL_OPT(O, strength.enabled, .key = "trainer.strength.enabled", .def = "false",
                 .env = "TRAINER_STRENGTH", .flag = "--strength",
                 .help = "Send every labeled pair to the estimate service (the strength "
                         "estimator) and train it as its action says: flip, smooth, margin, "
                         "soft target, or drop."),
    CFG_BOOL_OPT(O, strength.required, .key = "trainer.strength.required", .def = "true",
                 .env = "TRAINER_STRENGTH_REQUIRED", .flag = "--strength-required",
                 .help = "The step waits for each pair's estimate and a pair whose estimate "
                         "failed is set aside; false: such a pair trains as labeled, counted."),
    CFG_DURATION_OPT(O, strength.timeout_ms, .key = "trainer.strength.timeout", .def = "60s",
                     .min = 1, .max = 86400000, .env = "TRAINER_STRENGTH_TIMEOUT",
                     .flag = "--strength-timeout",
                     .help = "Not required: how long a pair waits for its estimate before it "
                             "trains as labeled."),
    CFG_INT_OPT(O, strength.attempts, .key = "trainer.strength.attempts", .def = "0", .min = 0,
                .max = 1000, .env = "TRAINER_STRENGTH_ATTEMPTS", .flag = "--strength-attempts",
                .help = "Leases of an estimate request before the ledger fails it (0: the "
                        "ledger's default)."),
    CFG_STRING_OPT(O, metrics_bind, .key = "trainer.metrics_bind", .def = "127.0.0.1",
                   .env = "TRAINER_METRICS_BIND", .flag = "--metrics-bind",
                   .help = "Address of the HTTP server for /metrics and /healthz."),
    CFG_INT_OPT(O, metrics_port, .key = "trainer.metrics_port", .def = "-1", .min = -1,
                .max = 65535, .env = "TRAINER_METRICS_PORT", .flag = "--metrics-port",
                .help = "Port of /metrics and /healthz (0: any free one; -1: none)."),
    CFG_INT_OPT(O, stop_after_steps, .key = "trainer.stop_after_steps", .def = "0", .min = 0,
                .max = 10000000, .env = "TRAINER_STOP_AFTER_STEPS", .flag = "--stop-after-steps",
                .help = "Exit after this many steps of this process (tests)."),
    NN_OPT_THREADS(O, threads, "trainer.threads", "TRAINER_THREADS"),
};
#undef O

static const char *const sections[] = {"trainer", NULL};
const struct cfg_spec trainer_opts_spec = {
    .name = "trainer",
    .summary = "The online loop: sample, judge, and take DPO-family steps against the SFT model.",
    .sections = sections,
    .options = options,
    .n_options = sizeof options / sizeof options[0],
    .conf_size = sizeof(struct trainer_online_config),
};

int trainer_opts_load(struct trainer_online_config *c, int argc, char *const *argv, buf_t *errs,
                      struct cfg_trace *trace)
{
    memset(c, 0, sizeof *c);
    int rc = cfg_load_ex(&trainer_opts_spec, c, argc, argv, errs, trace);
    if (rc == ERR_OK)
        c->sched.total_steps = c->steps;
    return rc;
}

int trainer_opts_defaults(struct trainer_online_config *c)
{
    memset(c, 0, sizeof *c);
    int rc = cfg_defaults(&trainer_opts_spec, c);
    if (rc == ERR_OK)
        c->sched.total_steps = c->steps;
    return rc;
}

void trainer_opts_release(struct trainer_online_config *c)
{
    cfg_release(&trainer_opts_spec, c);
}

/* ---- oaif sft ------------------------------------------------------------------------------ */

static const struct cfg_choice loss_norms[] = {
    {"data", TRAINER_SFT_NORM_DATA},
    {"batch", TRAINER_SFT_NORM_BATCH},
    {NULL, 0},
};

/* The built-in recipe (README, "SFT"). The demonstrations' shares are the task's
 * TASK_DEMO_*_SHARE, as text. */
#define S struct trainer_sft_opts
static const struct cfg_option sft_options[] = {
    /* data */
    CFG_STRING_OPT(S, data_path, .key = "oaif.sft.data", .flag = "--data",
                   .help = "JSONL of {\"prompt\": ..., \"response\": ...} per line (default: the "
                           "built-in task's demonstrations)."),
    CFG_UINT64_OPT(S, task_seed, .key = "oaif.sft.task_seed", .def = STR(TRAINER_TASK_SEED),
                   .flag = "--task-seed",
                   .help = "The built-in task's seed: its split, demonstrations and eval prompts."),
    CFG_LONG_OPT(S, demos, .key = "oaif.sft.demos", .def = "0", .min = 0, .max = 1L << 26,
                 .flag = "--demos",
                 .help = "Built-in demonstrations to generate (0: steps x batch, so that every "
                         "step sees new ones)."),
    CFG_DOUBLE_OPT(S, demo.wrong_share, .key = "oaif.sft.wrong_share",
                   .def = STR(TASK_DEMO_WRONG_SHARE), .dmin = 0, .dmax = 1, .flag = "--wrong-share",
                   .help = "Share of built-in demonstrations with a plausible wrong answer."),
    CFG_DOUBLE_OPT(S, demo.verbose_share, .key = "oaif.sft.verbose_share",
                   .def = STR(TASK_DEMO_VERBOSE_SHARE), .dmin = 0, .dmax = 1,
                   .flag = "--verbose-share",
                   .help = "Share of verbose phrasings (40-100 bytes) among the built-in "
                           "demonstrations; the rest are terse."),
    CFG_DOUBLE_OPT(S, demo.habit_share, .key = "oaif.sft.habit_share",
                   .def = STR(TASK_DEMO_HABIT_SHARE), .dmin = 0, .dmax = 1, .flag = "--habit-share",
                   .help = "Where the built-in demonstrator has a habit (\"smaller\", "
                           "\"descending\" and \"smallest\" read as their opposites), the share "
                           "of demonstrations that follow it."),
    /* model */
    CFG_STRING_OPT(S, init_dir, .key = "oaif.sft.init", .flag = "--init",
                   .help = "Checkpoint to start from (default: a fresh built-in model)."),
    CFG_UINT64_OPT(S, seed, .key = "oaif.sft.seed", .def = "1", .flag = "--seed",
                   .help = "Initialisation and data order."),
    /* optimisation */
    CFG_LONG_OPT(S, steps, .key = "oaif.sft.steps", .def = "8000", .min = 1, .max = 100000000,
                 .flag = "--steps",
                 .help = "Optimizer steps (sums, differences and reversal are learned late)."),
    CFG_INT_OPT(S, batch, .key = "oaif.sft.batch", .def = "16", .min = 1, .max = 4096,
                .flag = "--batch", .help = "Sequences per step."),
    CFG_INT_OPT(S, max_len, .key = "oaif.sft.max_len", .def = "256", .min = 2, .max = 1 << 20,
                .flag = "--max-len",
                .help = "Tokens per sequence at most (longer responses are cut)."),
    CFG_FLOAT_OPT(S, lr, .key = "oaif.sft.lr", .def = "1e-3", .dmin = 1e-9, .dmax = 9.99,
                  .flag = "--lr", .help = "Peak learning rate (linear warm-up, cosine decay)."),
    CFG_FLOAT_OPT(S, min_lr_ratio, .key = "oaif.sft.min_lr_ratio", .def = "0.1", .dmin = 0,
                  .dmax = 1, .flag = "--min-lr-ratio",
                  .help = "The cosine's floor, as a share of the peak."),
    CFG_LONG_OPT(S, warmup, .key = "oaif.sft.warmup", .def = "50", .min = 0, .max = 100000000,
                 .flag = "--warmup", .help = "Linear warm-up steps (at most --steps)."),
    CFG_FLOAT_OPT(S, weight_decay, .key = "oaif.sft.weight_decay", .def = "0.01", .dmin = 0,
                  .dmax = 0.999, .flag = "--weight-decay",
                  .help = "AdamW's decoupled weight decay, on matrices only."),
    CFG_FLOAT_OPT(S, clip, .key = "oaif.sft.clip", .def = "1", .dmin = 0, .dmax = 1e6,
                  .flag = "--clip", .help = "Global gradient-norm clip (0: off)."),
    CFG_ENUM_OPT(S, loss_norm, .key = "oaif.sft.loss_norm", .def = "data", .choices = loss_norms,
                 .flag = "--loss-norm",
                 .help = "Divide the loss by batch x the data's mean response tokens (data), or "
                         "by the batch's own (batch: favours short answers)."),
    /* evaluation */
    CFG_INT_OPT(S, eval_n, .key = "oaif.sft.eval_n", .def = EVAL_PROMPTS, .min = 0, .max = 1000000,
                .flag = "--eval", .help = "Eval-split prompts for the evaluation (0: none)."),
    CFG_LONG_OPT(S, eval_every, .key = "oaif.sft.eval_every", .def = "0", .min = 0,
                 .max = 100000000, .flag = "--eval-every",
                 .help = "Also evaluate every this many steps (0: at the end only)."),
    CFG_INT_OPT(S, eval_max_new, .key = "oaif.sft.eval_max_new", .def = EVAL_MAX_NEW, .min = 1,
                .max = 65536, .flag = "--eval-max-new", .help = "Most tokens of an eval answer."),
    CFG_STRING_OPT(S, eval_samples, .key = "oaif.sft.eval_samples", .flag = "--eval-samples",
                   .help = "Write the final evaluation's answers there as JSONL."),
    /* output */
    CFG_STRING_OPT(S, root, .key = "oaif.sft.out", .def = CHECKPOINT_ROOT, .flag = "--out",
                   .help = "Checkpoint root: version 0 is written to ROOT/sft-v000000."),
    CFG_BOOL_OPT(S, force, .key = "oaif.sft.force", .flag = "--force",
                 .help = "Train even when the checkpoint is there with the same settings."),
    CFG_BOOL_OPT(S, progress, .key = "oaif.sft.progress", .flag = "--progress",
                 .help = "A progress bar on stderr even when it is not a terminal."),
    CFG_BOOL_OPT(S, no_progress, .key = "oaif.sft.no_progress", .flag = "--no-progress",
                 .help = "No progress bar, even on a terminal (default: a bar when stderr is "
                         "one)."),
    NN_OPT_THREADS(S, threads, "oaif.sft.threads", "SFT_THREADS"),
};
#undef S

const struct cfg_spec trainer_sft_opts_spec = {
    .name = "oaif sft",
    .summary = "SFT of the built-in policy on the built-in task's demonstrations (or of --init on "
               "--data),\nwritten as checkpoint version 0 (kind sft) under --out; skipped when it "
               "is already there\nwith the same settings and seed (--force trains anyway).",
    .options = sft_options,
    .n_options = sizeof sft_options / sizeof sft_options[0],
    .conf_size = sizeof(struct trainer_sft_opts),
};

const struct trainer_opts_preset trainer_sft_quick[] = {
    {"oaif.sft.steps", "150"},
    {"oaif.sft.warmup", "15"},
    {"oaif.sft.eval_n", "70"},
    {"oaif.sft.eval_max_new", "48"},
    {NULL, NULL},
};

void trainer_opts_rows(struct cfg_option *out, const struct cfg_spec *spec, size_t offset,
                       const struct trainer_opts_preset *preset)
{
    for (size_t i = 0; i < spec->n_options; i++) {
        out[i] = spec->options[i];
        out[i].offset += offset;
        for (const struct trainer_opts_preset *p = preset; p && p->key; p++)
            if (!strcmp(p->key, out[i].key))
                out[i].def = p->def;
    }
}

/* cfg_defaults() of the SFT table with `preset`'s defaults in place of its own (NULL: none). */
static int sft_defaults(struct trainer_sft_opts *o, const struct trainer_opts_preset *preset)
{
    memset(o, 0, sizeof *o);
    struct cfg_option *rows = calloc(trainer_sft_opts_spec.n_options, sizeof *rows);
    if (!rows)
        return ERR_NOMEM;
    trainer_opts_rows(rows, &trainer_sft_opts_spec, 0, preset);
    struct cfg_spec spec = trainer_sft_opts_spec;
    spec.options = rows;
    int rc = cfg_defaults(&spec, o);
    free(rows);
    return rc;
}

int trainer_sft_defaults(struct trainer_sft_opts *o)
{
    return sft_defaults(o, NULL);
}

int trainer_sft_quick_defaults(struct trainer_sft_opts *o)
{
    return sft_defaults(o, trainer_sft_quick);
}

void trainer_sft_release(struct trainer_sft_opts *o)
{
    cfg_release(&trainer_sft_opts_spec, o);
}

/* ---- oaif eval ----------------------------------------------------------------------------- */

#define E struct trainer_eval_opts
static const struct cfg_option eval_options[] = {
    CFG_STRING_OPT(E, policy, .key = "oaif.eval.policy", .flag = "--policy",
                   .help = "The policy's checkpoint directory (required)."),
    CFG_STRING_OPT(E, sft, .key = "oaif.eval.sft", .def = SFT_CHECKPOINT, .flag = "--sft",
                   .help = "The SFT model's checkpoint directory."),
    CFG_INT_OPT(E, n, .key = "oaif.eval.n", .def = EVAL_PROMPTS, .min = 1, .max = 1000000,
                .flag = "--n", .help = "Eval-split prompts."),
    CFG_INT_OPT(E, max_new, .key = "oaif.eval.max_new", .def = EVAL_MAX_NEW, .min = 1,
                .max = 1 << 20, .flag = "--max-new", .help = "Most tokens per answer."),
    CFG_DOUBLE_OPT(E, decode.temperature, .key = "oaif.eval.temperature", .def = "0", .dmin = 0,
                   .dmax = 100, .flag = "--temperature",
                   .help = "0: greedy answers; above 0 sampled as in training."),
    CFG_DOUBLE_OPT(E, decode.top_p, .key = "oaif.eval.top_p", .def = "1", .dmin = 1e-6, .dmax = 1,
                   .flag = "--top-p", .help = "Nucleus sampling's mass."),
    CFG_INT_OPT(E, decode.draws, .key = "oaif.eval.draws", .def = "1", .min = 1, .max = 1000000,
                .flag = "--draws", .help = "Sampled answers per prompt (needs --temperature)."),
    CFG_UINT64_OPT(E, decode.seed, .key = "oaif.eval.seed", .def = "1", .flag = "--seed",
                   .help = "The sampling seed."),
    CFG_STRING_OPT(E, instruction, .key = "oaif.eval.instruction", .flag = "--instruction",
                   .help = "An instruction for the rules judge (e.g. \"Prefer shorter "
                           "responses.\")."),
    CFG_STRING_OPT(E, samples, .key = "oaif.eval.samples", .flag = "--samples",
                   .help = "Write every answer of both models there as JSONL."),
    CFG_BOOL_OPT(E, json, .key = "oaif.eval.json", .flag = "--json",
                 .help = "The results as one JSON object on stdout."),
};
#undef E

const struct cfg_spec trainer_eval_opts_spec = {
    .name = "oaif eval",
    .summary = "A policy against the SFT model on the built-in task's eval split: accuracy and\n"
               "length of each, and the policy's win rate by the rules judge in both orders.",
    .options = eval_options,
    .n_options = sizeof eval_options / sizeof eval_options[0],
    .conf_size = sizeof(struct trainer_eval_opts),
};

int trainer_eval_defaults(struct trainer_eval_opts *o)
{
    memset(o, 0, sizeof *o);
    return cfg_defaults(&trainer_eval_opts_spec, o);
}

void trainer_eval_release(struct trainer_eval_opts *o)
{
    cfg_release(&trainer_eval_opts_spec, o);
}

/* ---- oaif rm train ------------------------------------------------------------------------- */

static const struct cfg_choice rm_soft_targets[] = {
    {"none", TRAINER_RM_SOFT_NONE},
    {"label", TRAINER_RM_SOFT_LABEL},
    {"strength", TRAINER_RM_SOFT_STRENGTH},
    {NULL, 0},
};
static const struct cfg_choice rm_contrastive[] = {
    {"none", TRAINER_RM_CL_NONE},
    {"simcse", TRAINER_RM_CL_SIMCSE},
    {"swav", TRAINER_RM_CL_SWAV},
    {NULL, 0},
};
static const struct cfg_choice rm_cl_on[] = {
    {"differences", NN_CL_DIFFERENCES},
    {"responses", NN_CL_RESPONSES},
    {NULL, 0},
};

/* The paper's recipe (ALGORITHMS.md, "Preference strength") where it fits the built-in model:
 * AdamW (0.9, 0.95), eps 1e-6, one epoch, batch 16 (its contrastive batch). The learning rate is
 * the tiny model's: on the built-in task's preferences (two demonstrations per prompt, 30% wrong,
 * the rules judge preferring correct then shorter answers; 1192 pairs, 149 held out) one epoch
 * from the SFT model reached 58% held-out accuracy at the paper's 5e-6 (made for 7B models),
 * 72% at 3e-5, 75-76% at 1e-4, 3e-4 and 1e-3: 1e-4 is the lowest rate on that plateau. */
#define R struct trainer_rm_opts
static const struct cfg_option rm_options[] = {
    /* data */
    CFG_STRING_OPT(R, dataset, .key = "oaif.rm.dataset", .env = "RM_DATASET", .flag = "--dataset",
                   .help = "The preference set: the pairs imported under this name (oaif import "
                           "pairs)."),
    CFG_STRING_OPT(R, run, .key = "oaif.rm.run", .env = "RM_RUN", .flag = "--run",
                   .help = "Or: the labeled pairs of this online run (the trainer's --run)."),
    CFG_DOUBLE_OPT(R, holdout, .key = "oaif.rm.holdout", .def = "0.1", .dmin = 0, .dmax = 0.9,
                   .env = "RM_HOLDOUT", .flag = "--holdout",
                   .help = "Share of pairs held out for each epoch's accuracy, by a hash of the "
                           "pair id (the same pairs for every member)."),
    CFG_STRING_OPT(R, flip_file, .key = "oaif.rm.flip_file", .env = "RM_FLIP_FILE",
                   .flag = "--flip-file",
                   .help = "A file of pair ids, one a line ('#' comments), whose chosen and "
                           "rejected responses are swapped."),
    CFG_FLOAT_OPT(R, margin, .key = "oaif.rm.margin", .def = "0", .dmin = -100, .dmax = 100,
                  .env = "RM_MARGIN", .flag = "--margin",
                  .help = "A fixed margin m: -log s(r+ - r- - m)."),
    CFG_BOOL_OPT(R, margin_from_strength, .key = "oaif.rm.margin_from_strength",
                 .env = "RM_MARGIN_FROM_STRENGTH", .flag = "--margin-from-strength",
                 .help = "Add to each pair's margin its preference strength (the Strength "
                         "record's mean), clipped and scaled; pairs without one get none."),
    CFG_FLOAT_OPT(R, margin_scale, .key = "oaif.rm.margin_scale", .def = "1", .dmin = 0,
                  .dmax = 100, .env = "RM_MARGIN_SCALE", .flag = "--margin-scale",
                  .help = "s of the adaptive margin s * mu."),
    CFG_FLOAT_OPT(R, margin_clip, .key = "oaif.rm.margin_clip", .def = "5", .dmin = 0, .dmax = 1000,
                  .env = "RM_MARGIN_CLIP", .flag = "--margin-clip",
                  .help = "mu is clipped to [-clip, clip] before scaling."),
    CFG_ENUM_OPT(R, soft_target, .key = "oaif.rm.soft_target", .def = "none",
                 .choices = rm_soft_targets, .env = "RM_SOFT_TARGET", .flag = "--soft-target",
                 .help = "Train toward P(chosen better): the label's probability (label), "
                         "sigmoid of the strength (strength), or 1 - smoothing (none)."),
    CFG_FLOAT_OPT(R, loss.rm.label_smoothing, .key = "oaif.rm.label_smoothing", .def = "0",
                  .dmin = 0, .dmax = 0.5, .env = "RM_LABEL_SMOOTHING", .flag = "--label-smoothing",
                  .help = "alpha: -(1 - alpha) log s(d) - alpha log s(-d)."),
    CFG_FLOAT_OPT(R, loss.rm.center, .key = "oaif.rm.center", .def = "0", .dmin = 0, .dmax = 100,
                  .env = "RM_CENTER", .flag = "--center",
                  .help = "Reward centering c: + c mean((r+ + r-)^2) (paper 0.01; 0: off)."),
    CFG_FLOAT_OPT(R, loss.lm, .key = "oaif.rm.lm", .def = "0", .dmin = 0, .dmax = 100,
                  .env = "RM_LM", .flag = "--lm",
                  .help = "Weight of the chosen responses' per-token NLL (0: off)."),
    /* contrastive */
    CFG_ENUM_OPT(R, loss.cl, .key = "oaif.rm.contrastive", .def = "none", .choices = rm_contrastive,
                 .env = "RM_CONTRASTIVE", .flag = "--contrastive",
                 .help = "A contrastive loss on the last hidden states of two dropout views."),
    CFG_ENUM_OPT(R, cl_on, .key = "oaif.rm.contrastive_on", .def = "differences",
                 .choices = rm_cl_on, .env = "RM_CONTRASTIVE_ON", .flag = "--contrastive-on",
                 .help = "Its instances: h(y+) - h(y-) and its negation, or each response."),
    CFG_FLOAT_OPT(R, loss.cl_weight, .key = "oaif.rm.contrastive_weight", .def = "0", .dmin = 0,
                  .dmax = 100, .env = "RM_CONTRASTIVE_WEIGHT", .flag = "--contrastive-weight",
                  .help = "beta (0: the paper's: SimCSE 1; SwAV 0.5 on differences, 0.1 on "
                          "responses)."),
    CFG_FLOAT_OPT(R, cl_temperature, .key = "oaif.rm.contrastive_temperature", .def = "0",
                  .dmin = 0, .dmax = 100, .env = "RM_CONTRASTIVE_TEMPERATURE",
                  .flag = "--contrastive-temperature",
                  .help = "tau (0: the paper's: SimCSE 0.05, SwAV 0.1)."),
    CFG_INT_OPT(R, loss.swav.K, .key = "oaif.rm.swav_prototypes", .def = "0", .min = 0,
                .max = 100000, .env = "RM_SWAV_PROTOTYPES", .flag = "--swav-prototypes",
                .help = "SwAV's prototypes K (0: the paper's: 20 on differences, 50 on "
                        "responses)."),
    CFG_FLOAT_OPT(R, loss.swav.epsilon, .key = "oaif.rm.swav_epsilon", .def = "0.05", .dmin = 1e-6,
                  .dmax = 100, .env = "RM_SWAV_EPSILON", .flag = "--swav-epsilon",
                  .help = "Sinkhorn-Knopp's epsilon."),
    CFG_INT_OPT(R, loss.swav.iterations, .key = "oaif.rm.swav_iterations", .def = "3", .min = 1,
                .max = 1000, .env = "RM_SWAV_ITERATIONS", .flag = "--swav-iterations",
                .help = "Sinkhorn-Knopp's iterations."),
    CFG_FLOAT_OPT(R, loss.dropout, .key = "oaif.rm.dropout", .def = "0.05", .dmin = 0, .dmax = 0.9,
                  .env = "RM_DROPOUT", .flag = "--dropout",
                  .help = "Dropout of the two views (only with a contrastive loss)."),
    /* model */
    CFG_STRING_OPT(R, init_dir, .key = "oaif.rm.init", .def = SFT_CHECKPOINT, .env = "RM_INIT",
                   .flag = "--init",
                   .help = "The SFT checkpoint the member starts from, with a fresh head."),
    CFG_BOOL_OPT(R, from_scratch, .key = "oaif.rm.from_scratch", .env = "RM_FROM_SCRATCH",
                 .flag = "--from-scratch",
                 .help = "Start from random weights of the built-in shape instead."),
    CFG_STRING_OPT(R, ensemble, .key = "oaif.rm.ensemble", .def = CKPT_DEFAULT_ENSEMBLE,
                   .env = "RM_ENSEMBLE", .flag = "--ensemble",
                   .help = "The ensemble's name (the reward scorer's)."),
    CFG_INT_OPT(R, member, .key = "oaif.rm.member", .def = "0", .min = 0, .max = 1023,
                .env = "RM_MEMBER", .flag = "--member", .help = "This member's index."),
    CFG_UINT64_OPT(R, seed, .key = "oaif.rm.seed", .def = "0", .env = "RM_SEED", .flag = "--seed",
                   .help = "Data order, head initialisation, dropout (0: member + 1)."),
    CFG_INT_OPT(R, max_len, .key = "oaif.rm.max_len", .def = "256", .min = 4, .max = 1 << 20,
                .env = "RM_MAX_LEN", .flag = "--max-len",
                .help = "Tokens per sequence at most (longer responses are cut before the EOS)."),
    /* optimisation */
    CFG_INT_OPT(R, epochs, .key = "oaif.rm.epochs", .def = "1", .min = 1,
                .max = TRAINER_RM_MAX_EPOCHS, .env = "RM_EPOCHS", .flag = "--epochs",
                .help = "Passes over the training pairs (more overfit, as the paper found)."),
    CFG_INT_OPT(R, batch, .key = "oaif.rm.batch", .def = "16", .min = 1, .max = 4096,
                .env = "RM_BATCH", .flag = "--batch", .help = "Pairs per step."),
    CFG_FLOAT_OPT(R, lr, .key = "oaif.rm.lr", .def = "1e-4", .dmin = 1e-9, .dmax = 9.99,
                  .env = "RM_LR", .flag = "--lr", .help = "Peak learning rate."),
    CFG_ENUM_OPT(R, schedule, .key = "oaif.rm.schedule", .def = "cosine", .choices = schedules,
                 .env = "RM_SCHEDULE", .flag = "--schedule",
                 .help = "After the warm-up: constant, cosine, inverse-sqrt."),
    CFG_FLOAT_OPT(R, min_lr_ratio, .key = "oaif.rm.min_lr_ratio", .def = "0.1", .dmin = 0,
                  .dmax = 1, .env = "RM_MIN_LR_RATIO", .flag = "--min-lr-ratio",
                  .help = "The cosine's floor, as a share of the peak."),
    CFG_LONG_OPT(R, warmup, .key = "oaif.rm.warmup", .def = "10", .min = 0, .max = 100000000,
                 .env = "RM_WARMUP", .flag = "--warmup", .help = "Linear warm-up steps."),
    CFG_FLOAT_OPT(R, adamw.beta1, .key = "oaif.rm.adam_beta1", .def = "0.9", .dmin = 0,
                  .dmax = 0.9999, .env = "RM_ADAM_BETA1", .flag = "--adam-beta1",
                  .help = "AdamW's first-moment decay."),
    CFG_FLOAT_OPT(R, adamw.beta2, .key = "oaif.rm.adam_beta2", .def = "0.95", .dmin = 0,
                  .dmax = 0.99999, .env = "RM_ADAM_BETA2", .flag = "--adam-beta2",
                  .help = "AdamW's second-moment decay."),
    CFG_FLOAT_OPT(R, adamw.eps, .key = "oaif.rm.adam_eps", .def = "1e-6", .dmin = 1e-12, .dmax = 1,
                  .env = "RM_ADAM_EPS", .flag = "--adam-eps", .help = "AdamW's epsilon."),
    CFG_FLOAT_OPT(R, adamw.weight_decay, .key = "oaif.rm.weight_decay", .def = "0", .dmin = 0,
                  .dmax = 0.999, .env = "RM_WEIGHT_DECAY", .flag = "--weight-decay",
                  .help = "AdamW's decoupled weight decay, on matrices only."),
    CFG_FLOAT_OPT(R, clip, .key = "oaif.rm.clip", .def = "1", .dmin = 0, .dmax = 1e6,
                  .env = "RM_CLIP", .flag = "--clip",
                  .help = "Global gradient-norm clip (0: off)."),
    /* checkpoints */
    CFG_STRING_OPT(R, checkpoint_dir, .key = "oaif.rm.checkpoint_dir", .def = CHECKPOINT_ROOT,
                   .env = "RM_CHECKPOINT_DIR", .flag = "--checkpoints",
                   .help = "The checkpoint root: reward-<ensemble>-m<member>-v<N>/ go there."),
    CFG_INT_OPT(R, checkpoint_every, .key = "oaif.rm.checkpoint_every", .def = "50", .min = 1,
                .max = 100000000, .env = "RM_CHECKPOINT_EVERY", .flag = "--checkpoint-every",
                .help = "Steps between checkpoints (a restarted member resumes from the last)."),
    CFG_DURATION_OPT(R, step_sleep_ms, .key = "oaif.rm.step_sleep", .def = "0", .min = 0,
                     .max = 60000, .env = "RM_STEP_SLEEP", .flag = "--step-sleep",
                     .help = "A pause after each step (tests: a window to kill a member in)."),
    NN_OPT_THREADS(R, threads, "oaif.rm.threads", "RM_THREADS"),
    /* MetaRM (rm_meta.h). k = 5 responses as the paper; temperature 1, a little above the online
     * trainer's 0.9, as the paper samples its meta set at a raised temperature. eta is the tiny
     * model's: at the paper's 5e-6 the ascent step moves nothing. On the built-in task (members
     * trained two epochs at lr 3e-4 on 3481 noisy pairs from the SFT model, the meta set 64
     * prompts from the policy after 75 steps of online DPO, seeds 1 and 2), accuracy on 640
     * noise-free pairs from that policy was 63.6% without MetaRM and 65.2%, 66.3%, 65.3%, 65.1%
     * at eta 0.03, 0.1, 0.3, 1 (two seeds each, about 2 points of noise apiece), 58.3% at 10,
     * where training collapses; the spread of r+ - r- there shrinks as eta grows (0.57 without,
     * 0.48, 0.43, 0.28, 0.14, 0.01): 0.1 keeps most of the scale, two decades below the
     * collapse. */
    CFG_BOOL_OPT(R, meta.on, .key = "oaif.rm.meta", .env = "RM_META", .flag = "--meta",
                 .help = "MetaRM: each step's gradient taken after an ascent step on the "
                         "difference loss of responses sampled from the current policy."),
    CFG_FLOAT_OPT(R, meta.lr, .key = "oaif.rm.meta_lr", .def = "0.1", .dmin = 0, .dmax = 100,
                  .env = "RM_META_LR", .flag = "--meta-lr",
                  .help = "eta of the ascent step theta + eta dJ/dtheta (the paper: 5e-6)."),
    CFG_INT_OPT(R, meta.k, .key = "oaif.rm.meta_k", .def = "5", .min = 2,
                .max = TRAINER_RM_META_K_MAX, .env = "RM_META_K", .flag = "--meta-k",
                .help = "Responses sampled per meta prompt."),
    CFG_INT_OPT(R, meta.prompts, .key = "oaif.rm.meta_prompts", .def = "64", .min = 1,
                .max = 1000000, .env = "RM_META_PROMPTS", .flag = "--meta-prompts",
                .help = "Prompts of the meta set at most (the preference set's, by a hash)."),
    CFG_INT_OPT(R, meta.batch, .key = "oaif.rm.meta_batch", .def = "4", .min = 1, .max = 4096,
                .env = "RM_META_BATCH", .flag = "--meta-batch",
                .help = "Meta prompts per step (each with its k responses)."),
    CFG_FLOAT_OPT(R, meta.temperature, .key = "oaif.rm.meta_temperature", .def = "1", .dmin = 0.01,
                  .dmax = 10, .env = "RM_META_TEMPERATURE", .flag = "--meta-temperature",
                  .help = "Sampling temperature of the meta set."),
    CFG_INT_OPT(R, meta.max_new_tokens, .key = "oaif.rm.meta_max_new_tokens", .def = "128",
                .min = 1, .max = 1 << 20, .env = "RM_META_MAX_NEW_TOKENS",
                .flag = "--meta-max-new-tokens", .help = "Tokens per sampled response at most."),
    CFG_LONG_OPT(R, meta.policy_version, .key = "oaif.rm.meta_policy_version", .def = "-1",
                 .min = -1, .max = 4294967295L, .env = "RM_META_POLICY_VERSION",
                 .flag = "--meta-policy-version",
                 .help = "The policy version sampled (-1: the newest the ledger records; the "
                         "SFT model is 0)."),
    CFG_UINT64_OPT(R, meta.seed, .key = "oaif.rm.meta_seed", .def = "1", .env = "RM_META_SEED",
                   .flag = "--meta-seed", .help = "Seed of the meta set's sampling."),
    CFG_DURATION_OPT(R, meta.timeout_ms, .key = "oaif.rm.meta_timeout", .def = "600s", .min = 1,
                     .max = 86400000, .env = "RM_META_TIMEOUT", .flag = "--meta-timeout",
                     .help = "How long the meta set's replies may take."),
};
#undef R

const struct cfg_spec trainer_rm_opts_spec = {
    .name = "oaif rm train",
    .summary = "Trains member --member of reward-model ensemble --ensemble on a preference set in "
               "the\nledger (--dataset or --run), from the SFT checkpoint with a fresh head, and "
               "publishes it\nas a reward checkpoint; a restarted member resumes from its last "
               "checkpoint.",
    .options = rm_options,
    .n_options = sizeof rm_options / sizeof rm_options[0],
    .conf_size = sizeof(struct trainer_rm_opts),
};

int trainer_rm_defaults(struct trainer_rm_opts *o)
{
    memset(o, 0, sizeof *o);
    return cfg_defaults(&trainer_rm_opts_spec, o);
}

void trainer_rm_release(struct trainer_rm_opts *o)
{
    cfg_release(&trainer_rm_opts_spec, o);
}

/* ---- oaif rm eval -------------------------------------------------------------------------- */

static const struct cfg_choice rm_eval_splits[] = {
    {"heldout", TRAINER_RM_EVAL_HELDOUT},
    {"all", TRAINER_RM_EVAL_ALL},
    {NULL, 0},
};

#define E struct trainer_rm_eval_opts
static const struct cfg_option rm_eval_options[] = {
    CFG_STRING_OPT(E, dataset, .key = "oaif.rm_eval.dataset", .env = "RM_EVAL_DATASET",
                   .flag = "--dataset", .help = "The preference set imported under this name."),
    CFG_STRING_OPT(E, run, .key = "oaif.rm_eval.run", .env = "RM_EVAL_RUN", .flag = "--run",
                   .help = "Or: the labeled pairs of this online run."),
    CFG_DOUBLE_OPT(E, holdout, .key = "oaif.rm_eval.holdout", .def = "0.1", .dmin = 0, .dmax = 0.9,
                   .env = "RM_EVAL_HOLDOUT", .flag = "--holdout",
                   .help = "The held-out share the members trained with (oaif rm train's)."),
    CFG_ENUM_OPT(E, split, .key = "oaif.rm_eval.split", .def = "heldout", .choices = rm_eval_splits,
                 .env = "RM_EVAL_SPLIT", .flag = "--split",
                 .help = "Score the held-out pairs (heldout) or every pair (all)."),
    CFG_STRING_OPT(E, ensemble, .key = "oaif.rm_eval.ensemble", .def = CKPT_DEFAULT_ENSEMBLE,
                   .env = "RM_EVAL_ENSEMBLE", .flag = "--ensemble",
                   .help = "The ensemble whose newest member versions are scored."),
    CFG_INT_OPT(E, member, .key = "oaif.rm_eval.member", .def = "-1", .min = -1, .max = 1023,
                .env = "RM_EVAL_MEMBER", .flag = "--member",
                .help = "Only this member (-1: every member)."),
    CFG_STRING_OPT(E, checkpoint_dir, .key = "oaif.rm_eval.checkpoint_dir", .def = CHECKPOINT_ROOT,
                   .env = "RM_EVAL_CHECKPOINT_DIR", .flag = "--checkpoints",
                   .help = "The checkpoint root."),
    CFG_INT_OPT(E, max_len, .key = "oaif.rm_eval.max_len", .def = "256", .min = 4, .max = 1 << 20,
                .env = "RM_EVAL_MAX_LEN", .flag = "--max-len",
                .help = "Tokens per text at most (longer responses are cut before the EOS)."),
    CFG_BOOL_OPT(E, json, .key = "oaif.rm_eval.json", .env = "RM_EVAL_JSON", .flag = "--json",
                 .help = "Print one JSON object instead of the table."),
};
#undef E

const struct cfg_spec trainer_rm_eval_opts_spec = {
    .name = "oaif rm eval",
    .summary =
        "Accuracy of an ensemble's newest members (and of their mean) on a preference set's "
        "pairs:\nagainst the stored labels, the noise-free labels, and where two judges agree.",
    .options = rm_eval_options,
    .n_options = sizeof rm_eval_options / sizeof rm_eval_options[0],
    .conf_size = sizeof(struct trainer_rm_eval_opts),
};

/* ---- oaif rm features ---------------------------------------------------------------------- */

#define F struct trainer_rm_features_opts
static const struct cfg_option rm_features_options[] = {
    CFG_INT_OPT(F, member, .key = "oaif.rm_features.member", .def = "0", .min = 0, .max = 1023,
                .env = "RM_FEATURES_MEMBER", .flag = "--member",
                .help = "The member of the ensemble whose features are projected."),
    CFG_INT_OPT(F, limit, .key = "oaif.rm_features.limit", .def = "0", .min = 0, .max = 1 << 30,
                .env = "RM_FEATURES_LIMIT", .flag = "--limit",
                .help = "At most this many pairs of the split, the first by id (0: all)."),
    CFG_STRING_OPT(F, out, .key = "oaif.rm_features.out", .env = "RM_FEATURES_OUT", .flag = "--out",
                   .help = "Write the CSV to this file (default: standard output)."),
};
#undef F

const struct cfg_spec trainer_rm_features_opts_spec = {
    .name = "oaif rm features",
    .summary = "The last-hidden features of the chosen and rejected responses of a preference "
               "set, as one\nmember of an ensemble computes them (the state its reward head "
               "reads), projected on their\ntwo principal components: CSV pair_id, side, "
               "label_correct, noise_flipped, reward, pc1, pc2.",
    .options = rm_features_options,
    .n_options = sizeof rm_features_options / sizeof rm_features_options[0],
    .conf_size = sizeof(struct trainer_rm_features_opts),
};
