/* fuzz_config.c - a model's config.json as common/nn/config.c reads it (written by other tools or
 * by hand). The input is written to a scratch file and loaded with nn_config_load; a config it
 * accepts must pass nn_config_validate, count its parameters, save, and load back equal. */
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "config.h"
#include "err.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = fuzz_file("config.json", data, size);
    struct nn_config c;
    char err[1024];
    if (nn_config_load(&c, path, err, sizeof err) != ERR_OK)
        return 0;
    if (nn_config_validate(&c, err, sizeof err) != ERR_OK)
        fuzz_fail("nn_config_load accepted what nn_config_validate refuses: %s", err);
    nn_config_num_params(&c);
    char saved[1024];
    snprintf(saved, sizeof saved, "%s/saved.json", fuzz_dir());
    if (nn_config_save(&c, saved, err, sizeof err) != ERR_OK)
        fuzz_fail("nn_config_save: %s", err);
    struct nn_config back;
    if (nn_config_load(&back, saved, err, sizeof err) != ERR_OK)
        fuzz_fail("a saved config does not load back: %s", err);
    const int a[] = {c.vocab_size,
                     c.hidden_size,
                     c.intermediate_size,
                     c.num_hidden_layers,
                     c.num_attention_heads,
                     c.num_key_value_heads,
                     c.max_position_embeddings,
                     c.tie_word_embeddings,
                     c.bos_token_id,
                     c.eos_token_id,
                     c.pad_token_id,
                     c.reward_head};
    const int b[] = {back.vocab_size,
                     back.hidden_size,
                     back.intermediate_size,
                     back.num_hidden_layers,
                     back.num_attention_heads,
                     back.num_key_value_heads,
                     back.max_position_embeddings,
                     back.tie_word_embeddings,
                     back.bos_token_id,
                     back.eos_token_id,
                     back.pad_token_id,
                     back.reward_head};
    for (size_t i = 0; i < sizeof a / sizeof a[0]; i++)
        if (a[i] != b[i])
            fuzz_fail("a saved config loads back different: field %zu was %d, is %d", i, a[i],
                      b[i]);
    if (strcmp(c.tokenizer, back.tokenizer) != 0)
        fuzz_fail("tokenizer \"%s\" loads back \"%s\"", c.tokenizer, back.tokenizer);
    if (fabsf(c.rms_norm_eps - back.rms_norm_eps) > 1e-6f * fabsf(c.rms_norm_eps) ||
        fabsf(c.rope_theta - back.rope_theta) > 1e-6f * fabsf(c.rope_theta))
        fuzz_fail("rms_norm_eps %g, rope_theta %g load back %g, %g", c.rms_norm_eps, c.rope_theta,
                  back.rms_norm_eps, back.rope_theta);
    return 0;
}
