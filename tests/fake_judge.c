/* fake_judge.c - a fake AI judge for the tests and the benchmark: an HTTP server (libmicrohttpd)
 * speaking the OpenAI chat-completions (POST .../chat/completions) and the Anthropic Messages
 * (POST .../messages) wire formats.
 *
 * It judges by markers: in the text of the request's messages, the response in which "GOOD"
 * appears before "BAD" is the better one (GOOD first: the first answer token; BAD first: the
 * second; neither: the first, with probability 1/2). How it answers is set by flags, and per
 * request by headers that override them:
 *
 *   flag                header               meaning
 *   --mode M            X-Fake-Mode          correct | bias (always the first token) | garbage
 *                                            (a 200 body that is not JSON) | chatter (valid
 *                                            format, no verdict) | explain (verdict inside a
 *                                            sentence) | refuse | close (drop the connection)
 *   --logprobs          X-Fake-Logprobs: 1   return log-probs when the request asks for them
 *   --prob P            X-Fake-Prob          P(preferred answer token), default 0.9
 *   --latency MS        X-Fake-Latency       answer after MS milliseconds (connection suspended)
 *   --fail N            X-Fake-Fail          the first N requests (per X-Fake-Key) fail ...
 *   --fail-status S     X-Fake-Fail-Status   ... with status S (default 500)
 *   --retry-after V     X-Fake-Retry-After   ... carrying Retry-After: V
 *   --answers A,B       X-Fake-Answers       the two answer tokens (default 1,2)
 *   --usage P,C         X-Fake-Usage         usage tokens (default: bytes of text / 4, 1)
 *                       X-Fake-Echo-Auth     failures echo the key in their error message
 *                       X-Fake-Key           the counter key of --fail (default: one for all)
 *   --threads T                              MHD thread pool size (default 2)
 *
 * GET /stats returns counters as JSON (requests, per format, connections, the most requests in
 * flight at once, the last Authorization / x-api-key / anthropic-version headers, path and
 * body). POST /reset zeroes counters and failure keys.
 *
 * Usage: fake_judge PORT [flags]   (PORT 0: an ephemeral port). Prints "PORT <n>" on stdout once
 * listening, runs until SIGTERM/SIGINT (or until its parent dies, on Linux). */
#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"

enum mode {
    MODE_CORRECT,
    MODE_BIAS,
    MODE_GARBAGE,
    MODE_CHATTER,
    MODE_EXPLAIN,
    MODE_REFUSE,
    MODE_CLOSE
};
static const char *const mode_names[] = {"correct", "bias",   "garbage", "chatter",
                                         "explain", "refuse", "close"};

struct settings {
    enum mode mode;
    bool logprobs;
    double prob;
    long latency_ms;
    long fail;
    long fail_status;
    char retry_after[64];
    char answers[2][16];
    long usage_prompt, usage_completion; /* < 0: computed */
};

static struct settings defaults = {
    .mode = MODE_CORRECT,
    .prob = 0.9,
    .fail_status = 500,
    .answers = {"1", "2"},
    .usage_prompt = -1,
    .usage_completion = -1,
};

/* ---- shared state ------------------------------------------------------------------------- */

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static atomic_long n_requests, n_chat, n_messages, n_connections, n_max_in_flight;
static char last_auth[512], last_xkey[512], last_aversion[64], last_path[256];
static char *last_body;

struct fail_key {
    char key[64];
    long seen;
    struct fail_key *next;
};
static struct fail_key *fail_keys;

/* ---- delayed answers ---------------------------------------------------------------------- */

struct rq;
static pthread_mutex_t tmu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t tcv = PTHREAD_COND_INITIALIZER;
static struct rq *timers; /* sorted by due */
static bool timer_stop;

struct rq {
    buf_t body;
    bool answered; /* response built (maybe waiting for its latency) */
    bool close;    /* drop the connection instead of answering */
    bool left;     /* no longer counted in flight */
    unsigned status;
    char *resp_body;
    char retry_after[64];
    struct MHD_Connection *conn;
    struct timespec due;
    struct rq *tnext;
};

static atomic_long n_in_flight;

/* The request stops counting as in flight once its answer is queued, before the client can see
 * it: counted until the connection's completion callback instead, a client that starts its next
 * request as soon as it has an answer is seen with one request too many in flight. */
static void leave(struct rq *r)
{
    if (!r->left) {
        r->left = true;
        atomic_fetch_sub(&n_in_flight, 1);
    }
}

static bool ts_before(const struct timespec *a, const struct timespec *b)
{
    return a->tv_sec < b->tv_sec || (a->tv_sec == b->tv_sec && a->tv_nsec < b->tv_nsec);
}

static void *timer_main(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&tmu);
    while (!timer_stop) {
        struct timespec now;
        clock_gettime(CLOCK_REALTIME, &now);
        while (timers && !ts_before(&now, &timers->due)) {
            struct rq *r = timers;
            timers = r->tnext;
            MHD_resume_connection(r->conn);
        }
        if (timers)
            pthread_cond_timedwait(&tcv, &tmu, &timers->due);
        else
            pthread_cond_wait(&tcv, &tmu);
    }
    pthread_mutex_unlock(&tmu);
    return NULL;
}

static void timer_add(struct rq *r, long ms)
{
    clock_gettime(CLOCK_REALTIME, &r->due);
    r->due.tv_sec += ms / 1000;
    r->due.tv_nsec += (ms % 1000) * 1000000L;
    if (r->due.tv_nsec >= 1000000000L) {
        r->due.tv_sec++;
        r->due.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&tmu);
    if (timer_stop) {
        MHD_resume_connection(r->conn);
        pthread_mutex_unlock(&tmu);
        return;
    }
    struct rq **pp = &timers;
    while (*pp && !ts_before(&r->due, &(*pp)->due))
        pp = &(*pp)->tnext;
    r->tnext = *pp;
    *pp = r;
    pthread_cond_signal(&tcv);
    pthread_mutex_unlock(&tmu);
}

/* ---- settings from headers ---------------------------------------------------------------- */

static int parse_mode(const char *s)
{
    for (int i = 0; i < (int)(sizeof mode_names / sizeof *mode_names); i++)
        if (strcmp(s, mode_names[i]) == 0)
            return i;
    return -1;
}

static bool parse_pair(const char *s, char a[16], char b[16])
{
    const char *comma = strchr(s, ',');
    if (!comma || comma == s || !comma[1] || (size_t)(comma - s) >= 16 || strlen(comma + 1) >= 16)
        return false;
    memcpy(a, s, (size_t)(comma - s));
    a[comma - s] = '\0';
    snprintf(b, 16, "%s", comma + 1);
    return true;
}

static bool parse_usage(const char *s, long *p, long *c)
{
    char a[16], b[16];
    if (!parse_pair(s, a, b))
        return false;
    *p = strtol(a, NULL, 10);
    *c = strtol(b, NULL, 10);
    return true;
}

static void settings_from_headers(struct MHD_Connection *conn, struct settings *s)
{
    const char *v;
    if ((v = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "X-Fake-Mode"))) {
        int m = parse_mode(v);
        if (m >= 0)
            s->mode = (enum mode)m;
    }
    if ((v = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "X-Fake-Logprobs")))
        s->logprobs = strcmp(v, "1") == 0;
    if ((v = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "X-Fake-Prob")))
        s->prob = strtod(v, NULL);
    if ((v = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "X-Fake-Latency")))
        s->latency_ms = strtol(v, NULL, 10);
    if ((v = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "X-Fake-Fail")))
        s->fail = strtol(v, NULL, 10);
    if ((v = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "X-Fake-Fail-Status")))
        s->fail_status = strtol(v, NULL, 10);
    if ((v = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "X-Fake-Retry-After")))
        snprintf(s->retry_after, sizeof s->retry_after, "%s", v);
    if ((v = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "X-Fake-Answers")))
        parse_pair(v, s->answers[0], s->answers[1]);
    if ((v = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "X-Fake-Usage")))
        parse_usage(v, &s->usage_prompt, &s->usage_completion);
}

/* Counts a request under its key; true if it is one of the first `fail` ones. */
static bool should_fail(const char *key, long fail)
{
    if (fail <= 0)
        return false;
    pthread_mutex_lock(&mu);
    struct fail_key *k = fail_keys;
    while (k && strcmp(k->key, key) != 0)
        k = k->next;
    if (!k && (k = calloc(1, sizeof *k))) {
        snprintf(k->key, sizeof k->key, "%s", key);
        k->next = fail_keys;
        fail_keys = k;
    }
    bool f = k && ++k->seen <= fail;
    pthread_mutex_unlock(&mu);
    return f;
}

/* ---- judging ------------------------------------------------------------------------------ */

/* All message text of a request (system and user), appended to out. */
static void collect_text(json_t *req, buf_t *out)
{
    const char *sys = json_string_value(json_object_get(req, "system"));
    if (sys)
        buf_append_str(out, sys);
    json_t *msgs = json_object_get(req, "messages");
    size_t i;
    json_t *m;
    json_array_foreach(msgs, i, m)
    {
        json_t *content = json_object_get(m, "content");
        if (json_is_string(content)) {
            buf_append_str(out, "\n");
            buf_append_str(out, json_string_value(content));
        } else if (json_is_array(content)) {
            size_t j;
            json_t *blk;
            json_array_foreach(content, j, blk)
            {
                const char *t = json_string_value(json_object_get(blk, "text"));
                if (t) {
                    buf_append_str(out, "\n");
                    buf_append_str(out, t);
                }
            }
        }
    }
}

/* 0: the first response is better, 1: the second, -1: no markers. */
static int preferred(const char *text)
{
    const char *g = strstr(text, "GOOD"), *b = strstr(text, "BAD");
    if (!g && !b)
        return -1;
    if (g && (!b || g < b))
        return 0;
    return 1;
}

static json_t *top_entry(const char *tok, double lp)
{
    json_t *bytes = json_array();
    for (const char *p = tok; *p; p++)
        json_array_append_new(bytes, json_integer((unsigned char)*p));
    return json_pack("{s:s, s:f, s:o}", "token", tok, "logprob", lp, "bytes", bytes);
}

/* The error body of a failure; echo (may be NULL) is appended as real APIs echo a bad key. */
static char *error_body(bool anthropic, unsigned status, const char *echo)
{
    char msg[640];
    snprintf(msg, sizeof msg, "fake judge: failing on purpose with %u%s%s", status,
             echo ? "; incorrect API key provided: " : "", echo ? echo : "");
    json_t *j = anthropic
                    ? json_pack("{s:s, s:{s:s, s:s}}", "type", "error", "error", "type",
                                status == 529 ? "overloaded_error" : "api_error", "message", msg)
                    : json_pack("{s:{s:s, s:s}}", "error", "message", msg, "type", "server_error");
    char *s = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    return s;
}

/* Builds the answer of one judge request into r (status, body). */
static void judge(struct rq *r, const struct settings *s, bool anthropic, const char *path)
{
    json_error_t jerr;
    json_t *req = json_loadb(r->body.data ? r->body.data : "", r->body.len, 0, &jerr);
    if (!req || !json_is_object(req)) {
        r->status = 400;
        json_t *j = json_pack("{s:{s:s, s:s}}", "error", "message", "request body is not JSON",
                              "type", "invalid_request_error");
        r->resp_body = json_dumps(j, JSON_COMPACT);
        json_decref(j);
        json_decref(req);
        return;
    }
    (void)path;
    buf_t text;
    buf_init(&text, 0);
    collect_text(req, &text);
    const char *model = json_string_value(json_object_get(req, "model"));
    bool want_lp = json_is_true(json_object_get(req, "logprobs"));
    long top = (long)json_integer_value(json_object_get(req, "top_logprobs"));

    int pref = preferred(text.data ? text.data : "");
    double p_first; /* P(first answer token) */
    if (s->mode == MODE_BIAS)
        p_first = s->prob;
    else if (pref < 0)
        p_first = 0.5;
    else
        p_first = pref == 0 ? s->prob : 1 - s->prob;
    int chosen = p_first >= 0.5 ? 0 : 1;
    const char *tok = s->answers[chosen];
    char content[256];
    switch (s->mode) {
    case MODE_CHATTER:
        snprintf(content, sizeof content, "Both responses have merits; I cannot decide.");
        break;
    case MODE_EXPLAIN:
        snprintf(content, sizeof content,
                 "Comparing the two, the better one is clear.\nPreferred Response=%s", tok);
        break;
    default:
        snprintf(content, sizeof content, "%s", tok);
    }
    long up = s->usage_prompt >= 0 ? s->usage_prompt : (long)(text.len / 4);
    long uc = s->usage_completion >= 0 ? s->usage_completion : 1;
    json_t *resp;
    if (anthropic) {
        if (s->mode == MODE_REFUSE)
            resp = json_pack("{s:s, s:s, s:s, s:s?, s:[], s:s, s:{s:I, s:I}}", "id", "msg_fake",
                             "type", "message", "role", "assistant", "model", model, "content",
                             "stop_reason", "refusal", "usage", "input_tokens", (json_int_t)up,
                             "output_tokens", (json_int_t)0);
        else
            resp = json_pack("{s:s, s:s, s:s, s:s?, s:[{s:s, s:s}], s:s, s:n, s:{s:I, s:I}}", "id",
                             "msg_fake", "type", "message", "role", "assistant", "model", model,
                             "content", "type", "text", "text", content, "stop_reason", "end_turn",
                             "stop_sequence", "usage", "input_tokens", (json_int_t)up,
                             "output_tokens", (json_int_t)uc);
    } else {
        json_t *msg;
        const char *finish = "stop";
        if (s->mode == MODE_REFUSE)
            msg = json_pack("{s:s, s:n, s:s}", "role", "assistant", "content", "refusal",
                            "I'm sorry, I can't help with comparing these responses.");
        else
            msg = json_pack("{s:s, s:s, s:n}", "role", "assistant", "content", content, "refusal");
        json_t *lp = json_null();
        if (want_lp && s->logprobs && s->mode != MODE_REFUSE) {
            double pf = p_first * 0.99, ps = (1 - p_first) * 0.99;
            json_t *tops = json_array();
            json_t *a = top_entry(s->answers[0], pf > 0 ? log(pf) : -9999.0);
            json_t *b = top_entry(s->answers[1], ps > 0 ? log(ps) : -9999.0);
            json_array_append_new(tops, chosen == 0 ? a : b);
            if (top >= 2)
                json_array_append_new(tops, chosen == 0 ? b : a);
            else
                json_decref(chosen == 0 ? b : a);
            if (top >= 3)
                json_array_append_new(tops, top_entry("The", log(0.01)));
            double lpc = chosen == 0 ? log(pf) : log(ps);
            json_t *first = top_entry(tok, lpc);
            json_object_set_new(first, "top_logprobs", tops);
            lp = json_pack("{s:[o]}", "content", first);
        }
        resp = json_pack("{s:s, s:s, s:i, s:s?, s:[{s:i, s:o, s:o, s:s}], s:{s:I, s:I, s:I}}", "id",
                         "chatcmpl-fake", "object", "chat.completion", "created", 0, "model", model,
                         "choices", "index", 0, "message", msg, "logprobs", lp, "finish_reason",
                         finish, "usage", "prompt_tokens", (json_int_t)up, "completion_tokens",
                         (json_int_t)uc, "total_tokens", (json_int_t)up + (json_int_t)uc);
    }
    r->status = 200;
    r->resp_body = resp ? json_dumps(resp, JSON_COMPACT) : strdup("{}");
    json_decref(resp);
    json_decref(req);
    buf_free(&text);
}

/* ---- HTTP --------------------------------------------------------------------------------- */

static void remember(const char *path, struct MHD_Connection *conn, const buf_t *body)
{
    const char *auth = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Authorization");
    const char *xkey = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "x-api-key");
    const char *aver = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "anthropic-version");
    pthread_mutex_lock(&mu);
    snprintf(last_auth, sizeof last_auth, "%s", auth ? auth : "");
    snprintf(last_xkey, sizeof last_xkey, "%s", xkey ? xkey : "");
    snprintf(last_aversion, sizeof last_aversion, "%s", aver ? aver : "");
    snprintf(last_path, sizeof last_path, "%s", path);
    free(last_body);
    last_body = strdup(body->data ? body->data : "");
    pthread_mutex_unlock(&mu);
}

static char *stats_json(void)
{
    pthread_mutex_lock(&mu);
    json_t *j =
        json_pack("{s:I, s:I, s:I, s:I, s:I, s:s, s:s, s:s, s:s, s:s}", "requests",
                  (json_int_t)atomic_load(&n_requests), "chat", (json_int_t)atomic_load(&n_chat),
                  "messages", (json_int_t)atomic_load(&n_messages), "connections",
                  (json_int_t)atomic_load(&n_connections), "max_in_flight",
                  (json_int_t)atomic_load(&n_max_in_flight), "last_authorization", last_auth,
                  "last_x_api_key", last_xkey, "last_anthropic_version", last_aversion, "last_path",
                  last_path, "last_body", last_body ? last_body : "");
    pthread_mutex_unlock(&mu);
    char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    return s;
}

static void reset_state(void)
{
    pthread_mutex_lock(&mu);
    atomic_store(&n_requests, 0);
    atomic_store(&n_chat, 0);
    atomic_store(&n_messages, 0);
    atomic_store(&n_connections, 0);
    atomic_store(&n_max_in_flight, 0);
    while (fail_keys) {
        struct fail_key *k = fail_keys;
        fail_keys = k->next;
        free(k);
    }
    last_auth[0] = last_xkey[0] = last_aversion[0] = last_path[0] = '\0';
    free(last_body);
    last_body = NULL;
    pthread_mutex_unlock(&mu);
}

static enum MHD_Result send_answer(struct MHD_Connection *conn, unsigned status, char *body,
                                   const char *retry_after)
{
    const char *b = body ? body : "";
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(strlen(b), (void *)b, MHD_RESPMEM_MUST_COPY);
    if (!resp)
        return MHD_NO;
    MHD_add_response_header(resp, "Content-Type", "application/json");
    if (retry_after && *retry_after)
        MHD_add_response_header(resp, "Retry-After", retry_after);
    enum MHD_Result ret = MHD_queue_response(conn, status, resp);
    MHD_destroy_response(resp);
    return ret;
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
    (void)cls;
    (void)version;
    struct rq *r = *con_cls;
    if (!r) {
        r = calloc(1, sizeof *r);
        if (!r)
            return MHD_NO;
        buf_init(&r->body, 16u << 20);
        r->conn = conn;
        *con_cls = r;
        long now = atomic_fetch_add(&n_in_flight, 1) + 1;
        long mx = atomic_load(&n_max_in_flight);
        while (now > mx && !atomic_compare_exchange_weak(&n_max_in_flight, &mx, now))
            ;
        return MHD_YES;
    }
    if (*upload_data_size) {
        if (buf_append(&r->body, upload_data, *upload_data_size))
            return MHD_NO;
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (r->answered) { /* resumed after the latency */
        leave(r);
        if (r->close)
            return MHD_NO;
        return send_answer(conn, r->status, r->resp_body, r->retry_after);
    }
    r->answered = true;
    if (strcmp(method, "GET") == 0 && strcmp(url, "/stats") == 0) {
        leave(r);
        char *s = stats_json();
        enum MHD_Result ret = send_answer(conn, 200, s, NULL);
        free(s);
        return ret;
    }
    if (strcmp(method, "POST") == 0 && strcmp(url, "/reset") == 0) {
        leave(r);
        reset_state();
        return send_answer(conn, 200, "{}", NULL);
    }
    bool chat = ends_with(url, "/chat/completions"), msgs = ends_with(url, "/messages");
    if (strcmp(method, "POST") != 0 || (!chat && !msgs)) {
        leave(r);
        return send_answer(conn, 404, "{\"error\":{\"message\":\"no such endpoint\"}}", NULL);
    }

    atomic_fetch_add(&n_requests, 1);
    atomic_fetch_add(chat ? &n_chat : &n_messages, 1);
    remember(url, conn, &r->body);
    struct settings s = defaults;
    settings_from_headers(conn, &s);
    const char *key = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "X-Fake-Key");
    if (should_fail(key ? key : "", s.fail)) {
        r->status = (unsigned)s.fail_status;
        const char *echo = NULL;
        if (MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "X-Fake-Echo-Auth")) {
            echo = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Authorization");
            if (!echo)
                echo = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "x-api-key");
        }
        r->resp_body = error_body(msgs, r->status, echo);
        snprintf(r->retry_after, sizeof r->retry_after, "%s", s.retry_after);
    } else if (s.mode == MODE_CLOSE) {
        r->close = true;
    } else if (s.mode == MODE_GARBAGE) {
        r->status = 200;
        r->resp_body = strdup("<html>upstream proxy hiccup</html>");
    } else {
        judge(r, &s, msgs, url);
    }
    if (s.latency_ms > 0) {
        MHD_suspend_connection(conn);
        timer_add(r, s.latency_ms);
        return MHD_YES;
    }
    leave(r);
    if (r->close)
        return MHD_NO;
    return send_answer(conn, r->status, r->resp_body, r->retry_after);
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
    leave(r);
    buf_free(&r->body);
    free(r->resp_body);
    free(r);
    *con_cls = NULL;
}

static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                          enum MHD_ConnectionNotificationCode toe)
{
    (void)cls;
    (void)conn;
    (void)socket_context;
    if (toe == MHD_CONNECTION_NOTIFY_STARTED)
        atomic_fetch_add(&n_connections, 1);
}

static volatile sig_atomic_t stop_requested;

static void on_stop_signal(int sig)
{
    (void)sig;
    stop_requested = 1;
}

static void usage(void)
{
    fprintf(stderr, "usage: fake_judge PORT [--mode correct|bias|garbage|chatter|explain|refuse|"
                    "close] [--logprobs] [--prob P] [--latency MS] [--fail N] [--fail-status S] "
                    "[--retry-after V] [--answers A,B] [--usage P,C] [--threads T]\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage();
        return 2;
    }
    char *end;
    long port = strtol(argv[1], &end, 10);
    if (*end || port < 0 || port > 65535) {
        fprintf(stderr, "fake_judge: bad port '%s'\n", argv[1]);
        return 2;
    }
    long threads = 2;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        bool ok = true;
        if (strcmp(a, "--logprobs") == 0) {
            defaults.logprobs = true;
            continue;
        }
        if (!v) {
            fprintf(stderr, "fake_judge: %s needs a value\n", a);
            return 2;
        }
        i++;
        if (strcmp(a, "--mode") == 0) {
            int m = parse_mode(v);
            ok = m >= 0;
            defaults.mode = (enum mode)(ok ? m : 0);
        } else if (strcmp(a, "--prob") == 0)
            defaults.prob = strtod(v, NULL);
        else if (strcmp(a, "--latency") == 0)
            defaults.latency_ms = strtol(v, NULL, 10);
        else if (strcmp(a, "--fail") == 0)
            defaults.fail = strtol(v, NULL, 10);
        else if (strcmp(a, "--fail-status") == 0)
            defaults.fail_status = strtol(v, NULL, 10);
        else if (strcmp(a, "--retry-after") == 0)
            snprintf(defaults.retry_after, sizeof defaults.retry_after, "%s", v);
        else if (strcmp(a, "--answers") == 0)
            ok = parse_pair(v, defaults.answers[0], defaults.answers[1]);
        else if (strcmp(a, "--usage") == 0)
            ok = parse_usage(v, &defaults.usage_prompt, &defaults.usage_completion);
        else if (strcmp(a, "--threads") == 0)
            threads = strtol(v, NULL, 10);
        else
            ok = false;
        if (!ok) {
            fprintf(stderr, "fake_judge: bad option %s %s\n", a, v);
            usage();
            return 2;
        }
    }
    if (threads < 1 || threads > 64)
        threads = 2;
    prctl(PR_SET_PDEATHSIG, SIGTERM); /* never outlive the test that started us */
    struct sigaction sa = {.sa_handler = on_stop_signal};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    pthread_t timer;
    if (pthread_create(&timer, NULL, timer_main, NULL)) {
        fprintf(stderr, "fake_judge: cannot start the timer thread\n");
        return 1;
    }
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK); /* 127.0.0.1 only */
    struct MHD_Daemon *d = MHD_start_daemon(
        MHD_USE_EPOLL_INTERNAL_THREAD | MHD_ALLOW_SUSPEND_RESUME, (uint16_t)port, NULL, NULL,
        on_request, NULL, MHD_OPTION_THREAD_POOL_SIZE, (unsigned int)threads,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned int)4000, MHD_OPTION_CONNECTION_TIMEOUT,
        (unsigned int)120, MHD_OPTION_LISTEN_BACKLOG_SIZE, (unsigned int)1024,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL, MHD_OPTION_NOTIFY_CONNECTION,
        on_connection, NULL, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sin, MHD_OPTION_END);
    if (!d) {
        fprintf(stderr, "fake_judge: cannot listen on port %ld: %s\n", port, strerror(errno));
        return 1;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
    printf("PORT %u\n", info ? (unsigned)info->port : (unsigned)port);
    fflush(stdout);
    while (!stop_requested) {
        struct timespec t = {0, 50 * 1000000L};
        nanosleep(&t, NULL);
    }
    /* resume every suspended connection before stopping: MHD must not stop with any */
    pthread_mutex_lock(&tmu);
    timer_stop = true;
    while (timers) {
        struct rq *r = timers;
        timers = r->tnext;
        MHD_resume_connection(r->conn);
    }
    pthread_cond_signal(&tcv);
    pthread_mutex_unlock(&tmu);
    pthread_join(timer, NULL);
    MHD_stop_daemon(d);
    reset_state();
    return 0;
}
