/* reward_scorer_opts.c - see reward_scorer_opts.h. */
#include "reward_scorer_opts.h"

#include <string.h>

#include "busopts.h"
#include "ckpt.h"
#include "nn_threads.h"

#define O struct reward_scorer_config
static const struct cfg_option options[] = {
    CFG_STRING_OPT(O, ensemble, .key = "reward_scorer.ensemble", .def = CKPT_DEFAULT_ENSEMBLE,
                   .env = "REWARD_SCORER_ENSEMBLE", .flag = "--ensemble",
                   .help = "The ensemble to serve: reward checkpoints whose record names it "
                           "(Checkpoint.ensemble)."),
    CFG_INT_OPT(O, members, .key = "reward_scorer.members", .def = "0", .min = 0,
                .max = REWARD_SCORER_MEMBERS_MAX, .env = "REWARD_SCORER_MEMBERS",
                .flag = "--members",
                .help = "M: members 0 .. M-1 are expected, and requests wait for all of them (0: "
                        "every member the ledger has)."),
    CFG_STRING_OPT(O, checkpoint_dir, .key = "reward_scorer.checkpoint_dir",
                   .def = CKPT_DEFAULT_ROOT, .env = "REWARD_SCORER_CHECKPOINT_DIR",
                   .flag = "--checkpoint-dir",
                   .help = "The checkpoint store's root (reward-<ensemble>-m<member>-v<version>/ "
                           "directories; else the record's path)."),
    CFG_STRING_OPT(O, prompt_template, .key = "reward_scorer.template",
                   .env = "REWARD_SCORER_TEMPLATE", .flag = "--template",
                   .help = "Prompt template with {prompt} once (unset: the checkpoint's "
                           "oaif_prompt_template, else the tokenizer's Human/Assistant one), as "
                           "the sampler renders prompts."),
    CFG_INT_OPT(O, max_texts, .key = "reward_scorer.max_texts", .def = "64", .min = 1,
                .max = 100000, .env = "REWARD_SCORER_MAX_TEXTS", .flag = "--max-texts",
                .help = "Texts per request (the forward's batch: memory grows with it)."),
    CFG_INT_OPT(O, max_tokens, .key = "reward_scorer.max_tokens_per_text", .def = "1024", .min = 2,
                .max = 1000000, .env = "REWARD_SCORER_MAX_TOKENS_PER_TEXT",
                .flag = "--max-tokens-per-text",
                .help = "Tokens per text (prompt, response, EOS), at most the model's context; "
                        "a longer response is cut, keeping EOS last."),
    NN_OPT_THREADS(O, threads, "reward_scorer.threads", "REWARD_SCORER_THREADS"),
    CFG_DURATION_OPT(O, rescan_ms, .key = "reward_scorer.rescan_interval", .def = "10s", .min = 50,
                     .max = 86400000, .env = "REWARD_SCORER_RESCAN_INTERVAL", .flag = "--rescan",
                     .help = "How often the ledger's checkpoints are read even without an event "
                             "(events are hints)."),
    CFG_INT_OPT(O, credit, .key = "reward_scorer.credit", .def = "1", .min = 1, .max = 1024,
                .env = "REWARD_SCORER_CREDIT", .flag = "--credit",
                .help = "Requests taken at once (scored one after another; more than 1 keeps "
                        "the next one ready)."),
    CFG_STRING_OPT(O, worker_name, .key = "reward_scorer.worker_name",
                   .env = "REWARD_SCORER_WORKER_NAME", .flag = "--worker-name",
                   .help = "Name in `oaif status` (default host:pid)."),
    CFG_STRING_OPT(O, metrics_bind, .key = "reward_scorer.metrics_bind", .def = "127.0.0.1",
                   .env = "REWARD_SCORER_METRICS_BIND", .flag = "--metrics-bind",
                   .help = "Address of the HTTP server for /metrics and /healthz."),
    CFG_INT_OPT(O, metrics_port, .key = "reward_scorer.metrics_port", .def = "-1", .min = -1,
                .max = 65535, .env = "REWARD_SCORER_METRICS_PORT", .flag = "--metrics-port",
                .help = "Its port (0: any free one, -1: no HTTP server)."),
    /* where the ledger is, and how to talk to it: the bus options of every service */
    BUS_OPT_CLIENTS(O, bus.clients_endpoint),
    BUS_OPT_WORKERS(O, bus.workers_endpoint),
    BUS_OPT_EVENTS(O, bus.events_endpoint),
    BUS_OPT_LEDGER_KEY(O, bus.ledger_public_key),
    BUS_OPT_CURVE_SECRET(O, bus.curve_secret_key, "reward_scorer", "REWARD_SCORER"),
    BUS_OPT_HEARTBEAT(O, bus.heartbeat_ms),
    BUS_OPT_MAX_MESSAGE(O, bus.max_message),
};
#undef O

static const char *const sections[] = {"reward_scorer", NULL};
const struct cfg_spec reward_scorer_opts_spec = {
    .name = "reward-scorer",
    .summary = "The score service: every member of a reward-model ensemble scores every text.",
    .sections = sections,
    .options = options,
    .n_options = sizeof options / sizeof options[0],
    .conf_size = sizeof(struct reward_scorer_config),
};

int reward_scorer_config_load(struct reward_scorer_config *c, int argc, char *const *argv,
                              buf_t *errs)
{
    memset(c, 0, sizeof *c);
    return cfg_load(&reward_scorer_opts_spec, c, argc, argv, errs);
}

int reward_scorer_config_defaults(struct reward_scorer_config *c)
{
    memset(c, 0, sizeof *c);
    return cfg_defaults(&reward_scorer_opts_spec, c);
}

void reward_scorer_config_release(struct reward_scorer_config *c)
{
    cfg_release(&reward_scorer_opts_spec, c);
}
