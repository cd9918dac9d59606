/* sampler_opts.h - the sampler's configuration: the option table (section `sampler`, plus the
 * `bus` keys that say where the ledger is and `ledger.heartbeat_interval`), and turning the
 * loaded options into a struct sampler_config and CURVE material.
 *
 * Not here: sockets and threads (sampler_service.h), the logic (sampler.h). */
#ifndef SAMPLER_OPTS_H
#define SAMPLER_OPTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "bus.h"
#include "cfg.h"
#include "sampler.h"

/* What cfg_load() fills (see the table in sampler_opts.c, or `sampler --help`). */
struct sampler_opts {
    int backend; /* index into "builtin", "remote" */
    char *checkpoint_dir, *prompt_template;
    bool reload_on_publish;
    int max_loaded;
    int n, top_k, max_new_tokens, seed;
    double temperature, top_p;
    int max_prompts, max_n, max_responses, max_new_tokens_limit;
    int threads;
    int64_t rescan_ms;
    /* remote */
    char *base_url, *model, *api_key, *api_key_env;
    int remote_version;
    bool remote_logprobs;
    int max_in_flight, max_attempts;
    int64_t connect_timeout_ms, timeout_ms, backoff_base_ms, backoff_max_ms, retry_after_max_ms;
    /* the service */
    char *worker_name, *metrics_bind, *curve_secret_key;
    int metrics_port;
    /* bus */
    char *clients_endpoint, *workers_endpoint, *events_endpoint, *ledger_public_key;
    int64_t heartbeat_ms;
};

/* The spec of the options above (program name "sampler"). */
extern const struct cfg_spec sampler_opts_spec;

/* cfg_load() with sampler_opts_spec into *o (zeroed first). ERR_OK, CFG_HELP (help printed), or
 * ERR_INVAL / ERR_NOMEM with each problem appended to errs (or logged when NULL). */
int sampler_opts_load(struct sampler_opts *o, int argc, char *const *argv, buf_t *errs);
/* Frees what sampler_opts_load() put in *o. Safe twice. */
void sampler_opts_release(struct sampler_opts *o);

/* The sampler's configuration from the options: strings are borrowed from *o (keep it alive);
 * the remote API key is api_key, else the variable api_key_env names. ERR_INVAL with why naming
 * the option (an api_key_env that is unset). */
int sampler_opts_config(const struct sampler_opts *o, struct sampler_config *out, char *why,
                        size_t whylen);

/* CURVE material for connecting to the ledger: off unless curve_secret_key is set, which then
 * needs bus.ledger_public_key (a Z85 key, or a file holding one). ERR_INVAL with the reason. */
int sampler_opts_curve(const struct sampler_opts *o, struct bus_curve *out, char *why,
                       size_t whylen);

#endif /* SAMPLER_OPTS_H */
