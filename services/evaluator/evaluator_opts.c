/* evaluator_opts.c - see evaluator_opts.h. */
#include "evaluator_opts.h"

#include <string.h>

#include "busopts.h"

#define O struct evaluator_config
static const struct cfg_option options[] = {
    CFG_STRING_OPT(O, run, .key = "evaluator.run", .env = "EVALUATOR_RUN", .flag = "--run",
                   .help = "The run evaluated (the trainer's --run): EvalResult.run and part of "
                           "every request id (unset: every run, each checkpoint's own)."),
    CFG_UINT64_OPT(O, seed, .key = "evaluator.seed", .def = "0", .env = "EVALUATOR_SEED",
                   .flag = "--seed",
                   .help = "The run's seed, recorded in each EvalResult so that oaif compare "
                           "pairs runs by it (0: unknown)."),
    CFG_INT_OPT(O, every, .key = "evaluator.every", .def = "1", .min = 1, .max = 1000000,
                .env = "EVALUATOR_EVERY", .flag = "--every",
                .help = "Evaluate every E-th published policy version (versions E, 2E, ...)."),
    CFG_INT_OPT(O, baseline, .key = "evaluator.baseline_version", .def = "0", .min = 0,
                .max = 2147483647, .env = "EVALUATOR_BASELINE_VERSION", .flag = "--baseline",
                .help = "The policy version every evaluated one is compared with (0: SFT)."),
    CFG_STRING_OPT(O, split, .key = "evaluator.split", .def = "eval", .env = "EVALUATOR_SPLIT",
                   .flag = "--split",
                   .help = "Held-out prompts: the Prompt records of this split."),
    CFG_INT_OPT(O, prompts, .key = "evaluator.prompts", .def = "64", .min = 1, .max = 1000000,
                .env = "EVALUATOR_PROMPTS", .flag = "--prompts",
                .help = "How many of them (the first N in the ledger's order)."),
    CFG_STRING_OPT(O, sample_service, .key = "evaluator.sample_service", .def = "sample",
                   .env = "EVALUATOR_SAMPLE_SERVICE", .flag = "--sample-service",
                   .help = "The service that answers the prompts, with the version pinned."),
    CFG_STRING_OPT(O, judge_service, .key = "evaluator.judge_service", .def = "annotate-eval",
                   .env = "EVALUATOR_JUDGE_SERVICE", .flag = "--judge-service",
                   .help = "The evaluation judge: an annotator-proxy serving this name "
                           "(annotator.service), so it can be another judge than training's."),
    CFG_STRING_OPT(O, instruction, .key = "evaluator.instruction", .env = "EVALUATOR_INSTRUCTION",
                   .flag = "--instruction",
                   .help = "Extra instruction for the judge (unset: the prompt's own)."),
    CFG_DOUBLE_OPT(O, temperature, .key = "evaluator.temperature", .def = "0", .dmin = 0,
                   .dmax = 10, .env = "EVALUATOR_TEMPERATURE", .flag = "--temperature",
                   .help = "Sampling temperature of both models (0: the sampler's default)."),
    CFG_DOUBLE_OPT(O, top_p, .key = "evaluator.top_p", .def = "1", .dmin = 0, .dmax = 1,
                   .env = "EVALUATOR_TOP_P", .flag = "--top-p", .help = "Nucleus sampling's p."),
    CFG_INT_OPT(O, top_k, .key = "evaluator.top_k", .def = "1", .min = 0, .max = 1000000,
                .env = "EVALUATOR_TOP_K", .flag = "--top-k",
                .help = "Top-k (1: greedy answers, 0: off)."),
    CFG_INT_OPT(O, max_new_tokens, .key = "evaluator.max_new_tokens", .def = "64", .min = 1,
                .max = 1000000, .env = "EVALUATOR_MAX_NEW_TOKENS", .flag = "--max-new-tokens",
                .help = "Most tokens per answer."),
    CFG_UINT64_OPT(O, sample_seed, .key = "evaluator.sample_seed", .def = "1",
                   .env = "EVALUATOR_SAMPLE_SEED", .flag = "--sample-seed",
                   .help = "Sampling seed of both models (common random numbers)."),
    CFG_INT_OPT(O, batch, .key = "evaluator.batch", .def = "16", .min = 1, .max = 4096,
                .env = "EVALUATOR_BATCH", .flag = "--batch", .help = "Prompts per sample request."),
    CFG_INT_OPT(O, resamples, .key = "evaluator.resamples", .def = "2000", .min = 0, .max = 1000000,
                .env = "EVALUATOR_RESAMPLES", .flag = "--resamples",
                .help = "Bootstrap resamples of the prompts for the win rate's interval."),
    CFG_INT_OPT(O, credit, .key = "evaluator.credit", .def = "4", .min = 1, .max = 1024,
                .env = "EVALUATOR_CREDIT", .flag = "--credit",
                .help = "evaluate requests taken at once (evaluated one after another)."),
    CFG_STRING_OPT(O, rm_ensemble, .key = "evaluator.rm_ensemble", .env = "EVALUATOR_RM_ENSEMBLE",
                   .flag = "--rm-ensemble",
                   .help = "A reward ensemble that score_service serves: the accuracy of its mean "
                           "reward on the run's held-out labeled pairs, EvalResult.rm_accuracy "
                           "(unset: not measured)."),
    CFG_STRING_OPT(O, score_service, .key = "evaluator.score_service", .def = "score",
                   .env = "EVALUATOR_SCORE_SERVICE", .flag = "--score-service",
                   .help = "The service that scores them (a reward-scorer of that ensemble)."),
    CFG_DOUBLE_OPT(O, rm_holdout, .key = "evaluator.rm_holdout", .def = "0.1", .dmin = 0.001,
                   .dmax = 0.9, .env = "EVALUATOR_RM_HOLDOUT", .flag = "--rm-holdout",
                   .help = "The share of the run's pairs the ensemble held out (its oaif rm train "
                           "--holdout): the pairs it is measured on."),
    CFG_INT_OPT(O, rm_pairs, .key = "evaluator.rm_pairs", .def = "256", .min = 1, .max = 1000000,
                .env = "EVALUATOR_RM_PAIRS", .flag = "--rm-pairs",
                .help = "At most this many of them (the first by pair id)."),
    CFG_DURATION_OPT(O, rescan_ms, .key = "evaluator.rescan_interval", .def = "10s", .min = 50,
                     .max = 86400000, .env = "EVALUATOR_RESCAN_INTERVAL", .flag = "--rescan",
                     .help = "How often the ledger's checkpoints are read even without an event "
                             "(events are hints)."),
    CFG_STRING_OPT(O, worker_name, .key = "evaluator.worker_name", .env = "EVALUATOR_WORKER_NAME",
                   .flag = "--worker-name", .help = "Name in `oaif status` (default host:pid)."),
    CFG_STRING_OPT(O, metrics_bind, .key = "evaluator.metrics_bind", .def = "127.0.0.1",
                   .env = "EVALUATOR_METRICS_BIND", .flag = "--metrics-bind",
                   .help = "Address of the HTTP server for /metrics and /healthz."),
    CFG_INT_OPT(O, metrics_port, .key = "evaluator.metrics_port", .def = "-1", .min = -1,
                .max = 65535, .env = "EVALUATOR_METRICS_PORT", .flag = "--metrics-port",
                .help = "Its port (0: any free one, -1: no HTTP server)."),
    /* where the ledger is, and how to talk to it: the bus options of every service */
    BUS_OPT_CLIENTS(O, bus.clients_endpoint),
    BUS_OPT_WORKERS(O, bus.workers_endpoint),
    BUS_OPT_EVENTS(O, bus.events_endpoint),
    BUS_OPT_LEDGER_KEY(O, bus.ledger_public_key),
    BUS_OPT_CURVE_SECRET(O, bus.curve_secret_key, "evaluator", "EVALUATOR"),
    BUS_OPT_HEARTBEAT(O, bus.heartbeat_ms),
    BUS_OPT_MAX_MESSAGE(O, bus.max_message),
};
#undef O

static const char *const sections[] = {"evaluator", NULL};
const struct cfg_spec evaluator_opts_spec = {
    .name = "evaluator",
    .summary = "The evaluate service: every E-th policy version against the baseline, judged by "
               "the\nevaluation judge; an EvalResult per version.",
    .sections = sections,
    .options = options,
    .n_options = sizeof options / sizeof options[0],
    .conf_size = sizeof(struct evaluator_config),
};

int evaluator_config_load(struct evaluator_config *c, int argc, char *const *argv, buf_t *errs)
{
    memset(c, 0, sizeof *c);
    return cfg_load(&evaluator_opts_spec, c, argc, argv, errs);
}

int evaluator_config_defaults(struct evaluator_config *c)
{
    memset(c, 0, sizeof *c);
    return cfg_defaults(&evaluator_opts_spec, c);
}

void evaluator_config_release(struct evaluator_config *c)
{
    cfg_release(&evaluator_opts_spec, c);
}
