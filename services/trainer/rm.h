/* rm.h - reward-model training: one member of an ensemble, what `oaif rm train` runs
 * (services/oaif/cmd_rm.c parses its options; several members train at once as separate
 * processes, each with its own --member and --seed).
 *
 * What it is for: the M reward models whose disagreement measures a pair's preference strength
 * (ALGORITHMS.md, "Preference strength"). As in the paper the members differ by seed alone: the
 * seed decides the data order of every epoch and the initialisation of the scalar head, nothing
 * else (the held-out split is the same for all).
 *
 * Data: a preference set in the ledger (rm_data.h): the pairs imported as dataset --dataset, or
 * the labeled pairs of run --run. Each pair is two sequences rendered as the policy sees them
 * (the prompt through the tokenizer's template, BOS when the tokenizer wants it, one space when
 * the rendered prompt does not end in whitespace and the response does not start with it, the
 * response, EOS), so the reward is read on the EOS (as the reward scorer reads it); a response
 * too long for --max-len is cut so that the EOS still ends it; a pair whose prompt leaves no
 * room is left out and counted.
 *
 * Model: the SFT checkpoint (--init) with a fresh scalar head score.weight drawn from the seed,
 * as the paper starts its reward models from the SFT model (it already knows the task's
 * language; a reward head on a model that does not must learn the language from preference
 * labels alone); or the built-in shape from random weights (--from-scratch). On the built-in
 * task the tiny model gains nothing from it: one epoch on its preferences gives 75% held-out
 * accuracy either way (both learn the "shorter" rule; neither checks answers yet).
 *
 * Training: epochs over the pairs that are not held out, in batches of --batch pairs (an epoch
 * is floor(train / batch) steps, at least one; the rest of a shuffle waits for the next
 * epoch's), the loss of rm_loss.h, AdamW (betas 0.9, 0.95, eps 1e-6 as the paper), gradient
 * clipping, linear warm-up then the schedule. After each epoch the held-out pairs are scored
 * without dropout: accuracy (r(y+) > r(y-)) and the mean Bradley-Terry loss -log s(r+ - r-),
 * logged and kept in the checkpoint's metrics.
 *
 * Checkpoints and resume: every --checkpoint-every steps, at the end and when stopped, the
 * member's weights, optimizer state (SwAV's prototypes with theirs in swav.safetensors) and
 * progress (TRAINER_RM_STATE: the step, the epochs' metrics, the training's fingerprint, the
 * weights' sha256) are written durably to <checkpoint dir>/reward-<ensemble>-m<member>-v<N>/,
 * N one above the newest version on disk or in the ledger; the progress file last, so a
 * directory without it is not a checkpoint. The previous checkpoint of the same training is
 * removed once the next one is durable. The final one holds the weights (and tokenizer) alone.
 * The fingerprint is the sha256 of every setting that decides the weights and of the data's
 * digest: a restarted member whose newest checkpoint has its fingerprint resumes from it (the
 * data order and dropout masks are functions of the seed and the step, so it reaches the same
 * weights, bit for bit, as a run that was never stopped, on the same machine and thread count);
 * one whose newest checkpoint is finished publishes it again and stops; any other starts anew
 * at the next version.
 *
 * Publishing: the final checkpoint becomes a Checkpoint record {kind REWARD, id
 * "reward-<ensemble>-m<member>-v<N>", ensemble, member, version N, step, path, sha256, metrics}
 * (trainer_rm_publish); the reward scorer serves the newest version of each member.
 *
 * MetaRM (--meta): each step first adapts the weights to the policy's current outputs (rm_meta.h),
 * with the meta set in the fingerprint.
 *
 * Not for: scoring (services/reward-scorer), preference strength. */
#ifndef TRAINER_RM_H
#define TRAINER_RM_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "busclient.h"
#include "optim.h"
#include "rm_data.h"
#include "rm_loss.h"
#include "rm_meta.h"
#include "tokenizer.h"

#define TRAINER_RM_STATE      "rm.json"          /* the progress file of a checkpoint */
#define TRAINER_RM_SWAV       "swav.safetensors" /* SwAV's prototypes and their AdamW state */
#define TRAINER_RM_MAX_EPOCHS 100
#define TRAINER_RM_HEAD_STD   0.02f /* std of the fresh head (Hugging Face's initializer_range) */

/* Where soft targets come from. */
enum trainer_rm_soft {
    TRAINER_RM_SOFT_NONE = 0, /* 1 - label smoothing for every pair */
    TRAINER_RM_SOFT_LABEL,    /* the label's P(chosen better) */
    TRAINER_RM_SOFT_STRENGTH, /* sigmoid of the preference strength */
};

/* The options of `oaif rm train`. Filled by the option table trainer_rm_opts_spec
 * (trainer_opts.h), where each default is written once; strings malloc'd by cfg. Options where
 * 0 means "the paper's" are resolved by trainer_rm_loss_opts_of() and trainer_rm_seed(). */
struct trainer_rm_opts {
    /* data */
    char *dataset;             /* Pair.run of an imported preference set; or */
    char *run;                 /* Pair.run of a run's online pairs (exactly one of the two) */
    double holdout;            /* share of pairs held out, [0, 0.9] */
    char *flip_file;           /* pair ids, one a line, whose labels are swapped; NULL: none */
    float margin;              /* a fixed margin for every pair */
    bool margin_from_strength; /* + margin_scale * clamp(mu, +-margin_clip) per pair */
    float margin_scale, margin_clip;
    int soft_target; /* enum trainer_rm_soft */
    /* the loss: smoothing, centering, LM weight, contrastive loss and dropout are read from
     * here; cl_weight, the temperatures, the modes and K are resolved from the fields below */
    struct trainer_rm_loss_opts loss;
    int cl_on;            /* enum nn_cl_mode of the contrastive loss */
    float cl_temperature; /* 0: the paper's for the loss */
    /* model */
    char *init_dir;    /* the SFT checkpoint to start from */
    bool from_scratch; /* the built-in shape from random weights instead */
    char *ensemble;    /* letters, digits, '.', '_', '-'; at most 64 bytes */
    int member;        /* 0 .. 1023 */
    uint64_t seed;     /* data order, head init, dropout; 0: member + 1 */
    int max_len;       /* tokens per sequence at most */
    /* optimisation */
    int epochs;
    int batch; /* pairs per step */
    float lr;
    int schedule; /* enum nn_sched_kind */
    float min_lr_ratio;
    long warmup; /* capped at the run's steps */
    struct nn_adamw_opts adamw;
    float clip; /* global-norm clip, 0: off */
    /* checkpoints */
    char *checkpoint_dir;
    int checkpoint_every;  /* steps */
    int64_t step_sleep_ms; /* tests: a pause after each step, a window to kill a member in */
    int threads;           /* the engine's threads (nn_threads.h; 0: OMP_NUM_THREADS or all) */
    struct trainer_rm_meta_opts meta; /* MetaRM (rm_meta.h) */
};

/* One epoch's numbers. */
struct trainer_rm_epoch {
    double train_loss;     /* mean total loss of the epoch's steps */
    double train_accuracy; /* mean batch accuracy of view 1 */
    double heldout_loss;   /* mean -log s(r+ - r-) on the held-out pairs */
    double heldout_accuracy;
    size_t heldout_pairs; /* 0: none held out (then the two above are 0) */
};

/* What trainer_rm_train did. */
struct trainer_rm_result {
    bool already_done; /* the newest checkpoint was this training, finished: nothing trained */
    bool stopped;      /* *stop was set: the last checkpoint stands, not finished */
    long resumed_at;   /* the step resumed from (0: a fresh start) */
    long steps;        /* the training's steps in all */
    long steps_done;   /* steps taken by this call */
    size_t train_pairs, heldout_pairs, truncated, too_long;
    int epochs_done;
    struct trainer_rm_epoch epoch[TRAINER_RM_MAX_EPOCHS];
    uint32_t version; /* of the newest checkpoint written or found */
    char dir[4096];
    char sha256[65]; /* of dir/model.safetensors */
    uint64_t seed;   /* as resolved */
    double seconds;
};

/* Check the options; ERR_INVAL with err naming the option by its flag and the reason. */
int trainer_rm_validate(const struct trainer_rm_opts *o, char *err, size_t errlen);

/* The seed in effect: o->seed, or member + 1 when it is 0. */
uint64_t trainer_rm_seed(const struct trainer_rm_opts *o);

/* The loss's settings in effect, with the paper's weight, temperature and K where the options
 * leave them at 0 (SimCSE: weight 1, tau 0.05; SwAV: weight 0.5 on differences and 0.1 on
 * responses, K 20 and 50, tau 0.1). */
void trainer_rm_loss_opts_of(const struct trainer_rm_opts *o, struct trainer_rm_loss_opts *lo);

/* "reward-<ensemble>-m<member>" into out: the stem of the member's directories and record ids.
 * ERR_TOOBIG. */
int trainer_rm_stem(char *out, size_t outlen, const char *ensemble, int member);

/* Train (or resume, or find finished) member o->member on `data` as described above; checkpoints
 * go under o->checkpoint_dir, the first new one at a version above min_version (the newest the
 * ledger has, 0: none). Stops at the next step when *stop becomes non-zero (stop may be NULL):
 * then a checkpoint is written and res->stopped set. ERR_OK (finished, stopped or already
 * done), ERR_INVAL (bad options, no pair to train on, a bad init checkpoint; err says which),
 * ERR_NOTFOUND (no --init checkpoint), ERR_IO (err names the file), ERR_NOMEM, or the engine's
 * error. */
int trainer_rm_train(const struct trainer_rm_opts *o, const struct trainer_rm_data *data,
                     uint32_t min_version, volatile sig_atomic_t *stop,
                     struct trainer_rm_result *res, char *err, size_t errlen);

/* The same with MetaRM: `meta` is the meta set (rm_meta.h) when o->meta.on, else NULL (ERR_INVAL
 * when the two disagree). trainer_rm_train is this with meta NULL. */
int trainer_rm_train_meta(const struct trainer_rm_opts *o, const struct trainer_rm_data *data,
                          const struct trainer_rm_meta_set *meta, uint32_t min_version,
                          volatile sig_atomic_t *stop, struct trainer_rm_result *res, char *err,
                          size_t errlen);

/* One training step of trainer_rm_train on batch b, without the data and checkpoints (also what
 * tests/bench/bench_rm_train.c times): the loss and its gradient (trainer_rm_loss_run with
 * step_seed), the global-norm clip of the model's gradients at `clip` (0: off), AdamW at `lr` on
 * the model (opt) and, with SwAV, on the loss's prototypes (popt), renormalised after. ERR_OK, or
 * trainer_rm_loss_run's or the optimizer's error with err saying which. */
int trainer_rm_step(trainer_rm_loss_t *loss, nn_model_t *m, nn_adamw_t *opt, nn_adamw_t *popt,
                    const struct trainer_rm_batch *b, uint64_t step_seed, float lr, float clip,
                    const struct nn_adamw_opts *ao, struct trainer_rm_parts *pt, char *err,
                    size_t errlen);

/* The second half of trainer_rm_step, on the gradients already in the model and the loss's
 * prototypes: the clip, AdamW on the model and the prototypes, their renormalisation. */
int trainer_rm_apply(trainer_rm_loss_t *loss, nn_model_t *m, nn_adamw_t *opt, nn_adamw_t *popt,
                     float lr, float clip, const struct nn_adamw_opts *ao, char *err,
                     size_t errlen);

/* One response as a training sequence: prompt ids pids[0..np) (as tok_encode_prompt gives them),
 * a space when the rendered prompt does not end in whitespace and the response does not start
 * with it, the response, EOS; the response cut (*cut) so that the EOS still ends it within
 * max_len (which must leave room for np + 1). *out malloc'd, *len its tokens. ERR_NOMEM or the
 * tokenizer's error. */
int trainer_rm_encode_response(const tok_t *tk, const int *pids, size_t np, const char *rendered,
                               const char *response, int max_len, int **out, int *len, bool *cut);

/* perm := a Fisher-Yates shuffle of 0 .. n-1 drawn from the random state s (the data orders). */
void trainer_rm_shuffle(size_t *perm, size_t n, uint64_t s);

/* The newest version the ledger behind `cl` records for this member (0: none) into *version.
 * ERR_OK, or the bus's error. */
int trainer_rm_ledger_version(bus_client_t *cl, const char *ensemble, int member, int timeout_ms,
                              uint32_t *version);

/* Records the finished checkpoint `res` (not stopped) in the ledger behind `cl`: the Checkpoint
 * record described above, with metrics step, epochs, seed, train_pairs, heldout_pairs,
 * train_loss, heldout_accuracy and heldout_loss (the last epoch's, when pairs were held out) and
 * heldout_accuracy_e<k>, heldout_loss_e<k> for every epoch k (1-based); run is the data's name.
 * Publishing again is the same put. Returns ckpt_publish's code. */
int trainer_rm_publish(bus_client_t *cl, const struct trainer_rm_opts *o,
                       const struct trainer_rm_result *res, int timeout_ms);

#endif /* TRAINER_RM_H */
