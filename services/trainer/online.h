/* online.h - the trainer's online loop (OAIF): sample two responses per prompt from the current
 * policy through the "sample" service, have each pair judged through "annotate", and take a
 * DPO-family step (pref.h) against the frozen SFT model on every batch of labeled pairs. With
 * trainer.strength.enabled each labeled pair first goes through "estimate" (the strength
 * estimator) and its Strength changes its loss (strength.h); DROP sets it aside.
 *
 * Everything goes through the ledger, with request ids that are a function of the run and a
 * counter ("s-<run>-<n>", "a-<pair id>", "e-<pair id>-<label>"), so a restarted trainer re-asks the
 * same questions and gets the stored answers: no pair is sampled or judged twice. Checkpoints every
 * K steps (safetensors + optimizer state under <ckpt_root>/policy-v<N>/), published with the steps
 * they contain in one atomic put: a step is recorded only once its checkpoint is durable, so a step
 * lost to a crash is redone and `oaif audit` can prove that no pair is used in two steps.
 * One run per ledger: checkpoint versions are the run's. Offline mode samples every pair from
 * the SFT model (version 0) and otherwise runs the same code: online and offline compare at the
 * same label budget. With offline_from, version 0 is that other model: the pairs come from it,
 * the policy starts from the SFT model and is held to it. */
#ifndef TRAINER_ONLINE_H
#define TRAINER_ONLINE_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

#include "bus.h"
#include "metrics.h"
#include "optim.h"
#include "pref.h"

/* Preference strength in the loop (strength.h): with `enabled`, every labeled pair goes through
 * the `estimate` service before it is trained on, and its Strength changes its loss. */
struct trainer_strength_config {
    bool enabled;
    bool required;      /* the step waits for the estimate; a failed one sets the pair aside.
                         * Else (advisory) a pair whose estimate failed or did not come within
                         * timeout_ms trains as labeled, counted (strength_failed). */
    int64_t timeout_ms; /* advisory: how long a pair waits for its estimate */
    int attempts;       /* leases of an estimate request before the ledger fails it (0: its
                         * default); each lease is trainer.lease long */
};

/* The trainer's configuration. The option table in trainer_opts.c fills it and holds every
 * default (trainer_opts_load, trainer_opts_defaults); `trainer --help` says what each means. */
struct trainer_online_config {
    char *run;       /* run name (ids, records) */
    char *ckpt_root; /* policy checkpoints go to <ckpt_root>/policy-v<N> */
    char *sft_dir;   /* the SFT checkpoint: reference model and policy version 0 */
    char *ledger;    /* the ledger's client endpoint */
    char *ledger_public_key, *curve_secret_key; /* CURVE: turned into `curve` by the caller */
    const struct bus_curve *curve;              /* not an option: the keys above, loaded */
    int steps;               /* optimizer steps in all (a resumed run continues to this) */
    int batch;               /* labeled pairs per step */
    int prompts_per_request; /* prompts per sample request (2 responses each) */
    int inflight;            /* sample requests in flight */
    int max_staleness;       /* pairs from versions older than current - this are not trained */
    int max_unusable_labels; /* labels in a row that give no pair (ties, no verdict, failed
                              * judgements): the run stops with an error after this many (0: never)
                              */
    int checkpoint_every;    /* steps; a checkpoint is also written at the end */
    int keep_last;           /* policy checkpoints kept on disk besides SFT and the best */
    int eval_n;              /* eval-split prompts of the built-in task scored at checkpoints
                              * (0: no evaluation, and no "best" checkpoint is kept) */
    int eval_every;          /* evaluate every this many checkpoints (and the last one) */
    struct trainer_step_opts step; /* loss, AdamW, clip, micro (step.lr: ignored, see sched) */
    struct nn_sched sched;
    float temperature, top_p;
    int top_k, max_new_tokens;
    char *instruction; /* for the judge ("" : none) */
    bool offline;
    char *offline_from; /* offline: the checkpoint the pairs come from (NULL: the SFT model) */
    uint64_t seed;
    int max_prompts;      /* train prompts read from the ledger (0: all) */
    int builtin_prompts;  /* none in the ledger: put this many built-in ones there (0: fail) */
    int64_t lease_ms;     /* per sample / annotate request (0: the ledger's default) */
    bool progress;        /* a progress bar on stderr */
    int stop_after_steps; /* tests: return after this many steps of this process (0: off) */
    int threads;          /* the engine's threads (nn_threads.h; 0: OMP_NUM_THREADS or all) */
    struct trainer_strength_config strength;
    char *metrics_bind; /* the HTTP server of /metrics and /healthz (main.c) */
    int metrics_port;   /* -1: none */
    metrics_t *metrics; /* not an option: the registry the loop counts in (NULL: none) */
};

/* Evaluation and retention: with eval_n > 0 every eval_every-th checkpoint (and the last) is
 * compared with the SFT model on the built-in task's eval split (greedy answers, the noise-free
 * rules judge with the run's instruction, as `oaif eval`); the EvalResult is put in the same
 * atomic write as the checkpoint. The best checkpoint (highest win rate against SFT, then task
 * accuracy, then the newer) is kept on disk besides SFT and the newest keep_last; its version
 * travels in every checkpoint's metrics, so a resumed run still knows it. */

struct trainer_online_summary {
    int steps_done;   /* steps taken by this process */
    int step;         /* the run's step at exit */
    uint32_t version; /* the newest policy version at exit */
    uint64_t labeled, trained, ties, failed, stale, dropped;
    uint64_t strength_failed;     /* pairs trained as labeled for want of an estimate */
    uint64_t strength_actions[7]; /* estimates applied, by Oaif__V1__StrengthAction */
    double last_loss, last_accuracy, last_margin, last_kl;
    uint32_t best_version; /* the best evaluated checkpoint (0: none evaluated) */
    double best_win_rate, best_eval_accuracy;
    double seconds;
};

/* Run (or resume) the loop until cfg->steps are done or *stop becomes non-zero. ERR_OK,
 * ERR_INTR (stopped; the last checkpoint stands), ERR_NOTFOUND (no SFT checkpoint, no prompts),
 * ERR_TIMEOUT (the ledger does not answer), ERR_IO. Errors are logged with their reason. */
int trainer_online_run(const struct trainer_online_config *cfg, void *zctx,
                       volatile sig_atomic_t *stop, struct trainer_online_summary *out);

#endif /* TRAINER_ONLINE_H */
