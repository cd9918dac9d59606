/* sampler_remote.c - see sampler_remote.h. */
#include "sampler_remote.h"

#include <jansson.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"

struct sampler_remote {
    const struct sampler_remote_config *cfg;
    struct http_config http_cfg; /* http_opts_config() of cfg->http */
    http_client_t *http;
    char *url;  /* <base_url>/completions */
    char *key;  /* the API key (api_key, else api_key_env's variable), or NULL */
    char *auth; /* "Authorization: Bearer <key>" or NULL */
};

static void wipe_free(char *p)
{
    if (p) {
        memset(p, 0, strlen(p));
        free(p);
    }
}

int sampler_remote_new(sampler_remote_t **out, const struct sampler_remote_config *cfg, char *why,
                       size_t whylen)
{
    *out = NULL;
    if (!cfg->base_url || !*cfg->base_url) {
        snprintf(why, whylen, "sampler.remote.base_url: required by the remote backend");
        return ERR_INVAL;
    }
    if (!cfg->model || !*cfg->model) {
        snprintf(why, whylen, "sampler.remote.model: required by the remote backend");
        return ERR_INVAL;
    }
    struct http_config hc = http_opts_config(&cfg->http);
    char hwhy[256];
    if (http_config_validate(&hc, hwhy, sizeof hwhy)) {
        snprintf(why, whylen, "sampler.remote: %s", hwhy);
        return ERR_INVAL;
    }
    const char *key = cfg->api_key && *cfg->api_key ? cfg->api_key : NULL;
    if (!key && cfg->api_key_env && *cfg->api_key_env) {
        key = getenv(cfg->api_key_env);
        if (!key || !*key) {
            snprintf(why, whylen, "sampler.remote.api_key_env: the variable %s is not set",
                     cfg->api_key_env);
            return ERR_INVAL;
        }
    }
    sampler_remote_t *r = calloc(1, sizeof *r);
    if (!r)
        return ERR_NOMEM;
    r->cfg = cfg;
    r->http_cfg = hc;
    size_t bl = strlen(cfg->base_url);
    while (bl > 0 && cfg->base_url[bl - 1] == '/')
        bl--;
    r->url = malloc(bl + sizeof "/completions");
    if (!r->url)
        goto out_nomem;
    memcpy(r->url, cfg->base_url, bl);
    memcpy(r->url + bl, "/completions", sizeof "/completions");
    if (key) {
        size_t kl = strlen(key);
        r->key = strdup(key);
        r->auth = malloc(kl + sizeof "Authorization: Bearer ");
        if (!r->key || !r->auth)
            goto out_nomem;
        memcpy(r->auth, "Authorization: Bearer ", sizeof "Authorization: Bearer " - 1);
        memcpy(r->auth + sizeof "Authorization: Bearer " - 1, key, kl + 1);
    }
    int rc = http_client_new(&r->http, &r->http_cfg);
    if (rc) {
        snprintf(why, whylen, "sampler.remote: cannot start the HTTP client (%s)", err_str(rc));
        sampler_remote_destroy(&r);
        return rc;
    }
    *out = r;
    return ERR_OK;
out_nomem:
    sampler_remote_destroy(&r);
    return ERR_NOMEM;
}

void sampler_remote_destroy(sampler_remote_t **pr)
{
    if (!pr || !*pr)
        return;
    sampler_remote_t *r = *pr;
    http_client_destroy(&r->http);
    free(r->url);
    wipe_free(r->key);
    wipe_free(r->auth);
    free(r);
    *pr = NULL;
}

/* ---- the wire ----------------------------------------------------------------------------- */

int sampler_remote_body(const struct sampler_remote_config *cfg,
                        const struct sampler_remote_call *call, char **out)
{
    *out = NULL;
    bool greedy = call->top_k == 1;
    json_t *o = json_object();
    if (!o)
        return ERR_NOMEM;
    int bad = 0;
    bad |= json_object_set_new(o, "model", json_string(cfg->model ? cfg->model : ""));
    bad |= json_object_set_new(o, "prompt", json_string(call->prompt));
    bad |= json_object_set_new(o, "max_tokens", json_integer(call->max_tokens));
    bad |= json_object_set_new(o, "temperature", json_real(greedy ? 0.0 : call->temperature));
    bad |= json_object_set_new(o, "top_p", json_real(call->top_p));
    if (call->top_k > 0)
        bad |= json_object_set_new(o, "top_k", json_integer(call->top_k));
    bad |= json_object_set_new(o, "n", json_integer(1));
    /* JSON integers are signed 64-bit and some servers take 32 bits: keep the seed in range */
    bad |= json_object_set_new(o, "seed", json_integer((json_int_t)(call->seed & 0x7fffffffu)));
    if (call->nstop > 0) {
        json_t *a = json_array();
        for (size_t i = 0; a && i < call->nstop; i++)
            bad |= json_array_append_new(a, json_string(call->stop[i]));
        bad |= json_object_set_new(o, "stop", a);
    }
    if (cfg->logprobs)
        bad |= json_object_set_new(o, "logprobs", json_integer(1));
    bad |= json_object_set_new(o, "stream", json_false());
    char *s = bad ? NULL : json_dumps(o, JSON_COMPACT);
    json_decref(o);
    if (!s)
        return ERR_NOMEM;
    *out = s;
    return ERR_OK;
}

int sampler_remote_parse(const char *body, size_t len, struct sampler_response *out, char *why,
                         size_t whylen)
{
    memset(out, 0, sizeof *out);
    json_error_t jerr;
    json_t *root = json_loadb(body, len, 0, &jerr);
    if (!root) {
        snprintf(why, whylen, "the answer is not JSON (%s at line %d, column %d)", jerr.text,
                 jerr.line, jerr.column);
        return ERR_PROTO;
    }
    int rc = ERR_PROTO;
    json_t *choices = json_object_get(root, "choices");
    json_t *c = json_is_array(choices) ? json_array_get(choices, 0) : NULL;
    if (!json_is_object(c)) {
        json_t *err = json_object_get(root, "error");
        json_t *msg = json_is_object(err) ? json_object_get(err, "message") : err;
        if (json_is_string(msg))
            snprintf(why, whylen, "the answer has no choices; its error: %.200s",
                     json_string_value(msg));
        else
            snprintf(why, whylen, "the answer has no choices[0] object");
        goto out;
    }
    json_t *text = json_object_get(c, "text");
    if (!json_is_string(text)) {
        snprintf(why, whylen, "choices[0].text is missing or not a string");
        goto out;
    }
    /* finish reason */
    const char *fr = json_string_value(json_object_get(c, "finish_reason"));
    json_t *sr = json_object_get(c, "stop_reason");
    if (fr && !strcmp(fr, "length"))
        out->finish = OAIF__V1__FINISH_REASON__FINISH_REASON_LENGTH;
    else if (json_is_string(sr) || json_is_true(json_object_get(c, "stopped_word")) ||
             json_is_true(json_object_get(root, "stopped_word")))
        out->finish = OAIF__V1__FINISH_REASON__FINISH_REASON_STOP;
    else if (!fr || !strcmp(fr, "stop") || !strcmp(fr, "eos") || !strcmp(fr, "eos_token"))
        out->finish = OAIF__V1__FINISH_REASON__FINISH_REASON_EOS;
    else {
        snprintf(why, whylen, "choices[0].finish_reason '%.40s' is not stop or length", fr);
        goto out;
    }
    /* log-probs: the legacy completions format (OpenAI, vLLM), logprobs.token_logprobs whose
     * first may be null; or llama.cpp's, one entry per token with its own logprob
     * (logprobs.content[], in the OpenAI chat style) */
    json_t *lp = json_object_get(c, "logprobs");
    json_t *tl = json_is_object(lp) ? json_object_get(lp, "token_logprobs") : NULL;
    const char *field = "choices[0].logprobs.token_logprobs";
    const char *member = NULL; /* NULL: the array holds numbers; else each entry's member */
    if (!json_is_array(tl) && json_is_object(lp) && json_is_array(json_object_get(lp, "content"))) {
        tl = json_object_get(lp, "content");
        field = "choices[0].logprobs.content";
        member = "logprob";
    }
    size_t lp_tokens = 0;
    if (json_is_array(tl)) {
        double sum = 0.0;
        size_t i;
        json_t *e;
        json_array_foreach(tl, i, e)
        {
            json_t *v = member ? json_object_get(e, member) : e;
            if (json_is_number(v)) {
                double x = json_number_value(v);
                if (!isfinite(x)) {
                    snprintf(why, whylen, "%s[%zu] is not finite", field, i);
                    goto out;
                }
                sum += x;
            } else if (member || !json_is_null(v)) {
                snprintf(why, whylen, "%s[%zu]%s%s is not a number", field, i, member ? "." : "",
                         member ? member : "");
                goto out;
            }
        }
        lp_tokens = json_array_size(tl);
        out->logprob = sum;
        out->has_logprob = true;
    }
    json_t *usage = json_object_get(root, "usage");
    json_t *ct = json_is_object(usage) ? json_object_get(usage, "completion_tokens") : NULL;
    if (json_is_integer(ct) && json_integer_value(ct) >= 0 &&
        json_integer_value(ct) <= (json_int_t)UINT32_MAX)
        out->num_tokens = (uint32_t)json_integer_value(ct);
    else
        out->num_tokens = (uint32_t)lp_tokens;
    out->text = strdup(json_string_value(text));
    rc = out->text ? ERR_OK : ERR_NOMEM;
out:
    json_decref(root);
    if (rc) {
        free(out->text);
        memset(out, 0, sizeof *out);
    }
    return rc;
}

/* ---- running calls ------------------------------------------------------------------------ */

struct pending {
    sampler_remote_t *r;
    struct sampler_response *out;
    size_t index;
    int *first_rc;
    char *why;
    size_t whylen;
    size_t *left;
};

static void on_done(void *user, const struct http_response *resp)
{
    struct pending *p = user;
    (*p->left)--;
    if (*p->first_rc)
        return; /* one error is reported; the rest are only waited for */
    char pwhy[256];
    int rc = resp->rc;
    if (rc == ERR_OK) {
        rc = sampler_remote_parse(resp->body, resp->body_len, p->out, pwhy, sizeof pwhy);
        if (rc)
            snprintf(p->why, p->whylen, "remote call %zu to %s: %s", p->index, p->r->url, pwhy);
    } else {
        snprintf(p->why, p->whylen, "remote call %zu to %s failed after %u attempt%s: %s", p->index,
                 p->r->url, resp->attempts, resp->attempts == 1 ? "" : "s",
                 resp->error ? resp->error : err_str(rc));
        if (resp->permanent)
            rc = ERR_REMOTE;
        else if (rc == ERR_REMOTE)
            rc = ERR_AGAIN;
    }
    if (rc)
        *p->first_rc = rc;
}

int sampler_remote_run(sampler_remote_t *r, const struct sampler_remote_call *calls, size_t n,
                       int64_t deadline_ms, struct sampler_response *out, char *why, size_t whylen)
{
    memset(out, 0, n * sizeof *out);
    if (!r->http && http_client_new(&r->http, &r->http_cfg)) {
        snprintf(why, whylen, "remote: cannot restart the HTTP client");
        return ERR_NOMEM;
    }
    struct pending *ps = calloc(n ? n : 1, sizeof *ps);
    if (!ps)
        return ERR_NOMEM;
    int first_rc = ERR_OK;
    size_t left = 0;
    const char *headers[2] = {"Content-Type: application/json", r->auth};
    const char *secrets[1] = {r->key};
    for (size_t i = 0; i < n && !first_rc; i++) {
        char *body = NULL;
        int rc = sampler_remote_body(r->cfg, &calls[i], &body);
        if (rc) {
            first_rc = rc;
            snprintf(why, whylen, "remote call %zu: out of memory", i);
            break;
        }
        ps[i] = (struct pending){.r = r,
                                 .out = &out[i],
                                 .index = i,
                                 .first_rc = &first_rc,
                                 .why = why,
                                 .whylen = whylen,
                                 .left = &left};
        struct http_request req = {
            .method = "POST",
            .url = r->url,
            .headers = headers,
            .nheaders = r->auth ? 2 : 1,
            .body = body,
            .body_len = strlen(body),
            .secrets = secrets,
            .nsecrets = r->key ? 1 : 0,
            .tokens = (double)strlen(calls[i].prompt) / 4.0 + calls[i].max_tokens,
            .deadline_ms = deadline_ms,
        };
        rc = http_client_submit(r->http, &req, on_done, &ps[i]);
        free(body);
        if (rc) {
            first_rc = rc;
            snprintf(why, whylen, "remote call %zu: cannot submit (%s)", i, err_str(rc));
            break;
        }
        left++;
    }
    while (left > 0) {
        int rc = http_client_poll(r->http, 100, NULL, 0);
        if (rc) {
            if (!first_rc) {
                first_rc = rc;
                snprintf(why, whylen, "remote: the HTTP client failed (%s)", err_str(rc));
            }
            break;
        }
    }
    if (left > 0) { /* a local fault of the client: drop what is in flight with a fresh one */
        http_client_destroy(&r->http);
        if (http_client_new(&r->http, &r->http_cfg))
            r->http = NULL;
    }
    free(ps);
    if (first_rc) {
        for (size_t i = 0; i < n; i++)
            free(out[i].text);
        memset(out, 0, n * sizeof *out);
    }
    return first_rc;
}
