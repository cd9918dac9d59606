/* sample.h - text generation with a KV cache: a batch of prompts of different lengths, greedy or
 * sampled (temperature, top-k, top-p by partial selection with a heap, never a full sort of the
 * vocabulary), reproducible from a seed with the engine's own random numbers (row b draws from
 * its own stream (seed, b), so a row's sample does not depend on the other rows of the batch),
 * a budget of new tokens, stop on an EOS id or on stop strings.
 * Not for: tokenization (tokenizer.h) or chat templates; the caller encodes and decodes. */
#ifndef NN_SAMPLE_H
#define NN_SAMPLE_H

#include <stddef.h>
#include <stdint.h>

#include "model.h"

enum nn_finish {
    NN_FINISH_LENGTH = 0, /* max_new_tokens, or max_position_embeddings reached */
    NN_FINISH_EOS,        /* the EOS id was generated (it is the last output token) */
    NN_FINISH_STOP,       /* the text now contains a stop string (the last output token completes
                             it; the caller trims the text) */
};

/* The bytes token `id` stands for in the output text (tok_token_bytes fits): borrowed, *len
 * set; NULL for none. */
typedef const char *(*nn_token_bytes_fn)(void *ctx, int id, size_t *len);

struct nn_sample_opts {
    float temperature;  /* <= 0: greedy */
    int top_k;          /* keep the k most likely tokens; 0 = off; 1 = greedy */
    float top_p;        /* keep the smallest set with probability >= top_p; >= 1 or <= 0 = off */
    uint64_t seed;      /* the same seed, prompts and options give the same tokens */
    int max_new_tokens; /* >= 1 */
    int eos_token_id;   /* -1: none */
    const char *const *stop; /* nstop stop strings (non-empty), or NULL */
    int nstop;
    nn_token_bytes_fn token_bytes; /* required when nstop > 0 */
    void *token_ctx;
};

/* Generate for B prompts (prompts[b] has prompt_lens[b] >= 1 tokens, each < max positions).
 * Writes row b's new tokens to tokens[b * max_new_tokens ...], their count to ntok[b] and
 * enum nn_finish to finish[b] (may be NULL). Allocates its KV cache and scratch per call.
 * ERR_INVAL (bad options or tokens), ERR_TOOBIG (a prompt as long as max_position_embeddings),
 * ERR_NOMEM. */
int nn_sample(nn_model_t *m, int B, const int *const *prompts, const int *prompt_lens,
              const struct nn_sample_opts *o, int *tokens, int *ntok, int *finish);
/* nn_sample, and logprob[b] = the sum over row b's new tokens of log softmax(logits)[token] at
 * temperature 1 under the model, whatever temperature, top-k or top-p chose them: the policy's
 * log-probability of the response, what a teacher-forced forward over prompt + response gives
 * (nn_model_seq_logprobs), taken from the logits the decoder computed anyway. */
int nn_sample_logp(nn_model_t *m, int B, const int *const *prompts, const int *prompt_lens,
                   const struct nn_sample_opts *o, int *tokens, int *ntok, int *finish,
                   double *logprob);

/* Draw one token from logits [V] (not modified) with the given temperature / top_k / top_p and
 * random stream *rng. Scratch: probs [V] floats and idx [V] ints. Greedy (argmax, lowest id on
 * ties) when temperature <= 0 or top_k == 1. */
int nn_sample_logits(const float *logits, int V, float temperature, int top_k, float top_p,
                     uint64_t *rng, float *probs, int *idx);

#endif /* NN_SAMPLE_H */
