/* sampler_opts.h - the sampler's options, declared once: the table in sampler_opts.c fills
 * struct sampler_config (sampler.h) directly, and each default lives in its row alone. Section
 * `sampler`, with the remote backend's HTTP client options (sampler.remote.*, httpopts.h: the
 * same rows as the annotator's annotator.http.*), plus the bus options every service shares
 * (busopts.h: bus.clients_endpoint, bus.workers_endpoint, bus.events_endpoint,
 * bus.ledger_public_key, sampler.curve_secret_key, bus.heartbeat_interval,
 * bus.max_message_size); `sampler --help` and `oaif config show` list them.
 *
 * Old names, kept for one release with a warning naming the new one (busopts.h):
 * ledger.heartbeat_interval and LEDGER_HEARTBEAT_INTERVAL (now bus.heartbeat_interval and
 * BUS_HEARTBEAT_INTERVAL), --ledger and OAIF_LEDGER (now --clients), --server-key (now
 * --ledger-key).
 *
 * Not here: sockets and threads (sampler_service.h), the logic (sampler.h). */
#ifndef SAMPLER_OPTS_H
#define SAMPLER_OPTS_H

#include "buf.h"
#include "cfg.h"
#include "sampler.h"

/* The table (program name "sampler"); conf_size is sizeof(struct sampler_config). */
extern const struct cfg_spec sampler_opts_spec;

/* cfg_load() with sampler_opts_spec into *c (zeroed first): defaults < run file < environment <
 * flags. ERR_OK, CFG_HELP (help printed), or ERR_INVAL / ERR_NOMEM with each problem appended to
 * errs (or logged when NULL; *c then holds nothing to free). Release with
 * sampler_config_release(). */
int sampler_config_load(struct sampler_config *c, int argc, char *const *argv, buf_t *errs);

/* The defaults alone, as sampler_config_load() with no run file, environment or flags gives them
 * (tests, benchmarks). The strings are malloc'd: to change one, free it first. ERR_OK or
 * ERR_NOMEM. Release with sampler_config_release(). */
int sampler_config_defaults(struct sampler_config *c);

/* Frees the strings the two above put in *c and NULLs them. Safe twice. */
void sampler_config_release(struct sampler_config *c);

#endif /* SAMPLER_OPTS_H */
