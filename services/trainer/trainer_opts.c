/* trainer_opts.c - see trainer_opts.h. */
#include "trainer_opts.h"

#include <string.h>

#include "busopts.h"
#include "err.h"

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
    CFG_STRING_OPT(O, ckpt_root, .key = "trainer.checkpoint_dir", .def = "data/checkpoints",
                   .env = "TRAINER_CHECKPOINT_DIR", .flag = "--checkpoints",
                   .help = "Where policy checkpoints are written (policy-v<N>/)."),
    CFG_STRING_OPT(O, sft_dir, .key = "trainer.reference", .def = "data/checkpoints/sft-v000000",
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
    CFG_INT_OPT(O, max_prompts, .key = "trainer.max_prompts", .def = "0", .min = 0,
                .max = 100000000, .env = "TRAINER_MAX_PROMPTS", .flag = "--max-prompts",
                .help = "Train prompts read from the ledger (0: all)."),
    CFG_INT_OPT(O, builtin_prompts, .key = "trainer.builtin_prompts", .def = "2000", .min = 0,
                .max = 1000000, .env = "TRAINER_BUILTIN_PROMPTS", .flag = "--builtin-prompts",
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
    CFG_INT_OPT(O, stop_after_steps, .key = "trainer.stop_after_steps", .def = "0", .min = 0,
                .max = 10000000, .env = "TRAINER_STOP_AFTER_STEPS", .flag = "--stop-after-steps",
                .help = "Exit after this many steps of this process (tests)."),
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
