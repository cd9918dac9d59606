/* judge_conformance_server.c - see judge_conformance_server.h. */
#include "judge_conformance_server.h"

#include <jansson.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "buf.h"

struct queue {
    struct jcs_reply r[JCS_MAX_REPLIES];
    size_t n, next;
};

struct jcs {
    struct MHD_Daemon *d;
    char *dir;
    char url[64];
    pthread_mutex_t mu;
    struct queue q[2]; /* [0] ALPHA first, [1] the others */
    unsigned requests;
    unsigned gzipped; /* replies sent gzip'd since the last jcs_script() */
    char *last_body;
};

/* One request being received. */
struct rq {
    buf_t body;
};

/* ---- replies ------------------------------------------------------------------------------ */

static char *read_fixture(const jcs_t *s, const char *name)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", s->dir, name);
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "judge conformance server: cannot open fixture %s\n", path);
        return NULL;
    }
    buf_t b;
    buf_init(&b, 0);
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        buf_append(&b, chunk, n);
    fclose(f);
    buf_append(&b, "", 0);
    return buf_steal(&b);
}

/* Chunked bodies: handed out in pieces of at most 7 bytes, so that the client reassembles them. */
struct chunks {
    char *body;
    size_t len;
};

static ssize_t chunk_reader(void *cls, uint64_t pos, char *buf, size_t max)
{
    struct chunks *c = cls;
    if (pos >= c->len)
        return MHD_CONTENT_READER_END_OF_STREAM;
    size_t n = c->len - (size_t)pos;
    if (n > 7)
        n = 7;
    if (n > max)
        n = max;
    memcpy(buf, c->body + pos, n);
    return (ssize_t)n;
}

static void chunk_free(void *cls)
{
    struct chunks *c = cls;
    free(c->body);
    free(c);
}

/* body gzip'd (a gzip member, as servers send with Content-Encoding: gzip); NULL on failure. */
static char *gzip_body(const char *body, size_t len, size_t *outlen)
{
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    if (deflateInit2(&zs, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) !=
        Z_OK)
        return NULL;
    uLong cap = deflateBound(&zs, (uLong)len) + 32;
    char *out = malloc(cap);
    if (out) {
        zs.next_in = (Bytef *)body;
        zs.avail_in = (uInt)len;
        zs.next_out = (Bytef *)out;
        zs.avail_out = (uInt)cap;
        if (deflate(&zs, Z_FINISH) == Z_STREAM_END) {
            *outlen = zs.total_out;
        } else {
            free(out);
            out = NULL;
        }
    }
    deflateEnd(&zs);
    return out;
}

/* Sends body (taken) with status; header is one more "Name: value" or NULL. */
static enum MHD_Result send_body(struct MHD_Connection *conn, unsigned status, char *body,
                                 const char *header, bool chunked, bool gzip)
{
    struct MHD_Response *resp = NULL;
    size_t len = strlen(body);
    const char *accept = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Accept-Encoding");
    gzip = gzip && accept && strstr(accept, "gzip");
    if (gzip) {
        size_t zlen = 0;
        char *z = gzip_body(body, len, &zlen);
        free(body);
        if (!z)
            return MHD_NO;
        body = z;
        len = zlen;
    }
    if (chunked) {
        struct chunks *c = malloc(sizeof *c);
        if (c) {
            c->body = body;
            c->len = len;
            resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 64, chunk_reader, c,
                                                     chunk_free);
            if (!resp)
                chunk_free(c);
        } else {
            free(body);
        }
    } else {
        resp = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
        if (!resp)
            free(body);
    }
    if (!resp)
        return MHD_NO;
    MHD_add_response_header(resp, "Content-Type", "application/json");
    if (gzip)
        MHD_add_response_header(resp, "Content-Encoding", "gzip");
    /* the providers' extra headers, which a client must not mind */
    MHD_add_response_header(resp, "x-request-id", "req_7c1b2d3e4f5a6b7c8d9e0f1a2b3c4d5e");
    MHD_add_response_header(resp, "openai-processing-ms", "412");
    if (header) {
        char name[128];
        const char *colon = strchr(header, ':');
        size_t nl = colon ? (size_t)(colon - header) : 0;
        if (colon && nl < sizeof name) {
            memcpy(name, header, nl);
            name[nl] = '\0';
            const char *v = colon + 1;
            while (*v == ' ')
                v++;
            MHD_add_response_header(resp, name, v);
        }
    }
    enum MHD_Result ret = MHD_queue_response(conn, status, resp);
    MHD_destroy_response(resp);
    return ret;
}

static enum MHD_Result send_error(struct MHD_Connection *conn, unsigned status, bool anthropic,
                                  const char *type, const char *param, const char *message)
{
    json_t *j = anthropic ? json_pack("{s:s, s:{s:s, s:s}}", "type", "error", "error", "type", type,
                                      "message", message)
                          : json_pack("{s:{s:s, s:s, s:s?, s:n}}", "error", "message", message,
                                      "type", type, "param", param, "code");
    char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    return s ? send_body(conn, status, s, NULL, false, false) : MHD_NO;
}

static enum MHD_Result send_fixture(jcs_t *s, struct MHD_Connection *conn, unsigned status,
                                    const char *name)
{
    char *b = read_fixture(s, name);
    return b ? send_body(conn, status, b, NULL, false, false) : MHD_NO;
}

/* ---- what the providers check ------------------------------------------------------------- */

/* Every string a request shows the model, in order. */
static void collect_text(json_t *j, buf_t *out)
{
    if (json_is_string(j)) {
        buf_append_str(out, json_string_value(j));
        buf_append(out, "\n", 1);
    } else if (json_is_array(j)) {
        for (size_t i = 0; i < json_array_size(j); i++)
            collect_text(json_array_get(j, i), out);
    } else if (json_is_object(j)) {
        static const char *const keys[] = {"system", "messages", "content", "prompt", "text"};
        for (size_t k = 0; k < sizeof keys / sizeof *keys; k++)
            collect_text(json_object_get(j, keys[k]), out);
    }
}

/* OpenAI's reasoning models (o-series, gpt-5) take neither max_tokens nor a temperature other
 * than 1 nor log-probs. */
static bool reasoning_model(const char *model)
{
    return model && (strncmp(model, "o1", 2) == 0 || strncmp(model, "o3", 2) == 0 ||
                     strncmp(model, "o4", 2) == 0 || strncmp(model, "gpt-5", 5) == 0);
}

/* The request's problem as the provider reports it (returns true after answering), or false. */
static bool reject(jcs_t *s, struct MHD_Connection *conn, const char *url, json_t *req,
                   enum MHD_Result *ret)
{
    bool anthropic = strcmp(url, "/v1/messages") == 0;
    const char *model = json_string_value(json_object_get(req, "model"));
    json_t *temp = json_object_get(req, "temperature");
    if (!model) {
        *ret =
            send_error(conn, 400, anthropic, "invalid_request_error", "model",
                       anthropic ? "model: Field required" : "you must provide a model parameter");
        return true;
    }
    if (anthropic) {
        if (!MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "x-api-key")) {
            *ret = send_fixture(s, conn, 401, "anthropic_authentication_error.json");
            return true;
        }
        if (!MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "anthropic-version")) {
            *ret = send_error(conn, 400, true, "invalid_request_error", NULL,
                              "anthropic-version: header is required");
            return true;
        }
        json_t *mt = json_object_get(req, "max_tokens");
        if (!json_is_integer(mt)) {
            *ret = send_error(conn, 400, true, "invalid_request_error", NULL,
                              "max_tokens: Field required");
            return true;
        }
        json_t *th = json_object_get(req, "thinking");
        if (th) {
            json_int_t budget = json_integer_value(json_object_get(th, "budget_tokens"));
            if (budget < 1024 || budget >= json_integer_value(mt)) {
                *ret = send_error(conn, 400, true, "invalid_request_error", NULL,
                                  "thinking.budget_tokens: must be >= 1024 and less than "
                                  "max_tokens");
                return true;
            }
            if (temp && json_number_value(temp) != 1.0) {
                *ret = send_fixture(s, conn, 400, "anthropic_thinking_temperature.json");
                return true;
            }
        }
        return false;
    }
    if (strcmp(url, "/v1/chat/completions") == 0 && reasoning_model(model)) {
        if (json_object_get(req, "max_tokens")) {
            *ret = send_fixture(s, conn, 400, "openai_max_tokens_unsupported.json");
            return true;
        }
        if (temp && json_number_value(temp) != 1.0) {
            *ret = send_fixture(s, conn, 400, "openai_temperature_unsupported.json");
            return true;
        }
        if (json_is_true(json_object_get(req, "logprobs"))) {
            *ret = send_error(conn, 400, false, "invalid_request_error", "logprobs",
                              "Unsupported parameter: 'logprobs' is not supported with this "
                              "model.");
            return true;
        }
    }
    if (strcmp(url, "/v1/completions") == 0 && !json_is_string(json_object_get(req, "prompt"))) {
        *ret = send_error(conn, 400, false, "invalid_request_error", "prompt",
                          "'prompt' is a required property");
        return true;
    }
    return false;
}

static enum MHD_Result answer(jcs_t *s, struct MHD_Connection *conn, const char *url,
                              const char *method, const buf_t *body)
{
    bool known = strcmp(url, "/v1/chat/completions") == 0 || strcmp(url, "/v1/messages") == 0 ||
                 strcmp(url, "/v1/completions") == 0;
    if (strcmp(method, "POST") != 0 || !known) {
        char msg[300];
        snprintf(msg, sizeof msg, "Invalid URL (%s %.200s)", method, url);
        return send_error(conn, 404, false, "invalid_request_error", NULL, msg);
    }
    pthread_mutex_lock(&s->mu);
    free(s->last_body);
    s->last_body = strdup(body->data ? body->data : "");
    s->requests++;
    pthread_mutex_unlock(&s->mu);
    json_t *req = json_loadb(body->data ? body->data : "", body->len, 0, NULL);
    if (!json_is_object(req)) {
        json_decref(req);
        return send_error(conn, 400, strcmp(url, "/v1/messages") == 0, "invalid_request_error",
                          NULL, "We could not parse the JSON body of your request.");
    }
    enum MHD_Result ret = MHD_NO;
    if (reject(s, conn, url, req, &ret)) {
        json_decref(req);
        return ret;
    }
    buf_t text;
    buf_init(&text, 0);
    collect_text(req, &text);
    json_decref(req);
    const char *t = text.data ? text.data : "";
    const char *alpha = strstr(t, "ALPHA"), *beta = strstr(t, "BETA");
    int which = alpha && (!beta || alpha < beta) ? 0 : 1;
    buf_free(&text);
    pthread_mutex_lock(&s->mu);
    struct queue *q = &s->q[which];
    if (!q->n)
        q = &s->q[0];
    struct jcs_reply r = {.status = 500};
    if (q->n) {
        r = q->r[q->next < q->n ? q->next : q->n - 1];
        if (q->next < q->n)
            q->next++;
    }
    pthread_mutex_unlock(&s->mu);
    if (!r.fixture)
        return send_error(conn, 500, false, "server_error", NULL, "no reply scripted");
    char *b = read_fixture(s, r.fixture);
    if (!b)
        return send_error(conn, 500, false, "server_error", NULL, "fixture missing");
    const char *accept = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Accept-Encoding");
    if (r.gzip && accept && strstr(accept, "gzip")) {
        pthread_mutex_lock(&s->mu);
        s->gzipped++;
        pthread_mutex_unlock(&s->mu);
    }
    return send_body(conn, r.status ? r.status : 200, b, r.header, r.chunked, r.gzip);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
    (void)version;
    jcs_t *s = cls;
    struct rq *r = *con_cls;
    if (!r) {
        r = calloc(1, sizeof *r);
        if (!r)
            return MHD_NO;
        buf_init(&r->body, 0);
        *con_cls = r;
        return MHD_YES;
    }
    if (*upload_data_size) {
        buf_append(&r->body, upload_data, *upload_data_size);
        *upload_data_size = 0;
        return MHD_YES;
    }
    return answer(s, conn, url, method, &r->body);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    (void)cls;
    (void)conn;
    (void)toe;
    struct rq *r = *con_cls;
    if (r) {
        buf_free(&r->body);
        free(r);
    }
    *con_cls = NULL;
}

/* ---- lifecycle ---------------------------------------------------------------------------- */

int jcs_start(jcs_t **out, const char *fixture_dir)
{
    *out = NULL;
    jcs_t *s = calloc(1, sizeof *s);
    if (!s || !(s->dir = strdup(fixture_dir))) {
        free(s);
        return -1;
    }
    pthread_mutex_init(&s->mu, NULL);
    s->d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG, 0, NULL, NULL,
                            on_request, s, MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
                            MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)10, MHD_OPTION_END);
    const union MHD_DaemonInfo *info =
        s->d ? MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_BIND_PORT) : NULL;
    if (!info || !info->port) {
        fprintf(stderr, "judge conformance server: cannot start libmicrohttpd\n");
        jcs_stop(&s);
        return -1;
    }
    snprintf(s->url, sizeof s->url, "http://127.0.0.1:%u/v1", (unsigned)info->port);
    *out = s;
    return 0;
}

void jcs_stop(jcs_t **ps)
{
    if (!ps || !*ps)
        return;
    jcs_t *s = *ps;
    if (s->d)
        MHD_stop_daemon(s->d);
    pthread_mutex_destroy(&s->mu);
    free(s->last_body);
    free(s->dir);
    free(s);
    *ps = NULL;
}

const char *jcs_base_url(const jcs_t *s)
{
    return s->url;
}

void jcs_script(jcs_t *s, const struct jcs_reply *ab, size_t nab, const struct jcs_reply *ba,
                size_t nba)
{
    pthread_mutex_lock(&s->mu);
    memset(s->q, 0, sizeof s->q);
    for (size_t i = 0; i < nab && i < JCS_MAX_REPLIES; i++)
        s->q[0].r[s->q[0].n++] = ab[i];
    for (size_t i = 0; ba && i < nba && i < JCS_MAX_REPLIES; i++)
        s->q[1].r[s->q[1].n++] = ba[i];
    s->requests = 0;
    s->gzipped = 0;
    free(s->last_body);
    s->last_body = NULL;
    pthread_mutex_unlock(&s->mu);
}

unsigned jcs_requests(jcs_t *s)
{
    pthread_mutex_lock(&s->mu);
    unsigned n = s->requests;
    pthread_mutex_unlock(&s->mu);
    return n;
}

char *jcs_last_body(jcs_t *s)
{
    pthread_mutex_lock(&s->mu);
    char *b = strdup(s->last_body ? s->last_body : "");
    pthread_mutex_unlock(&s->mu);
    return b;
}

unsigned jcs_gzipped(jcs_t *s)
{
    pthread_mutex_lock(&s->mu);
    unsigned n = s->gzipped;
    pthread_mutex_unlock(&s->mu);
    return n;
}
