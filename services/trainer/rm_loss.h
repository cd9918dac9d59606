/* rm_loss.h - the loss of one reward-model step, assembled from the engine's losses (loss.h)
 * with its gradient, for `oaif rm train` (rm.h).
 *
 * A batch holds B preference pairs as 2B right-padded sequences: rows 0..B-1 are the chosen
 * responses (prompt + response + EOS), rows B..2B-1 the rejected ones of the same pairs. The
 * reward r is the model's scalar head on the last token (model.h). The loss is
 *
 *   total = (1/V) sum_v BT_v  +  beta * CL(h_1, h_2)  +  alpha * LM
 *
 *   BT_v  nn_loss_rm on view v's rewards (per-pair margins, soft targets or label smoothing,
 *         reward centering as its options say);
 *   CL    SimCSE or SwAV (nn_loss_simcse, nn_loss_swav) on the last token's final hidden states
 *         of the two views, on responses or on chosen - rejected differences (ALGORITHMS.md,
 *         "Contrastive reward modeling"); its gradient reaches the model through dlast_hidden;
 *   LM    the chosen responses' per-token NLL (nn_loss_sft over rows 0..B-1 with the batch's
 *         own token count), on view 1 only.
 *
 * V = 2 views, two forwards with dropout seeds trainer_rm_view_seed(step_seed, 0 and 1), when a
 * contrastive loss has a weight above 0 (the RM loss then runs on both views and is averaged,
 * so its scale does not change with V); else V = 1 forward without dropout. The model keeps the
 * activations of its last forward only, so view 1 is run a second time, with the same dropout
 * mask, for its backward: 3 forwards and 2 backwards a step with two views, 1 and 1 without.
 *
 * SwAV's prototypes C [K, D] (D the hidden size) live here, initialised from a seed and
 * normalised; their gradient is beta * d CL / d C, for the caller's optimizer (after which it
 * calls nn_swav_normalize). Not here: the optimizer, the data, checkpoints (rm.h). */
#ifndef TRAINER_RM_LOSS_H
#define TRAINER_RM_LOSS_H

#include <stddef.h>
#include <stdint.h>

#include "loss.h"
#include "model.h"

enum trainer_rm_cl {
    TRAINER_RM_CL_NONE = 0,
    TRAINER_RM_CL_SIMCSE,
    TRAINER_RM_CL_SWAV,
};

/* The paper's settings (ALGORITHMS.md), for options left at 0. */
#define TRAINER_RM_SIMCSE_WEIGHT      1.0f  /* beta of SimCSE */
#define TRAINER_RM_SIMCSE_TEMPERATURE 0.05f /* tau of SimCSE */
#define TRAINER_RM_SWAV_WEIGHT_DIFF   0.5f  /* beta of SwAV on differences */
#define TRAINER_RM_SWAV_WEIGHT_RESP   0.1f  /* beta of SwAV on responses */
#define TRAINER_RM_SWAV_K_DIFF        20    /* prototypes of SwAV on differences */
#define TRAINER_RM_SWAV_K_RESP        50    /* prototypes of SwAV on responses */
#define TRAINER_RM_SWAV_TEMPERATURE   0.1f  /* tau of SwAV */

/* The loss's settings, every value resolved (no "0 means the paper's": see rm.h). */
struct trainer_rm_loss_opts {
    struct nn_rm_opts rm;         /* label smoothing, reward centering */
    float lm;                     /* alpha >= 0; 0: no LM term (and no logits computed) */
    enum trainer_rm_cl cl;        /* the contrastive loss */
    float cl_weight;              /* beta >= 0; cl != NONE and beta > 0: two views */
    float dropout;                /* p in [0, 1) of the two views */
    struct nn_simcse_opts simcse; /* mode, temperature (cl == SIMCSE) */
    struct nn_swav_opts swav;     /* mode, K, temperature, epsilon, iterations (cl == SWAV) */
};

/* One batch (see the header comment). Borrowed for the call. */
struct trainer_rm_batch {
    int B;                  /* pairs, >= 1 */
    int T;                  /* padded length */
    const int *tokens;      /* [2B, T] */
    const int *lengths;     /* [2B] real tokens per row */
    const int *prompt_lens; /* [2B] prompt tokens per row (the LM term's response starts there) */
    const float *margin;    /* [B] per-pair margins, or NULL (none) */
    const float *target;    /* [B] per-pair soft targets, or NULL (1 - label smoothing) */
};

/* What one step's loss was. */
struct trainer_rm_parts {
    double total; /* rm + cl_weight * cl + lm_weight * lm: what the gradients are of */
    double rm;    /* mean over the views of nn_loss_rm */
    double cl;    /* the contrastive loss (0 with one view) */
    double lm;    /* the LM term before its weight (0 when off) */
    double accuracy, reward_chosen, reward_rejected; /* view 1's nn_rm_stats */
    int views;
};

typedef struct trainer_rm_loss trainer_rm_loss_t; /* opaque: scratch, prototypes */

/* How many views `o` asks for: 2 with a weighted contrastive loss, else 1. */
int trainer_rm_loss_views(const struct trainer_rm_loss_opts *o);

/* The dropout seed of view `view` (0 or 1) of a step whose seed is step_seed. */
uint64_t trainer_rm_view_seed(uint64_t step_seed, int view);

/* A loss for `m` (a model with a reward head, borrowed until destroy) and batches of up to
 * max_pairs pairs; with SwAV, its prototypes are drawn from proto_seed and normalised. The
 * caller reserves the model for training (nn_model_reserve(m, 2 * max_pairs, T, true)).
 * ERR_INVAL (no reward head, bad options: a name in `err`), ERR_NOMEM. */
int trainer_rm_loss_new(trainer_rm_loss_t **out, nn_model_t *m,
                        const struct trainer_rm_loss_opts *o, int max_pairs, uint64_t proto_seed,
                        char *err, size_t errlen);
/* Frees it; sets *l to NULL. Accepts NULL. */
void trainer_rm_loss_destroy(trainer_rm_loss_t **l);

/* The loss of batch b and its gradient: zeroes the model's gradients (and the prototypes'),
 * runs the forwards and backwards, and leaves d total / d parameters in nn_model_grads and
 * d total / d C in trainer_rm_loss_prototypes' gradient. *out may be NULL. ERR_TOOBIG (more
 * pairs than max_pairs, or more than the model reserved), ERR_INVAL (a bad batch, a target out
 * of [0, 1]), or the engine's error. */
int trainer_rm_loss_run(trainer_rm_loss_t *l, const struct trainer_rm_batch *b, uint64_t step_seed,
                        struct trainer_rm_parts *out);

/* SwAV's prototypes [K, D] and their gradient [K, D], borrowed until destroy, with *n = K * D;
 * NULL and *n = 0 without SwAV. */
float *trainer_rm_loss_prototypes(trainer_rm_loss_t *l, size_t *n);
float *trainer_rm_loss_prototype_grads(trainer_rm_loss_t *l, size_t *n);

#endif /* TRAINER_RM_LOSS_H */
