/* gguf.h - a model written as a GGUF file (version 3, little endian, alignment 32), the format of
 * llama.cpp and Ollama, as llama.cpp's convert_hf_to_gguf.py writes a LlamaForCausalLM:
 *  - architecture "llama" with its hyperparameters (context, widths, heads, rope base and
 *    dimension, RMSNorm epsilon), rope scaling as llama.cpp reads it (linear: rope.scaling.type
 *    and factor; llama3: the per-frequency divisors in a "rope_freqs.weight" tensor);
 *  - the tensors under llama.cpp's names (token_embd, blk.N.attn_q ..., output_norm, output
 *    unless tied), q and k rows permuted from Hugging Face's rotate_half pairs (i, i + D/2) to
 *    the adjacent pairs (2i, 2i + 1) llama.cpp rotates; matrices in F32 or F16, vectors in F32;
 *  - the tokenizer as tokenizer.ggml.model "gpt2" (byte-level BPE): for a tokenizer.json its
 *    tokens, token types (special added tokens CONTROL, other added tokens USER_DEFINED) and
 *    merges, and its pre-tokenizer by llama.cpp's name (gpt-2, llama-bpe, smollm); for the byte
 *    tokenizer the 256 bytes as GPT-2's byte-to-unicode characters with no merges (so every byte
 *    is its own token, ids 0..255 as here) and <bos> <eos> <pad> as CONTROL tokens.
 * Refused with a reason: dynamic NTK rope scaling (llama.cpp has no such rope), SentencePiece-
 * style tokenizer.json files, pre-tokenizers llama.cpp knows under no name we can tell. A reward
 * head (score.weight) is left out: llama.cpp's llama architecture has no place for it. */
#ifndef NN_GGUF_H
#define NN_GGUF_H

#include <stddef.h>

#include "model.h"

enum nn_gguf_dtype {
    NN_GGUF_F32 = 0, /* ggml type F32 (general.file_type ALL_F32) */
    NN_GGUF_F16 = 1, /* ggml type F16 (general.file_type MOSTLY_F16) */
};

/* Write `m` to `path` (atomically: a temporary file beside it, then rename). tokenizer_json: the
 * model's tokenizer.json for a "bpe" model (NULL for the byte tokenizer); name: general.name.
 * ERR_INVAL (what cannot be exported, err says why), ERR_IO, ERR_NOMEM, errors of reading
 * tokenizer.json. */
int nn_gguf_write(const nn_model_t *m, const char *tokenizer_json, const char *name,
                  enum nn_gguf_dtype dtype, const char *path, char *err, size_t errlen);

/* IEEE half of x, rounded to nearest even (overflow to infinity, subnormals kept). */
unsigned short nn_f32_to_f16(float x);

#endif /* NN_GGUF_H */
