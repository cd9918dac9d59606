/* policy.h - what every trainer module knows of the policy model: the built-in policy's shape
 * and initialisation, the built-in task's seed, and the tokenizer that goes with a model.
 *
 * What it is for: SFT (sft.h) builds the built-in model and trains it on the built-in task;
 * evaluation (evaluate.h) and the online loop (online.h) score on that task's eval split and
 * read checkpoints back with their tokenizer. All of them agree through this header, which
 * includes no other trainer module.
 * Not for: training, evaluation or checkpoint files (sft.h, evaluate.h, ckptfiles.h). */
#ifndef TRAINER_POLICY_H
#define TRAINER_POLICY_H

#include <stddef.h>

#include "config.h"
#include "tokenizer.h"

#define TRAINER_TASK_SEED        1     /* the built-in task's split, as `oaif task` uses */
#define TRAINER_BUILTIN_INIT_STD 0.05f /* std of the built-in model's random initialisation */

/* The built-in policy's shape: nn_config_default's byte-tokenizer Llama, resized for the task. */
void trainer_builtin_config(struct nn_config *c);

/* The tokenizer of a model: the byte tokenizer for config "byte", else `dir`/tokenizer.json
 * (dir NULL is an error then). Special ids follow the config where it has them. On ERR_OK *out
 * owns it (tok_destroy). Errors as tok_load, with err (errlen bytes, not NULL) filled. */
int trainer_tokenizer(tok_t **out, const struct nn_config *c, const char *dir, char *err,
                      size_t errlen);

#endif /* TRAINER_POLICY_H */
