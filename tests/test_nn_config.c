/* test_nn_config.c - LlamaConfig: the built-in default, validation naming fields, loading Hugging
 * Face config.json files (defaults, eos lists, unknown keys, refused features), the saved file,
 * and parameter counts checked against published model sizes. */
#include <setjmp.h> /* cmocka 1.1 needs these four first */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "err.h"
#include "tokenizer.h"

struct ctx {
    char dir[64];
    char path[128];
};

static int setup(void **state)
{
    struct ctx *c = calloc(1, sizeof *c);
    if (!c)
        return -1;
    snprintf(c->dir, sizeof c->dir, "/tmp/test_nn_config.XXXXXX");
    if (!mkdtemp(c->dir))
        return -1;
    snprintf(c->path, sizeof c->path, "%s/config.json", c->dir);
    *state = c;
    return 0;
}

static int teardown(void **state)
{
    struct ctx *c = *state;
    unlink(c->path);
    rmdir(c->dir);
    free(c);
    return 0;
}

static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    assert_int_equal(fclose(f), 0);
}

/* TinyLlama-1.1B's config.json (abridged only in key order), 1,100,048,384 parameters. */
static const char *TINYLLAMA = "{\n"
                               "  \"architectures\": [\"LlamaForCausalLM\"],\n"
                               "  \"attention_bias\": false,\n"
                               "  \"bos_token_id\": 1,\n"
                               "  \"eos_token_id\": 2,\n"
                               "  \"hidden_act\": \"silu\",\n"
                               "  \"hidden_size\": 2048,\n"
                               "  \"initializer_range\": 0.02,\n"
                               "  \"intermediate_size\": 5632,\n"
                               "  \"max_position_embeddings\": 2048,\n"
                               "  \"model_type\": \"llama\",\n"
                               "  \"num_attention_heads\": 32,\n"
                               "  \"num_hidden_layers\": 22,\n"
                               "  \"num_key_value_heads\": 4,\n"
                               "  \"pretraining_tp\": 1,\n"
                               "  \"rms_norm_eps\": 1e-05,\n"
                               "  \"rope_scaling\": null,\n"
                               "  \"rope_theta\": 10000.0,\n"
                               "  \"tie_word_embeddings\": false,\n"
                               "  \"torch_dtype\": \"bfloat16\",\n"
                               "  \"transformers_version\": \"4.35.0\",\n"
                               "  \"use_cache\": true,\n"
                               "  \"vocab_size\": 32000\n"
                               "}\n";

static void test_default_is_the_byte_model_and_valid(void **state)
{
    (void)state;
    struct nn_config c;
    nn_config_default(&c);
    char err[256] = "";
    assert_int_equal(nn_config_validate(&c, err, sizeof err), ERR_OK);
    assert_int_equal(c.vocab_size, TOK_BYTE_VOCAB);
    assert_int_equal(c.bos_token_id, TOK_BYTE_BOS);
    assert_int_equal(c.eos_token_id, TOK_BYTE_EOS);
    assert_int_equal(c.pad_token_id, TOK_BYTE_PAD);
    assert_string_equal(c.tokenizer, "byte");
    assert_int_equal(c.hidden_size, 128);
    assert_int_equal(c.num_hidden_layers, 4);
    assert_int_equal(c.num_attention_heads, 4);
    assert_int_equal(c.num_key_value_heads, 2);
    assert_int_equal(c.intermediate_size, 352);
    assert_int_equal(c.max_position_embeddings, 256);
    assert_true(c.tie_word_embeddings);
    assert_false(c.reward_head);
    /* by hand: 259x128 + 4 x (128 + 128x128 + 2x64x128 + 128x128 + 128 + 3x352x128) + 128 */
    assert_int_equal(nn_config_num_params(&c), 771584);
    c.reward_head = true;
    assert_int_equal(nn_config_num_params(&c), 771584 + 128);
    c.tie_word_embeddings = false;
    assert_int_equal(nn_config_num_params(&c), 771584 + 128 + 259 * 128);
}

static void test_num_params_matches_published_models(void **state)
{
    (void)state;
    struct nn_config c;
    nn_config_default(&c);
    /* SmolLM-135M: tied, 134,515,008 */
    c.vocab_size = 49152;
    c.hidden_size = 576;
    c.intermediate_size = 1536;
    c.num_hidden_layers = 30;
    c.num_attention_heads = 9;
    c.num_key_value_heads = 3;
    c.tie_word_embeddings = true;
    c.reward_head = false;
    assert_int_equal(nn_config_num_params(&c), 134515008);
    assert_int_equal(nn_config_num_params(NULL), 0);
}

static void expect_invalid(const struct nn_config *c, const char *field)
{
    char err[256] = "";
    assert_int_equal(nn_config_validate(c, err, sizeof err), ERR_INVAL);
    if (!strstr(err, field))
        fail_msg("err \"%s\" does not name \"%s\"", err, field);
}

static void test_validate_names_the_field(void **state)
{
    (void)state;
    struct nn_config c;
    nn_config_default(&c);
    c.vocab_size = 0;
    expect_invalid(&c, "vocab_size");
    nn_config_default(&c);
    c.num_hidden_layers = -1;
    expect_invalid(&c, "num_hidden_layers");
    nn_config_default(&c);
    c.num_attention_heads = 3;
    expect_invalid(&c, "num_attention_heads 3 does not divide hidden_size 128");
    nn_config_default(&c);
    c.hidden_size = 120;
    c.num_attention_heads = 8; /* head_dim 15 */
    c.num_key_value_heads = 8;
    expect_invalid(&c, "odd");
    nn_config_default(&c);
    c.num_key_value_heads = 3;
    expect_invalid(&c, "num_key_value_heads");
    nn_config_default(&c);
    c.rms_norm_eps = 0.0f;
    expect_invalid(&c, "rms_norm_eps");
    nn_config_default(&c);
    c.rope_theta = -1.0f;
    expect_invalid(&c, "rope_theta");
    nn_config_default(&c);
    c.eos_token_id = 259;
    expect_invalid(&c, "eos_token_id");
    nn_config_default(&c);
    c.pad_token_id = -2;
    expect_invalid(&c, "pad_token_id");
    nn_config_default(&c);
    snprintf(c.tokenizer, sizeof c.tokenizer, "sentencepiece");
    expect_invalid(&c, "tokenizer");
    nn_config_default(&c);
    c.vocab_size = 200;
    c.bos_token_id = c.eos_token_id = c.pad_token_id = -1;
    expect_invalid(&c, "byte tokenizer");
    assert_int_equal(nn_config_validate(NULL, NULL, 0), ERR_INVAL);
}

static void test_load_tinyllama_config(void **state)
{
    struct ctx *x = *state;
    write_text(x->path, TINYLLAMA);
    struct nn_config c;
    char err[512] = "";
    int rc = nn_config_load(&c, x->path, err, sizeof err);
    if (rc)
        fail_msg("%s", err);
    assert_int_equal(c.vocab_size, 32000);
    assert_int_equal(c.hidden_size, 2048);
    assert_int_equal(c.intermediate_size, 5632);
    assert_int_equal(c.num_hidden_layers, 22);
    assert_int_equal(c.num_attention_heads, 32);
    assert_int_equal(c.num_key_value_heads, 4);
    assert_int_equal(c.max_position_embeddings, 2048);
    assert_true(c.rms_norm_eps == 1e-5f);
    assert_true(c.rope_theta == 10000.0f);
    assert_false(c.tie_word_embeddings);
    assert_int_equal(c.bos_token_id, 1);
    assert_int_equal(c.eos_token_id, 2);
    assert_int_equal(c.pad_token_id, -1);
    assert_false(c.reward_head);
    assert_string_equal(c.tokenizer, "bpe");
    assert_int_equal(nn_config_num_params(&c), 1100048384);
}

static void test_load_applies_hf_defaults_and_eos_lists(void **state)
{
    struct ctx *x = *state;
    /* Llama-3 style: eos list, pad null, no kv heads (defaults to heads), no eps/theta/tie */
    write_text(x->path, "{\"vocab_size\": 1000, \"hidden_size\": 64, \"intermediate_size\": 128,"
                        " \"num_hidden_layers\": 2, \"num_attention_heads\": 4,"
                        " \"eos_token_id\": [7, 9], \"pad_token_id\": null,"
                        " \"some_future_key\": {\"nested\": [1, 2]}}");
    struct nn_config c;
    char err[512] = "";
    assert_int_equal(nn_config_load(&c, x->path, err, sizeof err), ERR_OK);
    assert_int_equal(c.num_key_value_heads, 4);
    assert_int_equal(c.eos_token_id, 7);
    assert_int_equal(c.pad_token_id, -1);
    assert_int_equal(c.bos_token_id, 1);
    assert_int_equal(c.max_position_embeddings, 2048);
    assert_true(c.rms_norm_eps == 1e-6f);
    assert_true(c.rope_theta == 10000.0f);
    assert_false(c.tie_word_embeddings);
    assert_string_equal(c.tokenizer, "bpe");
}

static void expect_load_fails(const char *path, const char *text, int want_rc, const char *want)
{
    write_text(path, text);
    struct nn_config c;
    nn_config_default(&c);
    struct nn_config before = c;
    char err[512] = "";
    int rc = nn_config_load(&c, path, err, sizeof err);
    if (rc != want_rc || !strstr(err, want) || !strstr(err, path))
        fail_msg("rc %d (want %d), err \"%s\" (want \"%s\" and the path)", rc, want_rc, err, want);
    assert_memory_equal(&c, &before, sizeof c); /* untouched on failure */
}

#define BASE                                                                                       \
    "\"vocab_size\": 1000, \"hidden_size\": 64, \"intermediate_size\": 128,"                       \
    " \"num_hidden_layers\": 2, \"num_attention_heads\": 4"

static void test_load_errors_name_file_and_key(void **state)
{
    struct ctx *x = *state;
    const char *p = x->path;
    expect_load_fails(p,
                      "{\"vocab_size\": 1000, \"hidden_size\": 64, \"num_hidden_layers\": 2,"
                      " \"num_attention_heads\": 4}",
                      ERR_INVAL, "required key \"intermediate_size\" is missing");
    expect_load_fails(p, "{" BASE ", \"hidden_size\": 64}", ERR_PROTO, "duplicate");
    expect_load_fails(p, "{\"vocab_size\": \"1000\", \"hidden_size\": 64}", ERR_INVAL,
                      "\"vocab_size\" must be an integer");
    expect_load_fails(p, "{" BASE ", \"num_key_value_heads\": 3}", ERR_INVAL,
                      "num_key_value_heads 3 does not divide");
    expect_load_fails(p, "{" BASE ", \"rms_norm_eps\": \"small\"}", ERR_INVAL, "rms_norm_eps");
    expect_load_fails(p, "{" BASE ", \"tie_word_embeddings\": 1}", ERR_INVAL,
                      "tie_word_embeddings");
    expect_load_fails(p, "{" BASE ", \"eos_token_id\": 1000}", ERR_INVAL, "eos_token_id");
    expect_load_fails(p, "{" BASE ", \"eos_token_id\": \"</s>\"}", ERR_INVAL, "eos_token_id");
    expect_load_fails(p, "{" BASE ", \"attention_bias\": true}", ERR_INVAL, "attention_bias");
    expect_load_fails(p, "{" BASE ", \"mlp_bias\": true}", ERR_INVAL, "mlp_bias");
    expect_load_fails(p, "{" BASE ", \"hidden_act\": \"gelu\"}", ERR_INVAL, "hidden_act");
    expect_load_fails(p, "{" BASE ", \"model_type\": \"qwen2\"}", ERR_INVAL, "qwen2");
    expect_load_fails(p, "{" BASE ", \"head_dim\": 32}", ERR_INVAL, "head_dim");
    expect_load_fails(p, "{" BASE ", \"oaif_tokenizer\": \"sp\"}", ERR_INVAL, "oaif_tokenizer");
    expect_load_fails(p, "{" BASE ", \"oaif_reward_head\": \"yes\"}", ERR_INVAL,
                      "oaif_reward_head");
    expect_load_fails(p, "{" BASE ", \"hidden_size\" 64", ERR_PROTO, "not valid JSON");
    expect_load_fails(p, "[1, 2, 3]", ERR_INVAL, "not a JSON object");
    expect_load_fails(p, "", ERR_PROTO, "not valid JSON");

    char missing[256], err[512] = "";
    snprintf(missing, sizeof missing, "%s/absent.json", x->dir);
    struct nn_config c;
    assert_int_equal(nn_config_load(&c, missing, err, sizeof err), ERR_NOTFOUND);
    assert_non_null(strstr(err, missing));
}

static void test_save_then_load_round_trips(void **state)
{
    struct ctx *x = *state;
    struct nn_config a, b;
    nn_config_default(&a);
    a.reward_head = true;
    a.rope_theta = 500000.0f;
    a.pad_token_id = -1;
    char err[512] = "";
    assert_int_equal(nn_config_save(&a, x->path, err, sizeof err), ERR_OK);
    memset(&b, 0x55, sizeof b);
    int rc = nn_config_load(&b, x->path, err, sizeof err);
    if (rc)
        fail_msg("%s", err);
    assert_int_equal(b.vocab_size, a.vocab_size);
    assert_int_equal(b.hidden_size, a.hidden_size);
    assert_int_equal(b.intermediate_size, a.intermediate_size);
    assert_int_equal(b.num_hidden_layers, a.num_hidden_layers);
    assert_int_equal(b.num_attention_heads, a.num_attention_heads);
    assert_int_equal(b.num_key_value_heads, a.num_key_value_heads);
    assert_int_equal(b.max_position_embeddings, a.max_position_embeddings);
    assert_true(b.rms_norm_eps == a.rms_norm_eps);
    assert_true(b.rope_theta == a.rope_theta);
    assert_true(b.tie_word_embeddings == a.tie_word_embeddings);
    assert_int_equal(b.bos_token_id, a.bos_token_id);
    assert_int_equal(b.eos_token_id, a.eos_token_id);
    assert_int_equal(b.pad_token_id, -1);
    assert_true(b.reward_head);
    assert_string_equal(b.tokenizer, "byte");

    /* what transformers reads: the fixed keys, and eps written as 1e-5, not 9.99999e-06 */
    json_error_t jerr;
    json_t *root = json_load_file(x->path, 0, &jerr);
    assert_non_null(root);
    assert_string_equal(
        json_string_value(json_array_get(json_object_get(root, "architectures"), 0)),
        "LlamaForCausalLM");
    assert_string_equal(json_string_value(json_object_get(root, "model_type")), "llama");
    assert_string_equal(json_string_value(json_object_get(root, "torch_dtype")), "float32");
    assert_string_equal(json_string_value(json_object_get(root, "hidden_act")), "silu");
    assert_true(json_is_null(json_object_get(root, "pad_token_id")));
    assert_true(json_is_true(json_object_get(root, "oaif_reward_head")));
    assert_true(json_real_value(json_object_get(root, "rms_norm_eps")) == 1e-5);
    assert_true(json_real_value(json_object_get(root, "rope_theta")) == 500000.0);
    json_decref(root);
    FILE *f = fopen(x->path, "r");
    char text[4096];
    size_t n = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    text[n] = '\0';
    assert_non_null(strstr(text, "\"rms_norm_eps\": 1e-5"));
    assert_int_equal(text[n - 1], '\n');
}

static void test_save_refuses_invalid_and_unwritable(void **state)
{
    struct ctx *x = *state;
    struct nn_config c;
    nn_config_default(&c);
    char err[512] = "", path[256];
    c.num_key_value_heads = 3;
    assert_int_equal(nn_config_save(&c, x->path, err, sizeof err), ERR_INVAL);
    assert_non_null(strstr(err, "num_key_value_heads"));
    assert_int_not_equal(access(x->path, F_OK), 0);
    nn_config_default(&c);
    snprintf(path, sizeof path, "%s/no/dir/config.json", x->dir);
    assert_int_equal(nn_config_save(&c, path, err, sizeof err), ERR_IO);
    assert_non_null(strstr(err, path));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_default_is_the_byte_model_and_valid),
        cmocka_unit_test(test_num_params_matches_published_models),
        cmocka_unit_test(test_validate_names_the_field),
        cmocka_unit_test_setup_teardown(test_load_tinyllama_config, setup, teardown),
        cmocka_unit_test_setup_teardown(test_load_applies_hf_defaults_and_eos_lists, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_load_errors_name_file_and_key, setup, teardown),
        cmocka_unit_test_setup_teardown(test_save_then_load_round_trips, setup, teardown),
        cmocka_unit_test_setup_teardown(test_save_refuses_invalid_and_unwritable, setup, teardown),
    };
    return cmocka_run_group_tests_name("nn_config", tests, NULL, NULL);
}
