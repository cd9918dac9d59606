/* annotator_opts.h - the annotator-proxy's configuration: one struct (struct annotator_opts, the
 * judge's struct annotator_config inside it) and the option table that fills it (section
 * `annotator`, plus the shared bus options of busopts.h). Every default lives in that table, and
 * only there: annotator_opts_defaults() (cfg_defaults on the table) is the defaults of the service
 * and of the judge alike. Also: turning the options into a running judge (annotator_opts_judge()).
 *
 * Shared by the `annotator-proxy` service and `oaif judge try`, so that the command a user runs to
 * check a judge reads exactly the configuration the service will run with (same run file, same
 * environment variables, same flags).
 *
 * The HTTP client's options (annotator.http.*) are httpopts.h's, as the sampler's remote backend's;
 * the bus options are busopts.h's, the same in every service. Old names, kept for one release
 * with a warning naming the new one: ledger.heartbeat_interval and LEDGER_HEARTBEAT_INTERVAL (now
 * bus.heartbeat_interval and BUS_HEARTBEAT_INTERVAL), --ledger and OAIF_LEDGER (now --clients),
 * --server-key (now --ledger-key).
 *
 * Not here: sockets, the loop (annotator_proxy.h), scoring through the ledger
 * (annotator_scorer.h). */
#ifndef ANNOTATOR_OPTS_H
#define ANNOTATOR_OPTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "annotator.h"
#include "bus.h"
#include "busopts.h"
#include "cfg.h"
#include "httpopts.h"
#include "rules.h"

/* Whether judgements are cached in the ledger. */
enum annotator_cache {
    ANNOTATOR_CACHE_AUTO = 0, /* on for the openai, anthropic and reward-model backends, off for
                                 rules (free, and its noise depends on the pair) */
    ANNOTATOR_CACHE_ON,
    ANNOTATOR_CACHE_OFF,
};

/* READY credit of the backends that make no HTTP calls, when the `credit` option is 0. */
#define ANNOTATOR_CREDIT_RULES        16
#define ANNOTATOR_CREDIT_REWARD_MODEL 8

/* The configuration: what cfg_load() fills (see the table in annotator_opts.c, or
 * `annotator-proxy --help`). Strings are malloc'd (annotator_opts_release() frees them). */
struct annotator_opts {
    struct annotator_config judge; /* the judge (annotator.*); its rules/score slots are set by
                                      annotator_opts_judge() */
    /* the rules backend */
    double noise;
    int noise_seed;
    /* the reward-model backend */
    int64_t score_timeout_ms;
    /* the service */
    char *instruction; /* for requests that carry none */
    enum annotator_cache cache;
    int credit; /* 0: automatic (annotator_opts_credit()) */
    char *service; /* the service name it serves ("annotate"; an evaluation judge another) */
    char *worker_name;
    char *metrics_bind;
    int metrics_port;
    struct bus_opts bus; /* where the ledger is, CURVE, heartbeat, largest message */
};

/* The spec of the options above (program name "annotator-proxy"; conf_size is
 * sizeof(struct annotator_opts), so a zeroed struct of that size is all cfg_load() needs). */
extern const struct cfg_spec annotator_opts_spec;

/* cfg_load() with annotator_opts_spec into *o (zeroed first). Returns ERR_OK, CFG_HELP (help
 * printed), or ERR_INVAL / ERR_NOMEM with each problem appended to errs (or logged when NULL). */
int annotator_opts_load(struct annotator_opts *o, int argc, char *const *argv, buf_t *errs);

/* The defaults alone, as annotator_opts_load() with no run file, environment or flags gives them
 * (tests, benchmarks: o->judge is the judge's defaults). The strings are malloc'd: to change one,
 * free it first, or change a shallow copy that is never released. ERR_OK or ERR_NOMEM. Release
 * with annotator_opts_release(). */
int annotator_opts_defaults(struct annotator_opts *o);

/* Frees what annotator_opts_load() or annotator_opts_defaults() put in *o. Safe twice. */
void annotator_opts_release(struct annotator_opts *o);

/* Whether judgements are cached in the ledger (see enum annotator_cache). */
bool annotator_opts_cache(const struct annotator_opts *o);

/* READY credit: the `credit` option, or when 0: K/2 (both orders) or K (one order) for the HTTP
 * backends, ANNOTATOR_CREDIT_RULES or ANNOTATOR_CREDIT_REWARD_MODEL for the others. */
unsigned annotator_opts_credit(const struct annotator_opts *o);

/* CURVE material for connecting to the ledger: off unless curve_secret_key is set, which then
 * needs ledger_public_key (a Z85 key, or a file holding one). ERR_INVAL with the reason in why. */
int annotator_opts_curve(const struct annotator_opts *o, struct bus_curve *out, char *why,
                         size_t whylen);

/* What a judge made from the options needs for as long as it lives (the rules configuration
 * the rules backend reads). */
struct annotator_judge_ctx {
    struct rules_config rules;
};

/* Makes the judge the options describe: annotator_new() with o->judge, its rules slot filled from
 * the noise options (and the judge id naming them when annotator.name is unset), its score slot
 * from score/score_user for reward-model (see annotator_score_fn; NULL for another backend).
 * ctx must outlive *out. The API key is never written to why. On failure *out is NULL, and why
 * says which option is wrong. Returns ERR_OK, ERR_INVAL, ERR_IO, ERR_NOMEM. */
int annotator_opts_judge(const struct annotator_opts *o, struct annotator_judge_ctx *ctx,
                         annotator_score_fn score, void *score_user, annotator_t **out, char *why,
                         size_t whylen);

/* The rules backend's function (an adapter to rules_judge_text()); user is a
 * struct rules_config. Exposed for tests. */
int annotator_opts_rules(void *user, const struct annotator_request *req,
                         struct annotator_verdict *out, char *why, size_t whylen);

#endif /* ANNOTATOR_OPTS_H */
