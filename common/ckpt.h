/* ckpt.h - where checkpoints live and how the ledger knows them.
 *
 * Files: <root>/<kind>-v<version, 6 digits>/ (config.json, model.safetensors, and for resumable
 * training optimizer.safetensors), e.g. data/checkpoints/policy-v000003/. Version 0 of the
 * policy is the SFT model (kind "sft"); the trainer's online checkpoints are kind "policy" with
 * versions 1, 2, ...; reward-model members are kind "reward". Large files never travel through
 * the bus: the ledger stores a Checkpoint record (kind RECORD_KIND_CHECKPOINT, id
 * "<kind>-v<version>") with the path and the sha256 of model.safetensors, and committing it
 * publishes the "checkpoints" event that samplers and the evaluator listen for.
 * A policy version number is unique across kinds "sft" and "policy" (sft is 0). */
#ifndef CKPT_H
#define CKPT_H

#include <stddef.h>
#include <stdint.h>

#include "busclient.h"
#include "oaif.pb-c.h"

/* The checkpoint store's root when nothing says otherwise: the trainer and `oaif sft` write there,
 * the sampler and the reward-scorer read there. */
#define CKPT_DEFAULT_ROOT "data/checkpoints"

/* The reward-model ensemble `oaif rm train` writes and the reward-scorer serves when neither is
 * told another. */
#define CKPT_DEFAULT_ENSEMBLE "default"

/* "sft", "policy", "reward" for the proto enum; NULL for anything else. */
const char *ckpt_kind_name(Oaif__V1__CheckpointKind kind);
/* <root>/<kind>-v%06u into out. ERR_OK or ERR_TOOBIG. */
int ckpt_dir(char *out, size_t outlen, const char *root, Oaif__V1__CheckpointKind kind,
             uint32_t version);
/* "<kind>-v<version>" into out (the record id). */
int ckpt_record_id(char *out, size_t outlen, Oaif__V1__CheckpointKind kind, uint32_t version);
/* sha256 of the file at path as 64 hex characters + NUL. ERR_IO with err filled. */
int ckpt_file_sha256(const char *path, char hex[65], char *err, size_t errlen);

/* Record checkpoint `c` (its id is set from kind and version if empty) in the ledger, which
 * publishes the event. Idempotent (the put id is the record id plus the sha256). */
int ckpt_publish(bus_client_t *cl, Oaif__V1__Checkpoint *c, int timeout_ms);

/* The newest policy checkpoint (kind sft or policy, highest version) the ledger knows, or the
 * one with `version` if want_version >= 0. On ERR_OK *out is unpacked (free with
 * oaif__v1__checkpoint__free_unpacked). ERR_NOTFOUND if there is none. */
int ckpt_find_policy(bus_client_t *cl, int64_t want_version, int timeout_ms,
                     Oaif__V1__Checkpoint **out);

#endif /* CKPT_H */
