/* template.h - judge prompt templates: files with a system part, a user part, the two answer
 * tokens of the forced choice, and placeholders for the prompt, both responses and an optional
 * instruction. Rendered as plain text: no chat markup and no model special tokens (the server
 * applies its own chat template).
 *
 * File format (UTF-8 text):
 *   # comment lines (only before the first section)
 *   @answers 1 2        the first-response and second-response answer tokens (default "1 2")
 *   @verdict GRAMMAR    where the judge must write its verdict (default "alone"): one of
 *                         alone              the whole answer is the token ("1", "**1**")
 *                         last-line PREFIX   the last non-empty line is "PREFIX token", e.g.
 *                                            `@verdict last-line Preferred:` for a judge that
 *                                            reasons first and ends with "Preferred: 1" (the
 *                                            token alone on that line also counts)
 *                         marker PREFIX      "PREFIX token" anywhere, the last one wins
 *                         json KEY           a JSON object {"KEY": "1", ...}
 *                       (wire.h has the details). The soft probability is read from the log-probs
 *                       of the token that wrote the verdict, nowhere else; an answer without a
 *                       verdict in its place, or cut off at the token limit, is a failed judgement
 *                       (never a label). The prompt must tell the judge the same rule.
 *   @system             the lines after it, up to the next section, are the system message
 *   @user               the lines after it, to the end or the next section, are the user message
 * Placeholders: {{prompt}} {{response_1}} {{response_2}} {{instruction}}; a block
 * {{#instruction}} ... {{/instruction}} is kept only when the instruction is non-empty. The
 * template must use each of {{prompt}}, {{response_1}} and {{response_2}} at least once.
 * Trailing newlines of a part are dropped, so a user part can end in
 * "Preferred Response=". Substitution is one pass: text inserted is never re-scanned. */
#ifndef TEMPLATE_H
#define TEMPLATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sha256.h"
#include "wire.h"

#define TEMPLATE_ANSWER_MAX 16 /* bytes of an answer token, NUL included */

struct template
{
    char *name;                           /* file path or the name given to parse */
    char *system;                         /* NULL when the file has no @system part */
    char *user;                           /* never NULL */
    char answers[2][TEMPLATE_ANSWER_MAX]; /* [0] means response 1 is better */
    struct wire_grammar verdict;          /* where the judge writes the verdict (@verdict) */
    uint8_t digest[SHA256_DIGEST_LEN];    /* sha256 of the file's bytes: template identity */
};

/* Reads and parses the file at path. On ERR_OK *out owns the template (template_free()). On
 * ERR_INVAL / ERR_IO / ERR_TOOBIG (over 256 KiB) writes "path:line: reason" to why. */
int template_load(struct template **out, const char *path, char *why, size_t whylen);

/* Parses text[0..len) as a template called name (for messages). Errors as template_load(). */
int template_parse(struct template **out, const char *name, const char *text, size_t len, char *why,
                   size_t whylen);

/* Frees; sets *t to NULL. Accepts t == NULL and *t == NULL. */
void template_free(struct template **t);

/* Renders both parts for the responses shown in the order (r1, r2). instruction may be NULL or
 * "". With strip_special, each inserted text has model special-token markup ("<|...|>", "<s>",
 * "</s>", "[INST]", "[/INST]") removed, so a response cannot smuggle chat control tokens to the
 * judge. On ERR_OK *system_out (NULL if no system part) and *user_out are malloc'd (caller
 * frees). Returns ERR_INVAL for a NULL prompt or response, ERR_NOMEM. */
int template_render(const struct template *t, const char *instruction, const char *prompt,
                    const char *r1, const char *r2, bool strip_special, char **system_out,
                    char **user_out);

/* Removes special-token markup from s in place (see template_render()); returns the new length. */
size_t template_strip_special(char *s);

#endif /* TEMPLATE_H */
