/* evalstats.h - the statistics of an evaluation, honest about their uncertainty: a win rate with
 * ties as 1/2, its standard error and a 95% bootstrap interval over prompts; the length-controlled
 * win rate (alpaca_eval 2's logistic fit on the length difference, read off at zero difference);
 * the KL(pi || pi_ref) estimate from both models' log-probabilities on the policy's own samples;
 * and the paired comparison of two settings over shared seeds (mean difference with a paired-t
 * and a paired-bootstrap 95% interval). Formulas: ../shared/ALGORITHMS.md, "Evaluation".
 *
 * Pure arithmetic in double on caller-owned arrays: no I/O, no bus, no engine, so the evaluator
 * service, `oaif compare` and the tests share one implementation. Bootstraps draw from a
 * splitmix64 stream fixed by the caller's seed: the same inputs and seed give the same interval
 * on every machine.
 * Not here: judging, sampling, records (evaluator.h, evaluator_service.h). */
#ifndef EVALSTATS_H
#define EVALSTATS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Bootstrap resamples when a caller has no reason to choose another number. */
#define EVALSTATS_RESAMPLES 2000

/* A mean over n observations with its uncertainty. */
struct evalstats_mean {
    size_t n;
    double mean;
    double sd; /* sample standard deviation (n - 1 in the denominator; 0 when n == 1) */
    double se; /* sd / sqrt(n) */
    double lo; /* 95% percentile-bootstrap interval of the mean: resample the n observations */
    double hi; /* with replacement `resamples` times; lo = hi = mean when resamples is 0 */
};

/* The mean of x[0..n) with its sd, se and 95% bootstrap interval (`resamples` draws from a stream
 * fixed by seed). ERR_OK; ERR_INVAL (n == 0, a value not finite); ERR_NOMEM. */
int evalstats_mean_ci(const double *x, size_t n, unsigned resamples, uint64_t seed,
                      struct evalstats_mean *out);

/* A win rate: per-prompt outcomes of the policy against the baseline. */
struct evalstats_winrate {
    unsigned wins, ties, losses; /* outcome above, at, below 1/2 */
    struct evalstats_mean rate;  /* rate.mean = (wins + ties / 2) / n for outcomes in {0, 1/2, 1} */
};

/* outcome[i] in [0, 1] is the policy's result on prompt i: 1 win, 1/2 tie, 0 loss (or a mean of
 * several judgements, e.g. both orders). ERR_OK; ERR_INVAL (n == 0, an outcome outside [0, 1]
 * or not a number); ERR_NOMEM. */
int evalstats_win_rate(const double *outcome, size_t n, unsigned resamples, uint64_t seed,
                       struct evalstats_winrate *out);

/* The length-controlled win rate as alpaca_eval 2 computes it: the logistic regression
 *     logit P(win_i) = theta + phi * tanh(dlen_i / sd(dlen)),  dlen_i = len_policy_i - len_base_i
 * fitted to the outcomes (ties as the soft target 1/2) by Newton's method (IRLS) on the
 * cross-entropy with a ridge penalty lambda/2 (theta^2 + phi^2), lambda = EVALSTATS_LC_RIDGE, so
 * that a separable set (all wins, or wins exactly where the policy is longer) stays finite, and
 * read off at dlen = 0: lc = sigma(theta). When every dlen is 0 the feature is 0 and lc is the
 * (ridged) raw rate. */
#define EVALSTATS_LC_RIDGE 1e-3
struct evalstats_lc {
    double lc;      /* sigma(theta) */
    double theta;   /* intercept */
    double phi;     /* slope on tanh(dlen / sd) */
    double sd_dlen; /* sample sd of dlen (0: the feature is 0) */
    int iterations; /* Newton steps taken */
};

/* ERR_OK; ERR_INVAL (n == 0, an outcome outside [0, 1], a length not finite); ERR_NOMEM. */
int evalstats_lc_win_rate(const double *outcome, const double *len_policy, const double *len_base,
                          size_t n, struct evalstats_lc *out);

/* KL(pi || pi_ref) estimated on samples y_i ~ pi: the mean over i of
 * logp[i] - ref_logp[i], where each is the sum over y_i's response tokens of the token
 * log-probability under pi and under pi_ref (the k1 estimator: unbiased, and its interval is that
 * of a mean). ERR_OK; ERR_INVAL (n == 0, a log-prob not finite or above 0); ERR_NOMEM. */
int evalstats_kl(const double *logp, const double *ref_logp, size_t n, unsigned resamples,
                 uint64_t seed, struct evalstats_mean *out);

/* A paired comparison over n seeds: d_i = b[i] - a[i] (setting B minus setting A on seed i). */
struct evalstats_paired {
    size_t n;
    double mean, sd, se;     /* of d */
    double t, df, p;         /* paired t statistic, n - 1 degrees of freedom, two-sided p */
    double t_lo, t_hi;       /* mean -/+ t_{0.975, n-1} * se; both = mean when n < 2 */
    double boot_lo, boot_hi; /* paired bootstrap: resample the seeds (pairs kept together) */
    bool finding;            /* both intervals exclude zero (n >= 2) */
};

/* ERR_OK; ERR_INVAL (n == 0, a value not finite); ERR_NOMEM. With n == 1 only the mean is
 * meaningful: sd, se, t are 0, p is 1 and every interval is the point. */
int evalstats_paired(const double *a, const double *b, size_t n, unsigned resamples, uint64_t seed,
                     struct evalstats_paired *out);

/* Two-sided p-value of Student's t with df degrees of freedom: P(|T| >= |t|). df > 0. */
double evalstats_t_p(double t, double df);
/* The q-quantile (0 < q < 1) of Student's t with df > 0 degrees of freedom. */
double evalstats_t_quantile(double q, double df);

#endif /* EVALSTATS_H */
