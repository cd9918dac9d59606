/* tokenizer.h - text to token ids and back, for the engine.
 * Two kinds behind one opaque handle:
 *  - the byte tokenizer of the built-in model: ids 0..255 are the bytes themselves, then
 *    TOK_BYTE_BOS (256) "<bos>", TOK_BYTE_EOS (257) "<eos>", TOK_BYTE_PAD (258) "<pad>";
 *    vocabulary TOK_BYTE_VOCAB (259), as nn_config_default says;
 *  - BPE from a Hugging Face tokenizer.json: byte-level BPE (GPT-2, Llama 3, SmolLM: ByteLevel
 *    pre-tokenizer or a Split regex run with PCRE2 in UTF-8 + UCP mode, the GPT-2 byte-to-
 *    unicode map) and SentencePiece-style BPE (Llama 2, TinyLlama: "▁" for spaces, <0xNN> byte
 *    fallback); merges as "a b" strings or ["a", "b"] pairs; added tokens matched in the text
 *    before pre-tokenization. bos/eos/pad come from tokenizer_config.json beside the file when
 *    present, else from well-known special token names; tok_set_special_ids overrides them
 *    (config.json's ids win).
 * Plus a prompt template ("Human: {prompt}\n\nAssistant:" by default).
 * A tok_t is immutable after loading except for the setters; concurrent encode/decode calls on
 * one tok_t are safe. Not for: normalizers beyond the Llama 2 prepend/replace pair (NFC is
 * treated as identity with a warning), WordPiece or Unigram models, chat templates in Jinja. */
#ifndef NN_TOKENIZER_H
#define NN_TOKENIZER_H

#include <stdbool.h>
#include <stddef.h>

#define TOK_BYTE_BOS   256
#define TOK_BYTE_EOS   257
#define TOK_BYTE_PAD   258
#define TOK_BYTE_VOCAB 259

#define TOK_DEFAULT_TEMPLATE "Human: {prompt}\n\nAssistant:"

/* tok_encode flags */
#define TOK_ADD_BOS 1u /* prepend the bos id (if the tokenizer has one) */
#define TOK_PARSE_SPECIAL                                                                          \
    2u /* match special added tokens in the text ("<eos>" becomes the eos                          \
          id); without it, they are encoded as plain text. Non-special                             \
          added tokens are always matched. */
/* tok_decode flags */
#define TOK_SKIP_SPECIAL 1u /* leave special tokens (bos, eos, pad, ...) out of the text */

typedef struct tok tok_t;

/* The byte tokenizer with the default template; NULL if out of memory. */
tok_t *tok_new_byte(void);
/* Load a tokenizer.json. On ERR_OK *out owns it (tok_destroy). ERR_NOTFOUND (no file), ERR_IO,
 * ERR_PROTO (not JSON), ERR_INVAL (JSON but not a tokenizer we support: unknown model type,
 * missing vocab, a merge naming an unknown token, a regex PCRE2 rejects); err names the file and
 * the reason. */
int tok_load(tok_t **out, const char *path, char *err, size_t errlen);
/* Accepts t == NULL and *t == NULL; sets *t to NULL. */
void tok_destroy(tok_t **t);

/* Ids are 0..tok_vocab_size()-1 (the largest id plus one, added tokens included). */
int tok_vocab_size(const tok_t *t);
/* Special ids, -1 when the tokenizer has none. */
int tok_bos_id(const tok_t *t);
int tok_eos_id(const tok_t *t);
int tok_pad_id(const tok_t *t);
/* Override the special ids (-1: none). ERR_INVAL if an id is out of range. */
int tok_set_special_ids(tok_t *t, int bos, int eos, int pad);
/* Whether the tokenizer.json's post-processor prepends bos (Llama); false for the byte
 * tokenizer. A hint for callers choosing TOK_ADD_BOS. */
bool tok_wants_bos(const tok_t *t);
/* True for added tokens marked special (and the byte tokenizer's three). */
bool tok_is_special(const tok_t *t, int id);
/* The id of the token whose vocabulary string is exactly `token` (as written in
 * tokenizer.json, e.g. "<|eot_id|>" or "Ġthe"), or -1. */
int tok_id(const tok_t *t, const char *token);

/* Encode len bytes of text (any bytes; invalid UTF-8 is encoded byte by byte where the
 * vocabulary allows). On ERR_OK *ids is a malloc'd array of *n ids the caller frees (never NULL,
 * even for *n == 0). ERR_INVAL if a byte cannot be represented (a BPE vocabulary without that
 * byte's token and without byte fallback; err names it). */
int tok_encode(const tok_t *t, const char *text, size_t len, unsigned flags, int **ids, size_t *n,
               char *err, size_t errlen);
/* Decode n ids. On ERR_OK *text is a malloc'd, NUL-terminated string of *len bytes (which may
 * end inside a UTF-8 sequence if the ids do); the caller frees it. ERR_INVAL on an id outside
 * the vocabulary. */
int tok_decode(const tok_t *t, const int *ids, size_t n, unsigned flags, char **text, size_t *len);
/* The bytes a token stands for in the output (for stop strings and streaming): borrowed until
 * tok_destroy, *len set; NULL for an id outside the vocabulary. Special tokens give their
 * content ("<eos>"). A SentencePiece-style word-start token gives its leading space (the decoder
 * strips only the very first space of a text). */
const char *tok_token_bytes(const tok_t *t, int id, size_t *len);

/* Set the prompt template: `tmpl` must contain "{prompt}" exactly once. ERR_INVAL otherwise,
 * ERR_NOMEM. */
int tok_set_template(tok_t *t, const char *tmpl);
/* The template, borrowed until the next tok_set_template or tok_destroy. */
const char *tok_template(const tok_t *t);
/* The template with {prompt} replaced by `prompt`: *out is malloc'd, the caller frees it. */
int tok_render_prompt(const tok_t *t, const char *prompt, char **out);

#endif /* NN_TOKENIZER_H */
