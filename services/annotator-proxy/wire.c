/* wire.c - see wire.h. */
#include "wire.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "err.h"

int wire_build(enum wire_format f, const struct wire_params *p, const char *system,
               const char *user, char **body)
{
    *body = NULL;
    if (!p || !p->model || !user || (f != WIRE_OPENAI && f != WIRE_ANTHROPIC))
        return ERR_INVAL;
    json_t *j = json_object();
    json_t *msgs = json_array();
    if (!j || !msgs) {
        json_decref(j);
        json_decref(msgs);
        return ERR_NOMEM;
    }
    int bad = 0;
    bad |= json_object_set_new(j, "model", json_string(p->model));
    if (f == WIRE_OPENAI && system)
        bad |= json_array_append_new(msgs,
                                     json_pack("{s:s, s:s}", "role", "system", "content", system));
    if (f == WIRE_ANTHROPIC && system)
        bad |= json_object_set_new(j, "system", json_string(system));
    bad |= json_array_append_new(msgs, json_pack("{s:s, s:s}", "role", "user", "content", user));
    bad |= json_object_set_new(j, "messages", msgs);
    if (p->send_temperature)
        bad |= json_object_set_new(j, "temperature", json_real(p->temperature));
    bool mct = f == WIRE_OPENAI && p->limit_field == WIRE_LIMIT_MAX_COMPLETION_TOKENS;
    bad |= json_object_set_new(j, mct ? "max_completion_tokens" : "max_tokens",
                               json_integer(p->max_tokens));
    if (f == WIRE_OPENAI) {
        bad |= json_object_set_new(j, "n", json_integer(1));
        bad |= json_object_set_new(j, "stream", json_false());
        if (p->logprobs) {
            bad |= json_object_set_new(j, "logprobs", json_true());
            bad |= json_object_set_new(j, "top_logprobs", json_integer(p->top_logprobs));
        }
        if (p->reasoning_effort && *p->reasoning_effort)
            bad |= json_object_set_new(j, "reasoning_effort", json_string(p->reasoning_effort));
        if (p->json_object)
            bad |= json_object_set_new(j, "response_format",
                                       json_pack("{s:s}", "type", "json_object"));
    } else if (p->thinking_budget) {
        bad |= json_object_set_new(j, "thinking",
                                   json_pack("{s:s, s:I}", "type", "enabled", "budget_tokens",
                                             (json_int_t)p->thinking_budget));
    }
    /* json_string() is NULL (and set_new fails) on invalid UTF-8: report it as bad input */
    char *s = bad ? NULL : json_dumps(j, JSON_COMPACT);
    json_decref(j);
    if (!s)
        return bad ? ERR_INVAL : ERR_NOMEM;
    *body = s;
    return ERR_OK;
}

void wire_answer_free(struct wire_answer *a)
{
    if (!a)
        return;
    free(a->text);
    free(a->refusal);
    json_decref(a->lp_content);
    memset(a, 0, sizeof *a);
}

void wire_excerpt(char *out, size_t outlen, const char *s)
{
    size_t j = 0;
    if (!outlen)
        return;
    for (size_t i = 0; s && s[i] && j + 1 < outlen; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (j + 4 >= outlen && s[i + 1]) {
            while (j + 4 > outlen)
                j--;
            out[j++] = '.';
            out[j++] = '.';
            out[j++] = '.';
            break;
        }
        out[j++] = (char)((ch >= 0x20 && ch < 0x7f) ? ch : ' ');
    }
    out[j] = '\0';
}

/* ---- answers ------------------------------------------------------------------------------ */

static unsigned usage_field(json_t *usage, const char *name)
{
    json_t *v = json_object_get(usage, name);
    if (!json_is_integer(v) || json_integer_value(v) < 0)
        return 0;
    json_int_t n = json_integer_value(v);
    return n > 0xffffffffLL ? 0xffffffffu : (unsigned)n;
}

static unsigned sat_add(unsigned a, unsigned b)
{
    return a > 0xffffffffu - b ? 0xffffffffu : a + b;
}

static char *dup_or_empty(const char *s)
{
    return strdup(s ? s : "");
}

/* The error object of a body (OpenAI {"error":{...}}, Anthropic {"type":"error","error":{...}}),
 * or NULL. */
static json_t *error_of(json_t *j)
{
    json_t *err = json_object_get(j, "error");
    return err && !json_is_null(err) ? err : NULL;
}

/* Permanent error kinds, by their type or code: a retry cannot fix them. */
static const char *permanent_kind(json_t *err)
{
    static const char *const kinds[] = {"insufficient_quota",         "invalid_api_key",
                                        "authentication_error",       "permission_error",
                                        "billing_hard_limit_reached", "billing_not_active",
                                        "account_deactivated",        "model_not_found",
                                        "invalid_request_error"};
    const char *fields[] = {"code", "type"};
    for (size_t f = 0; f < 2; f++) {
        const char *v = json_string_value(json_object_get(err, fields[f]));
        for (size_t k = 0; v && k < sizeof kinds / sizeof *kinds; k++)
            if (strcmp(v, kinds[k]) == 0)
                return kinds[k];
    }
    return NULL;
}

bool wire_error_permanent(const char *body, size_t len, char *kind, size_t kindlen)
{
    json_t *j = json_loadb(body ? body : "", len, 0, NULL);
    const char *k = permanent_kind(error_of(j));
    if (k && kind && kindlen)
        snprintf(kind, kindlen, "%s", k);
    json_decref(j);
    return k != NULL;
}

/* The reason an error object gives, as "type: message". */
static void error_reason(json_t *err, char *why, size_t whylen)
{
    char ex[160];
    const char *m = json_string_value(json_object_get(err, "message"));
    const char *type = json_string_value(json_object_get(err, "code"));
    if (!type)
        type = json_string_value(json_object_get(err, "type"));
    wire_excerpt(ex, sizeof ex, m ? m : json_string_value(err));
    snprintf(why, whylen, "the response is an error%s%s: %s", type ? " " : "", type ? type : "",
             ex[0] ? ex : "(no message)");
}

static bool openai_choice(json_t *j, struct wire_answer *out, char *why, size_t whylen)
{
    json_t *choice = json_array_get(json_object_get(j, "choices"), 0);
    json_t *msg = json_object_get(choice, "message");
    if (!json_is_object(msg)) {
        snprintf(why, whylen, "no choices[0].message in the response");
        return false;
    }
    json_t *content = json_object_get(msg, "content");
    if (content && !json_is_null(content) && !json_is_string(content)) {
        snprintf(why, whylen, "choices[0].message.content is not a string");
        return false;
    }
    out->text = dup_or_empty(json_string_value(content));
    const char *refusal = json_string_value(json_object_get(msg, "refusal"));
    const char *finish = json_string_value(json_object_get(choice, "finish_reason"));
    snprintf(out->finish, sizeof out->finish, "%s", finish ? finish : "");
    if (refusal)
        out->refusal = strdup(refusal);
    else if (finish && strcmp(finish, "content_filter") == 0)
        out->refusal = strdup("stopped by the content filter");
    out->truncated = finish && strcmp(finish, "length") == 0;
    /* reasoning models: DeepSeek / vLLM / llama.cpp put it in reasoning_content, OpenRouter and
     * newer vLLM in reasoning; neither is the text */
    out->reasoning = json_string_length(json_object_get(msg, "reasoning_content")) > 0 ||
                     json_string_length(json_object_get(msg, "reasoning")) > 0;
    json_t *lpc = json_object_get(json_object_get(choice, "logprobs"), "content");
    if (json_is_array(lpc))
        out->lp_content = json_incref(lpc);
    json_t *usage = json_object_get(j, "usage");
    out->prompt_tokens = usage_field(usage, "prompt_tokens");
    out->cached_tokens =
        usage_field(json_object_get(usage, "prompt_tokens_details"), "cached_tokens");
    if (out->cached_tokens > out->prompt_tokens)
        out->cached_tokens = out->prompt_tokens;
    out->completion_tokens = usage_field(usage, "completion_tokens");
    return true;
}

static bool anthropic_message(json_t *j, struct wire_answer *out, char *why, size_t whylen)
{
    json_t *content = json_object_get(j, "content");
    if (!json_is_array(content)) {
        snprintf(why, whylen, "no content array in the response");
        return false;
    }
    size_t i;
    json_t *blk;
    size_t total = 0;
    json_array_foreach(content, i, blk)
    {
        const char *type = json_string_value(json_object_get(blk, "type"));
        const char *t = json_string_value(json_object_get(blk, "text"));
        if (type && (strcmp(type, "thinking") == 0 || strcmp(type, "redacted_thinking") == 0))
            out->reasoning = true;
        if (t && type && strcmp(type, "text") == 0)
            total += strlen(t);
    }
    out->text = malloc(total + 1);
    if (out->text) {
        size_t at = 0;
        json_array_foreach(content, i, blk)
        {
            const char *t = json_string_value(json_object_get(blk, "text"));
            const char *type = json_string_value(json_object_get(blk, "type"));
            if (t && type && strcmp(type, "text") == 0) {
                size_t n = strlen(t);
                memcpy(out->text + at, t, n);
                at += n;
            }
        }
        out->text[at] = '\0';
    }
    const char *stop = json_string_value(json_object_get(j, "stop_reason"));
    snprintf(out->finish, sizeof out->finish, "%s", stop ? stop : "");
    if (stop && strcmp(stop, "refusal") == 0)
        out->refusal = strdup("stop_reason refusal");
    out->truncated = stop && strcmp(stop, "max_tokens") == 0;
    json_t *usage = json_object_get(j, "usage");
    /* input_tokens counts neither the cache reads nor the cache writes */
    out->cached_tokens = usage_field(usage, "cache_read_input_tokens");
    out->cache_write_tokens = usage_field(usage, "cache_creation_input_tokens");
    out->prompt_tokens = sat_add(sat_add(usage_field(usage, "input_tokens"), out->cached_tokens),
                                 out->cache_write_tokens);
    out->completion_tokens = usage_field(usage, "output_tokens");
    return true;
}

int wire_parse(enum wire_format f, const char *body, size_t len, struct wire_answer *out,
               bool *permanent, char *why, size_t whylen)
{
    memset(out, 0, sizeof *out);
    if (permanent)
        *permanent = false;
    json_error_t jerr;
    json_t *j = json_loadb(body ? body : "", len, JSON_REJECT_DUPLICATES, &jerr);
    if (!j || !json_is_object(j)) {
        if (j)
            snprintf(why, whylen, "the response is JSON but not an object");
        else
            snprintf(why, whylen, "the response is not JSON (line %d: %s)", jerr.line, jerr.text);
        json_decref(j);
        return ERR_PROTO;
    }
    int rc = ERR_OK;
    json_t *err = error_of(j);
    if (err) { /* an error inside a 200 (proxies, OpenRouter, overloaded streams) */
        error_reason(err, why, whylen);
        if (permanent)
            *permanent = permanent_kind(err) != NULL;
        rc = ERR_PROTO;
    } else if (!(f == WIRE_OPENAI ? openai_choice(j, out, why, whylen)
                                  : anthropic_message(j, out, why, whylen))) {
        rc = ERR_PROTO;
    } else if (!out->text) {
        rc = ERR_NOMEM;
        snprintf(why, whylen, "out of memory");
    }
    json_decref(j);
    if (rc)
        wire_answer_free(out);
    return rc;
}

/* ---- verdict grammars --------------------------------------------------------------------- */

static const struct {
    const char *name;
    enum wire_verdict_mode mode;
    bool needs_key;
} modes[] = {{"alone", WIRE_VERDICT_ALONE, false},
             {"last-line", WIRE_VERDICT_LAST_LINE, true},
             {"marker", WIRE_VERDICT_MARKER, true},
             {"json", WIRE_VERDICT_JSON, true}};
#define NMODES (sizeof modes / sizeof *modes)

int wire_grammar_parse(const char *spec, struct wire_grammar *g, char *why, size_t whylen)
{
    memset(g, 0, sizeof *g);
    while (*spec == ' ' || *spec == '\t')
        spec++;
    size_t n = strcspn(spec, " \t");
    const char *arg = spec + n;
    while (*arg == ' ' || *arg == '\t')
        arg++;
    size_t al = strlen(arg);
    while (al && isspace((unsigned char)arg[al - 1]))
        al--;
    for (size_t m = 0; m < NMODES; m++) {
        if (strlen(modes[m].name) != n || strncmp(spec, modes[m].name, n) != 0)
            continue;
        if (modes[m].needs_key && !al) {
            snprintf(why, whylen, "@verdict %s needs its %s", modes[m].name,
                     modes[m].mode == WIRE_VERDICT_JSON ? "KEY" : "PREFIX");
            return ERR_INVAL;
        }
        if (!modes[m].needs_key && al) {
            snprintf(why, whylen, "@verdict %s takes nothing after it", modes[m].name);
            return ERR_INVAL;
        }
        if (al >= sizeof g->key) {
            snprintf(why, whylen, "@verdict: '%.*s' is longer than %zu bytes", (int)al, arg,
                     sizeof g->key - 1);
            return ERR_INVAL;
        }
        g->mode = modes[m].mode;
        memcpy(g->key, arg, al);
        g->key[al] = '\0';
        return ERR_OK;
    }
    snprintf(why, whylen,
             "@verdict: unknown grammar '%.*s' (known: alone, last-line PREFIX, marker PREFIX, "
             "json KEY)",
             (int)(n > 40 ? 40 : n), spec);
    return ERR_INVAL;
}

void wire_grammar_str(const struct wire_grammar *g, char *out, size_t outlen)
{
    const char *name = "?";
    for (size_t m = 0; m < NMODES; m++)
        if (modes[m].mode == g->mode)
            name = modes[m].name;
    snprintf(out, outlen, "%s%s%s", name, g->key[0] ? " " : "", g->key);
}

/* Markdown and quoting around a token. */
static bool decor(char c)
{
    return c && strchr("\"'*_`([{#>", c) != NULL;
}

static bool decor_after(char c)
{
    return c && strchr("\"'*_`)]}.!", c) != NULL;
}

static bool blank(char c)
{
    return c == ' ' || c == '\t' || c == '\r';
}

/* Does answer token tok start at s and end at a non-alphanumeric character? */
static bool token_at(const char *s, const char *tok)
{
    size_t n = strlen(tok);
    return n && strncmp(s, tok, n) == 0 && !isalnum((unsigned char)s[n]);
}

/* Which answer token is at s (-1: none). */
static int token_index(const char *s, const char answers[2][16])
{
    for (int k = 0; k < 2; k++)
        if (token_at(s, answers[k]))
            return k;
    return -1;
}

/* Is [s, end) only blanks and closing decoration? */
static bool only_tail(const char *s, const char *end)
{
    for (; s < end; s++)
        if (!blank(*s) && !decor_after(*s) && *s != '\n')
            return false;
    return true;
}

/* PREFIX at s, case-insensitively and ignoring blanks (and markdown emphasis) on both sides;
 * returns the end of the match in s, or NULL. */
static const char *prefix_at(const char *s, const char *end, const char *prefix)
{
    const char *p = prefix;
    while (*p) {
        if (blank(*p)) {
            p++;
            continue;
        }
        while (s < end && (blank(*s) || *s == '*' || *s == '_'))
            s++;
        if (s >= end || tolower((unsigned char)*s) != tolower((unsigned char)*p))
            return NULL;
        s++;
        p++;
    }
    return s;
}

/* After a PREFIX match: skips blanks and decoration; the token index there, *tok its start. */
static int token_after(const char *q, const char *end, const char answers[2][16], const char **tok)
{
    while (q < end && (blank(*q) || decor(*q)))
        q++;
    *tok = q;
    return q < end ? token_index(q, answers) : -1;
}

/* The text with a <think>...</think> part skipped: *start is where the answer proper begins.
 * false when a <think> is never closed. */
static bool skip_reasoning(const char *text, size_t *start)
{
    *start = 0;
    const char *open = strstr(text, "<think>");
    const char *close = NULL;
    for (const char *p = strstr(text, "</think>"); p; p = strstr(p + 1, "</think>"))
        close = p;
    if (close) {
        *start = (size_t)(close - text) + strlen("</think>");
        return true;
    }
    return open == NULL;
}

static void excerpt_n(char *out, size_t outlen, const char *s, size_t n)
{
    char tmp[256];
    size_t m = n < sizeof tmp - 1 ? n : sizeof tmp - 1;
    memcpy(tmp, s, m);
    tmp[m] = '\0';
    wire_excerpt(out, outlen, tmp);
}

/* Each mode: the chosen index and the token's start in text, or -1 with why. */
static int verdict_alone(const char *text, size_t start, const char answers[2][16],
                         const char **tok, char *why, size_t whylen)
{
    const char *s = text + start;
    while (*s && (isspace((unsigned char)*s) || decor(*s)))
        s++;
    const char *end = s + strlen(s);
    int k = token_index(s, answers);
    if (k >= 0 && only_tail(s + strlen(answers[k]), end)) {
        *tok = s;
        return k;
    }
    char ex[120];
    wire_excerpt(ex, sizeof ex, text + start);
    snprintf(why, whylen, "the answer is not one of %s or %s alone: '%s'", answers[0], answers[1],
             ex);
    return -1;
}

static int verdict_last_line(const char *text, size_t start, const char *prefix,
                             const char answers[2][16], const char **tok, char *why, size_t whylen)
{
    const char *s = text + start;
    const char *end = s + strlen(s);
    while (end > s && isspace((unsigned char)end[-1]))
        end--;
    const char *line = end;
    while (line > s && line[-1] != '\n')
        line--;
    if (line == end) {
        snprintf(why, whylen, "the answer is empty: no '%s %s|%s' line", prefix, answers[0],
                 answers[1]);
        return -1;
    }
    int k = -1;
    const char *t = NULL;
    for (const char *p = line; p < end; p++) { /* the last PREFIX of the line counts */
        const char *q = prefix_at(p, end, prefix);
        const char *tt;
        int kk = q ? token_after(q, end, answers, &tt) : -1;
        if (kk >= 0 && only_tail(tt + strlen(answers[kk]), end)) {
            k = kk;
            t = tt;
        }
    }
    if (k < 0) { /* the token alone: the prompt ended in PREFIX and the answer continues it */
        const char *q = line;
        while (q < end && (blank(*q) || decor(*q)))
            q++;
        int kk = token_index(q, answers);
        if (kk >= 0 && only_tail(q + strlen(answers[kk]), end)) {
            k = kk;
            t = q;
        }
    }
    if (k < 0) {
        char ex[120];
        excerpt_n(ex, sizeof ex, line, (size_t)(end - line));
        snprintf(why, whylen, "the last line is not '%s %s' or '%s %s': '%s'", prefix, answers[0],
                 prefix, answers[1], ex);
        return -1;
    }
    *tok = t;
    return k;
}

static int verdict_marker(const char *text, size_t start, const char *prefix,
                          const char answers[2][16], const char **tok, char *why, size_t whylen)
{
    const char *s = text + start;
    const char *end = s + strlen(s);
    int k = -1;
    for (const char *p = s; p < end; p++) {
        const char *q = prefix_at(p, end, prefix);
        const char *tt;
        int kk = q ? token_after(q, end, answers, &tt) : -1;
        if (kk >= 0) {
            k = kk;
            *tok = tt;
        }
    }
    if (k < 0) {
        char ex[120];
        wire_excerpt(ex, sizeof ex, s);
        snprintf(why, whylen, "no '%s %s' or '%s %s' in the answer: '%s'", prefix, answers[0],
                 prefix, answers[1], ex);
    }
    return k;
}

static int verdict_json(const char *text, size_t start, const char *key, const char answers[2][16],
                        const char **tok, char *why, size_t whylen)
{
    const char *s = text + start;
    while (*s && isspace((unsigned char)*s))
        s++;
    const char *e = s + strlen(s);
    while (e > s && isspace((unsigned char)e[-1]))
        e--;
    if (e - s >= 3 && strncmp(s, "```", 3) == 0) { /* a fenced block: ```json ... ``` */
        const char *nl = memchr(s, '\n', (size_t)(e - s));
        if (nl && e - nl >= 4 && strncmp(e - 3, "```", 3) == 0) {
            s = nl + 1;
            e -= 3;
        }
    }
    json_error_t jerr;
    json_t *j = json_loadb(s, (size_t)(e - s), JSON_REJECT_DUPLICATES, &jerr);
    char ex[120];
    if (!json_is_object(j)) {
        excerpt_n(ex, sizeof ex, s, (size_t)(e - s));
        snprintf(why, whylen, "the answer is not a JSON object (%s): '%s'",
                 j ? "another JSON value" : jerr.text, ex);
        json_decref(j);
        return -1;
    }
    json_t *v = json_object_get(j, key);
    char val[64] = "";
    if (json_is_string(v))
        snprintf(val, sizeof val, "%s", json_string_value(v));
    else if (json_is_integer(v))
        snprintf(val, sizeof val, "%lld", (long long)json_integer_value(v));
    json_decref(j);
    int k = -1;
    for (int m = 0; m < 2; m++)
        if (strcmp(val, answers[m]) == 0)
            k = m;
    if (k < 0) {
        snprintf(why, whylen, "the JSON answer's \"%s\" is %s%s%s, not %s or %s", key,
                 v ? "'" : "missing", v ? val : "", v ? "'" : "", answers[0], answers[1]);
        return -1;
    }
    /* where the value stands in the text: after the last "KEY" and its colon */
    char quoted[WIRE_VERDICT_KEY_MAX + 3];
    snprintf(quoted, sizeof quoted, "\"%s\"", key);
    const char *at = NULL;
    for (const char *p = strstr(s, quoted); p && p < e; p = strstr(p + 1, quoted))
        at = p;
    const char *q = at ? at + strlen(quoted) : s;
    while (q < e && (isspace((unsigned char)*q) || *q == ':' || *q == '"'))
        q++;
    *tok = token_at(q, answers[k]) ? q : s;
    return k;
}

/* Strips blanks and decoration from both ends of a token, into out. */
static void clean_token(const char *tok, char *out, size_t cap)
{
    static const char strip[] = " \t\r\n\"'*_`()[]{}=:.";
    while (*tok && strchr(strip, *tok))
        tok++;
    size_t n = strlen(tok);
    while (n && strchr(strip, tok[n - 1]))
        n--;
    if (n >= cap)
        n = 0; /* too long to be an answer token */
    memcpy(out, tok, n);
    out[n] = '\0';
}

static int answer_index(const char *tok, const char answers[2][16])
{
    char t[64];
    if (!tok)
        return -1;
    clean_token(tok, t, sizeof t);
    for (int k = 0; k < 2; k++)
        if (strcmp(t, answers[k]) == 0)
            return k;
    return -1;
}

static double lse(double a, double b)
{
    if (a == -INFINITY)
        return b;
    if (b == -INFINITY)
        return a;
    double m = a > b ? a : b;
    return m + log(exp(a - m) + exp(b - m));
}

/* The bytes of one log-prob entry: its "bytes" array when sent (exact for tokens that split a
 * UTF-8 character), else its "token" string. Returns the length, or -1 when unusable. */
static long entry_bytes(json_t *e, char *buf, size_t cap)
{
    json_t *bytes = json_object_get(e, "bytes");
    if (json_is_array(bytes)) {
        size_t i, n = json_array_size(bytes);
        json_t *b;
        if (n > cap)
            return -1;
        json_array_foreach(bytes, i, b)
        {
            if (!json_is_integer(b) || json_integer_value(b) < 0 || json_integer_value(b) > 255)
                return -1;
            buf[i] = (char)json_integer_value(b);
        }
        return (long)n;
    }
    const char *t = json_string_value(json_object_get(e, "token"));
    if (!t || strlen(t) > cap)
        return -1;
    memcpy(buf, t, strlen(t));
    return (long)strlen(t);
}

/* Log-probs of the two answers at position pos, whose generated token is answer k. */
static bool lp_at(json_t *pos, int k, const char answers[2][16], double lp[2])
{
    double found[2] = {-INFINITY, -INFINITY};
    double mass = 0, min_lp = 0;
    int listed = 0;
    json_t *tops = json_object_get(pos, "top_logprobs");
    size_t t;
    json_t *e;
    json_array_foreach(tops, t, e)
    {
        json_t *l = json_object_get(e, "logprob");
        if (!json_is_number(l))
            continue;
        double v = json_number_value(l);
        if (!isfinite(v))
            continue;
        int kk = answer_index(json_string_value(json_object_get(e, "token")), answers);
        if (kk >= 0)
            found[kk] = lse(found[kk], v);
        mass += exp(v);
        if (!listed || v < min_lp)
            min_lp = v;
        listed++;
    }
    if (found[k] == -INFINITY) { /* no top_logprobs: the generated token alone */
        json_t *l = json_object_get(pos, "logprob");
        if (!json_is_number(l) || !isfinite(json_number_value(l)))
            return false;
        found[k] = json_number_value(l);
        mass += exp(found[k]);
        if (!listed || found[k] < min_lp)
            min_lp = found[k];
        listed++;
    }
    for (int m = 0; m < 2; m++) {
        if (found[m] != -INFINITY)
            continue;
        /* absent from the list: at most the smallest listed, and at most the mass left */
        double rest = 1 - mass;
        double bound = log(rest > 1e-12 ? rest : 1e-12);
        found[m] = bound < min_lp ? bound : min_lp;
    }
    lp[0] = found[0];
    lp[1] = found[1];
    return isfinite(lp[0]) && isfinite(lp[1]);
}

/* Reads the log-probs of the token covering v->offset of text. */
static void verdict_logprobs(json_t *content, const char *text, const char answers[2][16],
                             struct wire_verdict *v)
{
    v->lp_index = -1;
    if (!json_is_array(content) || !json_array_size(content))
        return;
    size_t at = 0, tl = strlen(text), i;
    json_t *e;
    char buf[512];
    json_array_foreach(content, i, e)
    {
        long n = entry_bytes(e, buf, sizeof buf);
        if (n < 0 || at + (size_t)n > tl || memcmp(text + at, buf, (size_t)n) != 0) {
            snprintf(v->lp_note, sizeof v->lp_note,
                     "the log-prob tokens do not spell the answer (at token %zu, byte %zu)", i, at);
            return;
        }
        if (v->offset >= at && v->offset < at + (size_t)n) {
            const char *t = json_string_value(json_object_get(e, "token"));
            snprintf(v->lp_token, sizeof v->lp_token, "%s", t ? t : "");
            v->lp_index = (int)i;
            int k = answer_index(t, answers);
            if (k != v->choice) {
                snprintf(v->lp_note, sizeof v->lp_note,
                         "the verdict's token '%.40s' (position %zu) is not an answer token alone",
                         t ? t : "", i);
                return;
            }
            if (!lp_at(e, k, answers, v->lp)) {
                snprintf(v->lp_note, sizeof v->lp_note, "position %zu has no usable log-prob", i);
                return;
            }
            v->has_logprobs = true;
            return;
        }
        at += (size_t)n;
    }
    snprintf(v->lp_note, sizeof v->lp_note, "the log-probs end before the verdict (byte %zu)",
             v->offset);
}

int wire_find_verdict(const struct wire_answer *a, const struct wire_grammar *g,
                      const char answers[2][16], struct wire_verdict *v, char *why, size_t whylen)
{
    memset(v, 0, sizeof *v);
    v->choice = -1;
    v->lp_index = -1;
    const char *text = a && a->text ? a->text : "";
    size_t start;
    if (!skip_reasoning(text, &start)) {
        snprintf(why, whylen, "the answer ended inside its reasoning (<think> never closed)");
        return ERR_PROTO;
    }
    const char *tok = NULL;
    int k;
    switch (g->mode) {
    case WIRE_VERDICT_LAST_LINE:
        k = verdict_last_line(text, start, g->key, answers, &tok, why, whylen);
        break;
    case WIRE_VERDICT_MARKER:
        k = verdict_marker(text, start, g->key, answers, &tok, why, whylen);
        break;
    case WIRE_VERDICT_JSON:
        k = verdict_json(text, start, g->key, answers, &tok, why, whylen);
        break;
    default:
        k = verdict_alone(text, start, answers, &tok, why, whylen);
        break;
    }
    if (k < 0)
        return ERR_PROTO;
    v->choice = k;
    v->offset = (size_t)(tok - text);
    v->line = 1;
    size_t bol = 0;
    for (size_t i = 0; i < v->offset; i++)
        if (text[i] == '\n') {
            v->line++;
            bol = i + 1;
        }
    v->column = (unsigned)(v->offset - bol + 1);
    if (a->lp_content)
        verdict_logprobs(a->lp_content, text, answers, v);
    return ERR_OK;
}

double wire_prob_first(const double lp[2])
{
    double d = lp[1] - lp[0];
    if (d > 700)
        return 0;
    if (d < -700)
        return 1;
    return 1 / (1 + exp(d));
}
