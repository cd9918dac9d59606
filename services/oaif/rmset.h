/* rmset.h - a preference set in the ledger with what its labels say, and a reward-model
 * ensemble loaded to score it: what `oaif rm eval`, `oaif rm features` and `oaif strength
 * annotate` share.
 *
 * The set is read as `oaif rm train` reads it (trainer_rm_data_load: an imported dataset or a
 * run's labeled pairs, ties and malformed pairs left out, the held-out split by a hash of the
 * pair id), so every command sees the pairs the members were trained and held out on. For each
 * pair the labels add:
 *  - noise_flipped: the latest label's Label.noise_flipped. proto3 cannot tell false from absent,
 *    so the set is taken to carry the information (noise_known) when at least one of its labels
 *    has it set or a judge id starting with "rules" (the rules judge, the one that simulates
 *    noise);
 *  - the latest winner of each judge (at most RMSET_MAX_JUDGES), for agreement between judges.
 *
 * The ensemble: the newest version of each member (or of one) of the named ensemble among the
 * ledger's reward checkpoint records, loaded by the reward scorer's library (sha256 checked). */
#ifndef OAIF_RMSET_H
#define OAIF_RMSET_H

#include <stdbool.h>
#include <stddef.h>

#include "busclient.h"
#include "oaif.pb-c.h"
#include "reward_scorer.h"
#include "rm_data.h"

#define RMSET_MAX_JUDGES 4

struct rmset_pair {     /* what the Labels say of one pair of the set */
    bool noise_flipped; /* of the latest label */
    int nj;
    char *judge[RMSET_MAX_JUDGES];
    int winner[RMSET_MAX_JUDGES]; /* the latest label of each judge */
};

/* Where the set is and which models score it. */
struct rmset_spec {
    const char *dataset, *run; /* exactly one */
    double holdout;            /* the held-out share the members trained with */
    const char *ensemble;
    int member; /* -1: every member */
    const char *checkpoint_dir;
    int max_len; /* tokens per text at most */
};

struct rmset {
    struct trainer_rm_data data; /* the pairs, sorted by id */
    struct rmset_pair *p;        /* [data.n] */
    bool noise_known;
    reward_scorer_t *scorer; /* the loaded members */
};

/* Reads the set and its labels and loads the ensemble. On failure err says why and *s is safe to
 * close. */
int rmset_open(struct rmset *s, bus_client_t *cl, int timeout_ms, const struct rmset_spec *spec,
               char *err, size_t errlen);

/* Index of the pair with this id in s->data, or -1. */
int rmset_find(const struct rmset *s, const char *id);

/* Every member's reward for pair i's chosen and rejected texts: (*res)->scores[m * 2] and
 * [m * 2 + 1]. Free with reward_scorer_result_free. */
int rmset_score(struct rmset *s, size_t i, struct reward_scorer_result **res, char *err,
                size_t errlen);

/* Whether the noise-free label agrees with chosen over rejected: the stored label with its winner
 * flipped back where noise flipped it. Meaningful only when s->noise_known. */
static inline bool rmset_chosen_truly_better(const struct rmset *s, size_t i)
{
    return !s->p[i].noise_flipped;
}

void rmset_close(struct rmset *s);

#endif /* OAIF_RMSET_H */
