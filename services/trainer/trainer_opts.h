/* trainer_opts.h - the trainer library's option tables, each declared once and filling its struct
 * directly, each default written in its table alone:
 *   trainer_opts_spec       the trainer service (struct trainer_online_config, online.h): section
 *                           `trainer`, plus the bus options (busopts.h); `trainer --help`
 *   trainer_sft_opts_spec   `oaif sft` (struct trainer_sft_opts, sft.h): keys oaif.sft.*, and the
 *                           --quick preset (trainer_sft_quick)
 *   trainer_eval_opts_spec  `oaif eval` (struct trainer_eval_opts, evaluate.h): keys oaif.eval.*
 *   trainer_rm_opts_spec    `oaif rm train` (struct trainer_rm_opts, rm.h): keys oaif.rm.*,
 *                           variables RM_* (a member can run as a container, configured by them)
 * `oaif config show --service trainer|sft|eval` lists them. The verbs' own rows (the ledger
 * connection of `oaif sft`) and their parsing are the CLI's (services/oaif/cmd_sft.c,
 * cmd_eval.c). */
#ifndef TRAINER_OPTS_H
#define TRAINER_OPTS_H

#include <stddef.h>

#include "buf.h"
#include "cfg.h"
#include "evaluate.h"
#include "online.h"
#include "rm.h"
#include "sft.h"

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

/* ---- oaif sft ------------------------------------------------------------------------------ */

/* The SFT table (program name "oaif sft"); conf_size is sizeof(struct trainer_sft_opts). Its
 * defaults are the built-in recipe. */
extern const struct cfg_spec trainer_sft_opts_spec;

/* Other defaults for some options of a table, by run-file key; arrays end with {NULL, NULL}. */
struct trainer_opts_preset {
    const char *key, *def;
};

/* `oaif sft --quick`: the defaults of a run of seconds (tests, smoke checks) that still leaves
 * the model clearly better than untrained: fewer steps and warm-up steps, a smaller evaluation.
 * Only what differs from the table's defaults; the run file, environment and flags still
 * override them. */
extern const struct trainer_opts_preset trainer_sft_quick[];

/* Copies spec's rows to out[0..spec->n_options), each moved by `offset` bytes (for a struct that
 * holds the one spec fills at that offset, beside fields of its own) and, where `preset` (NULL:
 * none) names its key, with the preset's default. The copies borrow spec's and preset's
 * strings. */
void trainer_opts_rows(struct cfg_option *out, const struct cfg_spec *spec, size_t offset,
                       const struct trainer_opts_preset *preset);

/* cfg_defaults() of the SFT table into *o (zeroed first): the built-in recipe. ERR_OK or
 * ERR_NOMEM. Release with trainer_sft_release(). */
int trainer_sft_defaults(struct trainer_sft_opts *o);

/* The same with trainer_sft_quick's defaults: what `oaif sft --quick` trains with no run file,
 * environment or flags. ERR_OK or ERR_NOMEM. Release with trainer_sft_release(). */
int trainer_sft_quick_defaults(struct trainer_sft_opts *o);

/* Frees the strings the SFT table put in *o (by cfg_load or the two above). Safe twice. */
void trainer_sft_release(struct trainer_sft_opts *o);

/* ---- oaif eval ----------------------------------------------------------------------------- */

/* The eval table (program name "oaif eval"); conf_size is sizeof(struct trainer_eval_opts). */
extern const struct cfg_spec trainer_eval_opts_spec;

/* cfg_defaults() of the eval table into *o (zeroed first). ERR_OK or ERR_NOMEM. Release with
 * trainer_eval_release(). */
int trainer_eval_defaults(struct trainer_eval_opts *o);

/* Frees the strings the eval table put in *o. Safe twice. */
void trainer_eval_release(struct trainer_eval_opts *o);

/* ---- oaif rm train ------------------------------------------------------------------------ */

/* The reward-model table (program name "oaif rm train"); conf_size is
 * sizeof(struct trainer_rm_opts). Keys oaif.rm.*, variables RM_*. */
extern const struct cfg_spec trainer_rm_opts_spec;

/* cfg_defaults() of the reward-model table into *o (zeroed first). ERR_OK or ERR_NOMEM. Release
 * with trainer_rm_release(). */
int trainer_rm_defaults(struct trainer_rm_opts *o);

/* Frees the strings the reward-model table put in *o. Safe twice. */
void trainer_rm_release(struct trainer_rm_opts *o);

/* ---- oaif rm eval ------------------------------------------------------------------------- */

enum trainer_rm_eval_split { TRAINER_RM_EVAL_HELDOUT = 0, TRAINER_RM_EVAL_ALL };

/* The options of `oaif rm eval` (services/oaif/cmd_rm.c): which ensemble (or member) scores which
 * pairs. Filled by trainer_rm_eval_opts_spec; strings malloc'd by cfg. */
struct trainer_rm_eval_opts {
    char *dataset, *run; /* the preference set, as `oaif rm train` reads it (exactly one) */
    double holdout;      /* the held-out share the members trained with */
    int split;           /* enum trainer_rm_eval_split */
    char *ensemble;
    int member;           /* -1: every member of the ensemble */
    char *checkpoint_dir; /* the checkpoint root */
    int max_len;          /* tokens per text at most */
    bool json;            /* one JSON object instead of the table */
};

/* The table of `oaif rm eval`; conf_size is sizeof(struct trainer_rm_eval_opts). Keys
 * oaif.rm_eval.*, variables RM_EVAL_*. */
extern const struct cfg_spec trainer_rm_eval_opts_spec;

/* ---- oaif rm features --------------------------------------------------------------------- */

/* The options of `oaif rm features` (services/oaif/cmd_rm_features.c) besides those it shares
 * with `oaif rm eval` (the set, the split, the ensemble, the checkpoints, max_len: the rows of
 * trainer_rm_eval_opts_spec but --member and --json). Filled by trainer_rm_features_opts_spec. */
struct trainer_rm_features_opts {
    int member; /* the member whose features are projected */
    int limit;  /* the first pairs (by id) of the split at most; 0: all */
    char *out;  /* the CSV file; NULL, "" or "-": standard output */
};

/* The table of `oaif rm features`' own options; keys oaif.rm_features.*, variables
 * RM_FEATURES_*. */
extern const struct cfg_spec trainer_rm_features_opts_spec;

#endif /* TRAINER_OPTS_H */
