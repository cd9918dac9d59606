/* checkpoint.h - a model on disk as Hugging Face lays it out: a directory with config.json
 * (nn_config_save) and model.safetensors (F32 on write; F32, F16, BF16 on read) with the Hugging
 * Face Llama tensor names, so transformers loads what we write and we load Llama-family models
 * from the Hub (single-file checkpoints). The optimizer state for resuming lives beside it in
 * optimizer.safetensors ("exp_avg.<name>", "exp_avg_sq.<name>", metadata "step").
 * Every failure fills `err` with a sentence naming the file, the tensor and the reason: a missing
 * tensor, a shape that does not match config.json, a truncated or corrupt file.
 * Not for: what the tensors mean (model.h), the formats themselves (safetensors.h, config.h). */
#ifndef NN_CHECKPOINT_H
#define NN_CHECKPOINT_H

#include <stddef.h>

#include "model.h"
#include "optim.h"

#define NN_CKPT_CONFIG  "config.json"
#define NN_CKPT_WEIGHTS "model.safetensors"
#define NN_CKPT_OPTIM   "optimizer.safetensors"
#define NN_CKPT_FORMAT  "1" /* metadata "oaif_format" of what we write */

/* Write config.json and model.safetensors into `dir` (created if missing; files replaced
 * atomically). ERR_IO with err filled. */
int nn_checkpoint_save(const nn_model_t *m, const char *dir, char *err, size_t errlen);
/* Read `dir`/config.json, build the model and fill it from `dir`/model.safetensors. On ERR_OK
 * *out owns the model (nn_model_destroy). ERR_NOTFOUND (no such file), ERR_INVAL (bad config,
 * a missing tensor, a shape mismatch), ERR_PROTO (a corrupt or truncated file), ERR_IO. */
int nn_checkpoint_load(nn_model_t **out, const char *dir, char *err, size_t errlen);
/* Fill an existing model from a safetensors file: every tensor of the model must be there with
 * its shape (extra tensors, e.g. a tied lm_head.weight, are ignored). On failure the model's
 * weights are unspecified. Errors as nn_checkpoint_load. */
int nn_checkpoint_read_weights(nn_model_t *m, const char *path, char *err, size_t errlen);

/* Write the AdamW state of `m`'s parameters (same layout) to `dir`/optimizer.safetensors.
 * ERR_INVAL if the state's size is not the model's. */
int nn_checkpoint_save_optim(const nn_model_t *m, nn_adamw_t *o, const char *dir, char *err,
                             size_t errlen);
/* Read it back into `o` (created for nn_model_num_params(m)), step count included. */
int nn_checkpoint_load_optim(const nn_model_t *m, nn_adamw_t *o, const char *dir, char *err,
                             size_t errlen);

#endif /* NN_CHECKPOINT_H */
