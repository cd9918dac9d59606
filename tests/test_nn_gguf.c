/* test_nn_gguf.c - GGUF export (common/nn/gguf.h) read back by an independent reader: each
 * exported file goes through tests/gguf_check.js, which parses it with Hugging Face's
 * @huggingface/gguf (npm, installed under the build directory by deploy/setup.sh) and compares
 * the metadata, tensor names, shapes, types, offsets and every value with the checkpoint the
 * file came from (read there from model.safetensors), q and k permuted as llama.cpp's converter
 * does. Models: the byte tokenizer with GQA, an untied head, a reward head (left out) and linear
 * rope scaling, in F32 and F16; Llama 3's byte-level BPE (tests/fixtures/tokenizer/bytelevel)
 * with llama3 rope scaling (rope_freqs.weight); SmolLM's Digits + ByteLevel in F32 and F16.
 * Skipped, with the reason, where node or the package is missing. Where node-llama-cpp is installed
 * too (npm, a prebuilt llama.cpp), llama.cpp runs each F32 file: its logits on a token sequence
 * match the engine's within fp32 rounding and its tokenization of a text is the engine's. Also
 * without node: the F16 rounding on chosen values, the header's first fields, and what is refused
 * (dynamic NTK, a SentencePiece-style tokenizer.json). */
#include <setjmp.h> /* cmocka 1.1 needs these four first; keep <cmocka.h> */
#include <stdarg.h> /* in its own block, or clang-format sorts it above them */
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "checkpoint.h"
#include "config.h"
#include "err.h"
#include "gguf.h"
#include "model.h"
#include "nn_cli.h"
#include "tokenizer.h"

#define TOKDIR  OAIF_FIXTURES "/tokenizer"
#define CHECKJS OAIF_FIXTURES "/../gguf_check.js"
#define LLAMAJS OAIF_FIXTURES "/../gguf_llama.mjs"
#define NPMDIR  OAIF_BIN_DIR "/npm"

struct tmp {
    char dir[64];
};

static int setup(void **state)
{
    struct tmp *t = calloc(1, sizeof *t);
    if (!t)
        return -1;
    snprintf(t->dir, sizeof t->dir, "/tmp/test_nn_gguf.XXXXXX");
    if (!mkdtemp(t->dir)) {
        free(t);
        return -1;
    }
    *state = t;
    return 0;
}

static int teardown(void **state)
{
    struct tmp *t = *state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", t->dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", t->dir);
    free(t);
    return 0;
}

/* A small random model in dir/name (config.json, model.safetensors, tokenizer.json if given). */
static nn_model_t *make_model(const struct tmp *t, const char *name, struct nn_config *c,
                              const char *tokenizer_fixture, char *ckpt, size_t n)
{
    char err[512];
    nn_model_t *m = NULL;
    if (nn_model_new(&m, c, err, sizeof err))
        fail_msg("%s", err);
    nn_model_init_random(m, 7, 0.15f);
    /* norms away from 1, so a swapped norm would show */
    for (size_t i = 0; i < nn_model_num_tensors(m); i++) {
        const struct nn_tensor *x = nn_model_tensor(m, i);
        for (size_t j = 0; x->ndim == 1 && j < x->numel; j++)
            x->data[j] = 1.0f + 0.01f * (float)(j % 17);
    }
    snprintf(ckpt, n, "%s/%s", t->dir, name);
    if (nn_checkpoint_save(m, ckpt, err, sizeof err))
        fail_msg("%s", err);
    if (tokenizer_fixture) {
        char cmd[512];
        snprintf(cmd, sizeof cmd, "cp '%s/%s/tokenizer.json' '%s/'", TOKDIR, tokenizer_fixture,
                 ckpt);
        assert_int_equal(system(cmd), 0);
    }
    return m;
}

/* Whether the independent reader can run; if not, why (for skip). */
static const char *reader_missing(void)
{
    if (system("node --version >/dev/null 2>&1") != 0)
        return "node is not installed (deploy/setup.sh installs nodejs and npm)";
    if (system("node -e 'process.exit(+process.versions.node.split(\".\")[0] >= 20 ? 0 : 1)'") != 0)
        return "node is older than 20, which @huggingface/gguf 0.4.6 requires";
    struct stat st;
    if (stat(NPMDIR "/node_modules/@huggingface/gguf/package.json", &st) != 0)
        return NPMDIR "/node_modules/@huggingface/gguf is missing (deploy/setup.sh installs it; "
                      "or: npm install --prefix " NPMDIR " @huggingface/gguf@0.4.6)";
    return NULL;
}

/* The text whose tokens llama.cpp must give as ours: words, digits, accents, runs of spaces. */
static const char TEXT[] = "Hello world! It's 2024, isn't it? 12345 caf\xc3\xa9 na\xc3\xafve\n\n"
                           "  two  spaces\tand a tab.";
#define NLOGIT 48 /* positions compared */

/* llama.cpp (node-llama-cpp, gguf_llama.mjs) on the F32 file: its logits at every position of a
 * fixed token sequence against the engine's (fp32 both: 1e-4 absolute + 1e-4 relative), and its
 * tokens for TEXT against ours. Skipped, saying why, without node-llama-cpp. */
static void llama_cpp_check(nn_model_t *m, const char *path, const char *tokjson)
{
    struct stat st;
    if (stat(NPMDIR "/node_modules/node-llama-cpp/package.json", &st) != 0) {
        printf("llama.cpp comparison skipped: " NPMDIR "/node_modules/node-llama-cpp is missing "
               "(deploy/setup.sh installs it)\n");
        return;
    }
    const struct nn_config *c = nn_model_config(m);
    int tok[NLOGIT], n = NLOGIT, span = c->vocab_size < 256 ? c->vocab_size : 256;
    uint64_t rng = 11;
    char cmd[1024], ids[NLOGIT * 8] = "";
    for (int i = 0; i < NLOGIT; i++) {
        tok[i] = (int)(nn_rng_next(&rng) % (uint64_t)span);
        snprintf(ids + strlen(ids), sizeof ids - strlen(ids), "%s%d", i ? "," : "", tok[i]);
    }
    assert_int_equal(setenv("GGUF_TEXT", TEXT, 1), 0);
    snprintf(cmd, sizeof cmd, "node '%s' '%s' '%s' %s", LLAMAJS, NPMDIR, path, ids);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    json_error_t je;
    json_t *out = json_loadf(p, 0, &je);
    int status = pclose(p);
    if (!out || status != 0)
        fail_msg("gguf_llama.mjs on %s: exit status %d, %s", path, status, out ? "" : je.text);
    assert_int_equal(nn_model_reserve(m, 1, n, false), ERR_OK);
    struct nn_batch b = {.B = 1, .T = n, .tokens = tok, .lengths = &n};
    assert_int_equal(nn_model_forward(m, &b, NULL), ERR_OK);
    const float *lg = nn_model_logits(m);
    const json_t *rows = json_object_get(out, "logits");
    assert_int_equal(json_array_size(rows), n);
    double worst = 0.0, big = 0.0;
    for (int t = 0; t < n; t++) {
        const json_t *row = json_array_get(rows, (size_t)t);
        assert_int_equal(json_array_size(row), c->vocab_size);
        for (int v = 0; v < c->vocab_size; v++) {
            double want = lg[(size_t)t * c->vocab_size + v];
            double got = json_number_value(json_array_get(row, (size_t)v));
            double e = fabs(got - want) / (1e-4 + 1e-4 * fabs(want));
            worst = fmax(worst, e);
            big = fmax(big, fabs(want));
            if (!(e <= 1.0))
                fail_msg("%s: llama.cpp's logit [%d, %d] is %.7g, the engine's %.7g", path, t, v,
                         got, want);
        }
    }
    tok_t *tk = NULL;
    char err[512];
    if (tokjson) {
        if (tok_load(&tk, tokjson, err, sizeof err))
            fail_msg("%s", err);
    } else {
        tk = tok_new_byte();
    }
    assert_non_null(tk);
    int *ours = NULL;
    size_t nours = 0;
    assert_int_equal(tok_encode(tk, TEXT, strlen(TEXT), 0, &ours, &nours, err, sizeof err), ERR_OK);
    const json_t *theirs = json_object_get(out, "tokens");
    bool same = json_array_size(theirs) == nours;
    for (size_t i = 0; same && i < nours; i++)
        same = json_integer_value(json_array_get(theirs, i)) == ours[i];
    if (!same) {
        char *s = json_dumps(theirs, JSON_COMPACT);
        fail_msg("%s: llama.cpp tokenizes the text as %s, the engine in %zu tokens", path, s,
                 nours);
    }
    printf("llama.cpp on %s: %d x %d logits within %.2f of the tolerance (largest |logit| %.2f), "
           "the text in the same %zu tokens\n",
           path, n, c->vocab_size, worst, big, nours);
    free(ours);
    tok_destroy(&tk);
    json_decref(out);
}

/* Export m as dtype and have gguf_check.js read it back against ckpt. */
static void export_and_check(nn_model_t *m, const char *ckpt, const char *tokjson,
                             enum nn_gguf_dtype dtype)
{
    char path[256], err[512], cmd[1024];
    const char *dt = dtype == NN_GGUF_F16 ? "f16" : "f32";
    snprintf(path, sizeof path, "%s.%s.gguf", ckpt, dt);
    if (nn_gguf_write(m, tokjson, "test", dtype, path, err, sizeof err))
        fail_msg("%s", err);
    /* the first fields as gguf.md lays them out: magic, version 3, counts */
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    unsigned char h[24];
    assert_int_equal(fread(h, 1, sizeof h, f), sizeof h);
    fclose(f);
    assert_memory_equal(h, "GGUF\x03\0\0\0", 8);
    const char *why = reader_missing();
    if (why) {
        printf("independent reader skipped: %s\n", why);
        skip();
    }
    snprintf(cmd, sizeof cmd, "node '%s' '%s' '%s' '%s' %s%s%s%s", CHECKJS, NPMDIR, path, ckpt, dt,
             tokjson ? " '" : "", tokjson ? tokjson : "", tokjson ? "'" : "");
    fflush(stdout);
    if (system(cmd) != 0)
        fail_msg("gguf_check.js refused %s", path);
    if (dtype == NN_GGUF_F32)
        llama_cpp_check(m, path, tokjson);
}

static void base_config(struct nn_config *c)
{
    nn_config_default(c);
    c->hidden_size = 64;
    c->num_attention_heads = 4;
    c->num_key_value_heads = 2;
    c->intermediate_size = 96;
    c->num_hidden_layers = 2;
}

/* A tokenizer.json model (the caller copies the file in) of V ids. */
static void bpe_config(struct nn_config *c, int V, int bos, int eos)
{
    c->vocab_size = V;
    c->bos_token_id = bos;
    c->eos_token_id = eos;
    c->pad_token_id = -1;
    snprintf(c->tokenizer, sizeof c->tokenizer, "bpe");
}

static void test_byte_tokenizer_linear_rope_f32_f16(void **state)
{
    struct nn_config c;
    base_config(&c);
    c.vocab_size = 272; /* 13 ids past the byte tokenizer's: [PAD<id>] */
    c.tie_word_embeddings = false;
    c.reward_head = true;
    c.rope_scaling.type = NN_ROPE_LINEAR;
    c.rope_scaling.factor = 2.0f;
    char ckpt[128];
    nn_model_t *m = make_model(*state, "byte", &c, NULL, ckpt, sizeof ckpt);
    export_and_check(m, ckpt, NULL, NN_GGUF_F32);
    export_and_check(m, ckpt, NULL, NN_GGUF_F16);
    nn_model_destroy(&m);
}

static void test_llama3_bpe(void **state)
{
    struct nn_config c;
    base_config(&c);
    c.hidden_size = 128;
    c.num_attention_heads = 2; /* head dim 64 */
    c.num_key_value_heads = 1;
    bpe_config(&c, 300, 284, 285); /* the fixture's 290 ids and 10 unused */
    c.rope_theta = 500000.0f;
    c.max_position_embeddings = 512;
    c.rope_scaling = (struct nn_rope_scaling){.type = NN_ROPE_LLAMA3,
                                              .factor = 8.0f,
                                              .low_freq_factor = 1.0f,
                                              .high_freq_factor = 4.0f,
                                              .original_max_position_embeddings = 8192};
    char ckpt[128], tj[192];
    nn_model_t *m = make_model(*state, "llama3", &c, "bytelevel", ckpt, sizeof ckpt);
    snprintf(tj, sizeof tj, "%s/tokenizer.json", ckpt);
    export_and_check(m, ckpt, tj, NN_GGUF_F32);
    nn_model_destroy(&m);
}

static void test_smollm_bpe(void **state)
{
    struct nn_config c;
    base_config(&c);
    bpe_config(&c, 260, 0, 0);
    c.tie_word_embeddings = true;
    char ckpt[128], tj[192];
    nn_model_t *m = make_model(*state, "smollm", &c, "digits", ckpt, sizeof ckpt);
    snprintf(tj, sizeof tj, "%s/tokenizer.json", ckpt);
    export_and_check(m, ckpt, tj, NN_GGUF_F32);
    export_and_check(m, ckpt, tj, NN_GGUF_F16);
    nn_model_destroy(&m);
}

/* The CLI: `model export DIR OUT --format gguf [--dtype]`, and its usage errors. */
static void test_cli_export(void **state)
{
    struct tmp *t = *state;
    struct nn_config c;
    base_config(&c);
    char ckpt[128], out[192], big[192];
    nn_model_t *m = make_model(t, "cli", &c, NULL, ckpt, sizeof ckpt);
    snprintf(out, sizeof out, "%s/cli.gguf", t->dir);
    snprintf(big, sizeof big, "%s/cli32.gguf", t->dir);
    FILE *devnull = fopen("/dev/null", "w");
    assert_non_null(devnull);
    char *f16[] = {"model", "export", ckpt, out, "--format", "gguf"};
    char *f32[] = {"model", "export", ckpt, big, "--format", "gguf", "--dtype", "f32"};
    char *nofmt[] = {"model", "export", ckpt, out};
    char *badfmt[] = {"model", "export", ckpt, out, "--format", "onnx"};
    char *baddt[] = {"model", "export", ckpt, out, "--format", "gguf", "--dtype", "q4"};
    assert_int_equal(nn_cli_run(6, f16, devnull, devnull), 0);
    assert_int_equal(nn_cli_run(8, f32, devnull, devnull), 0);
    assert_int_equal(nn_cli_run(4, nofmt, devnull, devnull), 2);
    assert_int_equal(nn_cli_run(6, badfmt, devnull, devnull), 2);
    assert_int_equal(nn_cli_run(8, baddt, devnull, devnull), 2);
    fclose(devnull);
    struct stat s16, s32;
    assert_int_equal(stat(out, &s16), 0);
    assert_int_equal(stat(big, &s32), 0);
    assert_int_equal(s16.st_mode & 0777, 0644);
    /* F16 matrices take half the bytes: the file is a little over half the F32 one */
    assert_true(s16.st_size < s32.st_size * 6 / 10 && s16.st_size > s32.st_size * 4 / 10);
    nn_model_destroy(&m);
}

static void test_refused(void **state)
{
    struct tmp *t = *state;
    char path[128], err[512];
    snprintf(path, sizeof path, "%s/x.gguf", t->dir);
    struct nn_config c;
    base_config(&c);
    c.rope_scaling = (struct nn_rope_scaling){
        .type = NN_ROPE_DYNAMIC, .factor = 2.0f, .original_max_position_embeddings = 128};
    nn_model_t *m = NULL;
    assert_int_equal(nn_model_new(&m, &c, err, sizeof err), ERR_OK);
    assert_int_equal(nn_gguf_write(m, NULL, "x", NN_GGUF_F32, path, err, sizeof err), ERR_INVAL);
    assert_non_null(strstr(err, "dynamic NTK"));
    nn_model_destroy(&m);

    base_config(&c);
    c.vocab_size = 286;
    snprintf(c.tokenizer, sizeof c.tokenizer, "bpe");
    assert_int_equal(nn_model_new(&m, &c, err, sizeof err), ERR_OK);
    assert_int_equal(
        nn_gguf_write(m, TOKDIR "/sp/tokenizer.json", "x", NN_GGUF_F32, path, err, sizeof err),
        ERR_INVAL);
    assert_non_null(strstr(err, "SentencePiece"));
    assert_int_equal(nn_gguf_write(m, NULL, "x", NN_GGUF_F32, path, err, sizeof err), ERR_INVAL);
    assert_non_null(strstr(err, "no tokenizer.json"));
    nn_model_destroy(&m);
    assert_int_equal(access(path, F_OK), -1); /* nothing left behind */
}

static void test_f16_rounding(void **state)
{
    (void)state;
    const struct {
        float x;
        unsigned short h;
    } cases[] = {
        {1.0f, 0x3c00},
        {-2.0f, 0xc000},
        {0.0f, 0x0000},
        {-0.0f, 0x8000},
        {65504.0f, 0x7bff},
        {65519.0f, 0x7bff},            /* under the halfway point to 65536 */
        {65520.0f, 0x7c00},            /* rounds to infinity */
        {1.0f + 0x1p-11f, 0x3c00},     /* a tie: to even */
        {1.0f + 3 * 0x1p-11f, 0x3c02}, /* a tie: to even, up */
        {0x1p-24f, 0x0001},            /* the smallest subnormal */
        {0x1p-25f, 0x0000},            /* a tie: to even (zero) */
        {3 * 0x1p-25f, 0x0002},
        {0x1p-14f, 0x0400},            /* the smallest normal */
        {0x1p-14f - 0x1p-25f, 0x0400}, /* a subnormal rounding up into it */
        {2.0f - 0x1p-12f, 0x4000},     /* a mantissa carry into the exponent */
        {INFINITY, 0x7c00},
        {-INFINITY, 0xfc00},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        if (nn_f32_to_f16(cases[i].x) != cases[i].h)
            fail_msg("%a: 0x%04x, want 0x%04x", (double)cases[i].x, nn_f32_to_f16(cases[i].x),
                     cases[i].h);
    assert_int_equal(nn_f32_to_f16(NAN) & 0x7e00, 0x7e00);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_f16_rounding),
        cmocka_unit_test_setup_teardown(test_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cli_export, setup, teardown),
        cmocka_unit_test_setup_teardown(test_byte_tokenizer_linear_rope_f32_f16, setup, teardown),
        cmocka_unit_test_setup_teardown(test_llama3_bpe, setup, teardown),
        cmocka_unit_test_setup_teardown(test_smollm_bpe, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
