/* ledger_opts.h - the ledger's option table (ledger_opts.c), which fills struct ledger_config
 * (ledger.h) directly: `ledger --help` and `oaif config show --service ledger` list it. The
 * defaults alone: ledger_config_defaults (ledger.h). */
#ifndef LEDGER_OPTS_H
#define LEDGER_OPTS_H

#include "buf.h"
#include "cfg.h"
#include "ledger.h"

/* The table (program name "ledger"); conf_size is sizeof(struct ledger_config). */
extern const struct cfg_spec ledger_opts_spec;

/* cfg_load_ex() with ledger_opts_spec into *c (zeroed first). ERR_OK, CFG_HELP (help printed),
 * ERR_INVAL or ERR_NOMEM with each problem appended to errs (or logged when NULL). Free with
 * ledger_config_release. */
int ledger_opts_load(struct ledger_config *c, int argc, char *const *argv, buf_t *errs,
                     struct cfg_trace *trace);

#endif /* LEDGER_OPTS_H */
