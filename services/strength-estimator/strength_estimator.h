/* strength_estimator.h - the logic of the `estimate` service, without sockets: a labeled pair's
 * preference strength from every ensemble member's rewards, the running distribution of that
 * strength, and the denoising action the configuration asks for (ALGORITHMS.md, "Preference
 * strength").
 *
 * Strength. For member m, d_m = r_m(x, chosen) - r_m(x, rejected), oriented by the label (WINNER_
 * FIRST: chosen = responses[0]); mu = mean_m d_m, sigma = sqrt(mean_m (d_m - mu)^2) (population
 * std). mu is always the label's: a flipped pair keeps the mu it was measured with, and the
 * trainer swaps the responses.
 *
 * The action (struct strength_rules), one policy, in this order of precedence:
 *  1. drop: |mu| < drop_below (when drop_below > 0), or sigma > drop_std_above (when
 *     drop_std_above > 0) -> DROP, whatever the policy.
 *  2. the policy:
 *     keep    KEEP.
 *     flip    flip_quantile q = 0: mu < 0 -> FLIP. q > 0: mu <= Q_q, the q-quantile of the running
 *             distribution (below), -> FLIP; while that distribution holds fewer than min_sample
 *             strengths, the rule is mu < 0. Otherwise KEEP.
 *     smooth  mu < 0 -> SMOOTH with smoothing = epsilon (label smoothing / cDPO eps); else KEEP.
 *     margin  MARGIN for every pair: margin = margin_scale * clamp(mu, -margin_clip, margin_clip)
 *             (as `oaif rm train --margin-from-strength` computes it).
 *     soft    SOFT for every pair: soft_target = sigmoid(mu / temperature).
 * Only the field of the chosen action is set (margin, smoothing or soft_target); the others are 0.
 *
 * The running distribution (strength_dist_t) is the mu of the newest `window` strengths of the
 * ensemble (0: all), one per pair id (a pair estimated again replaces its value). The quantile is
 * the empirical one of type 1: Q_q = sorted[ceil(q n) - 1] of the n values, so "mu <= Q_q" flips
 * the bottom q of the pairs seen so far and a value tying the q-th smallest. The service
 * (strength_estimator_service.h) fills it from the ledger's Strength records, which makes it the
 * same after a restart and across replicas; see there why.
 *
 * Not here: sockets, the ledger (strength_estimator_service.h), options
 * (strength_estimator_opts.h).
 */
#ifndef STRENGTH_ESTIMATOR_H
#define STRENGTH_ESTIMATOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "busopts.h"
#include "oaif.pb-c.h"

/* What the configuration asks for (strength_estimator.policy). */
enum strength_policy {
    STRENGTH_POLICY_KEEP,
    STRENGTH_POLICY_FLIP,
    STRENGTH_POLICY_SMOOTH,
    STRENGTH_POLICY_MARGIN,
    STRENGTH_POLICY_SOFT,
};

/* The decision's parameters; see the header comment for how they combine. */
struct strength_rules {
    int policy;            /* enum strength_policy (an int: the option table's enum field) */
    double flip_quantile;  /* q in [0, 1): 0 flips mu < 0, else the bottom q by mu */
    int min_sample;        /* strengths the quantile rule needs before it applies */
    double epsilon;        /* smoothing of the smooth policy */
    double margin_scale;   /* s of the margin policy */
    double margin_clip;    /* mu is clipped to [-clip, clip] before scaling */
    double temperature;    /* T of the soft policy */
    double drop_below;     /* |mu| below this drops (0: off) */
    double drop_std_above; /* sigma above this drops (0: off) */
};

/* The estimator's whole configuration, one struct: the option table (strength_estimator_opts.c)
 * fills it and holds every default. The logic reads `rules`, `ensemble`, `min_members` and
 * `window`; the service reads the rest. */
struct strength_estimator_config {
    char *ensemble;  /* the reward-model ensemble the score service serves (Checkpoint.ensemble) */
    int min_members; /* a score reply with fewer members fails (retryable) */
    int window;      /* strengths in the running distribution (0: all) */
    struct strength_rules rules;
    /* the service */
    int score_asks;         /* score requests per pair before its estimate fails (see service) */
    int64_t score_lease_ms; /* lease of each score request (0: the ledger's default) */
    int64_t rescan_ms;      /* read the ledger's reward checkpoints this often without an event */
    int credit;             /* estimate requests taken at once */
    char *worker_name;      /* NULL or "": host:pid */
    char *metrics_bind;
    int metrics_port; /* 0: any free one, -1: no HTTP server */
    struct bus_opts bus;
};

/* Check the rules: ERR_OK, or ERR_INVAL with `why` naming the option (strength_estimator.<name>)
 * and the reason. */
int strength_rules_check(const struct strength_rules *r, char *why, size_t whylen);

/* The name of a policy as the option writes it ("keep", "flip", ...); "unknown" otherwise. */
const char *strength_policy_name(int policy);

/* The name of an action as /metrics and the logs write it ("keep", "flip", ...); "unspecified"
 * for anything else. */
const char *strength_action_name(int action);

/* ---- mu and sigma ------------------------------------------------------------------------- */

/* mu and sigma (population std) of d_m = chosen[m] - rejected[m] over M >= 1 members. ERR_OK, or
 * ERR_INVAL when M is 0 or a value is not finite (nothing written then). */
int strength_stats(const double *chosen, const double *rejected, size_t M, double *mu,
                   double *sigma);

/* ---- the running distribution ------------------------------------------------------------- */

typedef struct strength_dist strength_dist_t;

/* window: the newest `window` values are kept (0: every value). NULL when out of memory. */
strength_dist_t *strength_dist_new(size_t window);
/* Sets *d to NULL; accepts NULL. */
void strength_dist_destroy(strength_dist_t **d);

/* Add the mu of pair `id`; a pair already in the distribution has its value replaced (and counts
 * as the newest). The oldest value leaves when the window is full. ERR_OK, ERR_NOMEM, ERR_INVAL
 * (a non-finite mu). */
int strength_dist_add(strength_dist_t *d, const char *id, double mu);

/* Values in the distribution. */
size_t strength_dist_count(const strength_dist_t *d);

/* Q_q, the empirical quantile of type 1 (sorted[ceil(q n) - 1], sorted[0] for q = 0), into *out.
 * false when the distribution is empty (or out of memory). The values do not change, but the
 * sorted array behind them is brought up to date here: one thread owns a distribution. */
bool strength_dist_quantile(const strength_dist_t *d, double q, double *out);

/* ---- the decision ------------------------------------------------------------------------- */

struct strength_decision {
    Oaif__V1__StrengthAction action;
    double margin, smoothing, soft_target; /* the action's parameter; the others 0 */
    uint64_t sample;                       /* distribution size when a quantile rule applied */
    double threshold;                      /* Q_q when a quantile rule applied, else 0 */
    char reason[160];                      /* why, e.g. "mu -0.31 <= q0.10 -0.27 of 512" */
};

/* Decide for (mu, sigma) under `rules`; dist (may be NULL: the quantile rule then falls back to
 * mu < 0) is read, not changed. */
void strength_decide(const struct strength_rules *rules, double mu, double sigma,
                     const strength_dist_t *dist, struct strength_decision *out);

/* ---- requests ----------------------------------------------------------------------------- */

/* Check an EstimateRequest: a pair with an id (1 to 512 bytes), a prompt and two responses with
 * texts, a label whose winner is FIRST or SECOND and whose pair_id, when set, is the pair's.
 * ERR_OK, or ERR_INVAL with `why` naming the field. */
int strength_request_check(const Oaif__V1__EstimateRequest *req, char *why, size_t whylen);

/* The `score` request id for pair `pair_id` under ensemble `ensemble` whose member versions the
 * ledger lists as `members` ("m0@v3,m1@v2", see strength_members_key), asked for the `ask`-th
 * time (0 first): "strength-score-<64 hex>" of a sha256 over the four, so that a redelivered
 * estimate asks the very same question and gets the ledger's stored answer. out holds 80 bytes. */
void strength_score_id(const char *ensemble, const char *pair_id, const char *members, int ask,
                       char *out, size_t outlen);

/* Members. A member's newest version in the ledger, for the score ids: versions[m] is member m's
 * (-1: none seen), m < cap. strength_members_note folds checkpoint record c into it when c is a
 * reward model of `ensemble` newer than what versions holds, and says whether it changed anything.
 * strength_members_key writes the canonical "m0@v3,m1@v2" (member order; "" when none), truncated
 * to outlen - 1. */
bool strength_members_note(const char *ensemble, const Oaif__V1__Checkpoint *c, int64_t *versions,
                           size_t cap);
void strength_members_key(const int64_t *versions, size_t cap, char *out, size_t outlen);

/* The outcome of one estimate: the packed EstimateReply and the two records committed with it.
 * The records' ids borrow the request's pair id: free the result before the request. */
struct strength_result {
    double mu, sigma;
    size_t n_members;
    struct strength_decision decision;
    uint8_t *packed; /* the EstimateReply */
    size_t packed_len;
    Oaif__V1__Record *records[2]; /* Scores, then Strength (ids: the pair id) */
    size_t n_records;
    /* storage behind the fields above */
    Oaif__V1__Record rec[2];
};

/* From a checked request and the score service's reply to the pair's two texts (member-major, two
 * texts), the estimate under `cfg`'s rules and distribution `dist` (may be NULL). On ERR_OK *out
 * is the result (strength_result_free). Errors, with `why` naming the problem:
 *   ERR_AGAIN  fewer members than min_members, a reply of the wrong shape or a non-finite reward
 *              (another scorer, or a later attempt, may do better)
 *   ERR_NOMEM */
int strength_estimate(const struct strength_estimator_config *cfg,
                      const Oaif__V1__EstimateRequest *req, const Oaif__V1__ScoreReply *scores,
                      const strength_dist_t *dist, struct strength_result **out, char *why,
                      size_t whylen);
/* Sets *r to NULL; accepts NULL. */
void strength_result_free(struct strength_result **r);

#endif /* STRENGTH_ESTIMATOR_H */
