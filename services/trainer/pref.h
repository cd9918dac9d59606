/* pref.h - one DPO-family optimizer step on tokenized preference pairs, and the sequence
 * log-probabilities it needs (policy with gradient, frozen reference without).
 *
 * A pair is a prompt and two responses, all as token ids: the prompt as the model sees it (the
 * template rendered, BOS if the tokenizer wants one), each response as sampled (ending in EOS when
 * it finished by EOS). log pi(y|x) is the sum over the response tokens only (ALGORITHMS.md).
 * Pairs are processed in micro-batches of `micro` pairs (2 x micro sequences per forward), with
 * gradients accumulated, so the step's loss and gradient are those of the whole batch.
 * Not for: sampling, judging, or deciding which pairs to train on (online.c). */
#ifndef TRAINER_PREF_H
#define TRAINER_PREF_H

#include <stdbool.h>

#include "loss.h"
#include "model.h"
#include "optim.h"

/* How a pair's label enters the loss (the strength estimator's SMOOTH and SOFT actions). */
enum trainer_pair_label {
    TRAINER_LABEL_AS_LOSS = 0, /* the loss as configured (its own epsilon, if any) */
    TRAINER_LABEL_SMOOTH,      /* label smoothing with this pair's epsilon (cDPO epsilon) */
    TRAINER_LABEL_SOFT,        /* soft target t: the probability that `chosen` is better */
};

struct trainer_pair {
    const int *prompt;
    int prompt_len;
    const int *chosen;
    int chosen_len;
    const int *rejected;
    int rejected_len;
    float ref_chosen;   /* log pi_ref(chosen | prompt), from trainer_ref_logprobs */
    float ref_rejected; /* log pi_ref(rejected | prompt) */
    float target;       /* soft target t for NN_PREF_SOFT (1 = fully chosen), else ignored */
    /* The pair's own treatment, from its preference strength (online.c; all zero: the loss as
     * configured). See trainer_pref_loss for what each does to each loss. */
    enum trainer_pair_label label;
    float label_arg; /* TRAINER_LABEL_SMOOTH: the pair's epsilon; TRAINER_LABEL_SOFT: its t */
    float margin;    /* m: every loss is taken at z - m instead of z = beta h (0: none) */
};

struct trainer_step_opts {
    struct nn_pref_opts loss;
    struct nn_adamw_opts adamw;
    float lr;
    float clip;   /* global-norm clip; 0 = none */
    int micro;    /* pairs per forward (memory bound); 0 = all at once */
    float nll;    /* alpha: + alpha * mean over pairs of -log pi(chosen) / |chosen| (RPO); 0 off */
    bool nll_sum; /* the NLL term without the / |chosen| (summed over the chosen tokens) */
};

/* What one step measured (batch means; ALGORITHMS.md's per-step log). */
struct trainer_step_stats {
    struct nn_pref_stats pref; /* loss (the NLL term included), implicit rewards of chosen and
                                * rejected, margin, accuracy */
    double grad_norm;          /* before clipping */
    double kl; /* mean over pairs of sum over both responses (log pi - log pi_ref) */
    double len_chosen, len_rejected; /* mean response tokens */
};

/* The preference loss of n pairs whose policy log-probs are lp_c[i] and lp_r[i], each pair with
 * its own label treatment and margin (pairs[i]: ref_chosen, ref_rejected, target, label,
 * label_arg, margin; its tokens are not read). With h = (lp_c - ref_c) - (lp_r - ref_r),
 * z = beta h and z' = z - m (every loss takes the margin this way: DPO's -log s(z'), IPO's
 * (z'/beta - 1/(2 beta))^2, SLiC's max(0, 1 - z'), as ODPO and the reward model's margin do):
 *   AS_LOSS  nn_loss_pref's loss of kind o->kind at z' (o->eps for cDPO and robust DPO);
 *   SMOOTH e DPO, cDPO, soft: -(1-e) log s(z') - e log s(-z') (cDPO with the pair's e);
 *            robust: robust DPO with the pair's e (e < 0.5);
 *            IPO, SLiC: (1-e) L(z') + e L(-z'), the same mixture of the label and its flip that
 *            cDPO is of DPO (IPO's minimum moves from h = 1/(2 beta) to (1-2e)/(2 beta));
 *   SOFT t   DPO, cDPO, robust, soft: -t log s(z') - (1-t) log s(-z'); robust's correction
 *            is for an unknown flip rate, and a soft target states the pair's own;
 *            IPO, SLiC: t L(z') + (1-t) L(-z').
 * A flipped pair is not a label treatment: the caller swaps chosen and rejected. The stats'
 * implicit rewards, margin and accuracy are those of h, without m; the loss is the mean of the
 * pairs'. dlp_c/dlp_r (either may be NULL) get d loss / d lp as nn_loss_pref writes them.
 * ERR_INVAL: n < 1, beta <= 0, o->eps outside [0, 0.5) for cDPO or robust, a label_arg outside
 * [0, 1] (robust SMOOTH: [0, 0.5)), a margin that is not finite, a soft kind without target. */
int trainer_pref_loss(const struct nn_pref_opts *o, int n, const float *lp_c, const float *lp_r,
                      const struct trainer_pair *pairs, float *dlp_c, float *dlp_r,
                      struct nn_pref_stats *st);

/* Sequence log-probs of each pair's chosen and rejected responses under `m`, without gradient:
 * out_chosen[i], out_rejected[i]. Use the frozen reference for ref_chosen/ref_rejected, and the
 * policy for evaluation. ERR_INVAL (an empty prompt or response, a sequence longer than the
 * model's context), ERR_NOMEM. */
int trainer_logprobs(nn_model_t *m, const struct trainer_pair *pairs, int n, int micro,
                     float *out_chosen, float *out_rejected);

/* One optimizer step on `n` pairs: forward and backward through `policy` in micro-batches,
 * the preference loss (trainer_pref_loss: each pair's label treatment and margin) against the
 * pairs' reference log-probs, clip, AdamW. */
int trainer_pref_step(nn_model_t *policy, nn_adamw_t *opt, const struct trainer_pair *pairs, int n,
                      const struct trainer_step_opts *o, struct trainer_step_stats *st);

#endif /* TRAINER_PREF_H */
