/* ckptfiles.h - the files of a checkpoint directory, written so that a failed write is an error
 * that names the file and the reason, and a crash never leaves a file half written: the policy's
 * weights, optimizer state and tokenizer with the sha256 of the weights (trainer_ckpt_write), a
 * small file replaced atomically and durably (trainer_write_file, trainer_copy_file), the
 * directories above them (trainer_make_dirs), and the removal of old policy checkpoints
 * (trainer_ckpt_prune).
 *
 * Durable means: written to a temporary file beside the target, fsync'd, closed, renamed over the
 * target, and the directory fsync'd; the engine writes its safetensors and config.json the same
 * way (nn_checkpoint_save). A caller may publish a checkpoint once trainer_ckpt_write returned
 * ERR_OK, and must not publish it otherwise.
 * Not for: where checkpoints live and how the ledger knows them (ckpt.h), the safetensors format
 * (checkpoint.h), the records that publish a checkpoint (online.c). */
#ifndef TRAINER_CKPTFILES_H
#define TRAINER_CKPTFILES_H

#include <stddef.h>
#include <stdint.h>

#include "model.h"
#include "optim.h"

/* mkdir -p `path` (mode 0755), fsyncing the directory above each one it creates. ERR_OK when
 * path is a directory at the end; ERR_IO when a component cannot be made or is there but is
 * not a directory (err, errlen bytes and not NULL, is then "<component>: <errno's reason>"),
 * ERR_TOOBIG when path is longer than 4095 bytes, ERR_INVAL when it is empty. */
int trainer_make_dirs(const char *path, char *err, size_t errlen);

/* Replace the file at `path` with len bytes of `data`, durably (see above): path holds the old
 * content or all the new, never a part. ERR_IO with err naming the path, what failed (create,
 * write, fsync, close, rename) and errno's reason; the temporary file is removed then. */
int trainer_write_file(const char *path, const void *data, size_t len, char *err, size_t errlen);

/* Replace `dst` with a copy of `src`, durably, as trainer_write_file. ERR_IO with err naming
 * src (it cannot be opened or read) or dst (as trainer_write_file). */
int trainer_copy_file(const char *src, const char *dst, char *err, size_t errlen);

/* Write a policy checkpoint into `dir` (created with its parents): config.json and
 * model.safetensors of `m`, optimizer.safetensors of `opt` (not written when opt is NULL), and a
 * copy of `tok_dir`/tokenizer.json when tok_dir is not NULL and that file exists (the sampler
 * loads the tokenizer from beside the weights); then sha = the sha256 of model.safetensors, as
 * 64 hex digits and a NUL. Every file is durable when this returns ERR_OK. ERR_IO (err names
 * the path and errno's reason), ERR_NOMEM, ERR_TOOBIG (a path too long), or the engine's error;
 * the directory may then hold some of the files, and must not be published. */
int trainer_ckpt_write(const char *dir, const nn_model_t *m, nn_adamw_t *opt, const char *tok_dir,
                       char sha[65], char *err, size_t errlen);

/* Remove the policy checkpoints <root>/policy-v<N> with 1 <= N <= newest - keep_last (keep_last
 * below 1 counts as 1), except N == best; the SFT model (kind sft) is never touched. Ones already
 * gone are passed over. A file or directory that cannot be removed is logged as a warning with
 * its path and errno's reason and left there: the checkpoints that matter are published already.
 * Returns how many directories were removed. */
int trainer_ckpt_prune(const char *root, uint32_t newest, int keep_last, uint32_t best);

#endif /* TRAINER_CKPTFILES_H */
