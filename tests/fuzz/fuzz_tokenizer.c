/* fuzz_tokenizer.c - a tokenizer.json as common/nn/tokenizer.c loads it (a model directory is
 * outside bytes: downloaded, copied, hand-edited). The input is written to a scratch file and
 * loaded with tok_load; a tokenizer that loads then encodes a few texts (ASCII, multi-byte UTF-8,
 * invalid UTF-8, special-token names), every id it gives must be inside the vocabulary, and the
 * ids decode; every token's bytes are read. */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "fuzz.h"
#include "tokenizer.h"

static const char *const texts[] = {
    "Hello, world! 123 4567",
    "na\xc3\xafve caf\xc3\xa9 \xe2\x80\x94 \xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x99\x82",
    "\xff\xfe\xc3 broken \xe2\x82",
    "<eos><bos> <|endoftext|><s></s> <unk>",
    "  two  spaces\n\ttab\r\n",
    "",
};

static void encode_decode(const tok_t *t, const char *text, unsigned flags)
{
    int *ids = NULL;
    size_t n = 0;
    char err[512];
    int rc = tok_encode(t, text, strlen(text), flags, &ids, &n, err, sizeof err);
    if (rc == ERR_OK) {
        int v = tok_vocab_size(t);
        for (size_t i = 0; i < n; i++)
            if (ids[i] < 0 || ids[i] >= v)
                fuzz_fail("tok_encode: id %d outside the vocabulary of %d", ids[i], v);
        char *out = NULL;
        size_t len = 0;
        if (tok_decode(t, ids, n, TOK_SKIP_SPECIAL, &out, &len) == ERR_OK) {
            if (strlen(out) > len)
                fuzz_fail("tok_decode: %zu bytes said, %zu before the NUL", len, strlen(out));
            free(out);
        }
    }
    free(ids);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = fuzz_file("tokenizer.json", data, size);
    tok_t *t = NULL;
    char err[1024];
    if (tok_load(&t, path, err, sizeof err) != ERR_OK)
        return 0;
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
        encode_decode(t, texts[i], TOK_ADD_BOS | TOK_PARSE_SPECIAL);
        encode_decode(t, texts[i], 0);
    }
    int *ids = NULL;
    size_t n = 0;
    if (tok_encode_prompt(t, "What is 2+2? <eos>", TOK_ADD_BOS, &ids, &n, err, sizeof err) ==
        ERR_OK)
        free(ids);
    int v = tok_vocab_size(t);
    for (int id = -1; id <= v && id < 1 << 16; id++) {
        size_t len = 0;
        const char *b = tok_token_bytes(t, id, &len);
        if ((id < 0 || id >= v) && b)
            fuzz_fail("tok_token_bytes: bytes for id %d outside the vocabulary of %d", id, v);
        if (b && len) {
            volatile char last = b[len - 1]; /* the whole length is readable (ASan) */
            (void)last;
        }
        tok_is_special(t, id);
    }
    tok_destroy(&t);
    return 0;
}
