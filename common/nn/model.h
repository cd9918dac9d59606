/* model.h - the Llama-family decoder of the engine: token embedding, RMSNorm, rotary positions
 * (Hugging Face rotate_half convention on q and k), causal grouped-query attention, SwiGLU MLP,
 * final norm, LM head (tied or untied) and an optional scalar reward head ("score.weight" [1, C],
 * no bias) read on the final hidden state of the last real token of each sequence.
 *
 * fp32 on the CPU, as llm.c: parameters live in one flat allocation laid out in Hugging Face
 * naming order, with named views (nn_model_tensor); activations in one allocation sized by
 * nn_model_reserve; forward and backward never allocate. Matrix products use cblas_sgemm (the
 * OpenMP build of OpenBLAS), the rest OpenMP loops.
 *
 * Batches are right-padded: tokens [B, T] with lengths[b] real tokens in row b; every per-sequence
 * result (log-probs, rewards, hidden states, gradients) is the same as for that row alone.
 *
 * A model (and a KV cache) is used by one thread at a time; the parallelism is inside the calls
 * (OpenMP, and OpenBLAS's OpenMP build).
 *
 * Not for: reading or writing files (checkpoint.h), losses (loss.h), sampling (sample.h). */
#ifndef NN_MODEL_H
#define NN_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"

typedef struct nn_model nn_model_t; /* opaque: the fields live in model.c */

/* One named parameter tensor: a view into the flat parameter (and gradient) allocation. */
struct nn_tensor {
    const char *name; /* Hugging Face name, e.g. "model.layers.0.self_attn.q_proj.weight" */
    int ndim;         /* 1 (norm weights) or 2 ([out, in] as torch.nn.Linear) */
    int64_t shape[2];
    size_t numel;
    size_t offset; /* in floats, from nn_model_params() */
    float *data;   /* = nn_model_params() + offset */
    float *grad;   /* = nn_model_grads() + offset, or NULL before nn_model_reserve(.., true) */
};

/* A right-padded batch. Tokens past lengths[b] in row b are ignored (any value). */
struct nn_batch {
    int B;              /* rows */
    int T;              /* padded length, <= the T reserved */
    const int *tokens;  /* [B, T] token ids in [0, vocab_size) */
    const int *lengths; /* [B] real tokens per row, in [1, T] */
};

/* Forward options. NULL means: logits on, dropout off. */
struct nn_fwd_opts {
    bool logits;           /* compute the LM-head logits [B, T, V] (a reward model can skip them) */
    float dropout;         /* p in [0, 1): dropout on the attention and MLP outputs before each
                              residual add (inverted scaling); 0 = off. Used for contrastive views. */
    uint64_t dropout_seed; /* the mask is a pure function of (seed, layer, site, row, position,
                              channel): two calls with different seeds give two views */
};

/* What the loss says about the outputs of the last forward. Any NULL field counts as zero. */
struct nn_bwd_in {
    const float *dlogp;        /* [B] d loss / d (sequence log-prob of nn_model_seq_logprobs) */
    const float *dreward;      /* [B] d loss / d reward (needs a reward head) */
    const float *dlast_hidden; /* [B, C] d loss / d final hidden state of the last real token */
};

/* Small counter-based random numbers shared by the engine (init, dropout, sampling). */
uint64_t nn_rng_next(uint64_t *state); /* splitmix64 */
float nn_rng_uniform(uint64_t *state); /* [0, 1) */
float nn_rng_normal(uint64_t *state);  /* N(0, 1) */

/* Allocate a model of shape `cfg` (copied) with all parameters zero. Checks what the model
 * itself relies on (positive sizes, H divisible by KVH, C = H x head_dim with an even head_dim);
 * ERR_INVAL with `err` naming the field, ERR_NOMEM. On ERR_OK *out owns the model. */
int nn_model_new(nn_model_t **out, const struct nn_config *cfg, char *err, size_t errlen);
/* Free everything; sets *m to NULL. Accepts m == NULL and *m == NULL. */
void nn_model_destroy(nn_model_t **m);

/* The model's config, borrowed until nn_model_destroy. */
const struct nn_config *nn_model_config(const nn_model_t *m);
/* Hugging Face Llama init: every matrix N(0, std^2) (std 0.02 in HF), norm weights 1. */
void nn_model_init_random(nn_model_t *m, uint64_t seed, float std);

/* The flat parameters [nn_model_num_params]; gradients of the same layout (NULL until
 * nn_model_reserve with train). Borrowed until nn_model_destroy. */
size_t nn_model_num_params(const nn_model_t *m);
float *nn_model_params(nn_model_t *m);
const float *nn_model_params_const(const nn_model_t *m);
float *nn_model_grads(nn_model_t *m);
/* The named tensors, in Hugging Face order (embed, layers x {q,k,v,o,gate,up,down,input_norm,
 * post_attention_norm}, norm, lm_head unless tied, score if reward head). Borrowed until
 * nn_model_destroy; NULL past the end or for an unknown name. */
size_t nn_model_num_tensors(const nn_model_t *m);
const struct nn_tensor *nn_model_tensor(const nn_model_t *m, size_t i);
const struct nn_tensor *nn_model_find_tensor(const nn_model_t *m, const char *name);

/* Size the activation buffers for batches up to B rows of T tokens (and gradients, backward
 * scratch when `train`). Grows only; the one place that allocates besides nn_model_new.
 * ERR_INVAL (T past max_position_embeddings, B or T < 1), ERR_NOMEM. */
int nn_model_reserve(nn_model_t *m, int B, int T, bool train);

/* Run the model on `b`. ERR_TOOBIG if b is larger than reserved, ERR_INVAL on a bad length or
 * a token out of range in a real position. Results stay until the next forward. */
int nn_model_forward(nn_model_t *m, const struct nn_batch *b, const struct nn_fwd_opts *opts);
/* Results of the last forward, borrowed until the next forward or backward (backward turns the
 * logits buffer into its gradient). logits [B, T, V] (NULL if not computed); hidden [B, T, C]
 * (after the final norm); last_hidden [B, C] (hidden at lengths[b] - 1); rewards [B] (NULL
 * without a reward head). */
const float *nn_model_logits(const nn_model_t *m);
const float *nn_model_hidden(const nn_model_t *m);
const float *nn_model_last_hidden(const nn_model_t *m);
const float *nn_model_rewards(const nn_model_t *m);

/* After a forward with logits: logp[b] = sum over response positions t in
 * [prompt_lens[b], lengths[b]) of log p(tokens[b,t] | tokens[b,<t]); ntok[b] = their count (may
 * be NULL). prompt_lens NULL means prompt length 1 (every token after the first). Each
 * prompt_lens[b] must be in [1, lengths[b]] (ERR_INVAL). Remembers prompt_lens for
 * nn_model_backward's dlogp. ERR_INVAL if the forward had no logits. */
int nn_model_seq_logprobs(nn_model_t *m, const int *prompt_lens, float *logp, int *ntok);

/* log sum_i exp(x[i]) over x[0, n), n >= 1: the normalizer of a log-softmax, computed as
 * nn_model_seq_logprobs computes it (so log-probs taken elsewhere from logits agree with it). */
float nn_logsumexp(const float *x, int n);

/* Attention on the fused kernels (attention.h; the default where the CPU has AVX-512F and the
 * head size is a multiple of 16) or on OpenBLAS products (`on` false). Returns whether the fused
 * kernels are on afterwards: they need a head size that is a multiple of 16 (on a CPU without
 * AVX-512 they run, slowly, in plain vector C). Both give the same results within fp32 rounding;
 * the choice exists for tests and benchmarks. */
bool nn_model_set_fused_attention(nn_model_t *m, bool on);

/* Set every gradient to zero (ERR_INVAL if not reserved for training). */
int nn_model_zero_grad(nn_model_t *m);
/* Back-propagate `in` through the last forward and ADD to the gradients (so successive calls
 * accumulate, for gradient accumulation). dlogp needs nn_model_seq_logprobs after that forward;
 * dreward needs a reward head. Consumes the logits. ERR_INVAL on a missing precondition. */
int nn_model_backward(nn_model_t *m, const struct nn_bwd_in *in);

/* --- incremental decoding with a KV cache (used by sample.c) --- */

typedef struct nn_kv_cache nn_kv_cache_t;

/* A cache for B rows of up to T positions each (T <= max_position_embeddings). ERR_INVAL,
 * ERR_NOMEM. The cache belongs to `m`'s shape; use it only with `m`. */
int nn_kv_cache_new(nn_kv_cache_t **out, const nn_model_t *m, int B, int T);
void nn_kv_cache_destroy(nn_kv_cache_t **c);
/* Forget every row (positions back to 0). */
void nn_kv_cache_reset(nn_kv_cache_t *c);
/* Tokens already in row b. */
int nn_kv_cache_pos(const nn_kv_cache_t *c, int b);

/* Feed counts[b] tokens (tokens[b * n .. b * n + counts[b])) to each row b < B of the cache
 * (counts[b] == 0: row skipped), after the tokens it already holds, and write to logits[b, V]
 * the next-token logits after row b's last fed token (rows with counts[b] == 0 are left as
 * they are). ERR_TOOBIG if a row would pass the cache's T, ERR_INVAL on a bad token. */
int nn_model_decode(nn_model_t *m, nn_kv_cache_t *c, const int *tokens, const int *counts, int n,
                    float *logits);

#ifdef NN_PHASES
/* Phase timers of a build with -DNN_PHASES (tests/bench/bench_nn_phases only): the wall seconds
 * the forwards and backwards since the reset spent in each phase ("gemm qkv", "attention", ...;
 * forward and backward together), in the order first seen; returns how many (<= max). */
void nn_phases_reset(void);
int nn_phases_get(const char **names, double *sec, int max);
#endif

#endif /* NN_MODEL_H */
