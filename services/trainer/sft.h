/* sft.h - supervised fine-tuning (SFT) of a policy on prompt/response pairs, the built-in policy,
 * and what `oaif sft` runs (services/oaif/cmd_sft.c parses its options).
 *
 * What it is for: version 0 of the policy. The pairs are the built-in task's demonstrations
 * (task_demo_pairs, with their controlled share of wrong answers and their mix of terse and
 * verbose phrasings) or any JSONL file of {"prompt", "response"} (task_jsonl_read). A pair is
 * trained as the tokenizer renders it: the prompt through the template (tok_encode_prompt), then
 * the response, then EOS; the loss is the token cross-entropy of the response tokens only
 * (nn_loss_sft). When the rendered prompt does not end in whitespace and the response does not
 * start with it, one space separates them ("Assistant: 47<eos>"), so a sampler fed the rendered
 * prompt generates " 47" and should strip that one leading space (trainer_eval_task does).
 * Training: AdamW, linear warm-up then cosine decay to a tenth of the peak, gradient clipping by
 * global norm, batches of right-padded sequences. Everything random (initialisation, shuffling)
 * comes from the seed, and the engine's reductions run in a fixed order, so the same settings
 * and seed give the same model bit for bit on the same machine and thread count.
 * The evaluation during and after training is trainer_eval_task (evaluate.h).
 *
 * The built-in policy (trainer_builtin_config in policy.h; the recipe is the defaults of the
 * option table trainer_sft_opts_spec in trainer_opts.h, trainer_sft_defaults()): a small
 * Llama-shaped model for the byte tokenizer and the recipe that trains it on 2 cores in a few
 * minutes to an imperfect policy (40-75% on the eval split), whose online training then has
 * something to fix.
 *
 * Not for: the options' table and defaults (trainer_opts.h), evaluation (evaluate.h), online
 * preference training (online.h) or reward models, sampling as a service (the sampler). */
#ifndef TRAINER_SFT_H
#define TRAINER_SFT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "busclient.h"
#include "evaluate.h" /* struct trainer_eval, the result's evaluation */
#include "model.h"
#include "policy.h" /* the built-in policy, TRAINER_TASK_SEED, trainer_tokenizer */
#include "task.h"

#define TRAINER_SFT_SETTINGS "sft.json" /* beside the checkpoint: settings, result, sha256 */

/* How the SFT loss is normalised (nn_loss_sft). */
enum trainer_sft_loss_norm {
    TRAINER_SFT_NORM_DATA = 0, /* by batch x the data's mean response tokens: every token weighs
                                * the same */
    TRAINER_SFT_NORM_BATCH,    /* by the batch's own response tokens: biased toward short
                                * answers */
};

/* The options of an SFT run. Filled by the option table trainer_sft_opts_spec (trainer_opts.h),
 * where each default is written, once: trainer_sft_defaults() gives them. Strings are malloc'd
 * by cfg (trainer_sft_release() frees them); NULL is unset. */
struct trainer_sft_opts {
    /* data */
    char *data_path;              /* JSONL of {"prompt", "response"}; NULL: built-in demos */
    uint64_t task_seed;           /* built-in task: split, demonstrations and eval prompts */
    long demos;                   /* built-in demonstrations to generate; 0: steps x batch */
    struct task_demo_config demo; /* their wrong, verbose and habit shares */
    /* model */
    char *init_dir; /* checkpoint to start from; NULL: a fresh built-in model */
    uint64_t seed;  /* initialisation and data order */
    /* optimisation */
    long steps;         /* optimizer steps, >= 1 */
    int batch;          /* sequences per step, >= 1 */
    int max_len;        /* tokens per sequence at most (longer responses are cut), >= 2 */
    float lr;           /* peak learning rate, > 0 */
    float min_lr_ratio; /* cosine floor as a share of lr, [0, 1] */
    long warmup;        /* linear warm-up steps, >= 0; capped at steps */
    float weight_decay; /* AdamW, on matrices only (not norms or embeddings), >= 0 */
    float clip;         /* global gradient-norm clip; 0: off */
    enum trainer_sft_loss_norm loss_norm;
    /* evaluation */
    int eval_n;         /* eval-split prompts for the evaluation; 0: none */
    long eval_every;    /* evaluate every this many steps as well as at the end; 0: at the end */
    int eval_max_new;   /* token budget of an eval response */
    char *eval_samples; /* NULL, or a file for the final evaluation's answers (JSONL) */
    /* output (trainer_sft_run) */
    char *root;       /* checkpoint root (--out): version 0 goes to ckpt_dir(root, sft, 0) */
    bool force;       /* train even when that checkpoint is cached */
    bool progress;    /* a progress bar on stderr even when it is not a terminal */
    bool no_progress; /* no progress bar even on a terminal (wins over progress); neither: a bar
                       * when stderr is a terminal */
    int threads;      /* the engine's threads (nn_threads.h; 0: OMP_NUM_THREADS or all) */
};

struct trainer_sft_result {
    size_t pairs;        /* training pairs */
    size_t truncated;    /* pairs whose response was cut at max_len */
    long steps;          /* steps taken */
    double first_loss;   /* loss of the first batch */
    double final_loss;   /* mean loss over the last 10% of steps (at least the last one) */
    double seconds;      /* training wall time, evaluation excluded */
    double tokens_per_s; /* real (unpadded) tokens through forward and backward per second */
    bool evaluated;      /* eval below is filled (eval_n > 0) */
    struct trainer_eval eval;
};

/* Check the options; ERR_INVAL with err naming the option (as its flag) and the reason. */
int trainer_sft_validate(const struct trainer_sft_opts *o, char *err, size_t errlen);

/* Train: load or build the model, read or generate the pairs, run the steps, evaluate. On ERR_OK
 * *out owns the trained model (nn_model_destroy) and *res is filled. ERR_INVAL (bad options, a
 * bad data file, a pair whose prompt leaves no room for a response; err names the file and
 * line or pair), ERR_NOTFOUND (no such data file or init checkpoint), ERR_IO, ERR_NOMEM, or the
 * engine's error. Nothing is written to disk. */
int trainer_sft_train(const struct trainer_sft_opts *o, nn_model_t **out,
                      struct trainer_sft_result *res, char *err, size_t errlen);

/* What trainer_sft_run did. */
struct trainer_sft_outcome {
    bool cached;     /* the checkpoint was already there with these settings: no training */
    char dir[4096];  /* the checkpoint directory, ckpt_dir(root, sft, 0) */
    char sha256[65]; /* of dir/model.safetensors */
    struct trainer_sft_result res; /* on a cache hit, as stored in the settings file */
};

/* Train and write checkpoint version 0 of kind sft under o->root (nn_checkpoint_save, and the
 * settings with the result and sha256 in dir/TRAINER_SFT_SETTINGS), or, when that directory
 * already holds a checkpoint trained with the same settings (data file and init checkpoint
 * compared by sha256) whose weights still have the recorded sha256, skip training (unless
 * o->force). Errors as trainer_sft_train, and ERR_IO for the files written. `oaif sft`
 * (services/oaif/cmd_sft.c) is this call and trainer_sft_publish(). */
int trainer_sft_run(const struct trainer_sft_opts *o, struct trainer_sft_outcome *out, char *err,
                    size_t errlen);

/* Records what trainer_sft_run() wrote in the ledger behind `client`: the Checkpoint record of
 * version 0, kind sft, with its path, sha256, step and metrics (final_loss, and with an
 * evaluation eval_accuracy, mean_length and eval_accuracy_<family>). Publishing the same
 * checkpoint again is the same put (ckpt_publish). Returns ckpt_publish's code: ERR_OK,
 * ERR_TIMEOUT (no answer within timeout_ms), ERR_REMOTE (the ledger's error,
 * bus_client_last_error), or the bus's error. */
int trainer_sft_publish(bus_client_t *client, const struct trainer_sft_outcome *oc, int timeout_ms);

#endif /* TRAINER_SFT_H */
