/* wire.c - see wire.h. */
#include "wire.h"

#include <ctype.h>
#include <jansson.h>
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
    bad |= json_object_set_new(j, "temperature", json_real(p->temperature));
    bad |= json_object_set_new(j, "max_tokens", json_integer(p->max_tokens));
    if (f == WIRE_OPENAI) {
        bad |= json_object_set_new(j, "n", json_integer(1));
        bad |= json_object_set_new(j, "stream", json_false());
        if (p->logprobs) {
            bad |= json_object_set_new(j, "logprobs", json_true());
            bad |= json_object_set_new(j, "top_logprobs", json_integer(p->top_logprobs));
        }
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

/* s without leading and trailing whitespace, into out (cap bytes); false if it does not fit. */
static bool trimmed(const char *s, char *out, size_t cap)
{
    while (*s && isspace((unsigned char)*s))
        s++;
    size_t n = strlen(s);
    while (n && isspace((unsigned char)s[n - 1]))
        n--;
    if (n >= cap)
        return false;
    memcpy(out, s, n);
    out[n] = '\0';
    return true;
}

static int answer_index(const char *tok, const char answers[2][16])
{
    char t[64];
    if (!tok || !trimmed(tok, t, sizeof t))
        return -1;
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

/* Log-probs of the two answer tokens from OpenAI's choices[0].logprobs; false if unusable. */
static bool openai_logprobs(json_t *logprobs, const char answers[2][16], double lp[2])
{
    json_t *content = json_object_get(logprobs, "content");
    if (!json_is_array(content))
        return false;
    size_t i;
    json_t *pos;
    json_array_foreach(content, i, pos)
    {
        const char *tok = json_string_value(json_object_get(pos, "token"));
        int k = answer_index(tok, answers);
        if (k < 0)
            continue;
        /* the first position where an answer token was generated: the forced choice */
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
            if (!isfinite(v) && v != -INFINITY)
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
            if (!json_is_number(l))
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
    return false;
}

static unsigned usage_field(json_t *usage, const char *name)
{
    json_t *v = json_object_get(usage, name);
    if (!json_is_integer(v) || json_integer_value(v) < 0)
        return 0;
    json_int_t n = json_integer_value(v);
    return n > 0xffffffffLL ? 0xffffffffu : (unsigned)n;
}

static char *dup_or_empty(const char *s)
{
    return strdup(s ? s : "");
}

int wire_parse(enum wire_format f, const char *body, size_t len, const char answers[2][16],
               struct wire_answer *out, char *why, size_t whylen)
{
    memset(out, 0, sizeof *out);
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
    json_t *err = json_object_get(j, "error");
    if (err && !json_is_null(err)) {
        char ex[160];
        const char *m = json_string_value(json_object_get(err, "message"));
        wire_excerpt(ex, sizeof ex, m ? m : json_string_value(err));
        snprintf(why, whylen, "the response is an error: %s", ex[0] ? ex : "(no message)");
        rc = ERR_PROTO;
        goto out_decref;
    }
    if (f == WIRE_OPENAI) {
        json_t *choice = json_array_get(json_object_get(j, "choices"), 0);
        json_t *msg = json_object_get(choice, "message");
        if (!json_is_object(msg)) {
            snprintf(why, whylen, "no choices[0].message in the response");
            rc = ERR_PROTO;
            goto out_decref;
        }
        json_t *content = json_object_get(msg, "content");
        if (content && !json_is_null(content) && !json_is_string(content)) {
            snprintf(why, whylen, "choices[0].message.content is not a string");
            rc = ERR_PROTO;
            goto out_decref;
        }
        out->text = dup_or_empty(json_string_value(content));
        const char *refusal = json_string_value(json_object_get(msg, "refusal"));
        const char *finish = json_string_value(json_object_get(choice, "finish_reason"));
        if (refusal)
            out->refusal = strdup(refusal);
        else if (finish && strcmp(finish, "content_filter") == 0)
            out->refusal = strdup("stopped by the content filter");
        out->has_logprobs = openai_logprobs(json_object_get(choice, "logprobs"), answers, out->lp);
        json_t *usage = json_object_get(j, "usage");
        out->prompt_tokens = usage_field(usage, "prompt_tokens");
        out->completion_tokens = usage_field(usage, "completion_tokens");
    } else {
        json_t *content = json_object_get(j, "content");
        if (!json_is_array(content)) {
            snprintf(why, whylen, "no content array in the response");
            rc = ERR_PROTO;
            goto out_decref;
        }
        size_t i;
        json_t *blk;
        size_t total = 0;
        json_array_foreach(content, i, blk)
        {
            const char *t = json_string_value(json_object_get(blk, "text"));
            const char *type = json_string_value(json_object_get(blk, "type"));
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
        if (stop && strcmp(stop, "refusal") == 0)
            out->refusal = strdup("stop_reason refusal");
        json_t *usage = json_object_get(j, "usage");
        out->prompt_tokens = usage_field(usage, "input_tokens") +
                             usage_field(usage, "cache_creation_input_tokens") +
                             usage_field(usage, "cache_read_input_tokens");
        out->completion_tokens = usage_field(usage, "output_tokens");
    }
    if (!out->text) {
        rc = ERR_NOMEM;
        snprintf(why, whylen, "out of memory");
    }
out_decref:
    json_decref(j);
    if (rc)
        wire_answer_free(out);
    return rc;
}

/* Does the answer token tok start at s and end at a non-alphanumeric character? */
static bool token_at(const char *s, const char *tok)
{
    size_t n = strlen(tok);
    return n && strncmp(s, tok, n) == 0 && !isalnum((unsigned char)s[n]);
}

int wire_verdict(const char *text, const char answers[2][16])
{
    if (!text)
        return -1;
    const char *s = text;
    while (*s && (isspace((unsigned char)*s) || strchr("\"'*([`", *s)))
        s++;
    for (int k = 0; k < 2; k++)
        if (token_at(s, answers[k]))
            return k;
    /* "Preferred Response=2" inside a longer answer: the last one counts */
    static const char key[] = "preferred response";
    int verdict = -1;
    for (const char *p = text; *p; p++) {
        if (strncasecmp(p, key, sizeof key - 1) != 0)
            continue;
        const char *q = p + sizeof key - 1;
        while (*q == ' ' || *q == '\t')
            q++;
        if (*q != '=' && *q != ':')
            continue;
        q++;
        while (*q && (isspace((unsigned char)*q) || strchr("\"'*([`", *q)))
            q++;
        for (int k = 0; k < 2; k++)
            if (token_at(q, answers[k]))
                verdict = k;
    }
    return verdict;
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
