/* trainer_opts.h - the trainer's options, declared once: the table fills struct
 * trainer_online_config (online.h) directly, and each default lives there alone. Section
 * `trainer`, plus the bus options (busopts.h); `trainer --help` and `oaif config show --service
 * trainer` list them. */
#ifndef TRAINER_OPTS_H
#define TRAINER_OPTS_H

#include "buf.h"
#include "cfg.h"
#include "online.h"

/* The table (program name "trainer"); conf_size is sizeof(struct trainer_online_config). */
extern const struct cfg_spec trainer_opts_spec;

/* cfg_load_ex() with trainer_opts_spec into *c (zeroed first), then what follows from the
 * options (the cosine length is the run's steps). ERR_OK, CFG_HELP (help printed), ERR_INVAL or
 * ERR_NOMEM with each problem appended to errs (or logged when NULL). Release with
 * trainer_opts_release(). */
int trainer_opts_load(struct trainer_online_config *c, int argc, char *const *argv, buf_t *errs,
                      struct cfg_trace *trace);

/* The defaults alone, as trainer_opts_load with no run file, environment or flags would give
 * them (tests). ERR_OK or ERR_NOMEM. Release with trainer_opts_release(). */
int trainer_opts_defaults(struct trainer_online_config *c);

/* Frees what the two above put in *c (its strings). Safe twice. */
void trainer_opts_release(struct trainer_online_config *c);

#endif /* TRAINER_OPTS_H */
