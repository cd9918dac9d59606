/* prompts.h - one line of a prompts file, as `oaif import prompts FILE.jsonl` reads it: a JSON
 * object {"prompt" (or "text"), "id"?, "reference" (or "answer")?, "family"?, "split"?,
 * "instruction"?, "meta"?}. Every field is checked (known, of its type, the id 1 to 256 bytes,
 * the prompt not empty) before the line becomes a Prompt record; a line without an id gets the
 * digest of its text ("p-" and 24 hex digits), so the same file imported twice adds nothing.
 * Apart from cmd_import.c so that tests/fuzz reaches it without the rest of the CLI. */
#ifndef PROMPTS_H
#define PROMPTS_H

#include <jansson.h>
#include <stddef.h>

/* A cli_jsonl_fn: checks line object o and packs it as a Prompt record onto ctx, a struct
 * cli_packed_list. ERR_OK; ERR_INVAL with "where: field \"...\": reason" in err; ERR_NOMEM. */
int prompts_line(void *ctx, json_t *o, const char *where, char *err, size_t errlen);

#endif /* PROMPTS_H */
