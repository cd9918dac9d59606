/* annotator_opts.h - the annotator-proxy's configuration: the option table (section `annotator`,
 * plus the `bus` keys that say where the ledger is and `ledger.heartbeat_interval`), and turning
 * the loaded options into a running judge (struct annotator_config + annotator_new()).
 *
 * Shared by the `annotator-proxy` service and `oaif judge try`, so that the command a user runs to
 * check a judge reads exactly the configuration the service will run with (same run file, same
 * environment variables, same flags).
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
#include "cfg.h"
#include "rules.h"

/* What cfg_load() fills (see the table in annotator_opts.c, or `annotator-proxy --help`). */
struct annotator_opts {
    /* the judge */
    int backend; /* index into "openai", "anthropic", "rules", "reward-model" */
    char *name, *base_url, *model, *api_key, *api_key_env, *template_name, *template_dir;
    char *instruction, *anthropic_version;
    int orders; /* index into "both", "random" */
    double tie_band, temperature;
    int max_tokens, top_logprobs;
    bool logprobs, strip_special;
    struct cfg_strlist extra_headers;
    double price_in, price_out;
    /* http */
    int max_in_flight, max_attempts;
    int64_t connect_timeout_ms, timeout_ms, backoff_base_ms, backoff_max_ms, retry_after_max_ms;
    double rpm, tpm;
    size_t max_response;
    /* rules */
    double noise;
    int noise_seed;
    /* reward-model */
    int64_t score_timeout_ms;
    /* service */
    int cache;  /* index into "auto", "on", "off" */
    int credit; /* 0: automatic */
    char *worker_name;
    char *metrics_bind;
    int metrics_port;
    /* bus */
    char *clients_endpoint, *workers_endpoint, *ledger_public_key, *curve_secret_key;
    int64_t heartbeat_ms;
};

/* The spec of the options above (program name "annotator-proxy"). */
extern const struct cfg_spec annotator_opts_spec;

/* cfg_load() with annotator_opts_spec into *o (zeroed first). Returns ERR_OK, CFG_HELP (help
 * printed), or ERR_INVAL / ERR_NOMEM with each problem appended to errs (or logged when NULL). */
int annotator_opts_load(struct annotator_opts *o, int argc, char *const *argv, buf_t *errs);

/* Frees what annotator_opts_load() put in *o. Safe twice. */
void annotator_opts_release(struct annotator_opts *o);

/* The backend the options name. */
enum annotator_backend annotator_opts_backend(const struct annotator_opts *o);

/* Whether judgements are cached in the ledger: "on", "off", or "auto" = on for the openai,
 * anthropic and reward-model backends, off for rules (free, and its noise depends on the pair). */
bool annotator_opts_cache(const struct annotator_opts *o);

/* READY credit: the `credit` option, or when 0: K/2 (both orders) or K (one order) for the HTTP
 * backends, 16 for rules, 8 for reward-model. */
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

/* Makes the judge the options describe: resolves the template (a path, or a name looked up in
 * template_dir), fills struct annotator_config, and calls annotator_new(). For reward-model,
 * score/score_user is the scoring function (see annotator_score_fn; NULL for another backend).
 * ctx must outlive *out. The API key is handed to annotator_new() without touching the
 * environment or the disk, and is never written to why. On failure *out is NULL, and why says
 * which option is wrong. Returns ERR_OK, ERR_INVAL, ERR_IO, ERR_NOMEM. */
int annotator_opts_judge(const struct annotator_opts *o, struct annotator_judge_ctx *ctx,
                         annotator_score_fn score, void *score_user, annotator_t **out, char *why,
                         size_t whylen);

/* annotator_describe() of a judge made by annotator_opts_judge(), saying where its key came from
 * in the options' terms ("set from annotator.api_key" rather than the pipe it was handed over). */
void annotator_opts_describe(const struct annotator_opts *o, const annotator_t *a, char *out,
                             size_t len);

/* The rules backend's function (an adapter to rules_judge_text()); user is a
 * struct rules_config. Exposed for tests. */
int annotator_opts_rules(void *user, const struct annotator_request *req,
                         struct annotator_verdict *out, char *why, size_t whylen);

#endif /* ANNOTATOR_OPTS_H */
