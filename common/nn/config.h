/* config.h - the shape of a Llama-family model, named as Hugging Face's LlamaConfig, and its
 * config.json. Loading validates every field (positive sizes, heads dividing the width, kv heads
 * dividing heads) and names the file and the field in errors. Not for: weights (safetensors.h,
 * checkpoint). */
#ifndef NN_CONFIG_H
#define NN_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

struct nn_config {
    int vocab_size;              /* V */
    int hidden_size;             /* C */
    int intermediate_size;       /* F: SwiGLU width */
    int num_hidden_layers;       /* L */
    int num_attention_heads;     /* H; head_dim = C / H */
    int num_key_value_heads;     /* KVH: grouped-query attention, divides H */
    int max_position_embeddings; /* T max */
    float rms_norm_eps;          /* 1e-5 */
    float rope_theta;            /* 10000 */
    bool tie_word_embeddings;
    int bos_token_id; /* -1: none */
    int eos_token_id; /* -1: none */
    int pad_token_id; /* -1: none */
    bool reward_head; /* oaif: a scalar head "score.weight" [1, C] on the last real token */
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
/* Parameters of the model (embeddings, layers, norms, head, reward head). */
size_t nn_config_num_params(const struct nn_config *c);

#endif /* NN_CONFIG_H */
