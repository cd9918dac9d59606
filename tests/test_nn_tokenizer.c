/* test_nn_tokenizer.c - the byte tokenizer, and BPE on the hand-made tokenizer.json fixtures in
 * tests/fixtures/tokenizer (see make_fixtures.py there): merges by rank, unicode and emoji, byte
 * fallback and <unk>, added tokens, round trips, the prompt template, and load errors. */
#include <setjmp.h> /* cmocka 1.1 needs these four first */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "err.h"
#include "tokenizer.h"

#define BYTELEVEL OAIF_FIXTURES "/tokenizer/bytelevel/tokenizer.json"
#define SPIECE    OAIF_FIXTURES "/tokenizer/sp/tokenizer.json"
#define DIGITS    OAIF_FIXTURES "/tokenizer/digits/tokenizer.json"
#define METASPACE OAIF_FIXTURES "/tokenizer/metaspace/tokenizer.json"
#define G         "\xc4\xa0" /* "Ġ": byte-level space */

static tok_t *load(const char *path)
{
    tok_t *t = NULL;
    char err[512] = "";
    int rc = tok_load(&t, path, err, sizeof err);
    if (rc)
        fail_msg("tok_load %s: %s (%d)", path, err, rc);
    return t;
}

/* Encode text and compare with the ids of the given vocabulary strings (NULL-terminated). */
static void expect_tokens(const tok_t *t, const char *text, unsigned flags, const char **toks)
{
    int *ids = NULL;
    size_t n = 0;
    char err[256] = "";
    int rc = tok_encode(t, text, strlen(text), flags, &ids, &n, err, sizeof err);
    if (rc)
        fail_msg("encode \"%s\": %s", text, err);
    size_t want = 0;
    while (toks[want])
        want++;
    bool same = n == want;
    for (size_t i = 0; same && i < n; i++)
        same = ids[i] == tok_id(t, toks[i]);
    if (!same) {
        for (size_t i = 0; i < n; i++) {
            size_t l;
            const char *b = tok_token_bytes(t, ids[i], &l);
            print_error("  got[%zu] = %d \"%.*s\"\n", i, ids[i], (int)l, b);
        }
        for (size_t i = 0; i < want; i++)
            print_error("  want[%zu] = %d \"%s\"\n", i, tok_id(t, toks[i]), toks[i]);
        fail_msg("encode \"%s\": %zu ids, want %zu", text, n, want);
    }
    free(ids);
}

static void expect_ids(const tok_t *t, const char *text, size_t len, unsigned flags,
                       const int *want, size_t nwant)
{
    int *ids = NULL;
    size_t n = 0;
    assert_int_equal(tok_encode(t, text, len, flags, &ids, &n, NULL, 0), ERR_OK);
    assert_int_equal(n, nwant);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(ids[i], want[i]);
    free(ids);
}

static void expect_round_trip(const tok_t *t, const char *text, size_t len)
{
    int *ids = NULL;
    size_t n = 0;
    char err[256] = "";
    int rc = tok_encode(t, text, len, 0, &ids, &n, err, sizeof err);
    if (rc)
        fail_msg("encode: %s", err);
    char *back = NULL;
    size_t blen = 0;
    assert_int_equal(tok_decode(t, ids, n, 0, &back, &blen), ERR_OK);
    if (blen != len || memcmp(back, text, len) != 0)
        fail_msg("round trip of \"%.*s\" gave \"%.*s\"", (int)len, text, (int)blen, back);
    assert_int_equal(back[blen], '\0');
    free(back);
    free(ids);
}

static char *decode(const tok_t *t, const int *ids, size_t n, unsigned flags)
{
    char *s = NULL;
    size_t len = 0;
    assert_int_equal(tok_decode(t, ids, n, flags, &s, &len), ERR_OK);
    assert_int_equal(strlen(s), len);
    return s;
}

/* ---------------------------------------------------------------- byte tokenizer */

static void test_byte_tokenizer_ids_match_default_config(void **state)
{
    (void)state;
    tok_t *t = tok_new_byte();
    assert_non_null(t);
    struct nn_config c;
    nn_config_default(&c);
    assert_int_equal(tok_vocab_size(t), c.vocab_size);
    assert_int_equal(tok_bos_id(t), c.bos_token_id);
    assert_int_equal(tok_eos_id(t), c.eos_token_id);
    assert_int_equal(tok_pad_id(t), c.pad_token_id);
    assert_int_equal(tok_bos_id(t), 256);
    assert_int_equal(tok_eos_id(t), 257);
    assert_int_equal(tok_pad_id(t), 258);
    assert_false(tok_wants_bos(t));
    assert_true(tok_is_special(t, 257));
    assert_false(tok_is_special(t, 65));
    assert_false(tok_is_special(t, 259));
    assert_int_equal(tok_id(t, "<eos>"), 257);
    assert_int_equal(tok_id(t, "A"), 65);
    size_t l;
    assert_memory_equal(tok_token_bytes(t, 257, &l), "<eos>", 5);
    assert_int_equal(l, 5);
    assert_null(tok_token_bytes(t, 259, &l));
    assert_null(tok_token_bytes(t, -1, &l));

    const int hi[] = {104, 105};
    expect_ids(t, "hi", 2, 0, hi, 2);
    const int bos_hi[] = {256, 104, 105};
    expect_ids(t, "hi", 2, TOK_ADD_BOS, bos_hi, 3);
    const int eos_plain[] = {'a', '<', 'e', 'o', 's', '>'};
    expect_ids(t, "a<eos>", 6, 0, eos_plain, 6);
    const int eos_special[] = {'a', 257};
    expect_ids(t, "a<eos>", 6, TOK_PARSE_SPECIAL, eos_special, 2);
    expect_ids(t, "", 0, 0, NULL, 0);

    char all[256];
    for (int i = 0; i < 256; i++)
        all[i] = (char)i;
    expect_round_trip(t, all, sizeof all);

    const int ids[] = {256, 'o', 'k', 257, 258};
    char *s = decode(t, ids, 5, 0);
    assert_string_equal(s, "<bos>ok<eos><pad>");
    free(s);
    s = decode(t, ids, 5, TOK_SKIP_SPECIAL);
    assert_string_equal(s, "ok");
    free(s);
    const int bad[] = {'a', 259};
    char *out = (char *)1;
    assert_int_equal(tok_decode(t, bad, 2, 0, &out, NULL), ERR_INVAL);
    assert_null(out);

    assert_int_equal(tok_set_special_ids(t, -1, 257, 300), ERR_INVAL);
    assert_int_equal(tok_set_special_ids(t, -1, 257, -1), ERR_OK);
    assert_int_equal(tok_bos_id(t), -1);
    expect_ids(t, "hi", 2, TOK_ADD_BOS, hi, 2); /* no bos: nothing prepended */
    tok_destroy(&t);
    assert_null(t);
    tok_destroy(&t);
    tok_destroy(NULL);
}

static void test_prompt_template(void **state)
{
    (void)state;
    tok_t *t = tok_new_byte();
    assert_string_equal(tok_template(t), TOK_DEFAULT_TEMPLATE);
    char *s = NULL;
    assert_int_equal(tok_render_prompt(t, "What is 2+2?", &s), ERR_OK);
    assert_string_equal(s, "Human: What is 2+2?\n\nAssistant:");
    free(s);
    assert_int_equal(tok_set_template(t, "no marker"), ERR_INVAL);
    assert_int_equal(tok_set_template(t, "{prompt} and {prompt}"), ERR_INVAL);
    assert_string_equal(tok_template(t), TOK_DEFAULT_TEMPLATE);
    assert_int_equal(tok_set_template(t, "Q: {prompt}\nA:"), ERR_OK);
    assert_int_equal(tok_render_prompt(t, "{prompt}", &s), ERR_OK);
    assert_string_equal(s, "Q: {prompt}\nA:"); /* the prompt is not re-expanded */
    free(s);
    tok_destroy(&t);
}

/* ---------------------------------------------------------------- byte-level BPE */

static void test_bytelevel_loads_specials_and_config(void **state)
{
    (void)state;
    tok_t *t = load(BYTELEVEL);
    assert_int_equal(tok_vocab_size(t), 284 + 6);
    int eot = tok_id(t, "<|endoftext|>");
    assert_int_equal(eot, 284);
    assert_int_equal(tok_bos_id(t), eot);
    assert_int_equal(tok_eos_id(t), eot);
    assert_int_equal(tok_pad_id(t), tok_id(t, "<|pad|>"));
    assert_false(tok_wants_bos(t));
    assert_true(tok_is_special(t, eot));
    assert_false(tok_is_special(t, tok_id(t, "[NAME]")));
    assert_false(tok_is_special(t, tok_id(t, "hello")));
    assert_string_equal(tok_template(t), "<|user|>{prompt}<|assistant|>");
    assert_int_equal(tok_id(t, "no such token"), -1);
    tok_destroy(&t);
}

static void test_bytelevel_merges_words(void **state)
{
    (void)state;
    tok_t *t = load(BYTELEVEL);
    expect_tokens(t, "hello the world", 0, (const char *[]){"hello", G "the", G "world", NULL});
    /* the lowest rank wins, not the leftmost pair: b a (rank 9) loses to a b (rank 7) */
    expect_tokens(t, "bab", 0, (const char *[]){"b", "ab", NULL});
    /* equal ranks: leftmost first */
    expect_tokens(t, "aaab", 0, (const char *[]){"aa", "ab", NULL});
    expect_tokens(t, "aab", 0, (const char *[]){"aab", NULL});
    expect_tokens(t, "aaaaa", 0, (const char *[]){"aaaa", "a", NULL});
    /* the pre-tokenizer keeps merges inside words: no merge across " t" + "he" pieces */
    expect_tokens(t, "hello,the", 0, (const char *[]){"hello", ",", "t", "he", NULL});
    size_t l;
    int id = tok_id(t, G "the");
    assert_memory_equal(tok_token_bytes(t, id, &l), " the", 4);
    assert_int_equal(l, 4);
    tok_destroy(&t);
}

static void test_bytelevel_unicode_and_emoji(void **state)
{
    (void)state;
    tok_t *t = load(BYTELEVEL);
    /* é = C3 A9 -> "Ã©", merged with "caf" */
    expect_tokens(t, "caf\xc3\xa9", 0, (const char *[]){"caf\xc3\x83\xc2\xa9", NULL});
    /* 日 = E6 97 A5 -> "æĹ¥"; with the space before it one token */
    expect_tokens(t, " \xe6\x97\xa5", 0, (const char *[]){G "\xc3\xa6\xc4\xb9\xc2\xa5", NULL});
    /* 😀 = F0 9F 98 80: no merges, four byte tokens (ids are the byte values here) */
    const int emoji[] = {0xf0, 0x9f, 0x98, 0x80};
    expect_ids(t, "\xf0\x9f\x98\x80", 4, 0, emoji, 4);
    int *ids = NULL;
    size_t n = 0;
    assert_int_equal(tok_encode(t, "\xf0\x9f\x98\x80", 4, 0, &ids, &n, NULL, 0), ERR_OK);
    char *s = decode(t, ids, n, 0);
    assert_string_equal(s, "\xf0\x9f\x98\x80");
    free(s);
    /* a prefix of the emoji's tokens decodes to a prefix of its bytes (streaming) */
    s = decode(t, ids, 2, 0);
    assert_string_equal(s, "\xf0\x9f");
    free(s);
    free(ids);
    tok_destroy(&t);
}

static void test_bytelevel_round_trips_any_bytes(void **state)
{
    (void)state;
    tok_t *t = load(BYTELEVEL);
    const char *texts[] = {
        "Hello, \xe4\xb8\x96\xe7\x95\x8c! \xf0\x9f\x98\x80 caf\xc3\xa9\n\tna\xc3\xafve  spaces  "
        "\r\n",
        "it's 12345 o'clock, they'll   go\n\n\n",
        "  leading and trailing  ",
        "\xff\xfe invalid \xc3 utf-8 \xed\xa0\x80 surrogate \xf4\x90\x80\x80 too big",
        "",
    };
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++)
        expect_round_trip(t, texts[i], strlen(texts[i]));
    char nul[5] = {'a', 0, 'b', 0, 'c'};
    expect_round_trip(t, nul, sizeof nul);
    srand(7);
    char buf[300];
    for (int k = 0; k < 200; k++) {
        size_t len = (size_t)(rand() % 300);
        for (size_t i = 0; i < len; i++)
            buf[i] = (char)(rand() % 256);
        expect_round_trip(t, buf, len);
    }
    tok_destroy(&t);
}

static void test_bytelevel_added_tokens(void **state)
{
    (void)state;
    tok_t *t = load(BYTELEVEL);
    int eot = tok_id(t, "<|endoftext|>");
    expect_tokens(t, "hello<|endoftext|>", TOK_PARSE_SPECIAL,
                  (const char *[]){"hello", "<|endoftext|>", NULL});
    /* special tokens in plain text stay text */
    int *ids = NULL;
    size_t n = 0;
    const char *txt = "hello<|endoftext|>";
    assert_int_equal(tok_encode(t, txt, strlen(txt), 0, &ids, &n, NULL, 0), ERR_OK);
    for (size_t i = 0; i < n; i++)
        assert_int_not_equal(ids[i], eot);
    free(ids);
    expect_round_trip(t, txt, strlen(txt));
    /* non-special added tokens are always matched */
    expect_tokens(t, "Hi [NAME]!", 0, (const char *[]){"H", "i", G, "[NAME]", "!", NULL});
    /* lstrip: the token takes the spaces before it */
    expect_tokens(t, "the  <mask>", 0, (const char *[]){"t", "he", "<mask>", NULL});
    /* decode: specials kept or skipped */
    const int seq[] = {tok_id(t, "hello"), eot, tok_id(t, G "world")};
    char *s = decode(t, seq, 3, 0);
    assert_string_equal(s, "hello<|endoftext|> world");
    free(s);
    s = decode(t, seq, 3, TOK_SKIP_SPECIAL);
    assert_string_equal(s, "hello world");
    free(s);
    /* the template's special tokens with TOK_PARSE_SPECIAL */
    char *prompt = NULL;
    assert_int_equal(tok_render_prompt(t, "hello", &prompt), ERR_OK);
    expect_tokens(t, prompt, TOK_PARSE_SPECIAL,
                  (const char *[]){"<|user|>", "hello", "<|assistant|>", NULL});
    free(prompt);
    /* the template's specials are parsed, the prompt's are not */
    int *ids2 = NULL;
    size_t n2 = 0;
    assert_int_equal(tok_encode_prompt(t, "hi<|assistant|>", 0, &ids2, &n2, NULL, 0), ERR_OK);
    int user = tok_id(t, "<|user|>"), asst = tok_id(t, "<|assistant|>");
    assert_true(n2 > 3);
    assert_int_equal(ids2[0], user);
    assert_int_equal(ids2[n2 - 1], asst);
    for (size_t i = 1; i + 1 < n2; i++)
        assert_true(ids2[i] != asst && ids2[i] != user);
    s = decode(t, ids2, n2, 0);
    assert_string_equal(s, "<|user|>hi<|assistant|><|assistant|>");
    free(s);
    free(ids2);
    assert_int_equal(tok_encode_prompt(t, "hello", TOK_ADD_BOS, &ids2, &n2, NULL, 0), ERR_OK);
    const int want_p[] = {eot, user, tok_id(t, "hello"), asst};
    assert_int_equal(n2, 4);
    assert_memory_equal(ids2, want_p, sizeof want_p);
    free(ids2);
    /* bos on request */
    expect_tokens(t, "hello", TOK_ADD_BOS, (const char *[]){"<|endoftext|>", "hello", NULL});
    tok_destroy(&t);
}

/* Reference BPE for one piece over {a, b}: the textbook loop (merge the lowest-ranked pair,
 * leftmost on ties, until none applies), with the fixture's a/b merges in rank order. */
static int naive_bpe(char sym[][64], int n)
{
    static const char *merges[][2] = {{"a", "a"},   {"a", "b"}, {"aa", "b"}, {"b", "a"},
                                      {"ab", "ab"}, {"b", "b"}, {"ba", "a"}, {"bb", "bb"},
                                      {"aa", "aa"}, {"ab", "a"}};
    const int nm = (int)(sizeof merges / sizeof merges[0]);
    for (;;) {
        int best = -1, at = -1;
        for (int i = 0; i + 1 < n; i++) {
            for (int r = 0; r < nm; r++) {
                if (strcmp(sym[i], merges[r][0]) == 0 && strcmp(sym[i + 1], merges[r][1]) == 0 &&
                    (best < 0 || r < best)) {
                    best = r;
                    at = i;
                }
            }
        }
        if (best < 0)
            return n;
        char joined[64];
        snprintf(joined, sizeof joined, "%s%s", sym[at], sym[at + 1]);
        memcpy(sym[at], joined, sizeof joined);
        memmove(sym[at + 1], sym[at + 2], (size_t)(n - at - 2) * sizeof sym[0]);
        n--;
    }
}

static void test_bytelevel_heap_merge_matches_textbook_bpe(void **state)
{
    (void)state;
    tok_t *t = load(BYTELEVEL);
    static char sym[200][64];
    char text[201];
    srand(11);
    for (int k = 0; k < 300; k++) {
        int len = 1 + rand() % 200;
        for (int i = 0; i < len; i++) {
            text[i] = rand() % 3 ? 'a' : 'b';
            sym[i][0] = text[i];
            sym[i][1] = '\0';
        }
        text[len] = '\0';
        int m = naive_bpe(sym, len);
        int *ids = NULL;
        size_t n = 0;
        assert_int_equal(tok_encode(t, text, (size_t)len, 0, &ids, &n, NULL, 0), ERR_OK);
        if ((int)n != m)
            fail_msg("\"%s\": %zu tokens, reference %d", text, n, m);
        for (int i = 0; i < m; i++)
            assert_int_equal(ids[i], tok_id(t, sym[i]));
        free(ids);
    }
    tok_destroy(&t);
}

static void test_bytelevel_long_word_is_fast(void **state)
{
    (void)state;
    tok_t *t = load(BYTELEVEL);
    size_t len = 200000;
    char *text = malloc(len);
    assert_non_null(text);
    memset(text, 'a', len);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int *ids = NULL;
    size_t n = 0;
    assert_int_equal(tok_encode(t, text, len, 0, &ids, &n, NULL, 0), ERR_OK);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double s = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
    assert_int_equal(n, len / 4);
    int aaaa = tok_id(t, "aaaa");
    for (size_t i = 0; i < n; i++)
        assert_int_equal(ids[i], aaaa);
    /* O(n log n): well under a second even under sanitizers; O(n^2) rescans would take minutes */
    if (s > 2.0)
        fail_msg("200k-byte word took %.2f s", s);
    free(ids);
    free(text);
    tok_destroy(&t);
}

/* ---------------------------------------------------------------- SentencePiece-style BPE */

static void test_sp_words_prefix_space_and_bos(void **state)
{
    (void)state;
    tok_t *t = load(SPIECE);
    assert_int_equal(tok_bos_id(t), 1);
    assert_int_equal(tok_eos_id(t), 2);
    assert_int_equal(tok_pad_id(t), -1);
    assert_true(tok_wants_bos(t));
    expect_tokens(t, "hello world", 0,
                  (const char *[]){"\xe2\x96\x81hello", "\xe2\x96\x81world", NULL});
    expect_tokens(t, "hello world", TOK_ADD_BOS,
                  (const char *[]){"<s>", "\xe2\x96\x81hello", "\xe2\x96\x81world", NULL});
    expect_tokens(t, "caf\xc3\xa9 hi", 0,
                  (const char *[]){"\xe2\x96\x81"
                                   "caf\xc3\xa9",
                                   "\xe2\x96\x81hi", NULL});
    size_t l;
    const char *b = tok_token_bytes(t, tok_id(t, "\xe2\x96\x81hello"), &l);
    assert_int_equal(l, 6);
    assert_memory_equal(b, " hello", 6);
    const int ids[] = {1, tok_id(t, "\xe2\x96\x81hello"), tok_id(t, "\xe2\x96\x81world"), 2};
    char *s = decode(t, ids, 4, TOK_SKIP_SPECIAL);
    assert_string_equal(s, "hello world"); /* the prefix space is stripped */
    free(s);
    s = decode(t, ids, 4, 0);
    assert_string_equal(s, "<s> hello world</s>");
    free(s);
    expect_tokens(t, "<s>hello", TOK_PARSE_SPECIAL,
                  (const char *[]){"<s>", "\xe2\x96\x81hello", NULL});
    tok_destroy(&t);
}

static void test_sp_byte_fallback_and_unk(void **state)
{
    (void)state;
    tok_t *t = load(SPIECE);
    /* 😀 is not in the vocabulary: its bytes as <0xNN> */
    expect_tokens(t, "\xf0\x9f\x98\x80", 0,
                  (const char *[]){"\xe2\x96\x81", "<0xF0>", "<0x9F>", "<0x98>", "<0x80>", NULL});
    /* b and \n fall back; the fixture has no <0xFF>: 0xff bytes become one fused <unk> */
    expect_tokens(t, "a\nb", 0, (const char *[]){"\xe2\x96\x81", "a", "<0x0A>", "<0x62>", NULL});
    expect_tokens(t, "\xff\xffhi", 0, (const char *[]){"\xe2\x96\x81", "<unk>", "h", "i", NULL});
    const char *rt = "\xf0\x9f\x98\x80 a\nb hello world";
    expect_round_trip(t, rt, strlen(rt));
    rt = "caf\xc3\xa9 \xe4\xb8\x96\xe7\x95\x8c";
    expect_round_trip(t, rt, strlen(rt));
    size_t l;
    const char *b = tok_token_bytes(t, tok_id(t, "<0x0A>"), &l);
    assert_int_equal(l, 1);
    assert_int_equal(b[0], '\n');
    tok_destroy(&t);
}

static void test_digits_then_bytelevel_regex(void **state)
{
    (void)state;
    tok_t *t = load(DIGITS);
    /* digits are pieces of their own, so neither "Ġ 1" nor "1 2" can merge */
    expect_tokens(t, "x 123", 0, (const char *[]){"x", G, "1", "2", "3", NULL});
    /* the GPT-2 regex keeps the space with the word; "Ġ x" (rank 2) beats "x y" (rank 3) */
    expect_tokens(t, " xy", 0, (const char *[]){G "x", "y", NULL});
    expect_tokens(t, "xy 12", 0, (const char *[]){"xy", G, "1", "2", NULL});
    expect_round_trip(t, "a1b22 c333\n", strlen("a1b22 c333\n"));
    tok_destroy(&t);
}

static void test_metaspace_pre_tokenizer_and_decoder(void **state)
{
    (void)state;
    tok_t *t = load(METASPACE);
    expect_tokens(t, "hello world", 0,
                  (const char *[]){"\xe2\x96\x81hello", "\xe2\x96\x81world", NULL});
    /* prepend_scheme "first": only the segment at the start of the text gets the marker */
    expect_tokens(t, "<s>hello", TOK_PARSE_SPECIAL, (const char *[]){"<s>", "h", "el", "lo", NULL});
    expect_tokens(t, "  hi", 0, (const char *[]){"\xe2\x96\x81", "\xe2\x96\x81hi", NULL});
    const int ids[] = {tok_id(t, "\xe2\x96\x81hello"), tok_id(t, "\xe2\x96\x81world")};
    char *s = decode(t, ids, 2, 0);
    assert_string_equal(s, "hello world");
    free(s);
    const char *rt = "caf\xc3\xa9 \xf0\x9f\x98\x80 world";
    expect_round_trip(t, rt, strlen(rt));
    tok_destroy(&t);
}

/* ---------------------------------------------------------------- errors */

struct dir {
    char path[64];
    char file[128];
};

static int setup_dir(void **state)
{
    struct dir *d = calloc(1, sizeof *d);
    if (!d)
        return -1;
    snprintf(d->path, sizeof d->path, "/tmp/test_nn_tok.XXXXXX");
    if (!mkdtemp(d->path)) {
        free(d);
        return -1;
    }
    snprintf(d->file, sizeof d->file, "%s/tokenizer.json", d->path);
    *state = d;
    return 0;
}

static int teardown_dir(void **state)
{
    struct dir *d = *state;
    unlink(d->file);
    rmdir(d->path);
    free(d);
    return 0;
}

static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    assert_int_equal(fclose(f), 0);
}

static void expect_load_fails(const char *path, const char *json, int want_rc, const char *want)
{
    write_text(path, json);
    tok_t *t = (tok_t *)1;
    char err[512] = "";
    int rc = tok_load(&t, path, err, sizeof err);
    if (rc != want_rc || !strstr(err, want) || !strstr(err, path))
        fail_msg("rc %d (want %d), err \"%s\" (want \"%s\" and the path)", rc, want_rc, err, want);
    assert_null(t);
}

#define MODEL(vocab, merges)                                                                       \
    "{\"model\": {\"type\": \"BPE\", \"vocab\": " vocab ", \"merges\": " merges
#define ABV "{\"a\": 0, \"b\": 1, \"ab\": 2}"

static void test_load_errors_name_file_and_reason(void **state)
{
    struct dir *d = *state;
    const char *p = d->file;
    char missing[256], err[512] = "";
    snprintf(missing, sizeof missing, "%s/absent.json", d->path);
    tok_t *t = NULL;
    assert_int_equal(tok_load(&t, missing, err, sizeof err), ERR_NOTFOUND);
    assert_non_null(strstr(err, missing));
    assert_int_equal(tok_load(&t, d->path, err, sizeof err), ERR_IO);

    expect_load_fails(p, "{\"model\": {\"type\": \"BPE\",", ERR_PROTO, "not valid JSON");
    expect_load_fails(p, "[]", ERR_INVAL, "not a JSON object");
    expect_load_fails(p, "{\"version\": \"1.0\"}", ERR_INVAL, "no \"model\"");
    expect_load_fails(p, "{\"model\": {\"type\": \"WordPiece\", \"vocab\": {\"a\": 0}}}", ERR_INVAL,
                      "unsupported model type \"WordPiece\"");
    expect_load_fails(p, "{\"model\": {\"type\": \"Unigram\", \"vocab\": [[\"a\", 0.0]]}}",
                      ERR_INVAL, "unsupported model type \"Unigram\"");
    expect_load_fails(p, MODEL("{}", "[]") "}}", ERR_INVAL, "model.vocab");
    expect_load_fails(p, MODEL("{\"a\": -1}", "[]") "}}", ERR_INVAL, "model.vocab[\"a\"]");
    expect_load_fails(p, MODEL("{\"a\": 0, \"b\": 0}", "[]") "}}", ERR_INVAL,
                      "id 0 is given to \"a\" and \"b\"");
    expect_load_fails(p, MODEL(ABV, "[\"a c\"]") "}}", ERR_INVAL,
                      "model.merges[0] (\"a\" + \"c\"): \"c\" is not in the vocabulary");
    expect_load_fails(p, MODEL(ABV, "[\"a b\", [\"b\", \"a\"]]") "}}", ERR_INVAL,
                      "model.merges[1] (\"b\" + \"a\"): \"ba\" is not in the vocabulary");
    expect_load_fails(p, MODEL(ABV, "[\"a b c\"]") "}}", ERR_INVAL, "model.merges[0]: must be");
    expect_load_fails(p, MODEL(ABV, "[[\"a\"]]") "}}", ERR_INVAL, "model.merges[0]: must be");
    expect_load_fails(p, MODEL(ABV, "[]") ", \"unk_token\": \"<unk>\"}}", ERR_INVAL,
                      "unk_token \"<unk>\"");
    expect_load_fails(p, MODEL(ABV, "[]") "}, \"pre_tokenizer\": {\"type\": \"Whitespace\"}}",
                      ERR_INVAL, "unsupported pre_tokenizer type \"Whitespace\"");
    expect_load_fails(p,
                      MODEL(ABV, "[]") "}, \"pre_tokenizer\": {\"type\": \"Split\", \"pattern\":"
                                       " {\"Regex\": \"(\\\\p{L\"}, \"behavior\": \"Isolated\"}}",
                      ERR_INVAL, "regex");
    expect_load_fails(p, MODEL(ABV, "[]") "}, \"normalizer\": {\"type\": \"Lowercase\"}}",
                      ERR_INVAL, "unsupported normalizer type \"Lowercase\"");
    expect_load_fails(p, MODEL(ABV, "[]") "}, \"decoder\": {\"type\": \"WordPiece\"}}", ERR_INVAL,
                      "unsupported decoder type \"WordPiece\"");
    expect_load_fails(p, MODEL(ABV, "[]") "}, \"added_tokens\": [{\"id\": 5}]}", ERR_INVAL,
                      "added_tokens[0]");
}

static void test_minimal_tokenizer_and_unrepresentable_byte(void **state)
{
    struct dir *d = *state;
    write_text(d->file, MODEL(ABV, "[[\"a\", \"b\"]]") "}}");
    tok_t *t = load(d->file);
    assert_int_equal(tok_vocab_size(t), 3);
    assert_int_equal(tok_bos_id(t), -1);
    assert_int_equal(tok_eos_id(t), -1);
    const int ab[] = {2, 0};
    expect_ids(t, "aba", 3, 0, ab, 2);
    int *ids = (int *)1;
    size_t n = 9;
    char err[256] = "";
    assert_int_equal(tok_encode(t, "abc", 3, 0, &ids, &n, err, sizeof err), ERR_INVAL);
    assert_null(ids);
    assert_int_equal(n, 0);
    assert_non_null(strstr(err, "0x63"));
    tok_destroy(&t);
    /* ignore_merges (Llama 3): a word in the vocabulary is one token even where merges would
     * not build it */
    write_text(d->file, MODEL("{\"a\": 0, \"b\": 1, \"ab\": 2, \"bab\": 3}",
                              "[\"a b\"]") ", \"ignore_merges\": true}}");
    t = load(d->file);
    const int bab[] = {3};
    expect_ids(t, "bab", 3, 0, bab, 1);
    const int babab[] = {1, 2, 2};
    expect_ids(t, "babab", 5, 0, babab, 3);
    tok_destroy(&t);
    write_text(d->file, MODEL("{\"a\": 0, \"b\": 1, \"ab\": 2, \"bab\": 3}", "[\"a b\"]") "}}");
    t = load(d->file);
    const int b_ab[] = {1, 2};
    expect_ids(t, "bab", 3, 0, b_ab, 2);
    tok_destroy(&t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_byte_tokenizer_ids_match_default_config),
        cmocka_unit_test(test_prompt_template),
        cmocka_unit_test(test_bytelevel_loads_specials_and_config),
        cmocka_unit_test(test_bytelevel_merges_words),
        cmocka_unit_test(test_bytelevel_unicode_and_emoji),
        cmocka_unit_test(test_bytelevel_round_trips_any_bytes),
        cmocka_unit_test(test_bytelevel_added_tokens),
        cmocka_unit_test(test_bytelevel_heap_merge_matches_textbook_bpe),
        cmocka_unit_test(test_bytelevel_long_word_is_fast),
        cmocka_unit_test(test_sp_words_prefix_space_and_bos),
        cmocka_unit_test(test_sp_byte_fallback_and_unk),
        cmocka_unit_test(test_digits_then_bytelevel_regex),
        cmocka_unit_test(test_metaspace_pre_tokenizer_and_decoder),
        cmocka_unit_test_setup_teardown(test_load_errors_name_file_and_reason, setup_dir,
                                        teardown_dir),
        cmocka_unit_test_setup_teardown(test_minimal_tokenizer_and_unrepresentable_byte, setup_dir,
                                        teardown_dir),
    };
    return cmocka_run_group_tests_name("nn_tokenizer", tests, NULL, NULL);
}
