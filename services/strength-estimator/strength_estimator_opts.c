/* strength_estimator_opts.c - see strength_estimator_opts.h. */
#include "strength_estimator_opts.h"

#include <string.h>

#include "busopts.h"
#include "ckpt.h"

static const struct cfg_choice policies[] = {
    {"keep", STRENGTH_POLICY_KEEP},     {"flip", STRENGTH_POLICY_FLIP},
    {"smooth", STRENGTH_POLICY_SMOOTH}, {"margin", STRENGTH_POLICY_MARGIN},
    {"soft", STRENGTH_POLICY_SOFT},     {NULL, 0}};

#define O struct strength_estimator_config
static const struct cfg_option options[] = {
    CFG_STRING_OPT(O, ensemble, .key = "strength_estimator.ensemble", .def = CKPT_DEFAULT_ENSEMBLE,
                   .env = "STRENGTH_ESTIMATOR_ENSEMBLE", .flag = "--ensemble",
                   .help = "The reward-model ensemble the score service serves; its running "
                           "distribution of mu is the ledger's Strength records naming it."),
    CFG_INT_OPT(O, min_members, .key = "strength_estimator.min_members", .def = "1", .min = 1,
                .max = 1024, .env = "STRENGTH_ESTIMATOR_MIN_MEMBERS", .flag = "--min-members",
                .help = "Members a score reply must have (fewer: the estimate fails, retryable)."),
    CFG_ENUM_OPT(O, rules.policy, .key = "strength_estimator.policy", .def = "keep",
                 .choices = policies, .env = "STRENGTH_ESTIMATOR_POLICY", .flag = "--policy",
                 .help = "The action for pairs not dropped: keep; flip (mu < 0, or the bottom "
                         "flip_quantile); smooth (mu < 0, by epsilon); margin (scale x clipped "
                         "mu); soft (target sigmoid(mu / temperature))."),
    CFG_DOUBLE_OPT(O, rules.flip_quantile, .key = "strength_estimator.flip_quantile", .def = "0",
                   .dmin = 0, .dmax = 0.99, .env = "STRENGTH_ESTIMATOR_FLIP_QUANTILE",
                   .flag = "--flip-quantile",
                   .help = "flip: 0 flips mu < 0; q > 0 flips mu <= the q-quantile of the running "
                           "distribution (the paper's 0.1 or 0.2)."),
    CFG_INT_OPT(O, rules.min_sample, .key = "strength_estimator.min_sample", .def = "100", .min = 1,
                .max = 100000000, .env = "STRENGTH_ESTIMATOR_MIN_SAMPLE", .flag = "--min-sample",
                .help = "Strengths the quantile rule needs; until then flip means mu < 0."),
    CFG_INT_OPT(O, window, .key = "strength_estimator.window", .def = "10000", .min = 0,
                .max = 100000000, .env = "STRENGTH_ESTIMATOR_WINDOW", .flag = "--window",
                .help = "The running distribution: the newest N strengths of the ensemble, one "
                        "per pair (0: all)."),
    CFG_DOUBLE_OPT(O, rules.epsilon, .key = "strength_estimator.epsilon", .def = "0.1", .dmin = 0,
                   .dmax = 0.49, .env = "STRENGTH_ESTIMATOR_EPSILON", .flag = "--epsilon",
                   .help = "smooth: the label smoothing (cDPO eps) of a pair with mu < 0."),
    CFG_DOUBLE_OPT(O, rules.margin_scale, .key = "strength_estimator.margin_scale", .def = "1",
                   .dmin = 0, .dmax = 1000, .env = "STRENGTH_ESTIMATOR_MARGIN_SCALE",
                   .flag = "--margin-scale", .help = "margin: s in s x clip(mu)."),
    CFG_DOUBLE_OPT(O, rules.margin_clip, .key = "strength_estimator.margin_clip", .def = "5",
                   .dmin = 0, .dmax = 1000, .env = "STRENGTH_ESTIMATOR_MARGIN_CLIP",
                   .flag = "--margin-clip",
                   .help = "margin: mu is clipped to [-clip, clip] before scaling."),
    CFG_DOUBLE_OPT(O, rules.temperature, .key = "strength_estimator.temperature", .def = "1",
                   .dmin = 1e-6, .dmax = 1e6, .env = "STRENGTH_ESTIMATOR_TEMPERATURE",
                   .flag = "--temperature", .help = "soft: T in sigmoid(mu / T)."),
    CFG_DOUBLE_OPT(O, rules.drop_below, .key = "strength_estimator.drop_below", .def = "0",
                   .dmin = 0, .dmax = 1e6, .env = "STRENGTH_ESTIMATOR_DROP_BELOW",
                   .flag = "--drop-below",
                   .help = "Drop a pair whose |mu| is below this, before the policy (0: off)."),
    CFG_DOUBLE_OPT(O, rules.drop_std_above, .key = "strength_estimator.drop_std_above", .def = "0",
                   .dmin = 0, .dmax = 1e6, .env = "STRENGTH_ESTIMATOR_DROP_STD_ABOVE",
                   .flag = "--drop-std-above",
                   .help = "Drop a pair whose sigma is above this, before the policy (0: off)."),
    CFG_INT_OPT(O, score_asks, .key = "strength_estimator.score_asks", .def = "3", .min = 1,
                .max = 100, .env = "STRENGTH_ESTIMATOR_SCORE_ASKS", .flag = "--score-asks",
                .help = "Score requests per pair (each under its own derived id) before the "
                        "estimate fails with the last one's error."),
    CFG_DURATION_OPT(O, score_lease_ms, .key = "strength_estimator.score_lease", .def = "0",
                     .min = 0, .max = 86400000, .env = "STRENGTH_ESTIMATOR_SCORE_LEASE",
                     .flag = "--score-lease",
                     .help = "Lease of each score request (0: the ledger's default)."),
    CFG_DURATION_OPT(O, rescan_ms, .key = "strength_estimator.rescan_interval", .def = "10s",
                     .min = 50, .max = 86400000, .env = "STRENGTH_ESTIMATOR_RESCAN_INTERVAL",
                     .flag = "--rescan",
                     .help = "How often the ledger's reward checkpoints are read even without an "
                             "event (events are hints)."),
    CFG_INT_OPT(O, credit, .key = "strength_estimator.credit", .def = "8", .min = 1, .max = 1024,
                .env = "STRENGTH_ESTIMATOR_CREDIT", .flag = "--credit",
                .help = "Estimate requests taken at once (each waits on the score service)."),
    CFG_STRING_OPT(O, worker_name, .key = "strength_estimator.worker_name",
                   .env = "STRENGTH_ESTIMATOR_WORKER_NAME", .flag = "--worker-name",
                   .help = "Name in `oaif status` (default host:pid)."),
    CFG_STRING_OPT(O, metrics_bind, .key = "strength_estimator.metrics_bind", .def = "127.0.0.1",
                   .env = "STRENGTH_ESTIMATOR_METRICS_BIND", .flag = "--metrics-bind",
                   .help = "Address of the HTTP server for /metrics and /healthz."),
    CFG_INT_OPT(O, metrics_port, .key = "strength_estimator.metrics_port", .def = "-1", .min = -1,
                .max = 65535, .env = "STRENGTH_ESTIMATOR_METRICS_PORT", .flag = "--metrics-port",
                .help = "Its port (0: any free one, -1: no HTTP server)."),
    /* where the ledger is, and how to talk to it: the bus options of every service */
    BUS_OPT_CLIENTS(O, bus.clients_endpoint),
    BUS_OPT_WORKERS(O, bus.workers_endpoint),
    BUS_OPT_EVENTS(O, bus.events_endpoint),
    BUS_OPT_LEDGER_KEY(O, bus.ledger_public_key),
    BUS_OPT_CURVE_SECRET(O, bus.curve_secret_key, "strength_estimator", "STRENGTH_ESTIMATOR"),
    BUS_OPT_HEARTBEAT(O, bus.heartbeat_ms),
    BUS_OPT_MAX_MESSAGE(O, bus.max_message),
};
#undef O

static const char *const sections[] = {"strength_estimator", NULL};
const struct cfg_spec strength_estimator_opts_spec = {
    .name = "strength-estimator",
    .summary = "The estimate service: a labeled pair's preference strength (mean and std over the "
               "reward-model ensemble) and its denoising action.",
    .sections = sections,
    .options = options,
    .n_options = sizeof options / sizeof options[0],
    .conf_size = sizeof(struct strength_estimator_config),
};

int strength_estimator_config_load(struct strength_estimator_config *c, int argc, char *const *argv,
                                   buf_t *errs)
{
    memset(c, 0, sizeof *c);
    return cfg_load(&strength_estimator_opts_spec, c, argc, argv, errs);
}

int strength_estimator_config_defaults(struct strength_estimator_config *c)
{
    memset(c, 0, sizeof *c);
    return cfg_defaults(&strength_estimator_opts_spec, c);
}

void strength_estimator_config_release(struct strength_estimator_config *c)
{
    cfg_release(&strength_estimator_opts_spec, c);
}
