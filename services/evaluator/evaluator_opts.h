/* evaluator_opts.h - the evaluator's options, declared once: the table in evaluator_opts.c fills
 * struct evaluator_config (evaluator.h) directly, and each default lives in its row alone.
 * Section `evaluator`, plus the bus options every service shares (busopts.h); `evaluator --help`
 * and `oaif config show --service evaluator` list them.
 *
 * Not here: sockets and the loop (evaluator_service.h), the logic (evaluator.h). */
#ifndef EVALUATOR_OPTS_H
#define EVALUATOR_OPTS_H

#include "buf.h"
#include "cfg.h"
#include "evaluator.h"

/* The table (program name "evaluator"); conf_size is sizeof(struct evaluator_config). */
extern const struct cfg_spec evaluator_opts_spec;

/* cfg_load() with evaluator_opts_spec into *c (zeroed first): defaults < run file < environment
 * < flags. ERR_OK, CFG_HELP (help printed), or ERR_INVAL / ERR_NOMEM with each problem appended
 * to errs (or logged when NULL). Release with evaluator_config_release(). */
int evaluator_config_load(struct evaluator_config *c, int argc, char *const *argv, buf_t *errs);

/* The defaults alone (tests). Release with evaluator_config_release(). */
int evaluator_config_defaults(struct evaluator_config *c);

/* Frees the strings the two above put in *c and NULLs them. Safe twice. */
void evaluator_config_release(struct evaluator_config *c);

#endif /* EVALUATOR_OPTS_H */
