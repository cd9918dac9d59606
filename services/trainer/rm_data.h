/* rm_data.h - the preference set a reward model trains on, read from the ledger: Pair records of
 * one name (Pair.run: the dataset name of `oaif import pairs`, or an online run's name) joined
 * with their Label (winner FIRST or SECOND says which response is chosen; ties, pairs without a
 * verdict and pairs without a label are left out and counted), and, when asked, with their
 * Strength (preference strength mu: the mean over an ensemble of r(chosen) - r(rejected), for
 * the label's chosen response).
 *
 * What is done to each pair, in this order:
 *  - flip: a pair named in the flip file swaps chosen and rejected (and the sign of mu, and its
 *    soft target t becomes 1 - t);
 *  - margin: the fixed margin, plus scale x mu clipped to [-clip, clip] with
 *    margin_from_strength (a pair without a Strength record gets the fixed margin alone);
 *  - soft target: P(chosen better) from the label (prob_first, or 1 - prob_first when the second
 *    won) or sigmoid(mu) from the strength; a pair without one trains on 1 - label smoothing;
 *  - held out: when the first 8 bytes of sha256(pair id), as a fraction of 2^64, fall below the
 *    holdout share. A function of the id alone: every member of an ensemble holds out the same
 *    pairs, whatever order the records came in.
 * Pairs are sorted by id, so the set does not depend on the ledger's commit order; its digest
 * (trainer_rm_data.digest) covers every field above, so a checkpoint knows the data it was
 * trained on.
 *
 * Not here: the options (rm.h), tokenization and training (rm.c). */
#ifndef TRAINER_RM_DATA_H
#define TRAINER_RM_DATA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "busclient.h"

struct trainer_rm_opts; /* rm.h */

/* One preference pair, oriented: chosen is y+. Strings malloc'd. */
struct trainer_rm_pair {
    char *id;
    char *prompt; /* what fills "{prompt}" in the template (a Prompt's text) */
    char *chosen, *rejected;
    double label_p;  /* P(chosen better) by the label as read (before any flip) */
    float margin;    /* m_i (0: none) */
    float target;    /* soft target t_i in [0, 1], when has_target */
    bool has_target; /* else 1 - label smoothing */
    bool has_strength;
    double strength; /* mu after any flip, when has_strength */
    bool flipped;    /* named in the flip file */
    bool heldout;
};

/* What was read and what was left out. */
struct trainer_rm_counts {
    size_t records;   /* Pair records of that name */
    size_t ties;      /* label a tie (or no verdict) */
    size_t unlabeled; /* no Label names the pair */
    size_t malformed; /* not two responses with text, or identical responses */
    size_t flipped;   /* pairs swapped by the flip file */
    size_t flip_ids;  /* ids in the flip file */
    size_t strengths; /* pairs with a Strength record (when read) */
    size_t heldout;   /* pairs held out */
};

struct trainer_rm_data {
    struct trainer_rm_pair *pairs; /* n, sorted by id */
    size_t n;
    struct trainer_rm_counts counts;
    char digest[65]; /* sha256 of every pair's fields, hex */
};

/* Whether pair id `id` is held out at share `holdout` in [0, 1). */
bool trainer_rm_is_heldout(const char *id, double holdout);

/* Reads the preference set o->dataset (or o->run) from the ledger behind `cl`: the Label and
 * Pair records, the Strength records when o->margin_from_strength or o->soft_target ==
 * strength, and o->flip_file; then trainer_rm_data_finish(). On ERR_OK *out holds it (release
 * with trainer_rm_data_free). ERR_NOTFOUND (no labeled pair of that name, no flip file; err says
 * which and what was left out), ERR_TIMEOUT, ERR_REMOTE (the ledger's error), ERR_IO, ERR_NOMEM;
 * err names the record kind or the file. */
int trainer_rm_data_load(bus_client_t *cl, const struct trainer_rm_opts *o, int timeout_ms,
                         struct trainer_rm_data *out, char *err, size_t errlen);

/* Applies to the pairs already in d (oriented by their label, with label_p and
 * has_strength/strength as read) what o says: the flips (ids[0..nids)), the margins,
 * the soft targets, the held-out split; sorts them by id and computes the digest. Once per set
 * (a second call would flip the named pairs back). For callers with pairs of their own (tests).
 * ERR_NOMEM. */
int trainer_rm_data_finish(struct trainer_rm_data *d, const struct trainer_rm_opts *o,
                           char *const *ids, size_t nids);

/* Frees the pairs; *d is zeroed. Safe twice. */
void trainer_rm_data_free(struct trainer_rm_data *d);

#endif /* TRAINER_RM_DATA_H */
