/* config.h - the shape of a Llama-family model, named as Hugging Face's LlamaConfig, and its
 * config.json. Loading validates every field (positive sizes, heads dividing the width, kv heads
 * dividing heads) and names the file and the field in errors. Not for: weights (safetensors.h,
 * checkpoint). */
#ifndef NN_CONFIG_H
#define NN_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

/* Hugging Face's rope_scaling (transformers' modeling_rope_utils): how the rotary inverse
 * frequencies are scaled. Only the frequencies change (attention_factor is 1 for all three). */
enum nn_rope_type {
    NN_ROPE_DEFAULT = 0, /* no rope_scaling, or rope_type "default" */
    NN_ROPE_LINEAR,      /* "linear": inv_freq / factor (positions / factor) */
    NN_ROPE_DYNAMIC,     /* "dynamic" NTK: the base grows with the sequence length past the
                            original context, unchanged up to it */
    NN_ROPE_LLAMA3,      /* "llama3" (Llama 3.1, 3.2): wavelengths past original / low_freq_factor
                            divided by factor, a smooth ramp down to original / high_freq_factor */
};

/* Head dims up to this (pairs up to half of it) for dynamic NTK, whose frequencies are computed
 * per sequence on the stack. */
#define NN_ROPE_DYNAMIC_MAX_HEAD_DIM 1024

struct nn_rope_scaling {
    enum nn_rope_type type;
    float factor;           /* linear, dynamic, llama3: >= 1 */
    float low_freq_factor;  /* llama3 */
    float high_freq_factor; /* llama3: > low_freq_factor */
    /* llama3: rope_scaling's original_max_position_embeddings (8192 for Llama 3.1).
     * dynamic: config.json's max_position_embeddings, the context up to which the frequencies are
     * unchanged; the engine's context (max_position_embeddings below) is then that times factor,
     * and config.json gets this value back on save. */
    int original_max_position_embeddings;
};

struct nn_config {
    int vocab_size;                      /* V */
    int hidden_size;                     /* C */
    int intermediate_size;               /* F: SwiGLU width */
    int num_hidden_layers;               /* L */
    int num_attention_heads;             /* H; head_dim = C / H */
    int num_key_value_heads;             /* KVH: grouped-query attention, divides H */
    int max_position_embeddings;         /* T max (dynamic rope: original x factor) */
    float rms_norm_eps;                  /* 1e-5 */
    float rope_theta;                    /* 10000 */
    struct nn_rope_scaling rope_scaling; /* zero: none */
    bool tie_word_embeddings;
    int bos_token_id;   /* -1: none */
    int eos_token_id;   /* -1: none */
    int pad_token_id;   /* -1: none */
    bool reward_head;   /* oaif: a scalar head "score.weight" [1, C] on the last real token */
    char tokenizer[32]; /* oaif: "byte" or "bpe" (tokenizer.json beside config.json) */
};

/* The built-in default (a tiny model for the byte tokenizer): fills every field. */
void nn_config_default(struct nn_config *c);
/* ERR_OK or ERR_INVAL with err naming the field and the reason. */
int nn_config_validate(const struct nn_config *c, char *err, size_t errlen);
/* Read `path` (config.json). Unknown keys are ignored (HF configs carry many); missing required
 * keys, wrong types, and invalid values are ERR_INVAL naming the file and key. */
int nn_config_load(struct nn_config *c, const char *path, char *err, size_t errlen);
/* Write a config.json that transformers' LlamaConfig loads (architectures LlamaForCausalLM,
 * model_type llama, torch_dtype float32). Atomic (temp + rename). */
int nn_config_save(const struct nn_config *c, const char *path, char *err, size_t errlen);
/* The name of a rope type as config.json spells it ("default", "linear", "dynamic", "llama3"). */
const char *nn_rope_type_name(enum nn_rope_type t);
/* The rotary inverse frequencies inv[head_dim / 2] for a sequence of seq_len tokens, as
 * transformers computes them in fp32 for c's rope_theta and rope_scaling. Only dynamic depends on
 * seq_len: up to original_max_position_embeddings (and for seq_len <= 0) it gives the plain
 * frequencies, past it those of the grown base. */
void nn_config_rope_inv_freq(const struct nn_config *c, int seq_len, float *inv);
/* Whether a sequence of seq_len tokens has frequencies other than nn_config_rope_inv_freq(c, 0):
 * dynamic NTK past its original context. */
bool nn_config_rope_grows(const struct nn_config *c, int seq_len);
/* Parameters of the model (embeddings, layers, norms, head, reward head). */
size_t nn_config_num_params(const struct nn_config *c);

#endif /* NN_CONFIG_H */
