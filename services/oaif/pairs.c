/* pairs.c - see pairs.h. */
#include "pairs.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "sha256.h"
#include "utf8.h"

static const char HUMAN[] = "\n\nHuman:";
static const char ASSISTANT[] = "\n\nAssistant:";
#define HUMAN_LEN     (sizeof HUMAN - 1)
#define ASSISTANT_LEN (sizeof ASSISTANT - 1)

#define PAIRS_MAX_SCORES 1024 /* ensemble members in a Part II row; the paper used 10 */

const char *pairs_format_name(enum pairs_format f)
{
    switch (f) {
    case PAIRS_FORMAT_HH:
        return "hh";
    case PAIRS_FORMAT_TRL:
        return "trl";
    case PAIRS_FORMAT_PART2:
        return "part2";
    case PAIRS_FORMAT_TLDR:
        return "tldr";
    default:
        return "auto";
    }
}

const char *pairs_reason_name(enum pairs_reason r)
{
    static const char *const names[PAIRS_N_REASONS] = {
        [PAIRS_OK] = "ok",
        [PAIRS_BAD_JSON] = "not valid JSON",
        [PAIRS_BAD_UTF8] = "invalid UTF-8",
        [PAIRS_MISSING] = "missing field",
        [PAIRS_WRONG_TYPE] = "wrong type",
        [PAIRS_BAD_VALUE] = "bad value",
        [PAIRS_BAD_TRANSCRIPT] = "malformed transcript",
        [PAIRS_PROMPT_DIFFERS] = "prompts differ",
        [PAIRS_EMPTY] = "empty prompt or response",
        [PAIRS_IDENTICAL] = "identical responses",
        [PAIRS_TOO_BIG] = "over the size limit",
    };
    return r >= 0 && r < PAIRS_N_REASONS ? names[r] : "out of memory";
}

const char *pairs_skip_name(enum pairs_skip s)
{
    static const char *const names[PAIRS_SKIP_N] = {
        [PAIRS_WRITTEN] = "written",
        [PAIRS_SKIP_UNLABELED] = "unlabeled",
        [PAIRS_SKIP_TIE] = "ties",
        [PAIRS_SKIP_SHAPE] = "not two responses",
        [PAIRS_SKIP_UNREADABLE] = "would not read back the same",
    };
    return s >= 0 && s < PAIRS_SKIP_N ? names[s] : "?";
}

void pairs_item_clear(struct pairs_item *it)
{
    free(it->prompt);
    free(it->chosen);
    free(it->rejected);
    free(it->chosen_scores);
    free(it->rejected_scores);
    memset(it, 0, sizeof *it);
}

/* ---- reading one row ---------------------------------------------------------------------- */

/* Writes the reason into msg and gives r: `return fail(msg, msglen, PAIRS_MISSING, "...", ...);`.
 * A macro rather than a function so that the analyzers see which reason comes back. */
#define fail(msg, msglen, r, ...) (snprintf((msg), (msglen), __VA_ARGS__), (r))

static const char *type_name(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        return "an object";
    case JSON_ARRAY:
        return "a list";
    case JSON_STRING:
        return "a string";
    case JSON_INTEGER:
    case JSON_REAL:
        return "a number";
    case JSON_TRUE:
    case JSON_FALSE:
        return "a boolean";
    default:
        return "null";
    }
}

/* Field `key` of obj, present and not null, into *v; else PAIRS_MISSING with msg. `in` names the
 * object the field belongs to in messages ("" for the row, "info." for a nested one). */
static enum pairs_reason need(const json_t *obj, const char *in, const char *key, json_t **v,
                              char *msg, size_t msglen)
{
    *v = json_object_get(obj, key);
    if (!*v || json_is_null(*v))
        return fail(msg, msglen, PAIRS_MISSING, "field \"%s%s\": missing", in, key);
    return PAIRS_OK;
}

/* String field `key` of obj: PAIRS_MISSING when absent or null, PAIRS_WRONG_TYPE when not a
 * string. */
static enum pairs_reason need_string(const json_t *obj, const char *in, const char *key,
                                     const char **s, size_t *len, char *msg, size_t msglen)
{
    json_t *v;
    enum pairs_reason r = need(obj, in, key, &v, msg, msglen);
    if (r)
        return r;
    if (!json_is_string(v))
        return fail(msg, msglen, PAIRS_WRONG_TYPE, "field \"%s%s\": expected a string, got %s", in,
                    key, type_name(v));
    *s = json_string_value(v);
    *len = json_string_length(v);
    return PAIRS_OK;
}

/* An optional string field: *s NULL when absent or null. */
static enum pairs_reason opt_string(const json_t *obj, const char *in, const char *key,
                                    const char **s, char *msg, size_t msglen)
{
    json_t *v = json_object_get(obj, key);
    *s = NULL;
    if (!v || json_is_null(v))
        return PAIRS_OK;
    if (!json_is_string(v))
        return fail(msg, msglen, PAIRS_WRONG_TYPE, "field \"%s%s\": expected a string, got %s", in,
                    key, type_name(v));
    *s = json_string_value(v);
    return PAIRS_OK;
}

static bool starts_with(const char *s, size_t n, const char *prefix)
{
    size_t pl = strlen(prefix);
    return n >= pl && memcmp(s, prefix, pl) == 0;
}

static char *dup_span(const char *s, size_t n)
{
    char *d = malloc(n + 1);
    if (d) {
        memcpy(d, s, n);
        d[n] = '\0';
    }
    return d;
}

/* The index of the first byte where a[0..an) and b[0..bn) differ. */
static size_t first_difference(const char *a, size_t an, const char *b, size_t bn)
{
    size_t i = 0;
    while (i < an && i < bn && a[i] == b[i])
        i++;
    return i;
}

/* The checks every format ends with, then the copies into *out. */
static enum pairs_reason finish(const char *prompt, size_t plen, const char *chosen, size_t clen,
                                const char *rejected, size_t rlen, const struct pairs_limits *lim,
                                struct pairs_item *out, char *msg, size_t msglen)
{
    if (plen == 0)
        return fail(msg, msglen, PAIRS_EMPTY, "the prompt is empty");
    if (plen > lim->max_prompt_bytes)
        return fail(msg, msglen, PAIRS_TOO_BIG,
                    "the prompt is %zu bytes, over the limit of %zu (--max-prompt-bytes)", plen,
                    lim->max_prompt_bytes);
    const char *names[2] = {"chosen", "rejected"};
    size_t lens[2] = {clen, rlen};
    for (int k = 0; k < 2; k++)
        if (lens[k] > lim->max_response_bytes)
            return fail(msg, msglen, PAIRS_TOO_BIG,
                        "field \"%s\": the response is %zu bytes, over the limit of %zu "
                        "(--max-response-bytes)",
                        names[k], lens[k], lim->max_response_bytes);
    for (int k = 0; k < 2; k++)
        if (lens[k] == 0)
            return fail(msg, msglen, PAIRS_EMPTY, "field \"%s\": the response is empty", names[k]);
    if (clen == rlen && memcmp(chosen, rejected, clen) == 0)
        return fail(msg, msglen, PAIRS_IDENTICAL, "chosen and rejected are the same response");
    out->prompt = dup_span(prompt, plen);
    out->chosen = dup_span(chosen, clen);
    out->rejected = dup_span(rejected, rlen);
    if (!out->prompt || !out->chosen || !out->rejected) {
        pairs_item_clear(out);
        return fail(msg, msglen, PAIRS_N_REASONS, "out of memory");
    }
    return PAIRS_OK;
}

/* -- hh -- */

/* Splits HH transcript t[0..n) (field `field`) into the text that fills {prompt} (a span of t)
 * and the response (the rest of t, without the one space after "Assistant:"). */
static enum pairs_reason hh_split(const char *t, size_t n, const char *field, const char **ctx,
                                  size_t *ctxlen, const char **resp, size_t *resplen, char *msg,
                                  size_t msglen)
{
    const char *last = NULL;
    for (const char *p = t; (p = strstr(p, ASSISTANT)); p++)
        last = p;
    if (!last)
        return fail(msg, msglen, PAIRS_BAD_TRANSCRIPT, "field \"%s\": no \"\\n\\nAssistant:\" turn",
                    field);
    const char *r = last + ASSISTANT_LEN;
    if (strstr(r, HUMAN))
        return fail(msg, msglen, PAIRS_BAD_TRANSCRIPT,
                    "field \"%s\": the transcript ends with a Human turn, not an Assistant one",
                    field);
    if (*r == ' ')
        r++;
    const char *c = t;
    size_t cn = (size_t)(last - t);
    if (starts_with(c, cn, HUMAN)) {
        c += HUMAN_LEN, cn -= HUMAN_LEN;
    } else if (starts_with(c, cn, "Human:")) {
        c += 6, cn -= 6;
    } else {
        return fail(msg, msglen, PAIRS_BAD_TRANSCRIPT,
                    "field \"%s\": the transcript does not start with a \"\\n\\nHuman:\" turn",
                    field);
    }
    if (cn > 0 && *c == ' ')
        c++, cn--;
    *ctx = c;
    *ctxlen = cn;
    *resp = r;
    *resplen = n - (size_t)(r - t);
    return PAIRS_OK;
}

static enum pairs_reason parse_hh(const json_t *row, const struct pairs_limits *lim,
                                  struct pairs_item *out, char *msg, size_t msglen)
{
    const char *c, *r;
    size_t cn, rn;
    enum pairs_reason e = need_string(row, "", "chosen", &c, &cn, msg, msglen);
    if (!e)
        e = need_string(row, "", "rejected", &r, &rn, msg, msglen);
    const char *cctx, *rctx, *cresp, *rresp;
    size_t cctxn, rctxn, cresn, rresn;
    if (!e)
        e = hh_split(c, cn, "chosen", &cctx, &cctxn, &cresp, &cresn, msg, msglen);
    if (!e)
        e = hh_split(r, rn, "rejected", &rctx, &rctxn, &rresp, &rresn, msg, msglen);
    if (e)
        return e;
    if (cctxn != rctxn || memcmp(cctx, rctx, cctxn) != 0)
        return fail(msg, msglen, PAIRS_PROMPT_DIFFERS,
                    "chosen and rejected have different prompts (they part at byte %zu of the "
                    "conversation before the last Assistant turn)",
                    first_difference(cctx, cctxn, rctx, rctxn) + 1);
    return finish(cctx, cctxn, cresp, cresn, rresp, rresn, lim, out, msg, msglen);
}

/* -- conversations (TRL messages, Part II turns) -- */

struct turn {
    bool user;
    const char *text;
    size_t len;
    const char *field; /* the field it came from, for messages */
    size_t index;      /* its place there, from 1 */
};

/* TRL messages of list `arr` (field `field`) appended to t[*n ..]. */
static enum pairs_reason read_messages(const json_t *arr, const char *field, struct turn *t,
                                       size_t *n, char *msg, size_t msglen)
{
    for (size_t i = 0; i < json_array_size(arr); i++) {
        const json_t *m = json_array_get(arr, i);
        if (!json_is_object(m))
            return fail(msg, msglen, PAIRS_WRONG_TYPE,
                        "field \"%s\": message %zu: expected an object {\"role\", \"content\"}, "
                        "got %s",
                        field, i + 1, type_name(m));
        char in[64];
        snprintf(in, sizeof in, "%s[%zu].", field, i + 1);
        const char *role, *content;
        size_t rl, cl;
        enum pairs_reason e = need_string(m, in, "role", &role, &rl, msg, msglen);
        if (!e)
            e = need_string(m, in, "content", &content, &cl, msg, msglen);
        if (e)
            return e;
        bool user = !strcmp(role, "user");
        if (!user && strcmp(role, "assistant") != 0)
            return fail(msg, msglen, PAIRS_BAD_VALUE,
                        "field \"%srole\": \"%.40s\" is not supported (user or assistant; the "
                        "prompt template has no place for others)",
                        in, role);
        t[(*n)++] = (struct turn){user, content, cl, field, i + 1};
    }
    return PAIRS_OK;
}

/* Part II turns of list `arr` (field `field`): Human first, then in turn. */
static enum pairs_reason read_turns(const json_t *arr, const char *field, struct turn *t, size_t *n,
                                    char *msg, size_t msglen)
{
    for (size_t i = 0; i < json_array_size(arr); i++) {
        const json_t *s = json_array_get(arr, i);
        if (!json_is_string(s))
            return fail(msg, msglen, PAIRS_WRONG_TYPE,
                        "field \"%s\": turn %zu: expected a string, got %s", field, i + 1,
                        type_name(s));
        t[(*n)++] =
            (struct turn){i % 2 == 0, json_string_value(s), json_string_length(s), field, i + 1};
    }
    return PAIRS_OK;
}

/* Checks one conversation (its last turn is the response) and names what is wrong. */
static enum pairs_reason check_conversation(const struct turn *t, size_t n, const char *field,
                                            char *msg, size_t msglen)
{
    if (n == 0)
        return fail(msg, msglen, PAIRS_BAD_TRANSCRIPT, "field \"%s\": no turns", field);
    if (t[n - 1].user)
        return fail(msg, msglen, PAIRS_BAD_TRANSCRIPT,
                    "field \"%s\": the last turn (%s %zu) is the Human's, not the Assistant's",
                    field, t[n - 1].field, t[n - 1].index);
    if (n == 1)
        return fail(msg, msglen, PAIRS_BAD_TRANSCRIPT,
                    "field \"%s\": no Human turn before the response", field);
    if (!t[0].user)
        return fail(msg, msglen, PAIRS_BAD_TRANSCRIPT,
                    "field \"%s\": the first turn is the Assistant's, not the Human's", field);
    return PAIRS_OK;
}

/* The {prompt} text of turns t[0..n): the first turn, then "\n\nAssistant: " or "\n\nHuman: " and
 * each later one. */
static int render_turns(buf_t *b, const struct turn *t, size_t n)
{
    int rc = buf_append(b, t[0].text, t[0].len);
    for (size_t i = 1; !rc && i < n; i++) {
        rc = buf_append_str(b, t[i].user ? "\n\nHuman: " : "\n\nAssistant: ");
        if (!rc)
            rc = buf_append(b, t[i].text, t[i].len);
    }
    return rc;
}

/* Two conversations that share everything but their last turn: the pair. */
static enum pairs_reason conversations(const struct turn *c, size_t cn, const struct turn *r,
                                       size_t rn, const struct pairs_limits *lim,
                                       struct pairs_item *out, char *msg, size_t msglen)
{
    enum pairs_reason e = check_conversation(c, cn, "chosen", msg, msglen);
    if (!e)
        e = check_conversation(r, rn, "rejected", msg, msglen);
    if (e)
        return e;
    if (cn != rn)
        return fail(msg, msglen, PAIRS_PROMPT_DIFFERS,
                    "chosen and rejected have different prompts (%zu turns before the response in "
                    "chosen, %zu in rejected)",
                    cn - 1, rn - 1);
    for (size_t i = 0; i + 1 < cn; i++)
        if (c[i].user != r[i].user || c[i].len != r[i].len ||
            memcmp(c[i].text, r[i].text, c[i].len) != 0)
            return fail(msg, msglen, PAIRS_PROMPT_DIFFERS,
                        "chosen and rejected have different prompts (turn %zu differs: %s %zu, "
                        "%s %zu)",
                        i + 1, c[i].field, c[i].index, r[i].field, r[i].index);
    buf_t p;
    buf_init(&p, 0);
    if (render_turns(&p, c, cn - 1)) {
        buf_free(&p);
        return fail(msg, msglen, PAIRS_N_REASONS, "out of memory");
    }
    e = finish(p.data ? p.data : "", p.len, c[cn - 1].text, c[cn - 1].len, r[rn - 1].text,
               r[rn - 1].len, lim, out, msg, msglen);
    buf_free(&p);
    return e;
}

/* -- trl -- */

/* A TRL prompt string that is itself an HH transcript awaiting the Assistant's turn: its inside
 * (what fills {prompt}) into *in. */
static bool hh_wrapped(const char *p, size_t n, const char **in, size_t *inlen)
{
    size_t skip = starts_with(p, n, HUMAN) ? HUMAN_LEN : starts_with(p, n, "Human:") ? 6 : 0;
    if (!skip || n < skip + ASSISTANT_LEN ||
        memcmp(p + n - ASSISTANT_LEN, ASSISTANT, ASSISTANT_LEN) != 0)
        return false;
    *in = p + skip;
    *inlen = n - skip - ASSISTANT_LEN;
    if (*inlen > 0 && **in == ' ')
        (*in)++, (*inlen)--;
    return true;
}

static enum pairs_reason parse_trl(const json_t *row, const struct pairs_limits *lim,
                                   struct pairs_item *out, char *msg, size_t msglen)
{
    json_t *prompt = json_object_get(row, "prompt"), *chosen, *rejected;
    if (json_is_null(prompt))
        prompt = NULL;
    enum pairs_reason e = need(row, "", "chosen", &chosen, msg, msglen);
    if (!e)
        e = need(row, "", "rejected", &rejected, msg, msglen);
    if (e)
        return e;
    bool lists = prompt ? json_is_array(prompt) : json_is_array(chosen);
    const char *want = lists ? "a list of messages" : "a string";
    const json_t *fields[3] = {prompt, chosen, rejected};
    const char *names[3] = {"prompt", "chosen", "rejected"};
    for (int k = 0; k < 3; k++)
        if (fields[k] && (lists ? !json_is_array(fields[k]) : !json_is_string(fields[k])))
            return fail(msg, msglen, PAIRS_WRONG_TYPE,
                        "field \"%s\": expected %s (as \"%s\" is), got %s", names[k], want,
                        prompt ? "prompt" : "chosen", type_name(fields[k]));
    if (!lists) {
        if (!prompt)
            return fail(msg, msglen, PAIRS_MISSING,
                        "field \"prompt\": missing (rows with string responses need it; HH "
                        "transcripts are --format hh)");
        const char *p = json_string_value(prompt), *c = json_string_value(chosen),
                   *r = json_string_value(rejected);
        size_t pn = json_string_length(prompt), cn = json_string_length(chosen),
               rn = json_string_length(rejected);
        const char *in;
        size_t inlen;
        if (hh_wrapped(p, pn, &in, &inlen)) { /* as HH: the space after "Assistant:" goes too */
            p = in, pn = inlen;
            if (cn > 0 && *c == ' ')
                c++, cn--;
            if (rn > 0 && *r == ' ')
                r++, rn--;
        }
        return finish(p, pn, c, cn, r, rn, lim, out, msg, msglen);
    }
    size_t np = prompt ? json_array_size(prompt) : 0;
    struct turn *c = calloc(np + json_array_size(chosen) + 1, sizeof *c);
    struct turn *r = calloc(np + json_array_size(rejected) + 1, sizeof *r);
    size_t cn = 0, rn = 0;
    if (!c || !r) {
        e = fail(msg, msglen, PAIRS_N_REASONS, "out of memory");
    } else if (prompt) {
        e = read_messages(prompt, "prompt", c, &cn, msg, msglen);
        if (!e)
            e = read_messages(prompt, "prompt", r, &rn, msg, msglen);
    }
    if (!e)
        e = read_messages(chosen, "chosen", c, &cn, msg, msglen);
    if (!e)
        e = read_messages(rejected, "rejected", r, &rn, msg, msglen);
    if (!e)
        e = conversations(c, cn, r, rn, lim, out, msg, msglen);
    free(c);
    free(r);
    return e;
}

/* -- part2 -- */

/* An optional list of numbers (Part II's score lists) into a malloc'd array; *n 0 when absent. */
static enum pairs_reason opt_numbers(const json_t *row, const char *key, double **out, size_t *n,
                                     char *msg, size_t msglen)
{
    json_t *v = json_object_get(row, key);
    *out = NULL;
    *n = 0;
    if (!v || json_is_null(v))
        return PAIRS_OK;
    if (!json_is_array(v))
        return fail(msg, msglen, PAIRS_WRONG_TYPE,
                    "field \"%s\": expected a list of numbers, got %s", key, type_name(v));
    size_t len = json_array_size(v);
    if (len == 0 || len > PAIRS_MAX_SCORES)
        return fail(msg, msglen, PAIRS_BAD_VALUE,
                    "field \"%s\": %zu scores (expected 1 to %d, one per reward model)", key, len,
                    PAIRS_MAX_SCORES);
    double *d = malloc(len * sizeof *d);
    if (!d)
        return fail(msg, msglen, PAIRS_N_REASONS, "out of memory");
    for (size_t i = 0; i < len; i++) {
        const json_t *x = json_array_get(v, i);
        if (!json_is_number(x)) {
            free(d);
            return fail(msg, msglen, PAIRS_WRONG_TYPE,
                        "field \"%s\": score %zu: expected a number, got %s", key, i + 1,
                        type_name(x));
        }
        d[i] = json_number_value(x);
    }
    *out = d;
    *n = len;
    return PAIRS_OK;
}

static const char MEAN_KEY[] = "mean preference difference";
static const char STD_KEY[] = "std preference difference";
static const char CHOSEN_SCORES_KEY[] = "chosen_score_list";
static const char REJECTED_SCORES_KEY[] = "rejected_score_list";

/* The strength fields of a Part II row into out (which already holds the pair). */
static enum pairs_reason part2_strength(const json_t *row, struct pairs_item *out, char *msg,
                                        size_t msglen)
{
    json_t *mean = json_object_get(row, MEAN_KEY), *std = json_object_get(row, STD_KEY);
    mean = json_is_null(mean) ? NULL : mean;
    std = json_is_null(std) ? NULL : std;
    if (!mean != !std)
        return fail(msg, msglen, PAIRS_MISSING, "field \"%s\": missing (\"%s\" is given)",
                    mean ? STD_KEY : MEAN_KEY, mean ? MEAN_KEY : STD_KEY);
    const char *keys[2] = {MEAN_KEY, STD_KEY};
    json_t *vals[2] = {mean, std};
    for (int k = 0; mean && k < 2; k++)
        if (!json_is_number(vals[k]))
            return fail(msg, msglen, PAIRS_WRONG_TYPE, "field \"%s\": expected a number, got %s",
                        keys[k], type_name(vals[k]));
    if (std && json_number_value(std) < 0)
        return fail(msg, msglen, PAIRS_BAD_VALUE, "field \"%s\": %g is negative", STD_KEY,
                    json_number_value(std));
    size_t nc, nr;
    enum pairs_reason e =
        opt_numbers(row, CHOSEN_SCORES_KEY, &out->chosen_scores, &nc, msg, msglen);
    if (!e)
        e = opt_numbers(row, REJECTED_SCORES_KEY, &out->rejected_scores, &nr, msg, msglen);
    if (!e && nc != nr)
        e = nc && nr ? fail(msg, msglen, PAIRS_BAD_VALUE,
                            "fields \"%s\" and \"%s\": %zu and %zu scores (one per reward model "
                            "in both)",
                            CHOSEN_SCORES_KEY, REJECTED_SCORES_KEY, nc, nr)
                     : fail(msg, msglen, PAIRS_MISSING, "field \"%s\": missing (\"%s\" is given)",
                            nc ? REJECTED_SCORES_KEY : CHOSEN_SCORES_KEY,
                            nc ? CHOSEN_SCORES_KEY : REJECTED_SCORES_KEY);
    if (e)
        return e;
    out->n_scores = nc;
    if (mean) {
        out->has_strength = true;
        out->mean = json_number_value(mean);
        out->std = json_number_value(std);
    } else if (nc) { /* ALGORITHMS.md: mean and population std of r(chosen) - r(rejected) */
        double s = 0, s2 = 0;
        for (size_t i = 0; i < nc; i++)
            s += out->chosen_scores[i] - out->rejected_scores[i];
        out->mean = s / (double)nc;
        for (size_t i = 0; i < nc; i++) {
            double d = out->chosen_scores[i] - out->rejected_scores[i] - out->mean;
            s2 += d * d;
        }
        out->std = sqrt(s2 / (double)nc);
        out->has_strength = true;
    }
    return PAIRS_OK;
}

static enum pairs_reason parse_part2(const json_t *row, const struct pairs_limits *lim,
                                     struct pairs_item *out, char *msg, size_t msglen)
{
    json_t *chosen, *rejected;
    enum pairs_reason e = need(row, "", "chosen", &chosen, msg, msglen);
    if (!e)
        e = need(row, "", "rejected", &rejected, msg, msglen);
    if (e)
        return e;
    const json_t *lists[2] = {chosen, rejected};
    const char *names[2] = {"chosen", "rejected"};
    for (int k = 0; k < 2; k++)
        if (!json_is_array(lists[k]))
            return fail(msg, msglen, PAIRS_WRONG_TYPE,
                        "field \"%s\": expected a list of turns (strings), got %s", names[k],
                        type_name(lists[k]));
    struct turn *c = calloc(json_array_size(chosen) + 1, sizeof *c);
    struct turn *r = calloc(json_array_size(rejected) + 1, sizeof *r);
    size_t cn = 0, rn = 0;
    e = !c || !r ? fail(msg, msglen, PAIRS_N_REASONS, "out of memory") : PAIRS_OK;
    if (!e)
        e = read_turns(chosen, "chosen", c, &cn, msg, msglen);
    if (!e)
        e = read_turns(rejected, "rejected", r, &rn, msg, msglen);
    if (!e)
        e = conversations(c, cn, r, rn, lim, out, msg, msglen);
    free(c);
    free(r);
    if (!e)
        e = part2_strength(row, out, msg, msglen);
    if (e)
        pairs_item_clear(out);
    return e;
}

/* -- tldr -- */

static enum pairs_reason parse_tldr(const json_t *row, const struct pairs_limits *lim,
                                    struct pairs_item *out, char *msg, size_t msglen)
{
    json_t *info, *summaries, *choice;
    enum pairs_reason e = need(row, "", "info", &info, msg, msglen);
    if (!e)
        e = need(row, "", "summaries", &summaries, msg, msglen);
    if (!e)
        e = need(row, "", "choice", &choice, msg, msglen);
    if (e)
        return e;
    if (!json_is_object(info))
        return fail(msg, msglen, PAIRS_WRONG_TYPE, "field \"info\": expected an object, got %s",
                    type_name(info));
    if (!json_is_array(summaries))
        return fail(msg, msglen, PAIRS_WRONG_TYPE, "field \"summaries\": expected a list, got %s",
                    type_name(summaries));
    if (json_array_size(summaries) != 2)
        return fail(msg, msglen, PAIRS_BAD_VALUE, "field \"summaries\": %zu summaries, not 2",
                    json_array_size(summaries));
    if (!json_is_integer(choice))
        return fail(msg, msglen, PAIRS_WRONG_TYPE, "field \"choice\": expected 0 or 1, got %s",
                    type_name(choice));
    json_int_t ch = json_integer_value(choice);
    if (ch != 0 && ch != 1)
        return fail(msg, msglen, PAIRS_BAD_VALUE, "field \"choice\": expected 0 or 1, got %lld",
                    (long long)ch);
    const char *text[2];
    size_t len[2];
    for (size_t k = 0; k < 2; k++) {
        const json_t *s = json_array_get(summaries, k);
        char in[32];
        snprintf(in, sizeof in, "summaries[%zu].", k);
        if (!json_is_object(s))
            return fail(msg, msglen, PAIRS_WRONG_TYPE,
                        "field \"summaries\": summary %zu: expected an object, got %s", k,
                        type_name(s));
        e = need_string(s, in, "text", &text[k], &len[k], msg, msglen);
        if (e)
            return e;
        if (len[k] > 0 && text[k][0] == ' ') /* written after "TL;DR:" */
            text[k]++, len[k]--;
    }
    const char *post, *article, *title, *subreddit;
    e = opt_string(info, "info.", "post", &post, msg, msglen);
    if (!e)
        e = opt_string(info, "info.", "article", &article, msg, msglen);
    if (!e)
        e = opt_string(info, "info.", "title", &title, msg, msglen);
    if (!e)
        e = opt_string(info, "info.", "subreddit", &subreddit, msg, msglen);
    if (e)
        return e;
    if (post && !*post && article)
        post = NULL; /* an empty post beside an article: a CNN/DM row */
    if (!post && !article)
        return fail(msg, msglen, PAIRS_MISSING,
                    "field \"info.post\": missing (nor is there an \"info.article\")");
    buf_t p;
    buf_init(&p, 0);
    int rc = 0;
    if (subreddit && *subreddit)
        rc |= buf_printf(&p, "SUBREDDIT: r/%s\n\n", subreddit);
    if (title && *title)
        rc |= buf_printf(&p, "TITLE: %s\n\n", title);
    rc |= buf_printf(&p, "%s: %s\n\nTL;DR:", post ? "POST" : "ARTICLE", post ? post : article);
    if (rc) {
        buf_free(&p);
        return fail(msg, msglen, PAIRS_N_REASONS, "out of memory");
    }
    int w = (int)ch;
    e = finish(p.data, p.len, text[w], len[w], text[1 - w], len[1 - w], lim, out, msg, msglen);
    buf_free(&p);
    return e;
}

enum pairs_format pairs_detect(const json_t *row)
{
    if (!json_is_object(row))
        return PAIRS_FORMAT_AUTO;
    if (json_object_get(row, "info") && json_object_get(row, "summaries") &&
        json_object_get(row, "choice"))
        return PAIRS_FORMAT_TLDR;
    const json_t *c = json_object_get(row, "chosen"), *r = json_object_get(row, "rejected");
    const json_t *first = json_array_get(c, 0); /* NULL unless c is a list with an item */
    if (json_is_string(first))
        return PAIRS_FORMAT_PART2; /* turns; TRL's lists hold message objects */
    if (json_object_get(row, "prompt") || json_is_object(first))
        return PAIRS_FORMAT_TRL;
    if (json_is_string(c) && json_is_string(r)) {
        const char *s = json_string_value(c);
        if (strstr(s, HUMAN) || !strncmp(s, "Human:", 6))
            return PAIRS_FORMAT_HH;
    }
    return PAIRS_FORMAT_AUTO;
}

enum pairs_reason pairs_parse(enum pairs_format fmt, const json_t *row,
                              const struct pairs_limits *lim, struct pairs_item *out, char *msg,
                              size_t msglen)
{
    memset(out, 0, sizeof *out);
    if (msglen)
        msg[0] = '\0';
    if (!json_is_object(row))
        return fail(msg, msglen, PAIRS_BAD_JSON, "expected a JSON object, got %s", type_name(row));
    switch (fmt) {
    case PAIRS_FORMAT_HH:
        return parse_hh(row, lim, out, msg, msglen);
    case PAIRS_FORMAT_TRL:
        return parse_trl(row, lim, out, msg, msglen);
    case PAIRS_FORMAT_PART2:
        return parse_part2(row, lim, out, msg, msglen);
    case PAIRS_FORMAT_TLDR:
        return parse_tldr(row, lim, out, msg, msglen);
    default:
        return fail(msg, msglen, PAIRS_BAD_VALUE, "no format to read the row as");
    }
}

/* ---- reading a file ----------------------------------------------------------------------- */

struct reader {
    const char *path;
    enum pairs_format *fmt;
    bool list; /* the file is one JSON list */
    const struct pairs_limits *lim;
    pairs_row_fn fn;
    void *ctx;
    char *err;
    size_t errlen;
    size_t rows;
};

/* Calls fn for a row that is refused before it is parsed. */
static int refuse(struct reader *rd, const char *where, enum pairs_reason r, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int refuse(struct reader *rd, const char *where, enum pairs_reason r, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    rd->rows++;
    return rd->fn(rd->ctx, where, r, msg, NULL);
}

/* The first row decides the format when none was named. A JSON list whose first item fits no
 * format is read as Part II (the release is a list). Returns ERR_OK or ERR_INVAL with err. */
static int decide_format(struct reader *rd, const char *where, const json_t *row, const char *why)
{
    if (*rd->fmt != PAIRS_FORMAT_AUTO)
        return ERR_OK;
    *rd->fmt = row ? pairs_detect(row) : PAIRS_FORMAT_AUTO;
    if (*rd->fmt == PAIRS_FORMAT_AUTO && rd->list)
        *rd->fmt = PAIRS_FORMAT_PART2;
    if (*rd->fmt != PAIRS_FORMAT_AUTO)
        return ERR_OK;
    snprintf(rd->err, rd->errlen,
             "%s: cannot tell the format: %s; name it with --format hh|trl|part2|tldr", where,
             why ? why
                 : "expected \"chosen\" and \"rejected\" (HH transcripts, TRL messages, Part II "
                   "turns), \"prompt\" (TRL) or \"info\", \"summaries\" and \"choice\" (TL;DR)");
    return ERR_INVAL;
}

/* One row: text[0..len), which starts on line `line` (and is item `item` of a list, 0: not). */
static int do_row(struct reader *rd, const char *text, size_t len, long line, long item)
{
    char where[1200];
    if (item)
        snprintf(where, sizeof where, "%s:%ld: item %ld", rd->path, line, item);
    else
        snprintf(where, sizeof where, "%s:%ld", rd->path, line);
    char why[600];
    const unsigned char *u = (const unsigned char *)text;
    for (size_t i = 0; i < len;) {
        size_t n = utf8_seq(u + i, len - i);
        if (n == 0) {
            snprintf(why, sizeof why, "invalid UTF-8 (byte 0x%02x at column %zu)", u[i], i + 1);
            int rc = decide_format(rd, where, NULL, why);
            return rc ? rc : refuse(rd, where, PAIRS_BAD_UTF8, "%s", why);
        }
        i += n;
    }
    json_error_t je;
    json_t *row = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
    if (!row) {
        snprintf(why, sizeof why, "not valid JSON: %s (column %d)", je.text, je.column);
        int rc = decide_format(rd, where, NULL, why);
        return rc ? rc : refuse(rd, where, PAIRS_BAD_JSON, "%s", why);
    }
    int rc = ERR_OK;
    if (!json_is_object(row)) {
        snprintf(why, sizeof why, "expected a JSON object, got %s", type_name(row));
        rc = decide_format(rd, where, NULL, why);
        if (!rc)
            rc = refuse(rd, where, PAIRS_BAD_JSON, "%s", why);
        json_decref(row);
        return rc;
    }
    rc = decide_format(rd, where, row, NULL);
    if (!rc) {
        struct pairs_item it;
        char msg[600];
        enum pairs_reason r = pairs_parse(*rd->fmt, row, rd->lim, &it, msg, sizeof msg);
        if (r == PAIRS_N_REASONS) {
            rc = ERR_NOMEM;
        } else {
            rd->rows++;
            rc = rd->fn(rd->ctx, where, r, msg, r == PAIRS_OK ? &it : NULL);
        }
        pairs_item_clear(&it);
    }
    json_decref(row);
    return rc;
}

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* Skips white space from s[*i], counting new lines into *line. */
static void skip_space(const char *s, size_t n, size_t *i, long *line)
{
    for (; *i < n && is_space(s[*i]); (*i)++)
        *line += s[*i] == '\n';
}

/* A file that is one JSON list, s[0..n) (from its '[' on, which is on line `line`): each item is
 * found by bracket depth outside strings and read as a row, so one broken item spoils no other. */
static int read_list(struct reader *rd, const char *s, size_t n, long line)
{
    size_t i = 0;
    skip_space(s, n, &i, &line);
    i++; /* '[' */
    skip_space(s, n, &i, &line);
    char where[1100];
    long item = 0;
    int rc = ERR_OK;
    if (i < n && s[i] == ']') {
        i++;
    } else {
        for (bool closed = false; !rc && !closed;) {
            skip_space(s, n, &i, &line);
            size_t start = i;
            long start_line = line;
            int depth = 0;
            bool str = false, esc = false;
            for (; i < n; i++) {
                char c = s[i];
                line += c == '\n';
                if (str) {
                    if (esc)
                        esc = false;
                    else if (c == '\\')
                        esc = true;
                    else if (c == '"')
                        str = false;
                } else if (c == '"') {
                    str = true;
                } else if (c == '{' || c == '[') {
                    depth++;
                } else if (c == '}' || c == ']') {
                    if (depth == 0)
                        break;
                    depth--;
                } else if (c == ',' && depth == 0) {
                    break;
                }
            }
            size_t end = i;
            while (end > start && is_space(s[end - 1]))
                end--;
            item++;
            snprintf(where, sizeof where, "%s:%ld: item %ld", rd->path, start_line, item);
            if (end == start && i < n)
                rc = refuse(rd, where, PAIRS_BAD_JSON, "not valid JSON: an empty item");
            else if (end > start)
                rc = do_row(rd, s + start, end - start, start_line, item);
            if (!rc && i >= n) {
                snprintf(where, sizeof where, "%s:%ld", rd->path, line);
                return refuse(rd, where, PAIRS_BAD_JSON,
                              "not valid JSON: the list is not closed with ']'");
            }
            closed = s[i] == ']';
            i++;
        }
    }
    skip_space(s, n, &i, &line);
    if (!rc && i < n) {
        snprintf(where, sizeof where, "%s:%ld", rd->path, line);
        rc = refuse(rd, where, PAIRS_BAD_JSON, "not valid JSON: text after the list");
    }
    return rc;
}

int pairs_read(const char *path, enum pairs_format *fmt, const struct pairs_limits *lim,
               pairs_row_fn fn, void *ctx, char *err, size_t errlen)
{
    FILE *f = strcmp(path, "-") ? fopen(path, "r") : stdin;
    if (!f) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return ERR_NOTFOUND;
    }
    struct reader rd = {
        .path = path, .fmt = fmt, .lim = lim, .fn = fn, .ctx = ctx, .err = err, .errlen = errlen};
    char *line = NULL;
    size_t lcap = 0;
    ssize_t len;
    long lineno = 0;
    int rc = ERR_OK;
    bool first = true;
    while (!rc && (len = getline(&line, &lcap, f)) >= 0) {
        lineno++;
        char *t = line;
        if (first && len >= 3 && !memcmp(t, "\xef\xbb\xbf", 3)) /* a byte order mark */
            t += 3, len -= 3;
        size_t lead = 0;
        while (lead < (size_t)len && is_space(t[lead]))
            lead++;
        if (lead == (size_t)len)
            continue;
        if (first && t[lead] == '[') { /* one JSON list: the rest of the file with it */
            rd.list = true;
            buf_t all;
            buf_init(&all, 0);
            rc = buf_append(&all, t, (size_t)len);
            char chunk[65536];
            size_t got;
            while (!rc && (got = fread(chunk, 1, sizeof chunk, f)) > 0)
                rc = buf_append(&all, chunk, got);
            if (!rc && ferror(f)) {
                snprintf(err, errlen, "%s: %s", path, strerror(errno));
                rc = ERR_IO;
            }
            if (!rc)
                rc = read_list(&rd, all.data, all.len, lineno);
            buf_free(&all);
            break;
        }
        first = false;
        while (len > 0 && (t[len - 1] == '\n' || t[len - 1] == '\r'))
            t[--len] = '\0';
        rc = do_row(&rd, t, (size_t)len, lineno, 0);
    }
    if (!rc && ferror(f)) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        rc = ERR_IO;
    }
    free(line);
    if (f != stdin)
        fclose(f);
    if (!rc && rd.rows == 0) {
        snprintf(err, errlen, "%s: no rows", path);
        rc = ERR_INVAL;
    }
    if (rc == ERR_NOMEM)
        snprintf(err, errlen, "%s: out of memory", path);
    return rc;
}

/* ---- records ------------------------------------------------------------------------------ */

void pairs_id(char *out, const char *dataset, const struct pairs_item *it)
{
    static const char digits[] = "0123456789abcdef";
    struct sha256 s;
    uint8_t h[SHA256_DIGEST_LEN];
    sha256_init(&s);
    const char *parts[4] = {dataset, it->prompt, it->chosen, it->rejected};
    for (int k = 0; k < 4; k++) /* NUL-separated: a JSON string holds no NUL */
        sha256_update(&s, parts[k], strlen(parts[k]) + 1);
    sha256_final(&s, h);
    memcpy(out, "imp-", 4);
    for (int i = 0; i < 12; i++) {
        out[4 + 2 * i] = digits[h[i] >> 4];
        out[5 + 2 * i] = digits[h[i] & 15];
    }
    out[PAIRS_ID_LEN] = '\0';
}

void pairs_record_clear(struct pairs_record *r)
{
    free(r->id);
    free(r->data);
    memset(r, 0, sizeof *r);
}

static int pack_one(struct pairs_record *r, Oaif__V1__RecordKind kind, const char *id,
                    const ProtobufCMessage *m)
{
    size_t len = protobuf_c_message_get_packed_size(m);
    *r = (struct pairs_record){
        .kind = kind, .id = strdup(id), .data = malloc(len ? len : 1), .len = len};
    if (!r->id || !r->data) {
        pairs_record_clear(r);
        return ERR_NOMEM;
    }
    protobuf_c_message_pack(m, r->data);
    return ERR_OK;
}

int pairs_pack(const struct pairs_item *it, const char *dataset, enum pairs_format fmt,
               struct pairs_record out[PAIRS_MAX_RECORDS], size_t *n)
{
    char id[PAIRS_ID_LEN + 1], judge[32];
    pairs_id(id, dataset, it);
    snprintf(judge, sizeof judge, "import:%s", pairs_format_name(fmt));
    *n = 0;

    Oaif__V1__Response r0 = OAIF__V1__RESPONSE__INIT, r1 = OAIF__V1__RESPONSE__INIT;
    r0.text = it->chosen;
    r1.text = it->rejected;
    Oaif__V1__Response *rs[2] = {&r0, &r1};
    Oaif__V1__Pair p = OAIF__V1__PAIR__INIT;
    p.id = id;
    p.prompt = it->prompt;
    p.n_responses = 2;
    p.responses = rs;
    p.run = (char *)dataset;
    int rc = pack_one(&out[(*n)++], OAIF__V1__RECORD_KIND__RECORD_KIND_PAIR, id, &p.base);

    Oaif__V1__Label l = OAIF__V1__LABEL__INIT;
    l.id = id;
    l.pair_id = id;
    l.winner = OAIF__V1__WINNER__WINNER_FIRST;
    l.prob_first = 1.0;
    l.judge = judge;
    if (!rc)
        rc = pack_one(&out[(*n)++], OAIF__V1__RECORD_KIND__RECORD_KIND_LABEL, id, &l.base);

    if (!rc && it->has_strength) {
        Oaif__V1__Strength s = OAIF__V1__STRENGTH__INIT;
        s.id = id;
        s.pair_id = id;
        s.mean = it->mean;
        s.std = it->std;
        s.members = (uint32_t)it->n_scores;
        rc = pack_one(&out[(*n)++], OAIF__V1__RECORD_KIND__RECORD_KIND_STRENGTH, id, &s.base);
    }
    if (!rc && it->n_scores) {
        char **names = calloc(it->n_scores, sizeof *names);
        rc = names ? ERR_OK : ERR_NOMEM;
        for (size_t i = 0; !rc && i < it->n_scores; i++) {
            names[i] = malloc(48);
            if (names[i])
                snprintf(names[i], 48, "import:part2/m%zu", i);
            else
                rc = ERR_NOMEM;
        }
        Oaif__V1__Scores sc = OAIF__V1__SCORES__INIT;
        sc.id = id;
        sc.pair_id = id;
        sc.n_members = it->n_scores;
        sc.members = names;
        sc.n_first = sc.n_second = it->n_scores;
        sc.first = it->chosen_scores;
        sc.second = it->rejected_scores;
        if (!rc)
            rc = pack_one(&out[(*n)++], OAIF__V1__RECORD_KIND__RECORD_KIND_SCORES, id, &sc.base);
        for (size_t i = 0; names && i < it->n_scores; i++)
            free(names[i]);
        free(names);
    }
    if (rc) {
        for (size_t i = 0; i < *n; i++)
            pairs_record_clear(&out[i]);
        *n = 0;
    }
    return rc;
}

static bool dataset_byte_ok(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '_' || c == '-';
}

bool pairs_dataset_valid(const char *name)
{
    size_t n = name ? strlen(name) : 0;
    if (n == 0 || n > 128)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!dataset_byte_ok(name[i]))
            return false;
    return true;
}

void pairs_dataset_from_path(const char *path, char *out, size_t outlen)
{
    if (!strcmp(path, "-")) {
        snprintf(out, outlen, "stdin");
        return;
    }
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    size_t n = strlen(base);
    static const char *const exts[] = {".jsonl", ".json"};
    for (size_t k = 0; k < 2; k++) {
        size_t el = strlen(exts[k]);
        if (n > el && !strcmp(base + n - el, exts[k])) {
            n -= el;
            break;
        }
    }
    if (n > 128)
        n = 128;
    if (n + 1 > outlen)
        n = outlen - 1;
    for (size_t i = 0; i < n; i++) {
        out[i] = base[i];
        if (!dataset_byte_ok(base[i]))
            out[i] = '-';
    }
    out[n] = '\0';
    if (n == 0)
        snprintf(out, outlen, "pairs");
}

/* ---- writing ------------------------------------------------------------------------------ */

/* "\n\nHuman: PROMPT\n\nAssistant: RESPONSE" as a JSON string, or NULL. */
static json_t *hh_transcript(const char *prompt, const char *response)
{
    buf_t b;
    buf_init(&b, 0);
    int rc = buf_printf(&b, "%s%s%s %s", "\n\nHuman: ", prompt, ASSISTANT, response);
    json_t *s = rc ? NULL : json_stringn(b.data, b.len);
    buf_free(&b);
    return s;
}

int pairs_write(buf_t *out, enum pairs_format fmt, const Oaif__V1__Pair *p, Oaif__V1__Winner w)
{
    if (p->n_responses != 2 || !p->responses[0] || !p->responses[1])
        return PAIRS_SKIP_SHAPE;
    if (w == OAIF__V1__WINNER__WINNER_TIE)
        return PAIRS_SKIP_TIE;
    if (w != OAIF__V1__WINNER__WINNER_FIRST && w != OAIF__V1__WINNER__WINNER_SECOND)
        return PAIRS_SKIP_UNLABELED;
    int first = w == OAIF__V1__WINNER__WINNER_FIRST ? 0 : 1;
    const char *prompt = p->prompt ? p->prompt : "";
    const char *chosen = p->responses[first]->text ? p->responses[first]->text : "";
    const char *rejected = p->responses[1 - first]->text ? p->responses[1 - first]->text : "";
    json_t *o = json_object();
    if (!o)
        return -1;
    int bad = 0;
    if (fmt == PAIRS_FORMAT_HH) {
        bad |= json_object_set_new(o, "chosen", hh_transcript(prompt, chosen));
        bad |= json_object_set_new(o, "rejected", hh_transcript(prompt, rejected));
    } else {
        bad |= json_object_set_new(o, "prompt", json_string(prompt));
        bad |= json_object_set_new(o, "chosen", json_string(chosen));
        bad |= json_object_set_new(o, "rejected", json_string(rejected));
    }
    /* A text that is not UTF-8 makes json_string NULL and the set fail: it cannot be written. */
    char *line = bad ? NULL : json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    int result = bad ? PAIRS_SKIP_UNREADABLE : line ? PAIRS_WRITTEN : -1;
    if (line) { /* read it back as the importer will */
        struct pairs_limits nolim = {SIZE_MAX, SIZE_MAX};
        struct pairs_item it;
        char msg[600];
        enum pairs_reason r = pairs_parse(fmt, o, &nolim, &it, msg, sizeof msg);
        if (r == PAIRS_N_REASONS)
            result = -1;
        else if (r != PAIRS_OK || strcmp(it.prompt, prompt) != 0 ||
                 strcmp(it.chosen, chosen) != 0 || strcmp(it.rejected, rejected) != 0)
            result = PAIRS_SKIP_UNREADABLE;
        pairs_item_clear(&it);
    }
    if (result == PAIRS_WRITTEN && (buf_append_str(out, line) || buf_append_str(out, "\n")))
        result = -1;
    free(line);
    json_decref(o);
    return result;
}
