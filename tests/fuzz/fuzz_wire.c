/* fuzz_wire.c - a judge's HTTP response body as services/annotator-proxy reads it. The first byte
 * picks the API (bit 0: OpenAI chat completions or Anthropic Messages), the template's verdict
 * grammar (bits 1-2: alone, last-line, marker, json) and its answer tokens (bits 3-4); the rest is
 * the body, handed to wire_parse and wire_error_permanent as exactly its bytes (no NUL after
 * them). A parsed answer's verdict is looked for (wire_find_verdict: its place inside the text,
 * its log-probs giving a probability in [0, 1]) and its text excerpted. The body's first line is
 * also read as a `@verdict` argument (wire_grammar_parse), and a grammar must read back from what
 * wire_grammar_str writes. */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "fuzz.h"
#include "wire.h"

static const char tokens[4][2][16] = {{"A", "B"}, {"1", "2"}, {"Yes", "No"}, {"a", "aa"}};
static const char *const grammars[4] = {
    "alone", "last-line Preferred:", "marker Preferred Response=", "json preferred"};

static void grammar_round_trip(const char *spec)
{
    struct wire_grammar g, back;
    char why[256], str[256];
    if (wire_grammar_parse(spec, &g, why, sizeof why) != ERR_OK)
        return;
    wire_grammar_str(&g, str, sizeof str);
    if (wire_grammar_parse(str, &back, why, sizeof why) != ERR_OK)
        fuzz_fail("grammar \"%s\" writes \"%s\", which does not parse: %s", spec, str, why);
    if (back.mode != g.mode || strcmp(back.key, g.key) != 0)
        fuzz_fail("grammar \"%s\" writes \"%s\", which reads back another", spec, str);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    enum wire_format f = data[0] & 1 ? WIRE_ANTHROPIC : WIRE_OPENAI;
    const char *gspec = grammars[(data[0] >> 1) & 3];
    const char(*answers)[16] = tokens[(data[0] >> 3) & 3];
    struct wire_grammar g;
    char why[256];
    if (wire_grammar_parse(gspec, &g, why, sizeof why) != ERR_OK)
        fuzz_fail("the grammar \"%s\" does not parse: %s", gspec, why);
    size_t len = size - 1;
    /* exactly len bytes: a parser that reads past them is caught by ASan */
    char *body = malloc(len ? len : 1);
    if (!body)
        abort();
    memcpy(body, data + 1, len);
    struct wire_answer a;
    memset(&a, 0, sizeof a);
    bool permanent = false;
    int rc = wire_parse(f, body, len, &a, &permanent, why, sizeof why);
    if (rc == ERR_OK) {
        if (!a.text)
            fuzz_fail("wire_parse: ERR_OK without a text");
        struct wire_verdict v;
        if (wire_find_verdict(&a, &g, answers, &v, why, sizeof why) == ERR_OK) {
            if (v.choice != 0 && v.choice != 1)
                fuzz_fail("wire_find_verdict: choice %d", v.choice);
            if (v.offset > strlen(a.text) || v.line < 1 || v.column < 1)
                fuzz_fail("wire_find_verdict: offset %zu (line %u, column %u) in %zu bytes",
                          v.offset, v.line, v.column, strlen(a.text));
            if (v.has_logprobs) {
                double p = wire_prob_first(v.lp);
                if (!(p >= 0 && p <= 1))
                    fuzz_fail("wire_prob_first: %g from log-probs %g and %g", p, v.lp[0], v.lp[1]);
            }
        }
        char ex[64];
        wire_excerpt(ex, sizeof ex, a.text);
        if (strlen(ex) >= sizeof ex)
            fuzz_fail("wire_excerpt: %zu bytes in %zu", strlen(ex), sizeof ex);
        wire_answer_free(&a);
    }
    char kind[64];
    wire_error_permanent(body, len, kind, sizeof kind);
    /* the body's first line as a template's `@verdict` argument */
    char *text = fuzz_strndup(data + 1, len);
    text[strcspn(text, "\n")] = '\0';
    grammar_round_trip(text);
    free(text);
    free(body);
    return 0;
}
