/* strength_estimator_opts.h - the strength estimator's options, declared once: the table in
 * strength_estimator_opts.c fills struct strength_estimator_config (strength_estimator.h)
 * directly, and each default lives in its row alone. Section `strength_estimator`, plus the bus
 * options every service shares (busopts.h: bus.clients_endpoint, bus.workers_endpoint,
 * bus.events_endpoint, bus.ledger_public_key, strength_estimator.curve_secret_key,
 * bus.heartbeat_interval, bus.max_message_size); `strength-estimator --help` and `oaif config show
 * --service strength-estimator` list them.
 *
 * Not here: sockets (strength_estimator_service.h), the logic (strength_estimator.h). */
#ifndef STRENGTH_ESTIMATOR_OPTS_H
#define STRENGTH_ESTIMATOR_OPTS_H

#include "buf.h"
#include "cfg.h"
#include "strength_estimator.h"

/* The table (program name "strength-estimator"); conf_size is
 * sizeof(struct strength_estimator_config). */
extern const struct cfg_spec strength_estimator_opts_spec;

/* cfg_load() with strength_estimator_opts_spec into *c (zeroed first): defaults < run file <
 * environment < flags. ERR_OK, CFG_HELP (help printed), or ERR_INVAL / ERR_NOMEM with each
 * problem appended to errs (or logged when NULL; *c then holds nothing to free). Release with
 * strength_estimator_config_release(). */
int strength_estimator_config_load(struct strength_estimator_config *c, int argc, char *const *argv,
                                   buf_t *errs);

/* The defaults alone (tests). The strings are malloc'd: to change one, free it first. ERR_OK or
 * ERR_NOMEM. Release with strength_estimator_config_release(). */
int strength_estimator_config_defaults(struct strength_estimator_config *c);

/* Frees the strings the two above put in *c and NULLs them. Safe twice. */
void strength_estimator_config_release(struct strength_estimator_config *c);

#endif /* STRENGTH_ESTIMATOR_OPTS_H */
