/* strength.h - what the trainer does with a pair's preference strength (ALGORITHMS.md, "Preference
 * strength", for the policy): the `estimate` request it sends for a labeled pair, and how the
 * Strength that comes back changes the pair's loss.
 *
 *   KEEP    trains as labeled.
 *   FLIP    chosen and rejected are swapped (their tokens and reference log-probs).
 *   SMOOTH  label smoothing with the Strength's `smoothing` as this pair's epsilon (cDPO's
 *           epsilon; pref.h says what it is for each loss).
 *   SOFT    soft target t = the Strength's `soft_target` for this pair.
 *   MARGIN  the Strength's `margin` m: the loss is taken at beta h - m (every loss of pref.h has
 *           one; see trainer_pref_loss).
 *   DROP    not trained on: the pair is set aside as TRAINER_SKIP_STRENGTH_DROP.
 * A Strength that says something else (an unknown action, a parameter outside its range) is not
 * applied: trainer_strength_effect refuses it, and the caller treats it as a failed estimate.
 * Not here: the request's sending and waiting (online.c). */
#ifndef TRAINER_STRENGTH_H
#define TRAINER_STRENGTH_H

#include <stdbool.h>
#include <stddef.h>

#include "oaif.pb-c.h"
#include "pref.h"

/* What a Strength does to its pair. All zero: train as labeled (KEEP). */
struct trainer_strength_effect {
    int action; /* Oaif__V1__StrengthAction applied (0: none, e.g. the estimate failed) */
    bool drop;  /* not trained on */
    bool flip;  /* chosen and rejected swapped */
    enum trainer_pair_label label;
    float label_arg; /* the SMOOTH epsilon or the SOFT target */
    float margin;
};

/* The effect of Strength `s` into *out. ERR_OK, or ERR_INVAL with `why` (whylen bytes) naming
 * the field and the value: s NULL, an action that is not one of the six, a smoothing outside
 * [0, 0.5), a soft_target outside [0, 1], a margin that is not finite. *out is zeroed first. */
int trainer_strength_effect(const Oaif__V1__Strength *s, struct trainer_strength_effect *out,
                            char *why, size_t whylen);

/* Shape pair *p (built as labeled) by effect e: FLIP swaps its chosen and rejected responses
 * with their reference log-probs, SMOOTH and SOFT set its label and label_arg, MARGIN its
 * margin. A DROP effect must not reach a pair (the caller sets it aside). */
void trainer_strength_shape(const struct trainer_strength_effect *e, struct trainer_pair *p);

/* The `estimate` request id of pair `pair_id` labeled `winner`: "e-<pair id>-<1|2>", so a
 * restarted trainer asks the same question (and the ledger answers from its store), and a label
 * that came out differently would be a different question. out holds at least
 * strlen(pair_id) + 5 bytes; false if it does not. */
bool trainer_strength_request_id(const char *pair_id, Oaif__V1__Winner winner, char *out,
                                 size_t outlen);

#endif /* TRAINER_STRENGTH_H */
