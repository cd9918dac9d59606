/* rm_meta.h - MetaRM (first-order), what `oaif rm train --meta` adds to a reward model's step
 * (ALGORITHMS.md, "MetaRM (first-order)"): a reward model trained on the SFT model's responses
 * loses its resolution on the responses of the policy that moved away from them; MetaRM keeps
 * it by taking each Bradley-Terry gradient where one ascent step on the meta set's difference
 * loss would put the weights.
 *
 * The meta set S: prompts with k responses each, sampled from the current policy. J(S) is
 *
 *   J = (1/P) sum_p (2/k^2) sum_{i<j} s(|r(p,i) - r(p,j)|)     (s the logistic sigmoid)
 *
 * over its P prompts, to be maximised: it grows as the model tells the policy's own responses
 * apart. One step on a batch D of preference pairs and a batch of the meta set:
 *
 *   theta' = theta + eta * dJ/dtheta  (plain gradient ascent, the meta set's batch, no dropout)
 *   g      = d L(D) / dtheta at theta' (the step's whole loss, rm_loss.h)
 *   theta  <- AdamW(theta, g)          (theta restored first; clipped and scheduled as usual)
 *
 * eta is --meta-lr; the outer rate alpha is --lr. At theta' = theta (eta 0) the step is the plain
 * one. |d| has no derivative at 0; as torch.abs, its gradient there is taken as 0, and so it is
 * for |d| <= TRAINER_RM_META_TIE (|r_i| + |r_j|): the same response in two rows of a batch can
 * get rewards one rounding apart, whose sign is noise.
 *
 * Where S comes from (trainer_rm_meta_collect): the distinct prompts of the preference set's
 * training pairs (the questions the reward model is asked), ordered by the sha256 of their text
 * and the first --meta-prompts of them, sampled --meta-k times each through the `sample` service
 * at --meta-temperature from one policy version, pinned: --meta-policy-version, or the newest
 * policy checkpoint the ledger records (the SFT model before any online training). Requests go
 * in chunks of TRAINER_RM_META_PER_REQUEST prompts, each request's id the sha256 of its payload,
 * so the ledger keeps the replies: a member asking again (resumed, another member of the
 * ensemble, a finished one started again) gets the same answers without sampling again, and the
 * set's digest, in the training's fingerprint, is the same. Each step's meta batch is
 * --meta-batch prompts (all k responses of each), in an order drawn from the seed per pass, a
 * function of the step alone (so a resumed member takes the same batches).
 *
 * Not here: the options' table (trainer_opts.c), the rest of the step and the checkpoints (rm.h).
 */
#ifndef TRAINER_RM_META_H
#define TRAINER_RM_META_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "busclient.h"
#include "model.h"
#include "optim.h"
#include "rm_data.h"
#include "rm_loss.h"
#include "tokenizer.h"

#define TRAINER_RM_META_K_MAX       64
#define TRAINER_RM_META_PER_REQUEST 8    /* prompts per SampleRequest */
#define TRAINER_RM_META_TIE         1e-6 /* relative: rewards this close count as tied */

/* The options of --meta (rm.h's struct trainer_rm_opts.meta; table trainer_rm_opts_spec). */
struct trainer_rm_meta_opts {
    bool on;
    float lr;            /* eta of the ascent step */
    int k;               /* responses per prompt, 2 .. TRAINER_RM_META_K_MAX */
    int prompts;         /* prompts in S at most */
    int batch;           /* prompts per step */
    float temperature;   /* of the sampling */
    int max_new_tokens;  /* of each response */
    long policy_version; /* -1: the newest the ledger records */
    uint64_t seed;       /* of the sampling */
    int64_t timeout_ms;  /* for the whole set's replies */
};

/* The meta set: nprompts prompts, k responses each. Strings malloc'd. */
struct trainer_rm_meta_set {
    uint32_t policy_version;
    int k;
    size_t nprompts;
    char **prompts;   /* [nprompts] */
    char **responses; /* [nprompts * k]: prompt p's are [p * k, p * k + k) */
    char digest[65];  /* sha256 over the version, k, every prompt and response */
};

/* One step's meta batch: P prompts of k tokenized responses, rows [P * k, T] right-padded. */
struct trainer_rm_meta_batch {
    int P, k, T;
    const int *tokens;  /* [P * k, T] */
    const int *lengths; /* [P * k] */
};

/* J of P prompts' k rewards each (r[p * k + i]) into *J, and dJ/dr into dr [P * k] (may be
 * NULL). ERR_INVAL when P < 1, k < 2 or a reward is not finite. */
int trainer_rm_meta_j(int P, int k, const float *r, double *J, float *dr);

/* Checks the options when o->on; ERR_INVAL with err naming the flag. */
int trainer_rm_meta_validate(const struct trainer_rm_meta_opts *o, char *err, size_t errlen);

/* The gradient of one MetaRM step, without the optimizer: J and its gradient at theta (the
 * model's weights) on mb, theta' = theta + eta dJ/dtheta, then trainer_rm_loss_run of batch b
 * (step_seed) at theta', and theta restored: the model's gradients (and the prototypes') are
 * then g. scratch: nn_model_num_params(m) + P * k floats of the caller's. *J and *pt may be
 * NULL. The model must be reserved for training for both batches' rows and lengths. ERR_INVAL
 * (a non-finite reward or loss: err says which), ERR_TOOBIG, or the engine's error. */
int trainer_rm_meta_grad(nn_model_t *m, trainer_rm_loss_t *loss,
                         const struct trainer_rm_meta_batch *mb, float eta,
                         const struct trainer_rm_batch *b, uint64_t step_seed, float *scratch,
                         double *J, struct trainer_rm_parts *pt, char *err, size_t errlen);

/* trainer_rm_meta_grad, then trainer_rm_apply (rm.h) at `lr`. */
int trainer_rm_meta_step(nn_model_t *m, trainer_rm_loss_t *loss, nn_adamw_t *opt, nn_adamw_t *popt,
                         const struct trainer_rm_meta_batch *mb, float eta,
                         const struct trainer_rm_batch *b, uint64_t step_seed, float lr, float clip,
                         const struct nn_adamw_opts *ao, float *scratch, double *J,
                         struct trainer_rm_parts *pt, char *err, size_t errlen);

/* ---- the meta set in a training (rm.c) ------------------------------------------------------ */

typedef struct trainer_rm_meta trainer_rm_meta_t; /* the set tokenized, the order, scratch */

/* The meta set `set` tokenized as the preference pairs are (trainer_rm_encode_response, cut to
 * max_len), for a training with seed `seed`. ERR_INVAL (set NULL while o->on or the reverse, a
 * prompt too long for max_len: err names it), ERR_NOMEM, or the tokenizer's error. */
int trainer_rm_meta_new(trainer_rm_meta_t **out, const struct trainer_rm_meta_set *set,
                        const struct trainer_rm_meta_opts *o, const tok_t *tk, int max_len,
                        uint64_t seed, char *err, size_t errlen);
void trainer_rm_meta_destroy(trainer_rm_meta_t **t);

/* Reserves m for the meta batches (and the scratch). ERR_NOMEM, ERR_INVAL. */
int trainer_rm_meta_reserve(trainer_rm_meta_t *t, nn_model_t *m, char *err, size_t errlen);

/* What decides the weights besides rm.c's settings: eta, k, the batch, the set's digest and
 * policy version; a new object for the fingerprint's settings. */
json_t *trainer_rm_meta_settings(const trainer_rm_meta_t *t);

/* Step `step` of a training: its meta batch, then trainer_rm_meta_step. Logs J now and then. */
int trainer_rm_meta_train_step(trainer_rm_meta_t *t, trainer_rm_loss_t *loss, nn_model_t *m,
                               nn_adamw_t *opt, nn_adamw_t *popt, const struct trainer_rm_batch *b,
                               long step, uint64_t step_seed, float lr, float clip,
                               const struct nn_adamw_opts *ao, struct trainer_rm_parts *pt,
                               char *err, size_t errlen);

/* ---- the meta set from the sampler ---------------------------------------------------------- */

/* Collects the meta set for preference set d as described above through the ledger behind cl
 * (lookups within timeout_ms, the replies within o->timeout_ms). On ERR_OK *out holds it
 * (trainer_rm_meta_set_free). ERR_NOTFOUND (no policy checkpoint of that version, no training
 * prompt), ERR_TIMEOUT (the replies did not all come: no sampler?), ERR_REMOTE (a request failed:
 * err has the sampler's reason), ERR_NOMEM, or the bus's error; err says which. */
int trainer_rm_meta_collect(bus_client_t *cl, const struct trainer_rm_meta_opts *o,
                            const struct trainer_rm_data *d, int timeout_ms,
                            struct trainer_rm_meta_set *out, char *err, size_t errlen);

/* The digest of s's fields into s->digest. */
void trainer_rm_meta_set_digest(struct trainer_rm_meta_set *s);

/* Frees the strings; *s zeroed. Safe twice. */
void trainer_rm_meta_set_free(struct trainer_rm_meta_set *s);

#endif /* TRAINER_RM_META_H */
