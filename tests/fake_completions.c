/* fake_completions.c - see fake_completions.h. */
#include "fake_completions.h"

#include <arpa/inet.h>
#include <jansson.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"

struct rq {
    buf_t body;
    bool started;
};

static enum MHD_Result answer(struct MHD_Connection *conn, unsigned status, char *body)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(
        body ? strlen(body) : 0, body ? body : "", MHD_RESPMEM_MUST_COPY);
    free(body);
    if (!r)
        return MHD_NO;
    MHD_add_response_header(r, "Content-Type", "application/json");
    enum MHD_Result ret = MHD_queue_response(conn, status, r);
    MHD_destroy_response(r);
    return ret;
}

static char *error_body(const char *msg)
{
    json_t *o = json_pack("{s:{s:s,s:s}}", "error", "message", msg, "type", "fake");
    char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    return s;
}

static char *complete(json_t *req, unsigned *status)
{
    const char *prompt = json_string_value(json_object_get(req, "prompt"));
    json_t *mt = json_object_get(req, "max_tokens");
    if (!prompt || !json_is_integer(mt)) {
        *status = 400;
        return error_body("prompt and max_tokens are required");
    }
    if (strstr(prompt, "REJECT")) {
        *status = 400;
        return error_body("this prompt is rejected");
    }
    size_t max = (size_t)json_integer_value(mt);
    long long seed = json_is_integer(json_object_get(req, "seed"))
                         ? json_integer_value(json_object_get(req, "seed"))
                         : 0;
    size_t pl = strlen(prompt);
    char *text = malloc(pl + 32);
    if (!text)
        return NULL;
    int hl = snprintf(text, 32, "r%lld:", seed % 100000);
    for (size_t i = 0; i < pl; i++)
        text[hl + i] = prompt[pl - 1 - i];
    size_t tl = (size_t)hl + pl;
    text[tl] = '\0';
    const char *finish = "stop";
    json_t *stop_reason = json_null();
    json_t *stops = json_object_get(req, "stop");
    size_t cut = tl;
    size_t i;
    json_t *st;
    json_array_foreach(stops, i, st)
    {
        const char *ss = json_string_value(st);
        char *at = ss && *ss ? strstr(text, ss) : NULL;
        if (at && (size_t)(at - text) < cut) {
            cut = (size_t)(at - text);
            json_decref(stop_reason);
            stop_reason = json_string(ss);
        }
    }
    if (cut > max) {
        cut = max;
        finish = "length";
        json_decref(stop_reason);
        stop_reason = json_null();
    }
    text[cut] = '\0';
    json_t *choice = json_pack("{s:i,s:s,s:s,s:o}", "index", 0, "text", text, "finish_reason",
                               finish, "stop_reason", stop_reason);
    if (json_is_true(json_object_get(req, "logprobs")) ||
        json_integer_value(json_object_get(req, "logprobs")) > 0) {
        json_t *tl_arr = json_array();
        for (size_t k = 0; k < cut; k++)
            json_array_append_new(tl_arr, json_real(-0.25));
        json_object_set_new(choice, "logprobs", json_pack("{s:o}", "token_logprobs", tl_arr));
    }
    json_t *resp = json_pack("{s:s,s:s,s:[o],s:{s:i,s:i}}", "id", "cmpl-fake", "object",
                             "text_completion", "choices", choice, "usage", "prompt_tokens",
                             (int)pl, "completion_tokens", (int)cut);
    free(text);
    char *s = resp ? json_dumps(resp, JSON_COMPACT) : NULL;
    json_decref(resp);
    *status = 200;
    return s;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
    (void)version;
    struct fake_completions *f = cls;
    struct rq *r = *con_cls;
    if (!r) {
        r = calloc(1, sizeof *r);
        if (!r)
            return MHD_NO;
        buf_init(&r->body, 1u << 20);
        *con_cls = r;
        return MHD_YES;
    }
    if (*upload_data_size) {
        if (buf_append(&r->body, upload_data, *upload_data_size))
            return MHD_NO;
        *upload_data_size = 0;
        return MHD_YES;
    }
    size_t ul = strlen(url);
    if (strcmp(method, "POST") != 0 || ul < 12 || strcmp(url + ul - 12, "/completions") != 0)
        return answer(conn, 404, error_body("no such endpoint"));
    atomic_fetch_add(&f->requests, 1);
    const char *auth = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Authorization");
    snprintf(f->last_auth, sizeof f->last_auth, "%s", auth ? auth : "");
    if (atomic_fetch_sub(&f->fail_first, 1) > 0)
        return answer(conn, (unsigned)(f->fail_status ? f->fail_status : 503),
                      error_body("overloaded, try again"));
    atomic_store(&f->fail_first, 0);
    json_error_t jerr;
    json_t *req = json_loadb(r->body.data ? (const char *)r->body.data : "", r->body.len, 0, &jerr);
    if (!req)
        return answer(conn, 400, error_body("the body is not JSON"));
    unsigned status = 500;
    char *body = complete(req, &status);
    json_decref(req);
    return answer(conn, status, body);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    (void)cls;
    (void)conn;
    (void)toe;
    struct rq *r = *con_cls;
    if (!r)
        return;
    buf_free(&r->body);
    free(r);
    *con_cls = NULL;
}

int fake_completions_start(struct fake_completions *f)
{
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = 0};
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    f->d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG, 0, NULL, NULL,
                            on_request, f, MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL,
                            MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sin, MHD_OPTION_END);
    if (!f->d)
        return -1;
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(f->d, MHD_DAEMON_INFO_BIND_PORT);
    if (!info || !info->port) {
        MHD_stop_daemon(f->d);
        f->d = NULL;
        return -1;
    }
    f->port = info->port;
    snprintf(f->base_url, sizeof f->base_url, "http://127.0.0.1:%d/v1", f->port);
    return 0;
}

void fake_completions_stop(struct fake_completions *f)
{
    if (f->d)
        MHD_stop_daemon(f->d);
    f->d = NULL;
}
