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

/* Sequence log-probs of each pair's chosen and rejected responses under `m`, without gradient:
 * out_chosen[i], out_rejected[i]. Use the frozen reference for ref_chosen/ref_rejected, and the
 * policy for evaluation. ERR_INVAL (an empty prompt or response, a sequence longer than the
 * model's context), ERR_NOMEM. */
int trainer_logprobs(nn_model_t *m, const struct trainer_pair *pairs, int n, int micro,
                     float *out_chosen, float *out_rejected);

/* One optimizer step on `n` pairs: forward and backward through `policy` in micro-batches,
 * the preference loss against the pairs' reference log-probs, clip, AdamW. */
int trainer_pref_step(nn_model_t *policy, nn_adamw_t *opt, const struct trainer_pair *pairs, int n,
                      const struct trainer_step_opts *o, struct trainer_step_stats *st);

#endif /* TRAINER_PREF_H */
