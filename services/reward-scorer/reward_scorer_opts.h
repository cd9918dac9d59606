/* reward_scorer_opts.h - the reward scorer's options, declared once: the table in
 * reward_scorer_opts.c fills struct reward_scorer_config (reward_scorer.h) directly, and each
 * default lives in its row alone. Section `reward_scorer`, plus the bus options every service
 * shares (busopts.h: bus.clients_endpoint, bus.workers_endpoint, bus.events_endpoint,
 * bus.ledger_public_key, reward_scorer.curve_secret_key, bus.heartbeat_interval,
 * bus.max_message_size); `reward-scorer --help` and `oaif config show` list them.
 *
 * Not here: sockets and threads (reward_scorer_service.h), the logic (reward_scorer.h). */
#ifndef REWARD_SCORER_OPTS_H
#define REWARD_SCORER_OPTS_H

#include "buf.h"
#include "cfg.h"
#include "reward_scorer.h"

/* The table (program name "reward-scorer"); conf_size is sizeof(struct reward_scorer_config). */
extern const struct cfg_spec reward_scorer_opts_spec;

/* cfg_load() with reward_scorer_opts_spec into *c (zeroed first): defaults < run file <
 * environment < flags. ERR_OK, CFG_HELP (help printed), or ERR_INVAL / ERR_NOMEM with each
 * problem appended to errs (or logged when NULL; *c then holds nothing to free). Release with
 * reward_scorer_config_release(). */
int reward_scorer_config_load(struct reward_scorer_config *c, int argc, char *const *argv,
                              buf_t *errs);

/* The defaults alone (tests). The strings are malloc'd: to change one, free it first. ERR_OK or
 * ERR_NOMEM. Release with reward_scorer_config_release(). */
int reward_scorer_config_defaults(struct reward_scorer_config *c);

/* Frees the strings the two above put in *c and NULLs them. Safe twice. */
void reward_scorer_config_release(struct reward_scorer_config *c);

#endif /* REWARD_SCORER_OPTS_H */
