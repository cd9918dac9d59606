/* evaluator.h - the evaluator's logic without sockets: its configuration, the ids of the requests
 * it makes (derived from what they ask, so that a restarted evaluator asks the ledger the same
 * questions and gets the stored answers instead of a second judgement), and one version's
 * evaluation turned into numbers and an EvalResult record.
 *
 * One evaluation of policy version v against the baseline version b (the SFT model, 0) on the
 * first N held-out prompts (Prompt records of split `split`): both answer every prompt through the
 * `sample` service with the version pinned (the same sampling settings and seed); the evaluation
 * judge (an annotator-proxy serving `judge_service`, "annotate-eval") compares the two answers of
 * each prompt, in both orders as that proxy is configured; a prompt's outcome is 1 when the
 * policy's answer wins, 1/2 a tie, 0 a loss (a failed judgement is left out and counted, never a
 * tie). From the outcomes: the win rate, its SE and 95% bootstrap interval, the length-controlled
 * win rate (lengths in bytes), and where the prompt carries a checkable reference (the built-in
 * task's answers) the accuracy of both; mean lengths; and KL(pi || pi_ref) estimated on the
 * policy's answers from log pi (the sampler's reply) and log pi_ref (the baseline version scoring
 * the same tokens through `sample`'s teacher-forced mode). With greedy or truncated decoding
 * (the default, top_k 1) the answers are not samples of pi, and this is the mean log-ratio on the
 * answers evaluated rather than a KL; sampled at temperature 1 without top-k or top-p it is the
 * KL's unbiased estimate.
 *
 * Not here: the bus, the loop, the options' table (evaluator_service.h, evaluator_opts.h). */
#ifndef EVALUATOR_H
#define EVALUATOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "busopts.h"
#include "oaif.pb-c.h"

/* The evaluator's options; the table in evaluator_opts.c writes each field and its default. */
struct evaluator_config {
    char *run;     /* the run evaluated ("": every run, each checkpoint's own Checkpoint.run) */
    uint64_t seed; /* the run's seed, written to EvalResult.seed (0: unknown) */
    int every;     /* evaluate every E-th published policy version */
    int baseline;  /* the baseline's policy version (0: SFT) */
    char *split;   /* held-out prompts: Prompt records of this split */
    int prompts;   /* the first N of them, in the ledger's order */
    char *sample_service, *judge_service;
    char *instruction;         /* for the judge ("" or NULL: none) */
    double temperature, top_p; /* 0: the sampler's default temperature */
    int top_k;                 /* 1: greedy */
    int max_new_tokens;
    uint64_t sample_seed;
    int batch;     /* prompts per sample request */
    int resamples; /* bootstrap resamples */
    int credit;    /* evaluate requests taken at once */
    /* reward-model accuracy: the ensemble (NULL or "": none) served by score_service, on at most
     * rm_pairs of the run's labeled pairs it held out (the share rm_holdout, as it trained) */
    char *rm_ensemble, *score_service;
    double rm_holdout;
    int rm_pairs;
    int64_t rescan_ms;
    char *worker_name;
    char *metrics_bind;
    int metrics_port;
    struct bus_opts bus;
};

/* 16 hex digits naming the sampling settings (temperature, top_p, top_k, max_new_tokens, seed):
 * answers drawn under other settings are other requests. */
void evaluator_setting_key(const struct evaluator_config *c, char out[17]);

/* The ids below are of run `run`: evaluator.run, or the checkpoint's when that is empty. */

/* The id of the sample request for prompts ps[0..n): "evl-<run>-v<version>-<hash>", or for the
 * baseline (run-independent, so that its answers are drawn once per sampling setting and
 * checkpoint and then answered from the ledger) "evl-base-v<version>-<sha12>-<hash>"; the hash
 * covers the setting and the prompt ids. ERR_OK or ERR_TOOBIG. */
int evaluator_sample_id(char *out, size_t len, const struct evaluator_config *c, const char *run,
                        bool baseline, uint32_t version, const char *ckpt_sha,
                        const Oaif__V1__Prompt *const *ps, size_t n);

/* The id of the judgement of one prompt at one version:
 * "evl-<run>-v<version>-<judge service>-<setting key>-<prompt id>". ERR_OK or ERR_TOOBIG. */
int evaluator_judge_id(char *out, size_t len, const struct evaluator_config *c, const char *run,
                       uint32_t version, const char *prompt_id);

/* The EvalResult record's id for a version: "eval-<run>-v<version>-<judge service>". */
int evaluator_result_id(char *out, size_t len, const struct evaluator_config *c, const char *run,
                        uint32_t version);

/* The id of the score request of held-out pair `pair_id` at one version:
 * "evl-<run>-v<version>-rm-<ensemble>-<pair id>" (per version: the ensemble may be retrained
 * between versions, and a restarted evaluator asks the same ids). ERR_OK or ERR_TOOBIG. */
int evaluator_rm_id(char *out, size_t len, const struct evaluator_config *c, const char *run,
                    uint32_t version, const char *pair_id);

/* One prompt of an evaluation. */
struct evaluator_item {
    const char *reference;         /* NULL or "": nothing to check */
    const char *policy, *baseline; /* the two answers */
    bool judged;                   /* false: the judgement failed (left out of the outcomes) */
    Oaif__V1__Winner winner;       /* responses[0] is the policy's answer */
    bool has_logprobs;             /* lp_policy and lp_ref are known */
    double lp_policy, lp_ref;      /* log pi and log pi_ref of the policy's answer (summed) */
};

/* The numbers of one evaluation. */
struct evaluator_summary {
    size_t n;       /* prompts */
    size_t judged;  /* with a judgement (the outcomes) */
    size_t checked; /* with a checkable reference */
    unsigned wins, ties, losses;
    double win_rate, win_rate_se, win_rate_lo, win_rate_hi;
    double lc_win_rate;
    double accuracy, accuracy_se, baseline_accuracy; /* over the checked prompts; 0 if none */
    double mean_length, baseline_mean_length;        /* bytes */
    bool has_kl;                                     /* every item has its log-probs */
    double kl, kl_se; /* mean of lp_policy - lp_ref over the items, its SE */
    /* not from the items: the reward ensemble's accuracy on held-out pairs, when measured */
    bool has_rm;
    double rm_accuracy;
    size_t rm_pairs;
};

/* The numbers from items[0..n) (bootstrap of `resamples` draws under `seed`). ERR_OK; ERR_INVAL
 * when no item was judged (the reason in why); ERR_NOMEM. */
int evaluator_summarize(const struct evaluator_item *items, size_t n, unsigned resamples,
                        uint64_t seed, struct evaluator_summary *out, char *why, size_t whylen);

/* The EvalResult of version v of run `run` from the summary (strings borrowed from c, run, judge
 * and id, which must outlive *out). Metrics: judge failures, checked prompts, baseline accuracy,
 * has_kl, has_rm_accuracy (rm_accuracy is 0 without it, proto3 cannot tell) and rm_pairs. */
void evaluator_result(Oaif__V1__EvalResult *out, Oaif__V1__Metric *ms, Oaif__V1__Metric **mp,
                      size_t nm_max, const struct evaluator_config *c, const char *run,
                      const char *id, const char *judge, uint32_t version,
                      const struct evaluator_summary *s, uint64_t created_ms);

#endif /* EVALUATOR_H */
