/* http.c - see http.h. The only file of oaif that includes <curl/curl.h>.
 *
 * A request lives in one of two places: the FIFO `queue` (waiting for a slot, its back-off or the
 * rate limit) or the `active` list (an easy handle in the multi). Every attempt gets a fresh easy
 * handle; connections are reused through the multi handle's connection pool. */
#include "http.h"

#include <curl/curl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "err.h"
#include "log.h"

struct hreq {
    struct hreq *next, *prev; /* queue (singly used) or active list (doubly) */
    http_client_t *c;
    char *method;
    char *url;
    char *url_shown; /* scheme://host/path, no query, secrets redacted: for messages */
    char *body;
    size_t body_len;
    struct curl_slist *headers;
    char **secrets;
    size_t nsecrets;
    double tokens;
    int64_t deadline_ms;
    http_permanent_fn permanent;
    http_done_fn done;
    void *user;
    int64_t t_submit;
    int64_t not_before;
    unsigned attempts;
    bool rate_waited;
    CURL *easy; /* the attempt in flight, else NULL */
    buf_t resp;
    long retry_after_ms; /* from the last attempt's headers; -1 none */
    bool too_big;
    char errbuf[CURL_ERROR_SIZE];
};

struct bucket {
    double level, cap, per_ms; /* per_ms == 0: no limit */
    int64_t t;
};

struct http_client {
    struct http_config cfg;
    CURLM *multi;
    struct hreq *q_head, *q_tail;
    size_t queued;
    struct hreq *active;
    unsigned in_flight;
    struct bucket req_bucket, tok_bucket;
    int64_t pause_until; /* from Retry-After: no attempt starts before */
    int64_t next_wake;   /* when start_ready() can make progress again; 0: on completions only */
    uint64_t rng;
    struct curl_waitfd *wfds;
    size_t wfds_cap;
    struct http_stats st;
};

int64_t http_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

struct http_config http_config_default(void)
{
    struct http_config c = {
        .max_in_flight = HTTP_DEFAULT_MAX_IN_FLIGHT,
        .connect_timeout_ms = HTTP_DEFAULT_CONNECT_TIMEOUT_S * 1000L,
        .total_timeout_ms = HTTP_DEFAULT_TIMEOUT_S * 1000L,
        .max_attempts = HTTP_DEFAULT_MAX_ATTEMPTS,
        .backoff_base_ms = HTTP_DEFAULT_BACKOFF_BASE_MS,
        .backoff_max_ms = HTTP_DEFAULT_BACKOFF_MAX_S * 1000u,
        .retry_after_max_ms = HTTP_DEFAULT_RETRY_AFTER_MAX_S * 1000u,
        .requests_per_minute = HTTP_DEFAULT_REQUESTS_PER_MINUTE,
        .tokens_per_minute = HTTP_DEFAULT_TOKENS_PER_MINUTE,
        .burst_seconds = HTTP_DEFAULT_BURST_S,
        .max_response_bytes = (size_t)HTTP_DEFAULT_MAX_RESPONSE_MIB << 20,
        .seed = 0,
    };
    return c;
}

int http_config_validate(const struct http_config *cfg, char *why, size_t whylen)
{
    const char *bad = NULL;
    if (cfg->max_in_flight < 1 || cfg->max_in_flight > 65536)
        bad = "max_in_flight must be in 1..65536";
    else if (cfg->connect_timeout_ms <= 0)
        bad = "connect_timeout_ms must be > 0";
    else if (cfg->total_timeout_ms <= 0)
        bad = "total_timeout_ms must be > 0";
    else if (cfg->max_attempts < 1 || cfg->max_attempts > 100)
        bad = "max_attempts must be in 1..100";
    else if (cfg->backoff_max_ms < cfg->backoff_base_ms)
        bad = "backoff_max_ms must be >= backoff_base_ms";
    else if (!(cfg->requests_per_minute >= 0) || !(cfg->tokens_per_minute >= 0))
        bad = "requests_per_minute and tokens_per_minute must be >= 0";
    else if (!(cfg->burst_seconds > 0) || cfg->burst_seconds > 3600)
        bad = "burst_seconds must be in (0, 3600]";
    else if (cfg->max_response_bytes < 64)
        bad = "max_response_bytes must be >= 64";
    if (!bad)
        return ERR_OK;
    if (why && whylen)
        snprintf(why, whylen, "http config: %s", bad);
    return ERR_INVAL;
}

/* ---- secrets ------------------------------------------------------------------------------ */

void http_redact(char *s, const char *const *secrets, size_t nsecrets)
{
    static const char mark[] = "[REDACTED]";
    if (!s)
        return;
    for (size_t i = 0; i < nsecrets; i++) {
        const char *sec = secrets[i];
        size_t n = sec ? strlen(sec) : 0;
        if (!n)
            continue;
        char *p = s;
        while ((p = strstr(p, sec)) != NULL) {
            size_t m = n >= sizeof mark - 1 ? sizeof mark - 1 : 0;
            if (m) {
                memcpy(p, mark, m);
                memmove(p + m, p + n, strlen(p + n) + 1);
                p += m;
            } else {
                memset(p, '*', n);
                p += n;
            }
        }
    }
}

/* ---- rate limits -------------------------------------------------------------------------- */

static void bucket_init(struct bucket *b, double per_minute, double burst_s, int64_t now)
{
    b->per_ms = per_minute / 60000.0;
    b->cap = per_minute / 60.0 * burst_s;
    if (b->cap < 1)
        b->cap = 1;
    b->level = b->cap;
    b->t = now;
}

static void bucket_refill(struct bucket *b, int64_t now)
{
    if (b->per_ms <= 0)
        return;
    b->level += (double)(now - b->t) * b->per_ms;
    if (b->level > b->cap)
        b->level = b->cap;
    b->t = now;
}

/* ms until `need` is available (0: now). Needs above the capacity wait for a full bucket. */
static int64_t bucket_wait(const struct bucket *b, double need)
{
    if (b->per_ms <= 0)
        return 0;
    if (need > b->cap)
        need = b->cap;
    if (b->level >= need)
        return 0;
    double ms = (need - b->level) / b->per_ms;
    return (int64_t)ms + 1;
}

void http_client_charge_tokens(http_client_t *c, double delta)
{
    if (c && c->tok_bucket.per_ms > 0) {
        bucket_refill(&c->tok_bucket, http_now_ms());
        c->tok_bucket.level -= delta;
        if (c->tok_bucket.level > c->tok_bucket.cap)
            c->tok_bucket.level = c->tok_bucket.cap;
    }
}

/* ---- Retry-After -------------------------------------------------------------------------- */

long http_parse_retry_after(const char *value, int64_t now_unix)
{
    if (!value)
        return -1;
    while (*value == ' ' || *value == '\t')
        value++;
    size_t n = strlen(value);
    while (n && (value[n - 1] == ' ' || value[n - 1] == '\t' || value[n - 1] == '\r' ||
                 value[n - 1] == '\n'))
        n--;
    if (!n || n > 64)
        return -1;
    char tmp[65];
    memcpy(tmp, value, n);
    tmp[n] = '\0';
    size_t digits = strspn(tmp, "0123456789");
    if (digits == n) {
        if (n > 9)
            return LONG_MAX / 2; /* absurdly long: over any limit */
        return strtol(tmp, NULL, 10) * 1000;
    }
    /* an HTTP-date needs letters (day and month names); reject other numbers ("1.5", "-3") */
    if (digits == 0 && (tmp[0] == '-' || tmp[0] == '+'))
        return -1;
    time_t t = curl_getdate(tmp, NULL);
    if (t == (time_t)-1)
        return -1;
    if ((int64_t)t <= now_unix)
        return 0;
    return (long)(((int64_t)t - now_unix) * 1000);
}

/* ---- curl callbacks ----------------------------------------------------------------------- */

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    struct hreq *r = userdata;
    size_t n = size * nmemb;
    int rc = buf_append(&r->resp, ptr, n);
    if (rc) {
        r->too_big = rc == ERR_TOOBIG;
        return CURL_WRITEFUNC_ERROR;
    }
    return n;
}

static bool header_is(const char *line, size_t len, const char *name, const char **value)
{
    size_t k = strlen(name);
    if (len <= k || line[k] != ':' || strncasecmp(line, name, k) != 0)
        return false;
    *value = line + k + 1;
    return true;
}

static size_t on_header(char *line, size_t size, size_t nitems, void *userdata)
{
    struct hreq *r = userdata;
    size_t n = size * nitems;
    const char *v;
    char tmp[80];
    if (n >= 7 && strncmp(line, "HTTP/", 5) == 0) {
        r->retry_after_ms = -1; /* a new response (after 100 Continue or a redirect) */
        return n;
    }
    if (header_is(line, n, "retry-after-ms", &v)) {
        size_t vl = n - (size_t)(v - line);
        if (vl < sizeof tmp) {
            memcpy(tmp, v, vl);
            tmp[vl] = '\0';
            char *end;
            double ms = strtod(tmp, &end);
            while (*end == ' ' || *end == '\r' || *end == '\n')
                end++;
            if (end != tmp && !*end && ms >= 0 && ms < 1e9)
                r->retry_after_ms = (long)ms;
        }
    } else if (r->retry_after_ms < 0 && header_is(line, n, "retry-after", &v)) {
        size_t vl = n - (size_t)(v - line);
        if (vl < sizeof tmp) {
            memcpy(tmp, v, vl);
            tmp[vl] = '\0';
            r->retry_after_ms = http_parse_retry_after(tmp, (int64_t)time(NULL));
        }
    }
    return n;
}

/* ---- requests ----------------------------------------------------------------------------- */

static void hreq_free(struct hreq *r)
{
    if (!r)
        return;
    if (r->easy)
        curl_easy_cleanup(r->easy);
    curl_slist_free_all(r->headers);
    for (size_t i = 0; i < r->nsecrets; i++)
        free(r->secrets[i]);
    free(r->secrets);
    free(r->method);
    free(r->url);
    free(r->url_shown);
    free(r->body);
    buf_free(&r->resp);
    free(r);
}

static char *dup_n(const char *s, size_t n)
{
    char *p = malloc(n + 1);
    if (p) {
        if (n)
            memcpy(p, s, n);
        p[n] = '\0';
    }
    return p;
}

static void queue_push(http_client_t *c, struct hreq *r)
{
    r->next = NULL;
    if (c->q_tail)
        c->q_tail->next = r;
    else
        c->q_head = r;
    c->q_tail = r;
    c->queued++;
}

static void queue_unlink(http_client_t *c, struct hreq *prev, struct hreq *r)
{
    if (prev)
        prev->next = r->next;
    else
        c->q_head = r->next;
    if (c->q_tail == r)
        c->q_tail = prev;
    r->next = NULL;
    c->queued--;
}

static void active_add(http_client_t *c, struct hreq *r)
{
    r->prev = NULL;
    r->next = c->active;
    if (c->active)
        c->active->prev = r;
    c->active = r;
    c->in_flight++;
}

static void active_remove(http_client_t *c, struct hreq *r)
{
    if (r->prev)
        r->prev->next = r->next;
    else
        c->active = r->next;
    if (r->next)
        r->next->prev = r->prev;
    r->next = r->prev = NULL;
    c->in_flight--;
}

int http_client_submit(http_client_t *c, const struct http_request *req, http_done_fn done,
                       void *user)
{
    if (!c || !req || !req->url || !*req->url || !done)
        return ERR_INVAL;
    struct hreq *r = calloc(1, sizeof *r);
    if (!r)
        return ERR_NOMEM;
    r->c = c;
    r->done = done;
    r->user = user;
    r->tokens = req->tokens > 0 ? req->tokens : 0;
    r->deadline_ms = req->deadline_ms;
    r->permanent = req->permanent;
    r->retry_after_ms = -1;
    buf_init(&r->resp, c->cfg.max_response_bytes);
    const char *method = req->method ? req->method : (req->body ? "POST" : "GET");
    r->method = strdup(method);
    r->url = strdup(req->url);
    size_t shown = strcspn(req->url, "?#");
    r->url_shown = dup_n(req->url, shown);
    if (req->body)
        r->body = dup_n(req->body, req->body_len);
    r->body_len = req->body_len;
    if (req->nsecrets) {
        r->secrets = calloc(req->nsecrets, sizeof *r->secrets);
        if (r->secrets) {
            r->nsecrets = req->nsecrets;
            for (size_t i = 0; i < req->nsecrets; i++)
                if (!(r->secrets[i] = strdup(req->secrets[i] ? req->secrets[i] : "")))
                    goto out_nomem;
        }
    }
    if (!r->method || !r->url || !r->url_shown || (req->body && !r->body) ||
        (req->nsecrets && !r->secrets))
        goto out_nomem;
    http_redact(r->url_shown, (const char *const *)r->secrets, r->nsecrets);
    for (size_t i = 0; i < req->nheaders; i++) {
        struct curl_slist *l = curl_slist_append(r->headers, req->headers[i]);
        if (!l)
            goto out_nomem;
        r->headers = l;
    }
    /* no "Expect: 100-continue" round trip for large bodies */
    struct curl_slist *l = curl_slist_append(r->headers, "Expect:");
    if (!l)
        goto out_nomem;
    r->headers = l;
    r->t_submit = http_now_ms();
    r->not_before = r->t_submit;
    queue_push(c, r);
    c->st.submitted++;
    return ERR_OK;
out_nomem:
    hreq_free(r);
    return ERR_NOMEM;
}

/* Hands the result to the caller and frees the request (already off every list). */
static void complete(http_client_t *c, struct hreq *r, int rc, long status, const char *error,
                     bool permanent)
{
    char msg[640];
    struct http_response resp = {
        .rc = rc,
        .status = status,
        .body = r->resp.data ? r->resp.data : "",
        .body_len = r->resp.len,
        .attempts = r->attempts,
        .latency_ms = (double)(http_now_ms() - r->t_submit),
        .error = NULL,
        .permanent = rc != ERR_OK && permanent,
    };
    if (rc != ERR_OK) {
        snprintf(msg, sizeof msg, "%s %s: %s", r->method, r->url_shown,
                 error ? error : err_str(rc));
        http_redact(msg, (const char *const *)r->secrets, r->nsecrets);
        resp.error = msg;
        c->st.failed++;
    } else {
        c->st.succeeded++;
    }
    c->st.completed++;
    r->done(r->user, &resp);
    hreq_free(r);
}

/* A printable, one-line excerpt of a body for error messages. */
static void excerpt(char *out, size_t outlen, const char *body, size_t len)
{
    size_t j = 0;
    for (size_t i = 0; i < len && j + 4 < outlen; i++) {
        unsigned char ch = (unsigned char)body[i];
        out[j++] = (char)((ch >= 0x20 && ch < 0x7f) ? ch : ' ');
    }
    if (j + 4 >= outlen && len > j) {
        out[j++] = '.';
        out[j++] = '.';
        out[j++] = '.';
    }
    out[j] = '\0';
}

static bool status_retryable(long s)
{
    return s == 408 || s == 409 || s == 429 || (s >= 500 && s <= 599);
}

static uint64_t rng_next(http_client_t *c)
{
    /* splitmix64 */
    uint64_t z = (c->rng += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static int64_t backoff_ms(http_client_t *c, unsigned failed_attempts)
{
    uint64_t d = c->cfg.backoff_base_ms;
    for (unsigned i = 1; i < failed_attempts && d < c->cfg.backoff_max_ms; i++)
        d *= 2;
    if (d > c->cfg.backoff_max_ms)
        d = c->cfg.backoff_max_ms;
    uint64_t half = d / 2;
    return (int64_t)(d - half + rng_next(c) % (half + 1));
}

/* Decides what a failed attempt leads to: another attempt (queued with its delay) or the end. */
static void retry_or_fail(http_client_t *c, struct hreq *r, int rc, long status, const char *why,
                          bool retryable)
{
    char msg[600];
    int64_t now = http_now_ms();
    if (!retryable) {
        complete(c, r, rc, status, why, true);
        return;
    }
    if (r->retry_after_ms > (long)c->cfg.retry_after_max_ms) {
        snprintf(msg, sizeof msg, "%s; Retry-After %ld ms exceeds the limit of %u ms", why,
                 r->retry_after_ms, c->cfg.retry_after_max_ms);
        complete(c, r, ERR_AGAIN, status, msg, false);
        return;
    }
    if (r->attempts >= c->cfg.max_attempts) {
        snprintf(msg, sizeof msg, "%s (after %u attempts)", why, r->attempts);
        complete(c, r, rc, status, msg, false);
        return;
    }
    int64_t delay = backoff_ms(c, r->attempts);
    if (r->retry_after_ms >= 0) {
        if (r->retry_after_ms > delay)
            delay = r->retry_after_ms;
        /* the server asked the client to wait: hold every request of this client */
        if (now + r->retry_after_ms > c->pause_until)
            c->pause_until = now + r->retry_after_ms;
    }
    if (r->deadline_ms && now + delay > r->deadline_ms) {
        snprintf(msg, sizeof msg, "%s; the next attempt (in %lld ms) would pass the deadline", why,
                 (long long)delay);
        complete(c, r, ERR_TIMEOUT, status, msg, false);
        return;
    }
    snprintf(msg, sizeof msg, "%s %s: %s; attempt %u/%u in %lld ms", r->method, r->url_shown, why,
             r->attempts + 1, c->cfg.max_attempts, (long long)delay);
    http_redact(msg, (const char *const *)r->secrets, r->nsecrets);
    log_info("%s", msg);
    r->not_before = now + delay;
    buf_reset(&r->resp);
    r->too_big = false;
    queue_push(c, r);
}

/* An attempt finished (curl says how). */
static void on_attempt_done(http_client_t *c, struct hreq *r, CURLcode cc)
{
    char why[512], ex[200];
    long status = 0;
    curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &status);
    curl_multi_remove_handle(c->multi, r->easy);
    curl_easy_cleanup(r->easy);
    r->easy = NULL;
    active_remove(c, r);

    if (cc == CURLE_OK) {
        if (status >= 200 && status <= 299) {
            complete(c, r, ERR_OK, status, NULL, false);
            return;
        }
        excerpt(ex, sizeof ex, r->resp.data ? r->resp.data : "", r->resp.len);
        snprintf(why, sizeof why, "HTTP %ld%s%s", status, ex[0] ? ": " : "", ex);
        /* the body may say a retryable status is final (a 429 for spent credits) */
        bool retry = status_retryable(status) &&
                     !(r->permanent && r->permanent(status, r->resp.data, r->resp.len));
        retry_or_fail(c, r, retry ? ERR_AGAIN : ERR_REMOTE, status, why, retry);
        return;
    }
    if (cc == CURLE_WRITE_ERROR && r->too_big) {
        snprintf(why, sizeof why, "response body over the limit of %zu bytes",
                 c->cfg.max_response_bytes);
        complete(c, r, ERR_TOOBIG, status, why, true);
        return;
    }
    if (cc == CURLE_WRITE_ERROR) {
        complete(c, r, ERR_NOMEM, status, "out of memory storing the response", false);
        return;
    }
    const char *detail = r->errbuf[0] ? r->errbuf : curl_easy_strerror(cc);
    snprintf(why, sizeof why, "transport: %s", detail);
    switch (cc) {
    case CURLE_UNSUPPORTED_PROTOCOL:
    case CURLE_URL_MALFORMAT:
    case CURLE_BAD_FUNCTION_ARGUMENT:
    case CURLE_NOT_BUILT_IN:
        retry_or_fail(c, r, ERR_INVAL, status, why, false);
        return;
    case CURLE_OUT_OF_MEMORY:
        retry_or_fail(c, r, ERR_NOMEM, status, why, false);
        return;
    case CURLE_OPERATION_TIMEDOUT:
        r->retry_after_ms = -1;
        retry_or_fail(c, r, ERR_TIMEOUT, status, why, true);
        return;
    default:
        r->retry_after_ms = -1;
        retry_or_fail(c, r, ERR_IO, status, why, true);
        return;
    }
}

/* Sets up and adds one attempt; returns ERR_OK or a code (the request is then not in flight). */
static int start_attempt(http_client_t *c, struct hreq *r, int64_t now)
{
    CURL *e = curl_easy_init();
    if (!e)
        return ERR_NOMEM;
    long total = c->cfg.total_timeout_ms;
    if (r->deadline_ms && r->deadline_ms - now < total)
        total = (long)(r->deadline_ms - now) > 1 ? (long)(r->deadline_ms - now) : 1;
    r->errbuf[0] = '\0';
    r->retry_after_ms = -1;
    r->too_big = false;
    buf_reset(&r->resp);
    CURLcode cc = CURLE_OK;
#define SET(opt, val)                                                                              \
    do {                                                                                           \
        if (cc == CURLE_OK)                                                                        \
            cc = curl_easy_setopt(e, opt, val);                                                    \
    } while (0)
    SET(CURLOPT_URL, r->url);
    SET(CURLOPT_PRIVATE, (void *)r);
    SET(CURLOPT_NOSIGNAL, 1L);
    SET(CURLOPT_VERBOSE, 0L); /* verbose mode would print the headers (the API key) */
    SET(CURLOPT_ERRORBUFFER, r->errbuf);
    SET(CURLOPT_WRITEFUNCTION, on_body);
    SET(CURLOPT_WRITEDATA, (void *)r);
    SET(CURLOPT_HEADERFUNCTION, on_header);
    SET(CURLOPT_HEADERDATA, (void *)r);
    SET(CURLOPT_CONNECTTIMEOUT_MS, c->cfg.connect_timeout_ms);
    SET(CURLOPT_TIMEOUT_MS, total);
    SET(CURLOPT_HTTPHEADER, r->headers);
    SET(CURLOPT_TCP_KEEPALIVE, 1L);
    SET(CURLOPT_ACCEPT_ENCODING, "");
    SET(CURLOPT_USERAGENT, "oaif/1");
    SET(CURLOPT_PROTOCOLS_STR, "http,https");
    if (strcmp(r->method, "GET") == 0) {
        SET(CURLOPT_HTTPGET, 1L);
    } else {
        SET(CURLOPT_POST, 1L);
        SET(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)(r->body ? r->body_len : 0));
        SET(CURLOPT_POSTFIELDS, r->body ? r->body : "");
        if (strcmp(r->method, "POST") != 0)
            SET(CURLOPT_CUSTOMREQUEST, r->method);
    }
#undef SET
    if (cc != CURLE_OK) {
        curl_easy_cleanup(e);
        return cc == CURLE_OUT_OF_MEMORY ? ERR_NOMEM : ERR_INVAL;
    }
    if (curl_multi_add_handle(c->multi, e) != CURLM_OK) {
        curl_easy_cleanup(e);
        return ERR_IO;
    }
    r->easy = e;
    r->attempts++;
    c->st.attempts++;
    if (r->attempts > 1)
        c->st.retries++;
    active_add(c, r);
    return ERR_OK;
}

/* Starts what K, back-off and the rate limits allow, oldest first; sets c->next_wake. */
static void start_ready(http_client_t *c)
{
    int64_t now = http_now_ms();
    c->next_wake = 0;
    while (c->in_flight < c->cfg.max_in_flight && c->q_head) {
        if (now < c->pause_until) {
            c->next_wake = c->pause_until;
            return;
        }
        struct hreq *prev = NULL, *r = c->q_head;
        int64_t earliest = INT64_MAX;
        while (r && r->not_before > now) {
            if (r->not_before < earliest)
                earliest = r->not_before;
            prev = r;
            r = r->next;
        }
        if (!r) {
            c->next_wake = earliest;
            return;
        }
        if (r->deadline_ms && now >= r->deadline_ms) {
            queue_unlink(c, prev, r);
            complete(c, r, ERR_TIMEOUT, 0, "deadline passed before the request could start", false);
            continue;
        }
        bucket_refill(&c->req_bucket, now);
        bucket_refill(&c->tok_bucket, now);
        int64_t w1 = bucket_wait(&c->req_bucket, 1);
        int64_t w2 = bucket_wait(&c->tok_bucket, r->tokens);
        int64_t w = w1 > w2 ? w1 : w2;
        if (w > 0) {
            if (!r->rate_waited) {
                r->rate_waited = true;
                c->st.rate_waits++;
            }
            c->next_wake = now + w;
            if (earliest < c->next_wake && earliest > now)
                c->next_wake = earliest;
            return;
        }
        queue_unlink(c, prev, r);
        int rc = start_attempt(c, r, now);
        if (rc) {
            complete(c, r, rc, 0, "could not start the transfer", rc == ERR_INVAL);
            continue;
        }
        if (c->req_bucket.per_ms > 0)
            c->req_bucket.level -= 1;
        if (c->tok_bucket.per_ms > 0)
            c->tok_bucket.level -= r->attempts == 1 ? r->tokens : 0;
    }
}

static int drain_done(http_client_t *c)
{
    int left;
    CURLMsg *m;
    while ((m = curl_multi_info_read(c->multi, &left)) != NULL) {
        if (m->msg != CURLMSG_DONE)
            continue;
        char *priv = NULL;
        curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, &priv);
        struct hreq *r = (struct hreq *)(void *)priv;
        CURLcode cc = m->data.result; /* read before the handle is removed */
        if (r)
            on_attempt_done(c, r, cc);
    }
    return ERR_OK;
}

static int perform(http_client_t *c)
{
    int running;
    CURLMcode mc = curl_multi_perform(c->multi, &running);
    if (mc != CURLM_OK) {
        log_error("curl_multi_perform: %s", curl_multi_strerror(mc));
        return mc == CURLM_OUT_OF_MEMORY ? ERR_NOMEM : ERR_IO;
    }
    return drain_done(c);
}

int http_client_new(http_client_t **out, const struct http_config *cfg)
{
    char why[160];
    *out = NULL;
    if (http_config_validate(cfg, why, sizeof why)) {
        log_error("%s", why);
        return ERR_INVAL;
    }
    http_client_t *c = calloc(1, sizeof *c);
    if (!c)
        return ERR_NOMEM;
    c->cfg = *cfg;
    c->multi = curl_multi_init();
    if (!c->multi) {
        free(c);
        return ERR_NOMEM;
    }
    curl_multi_setopt(c->multi, CURLMOPT_MAXCONNECTS, (long)cfg->max_in_flight);
    int64_t now = http_now_ms();
    bucket_init(&c->req_bucket, cfg->requests_per_minute, cfg->burst_seconds, now);
    bucket_init(&c->tok_bucket, cfg->tokens_per_minute, cfg->burst_seconds, now);
    c->rng = cfg->seed ? cfg->seed
                       : ((uint64_t)time(NULL) << 20) ^ (uint64_t)getpid() ^ (uint64_t)(uintptr_t)c;
    *out = c;
    return ERR_OK;
}

void http_client_destroy(http_client_t **pc)
{
    if (!pc || !*pc)
        return;
    http_client_t *c = *pc;
    struct hreq *r = c->active;
    c->active = NULL;
    while (r) {
        struct hreq *next = r->next;
        curl_multi_remove_handle(c->multi, r->easy);
        hreq_free(r);
        r = next;
    }
    c->in_flight = 0;
    r = c->q_head;
    c->q_head = c->q_tail = NULL;
    while (r) {
        struct hreq *next = r->next;
        hreq_free(r);
        r = next;
    }
    c->queued = 0;
    curl_multi_cleanup(c->multi);
    free(c->wfds);
    free(c);
    *pc = NULL;
}

int http_client_timeout_ms(http_client_t *c)
{
    long t = -1;
    curl_multi_timeout(c->multi, &t);
    if (c->next_wake) {
        int64_t d = c->next_wake - http_now_ms();
        if (d < 0)
            d = 0;
        if (t < 0 || d < t)
            t = (long)d;
    }
    if (t > INT_MAX)
        t = INT_MAX;
    return (int)t;
}

int http_client_poll(http_client_t *c, int timeout_ms, struct pollfd *extra, size_t nextra)
{
    start_ready(c);
    int rc = perform(c);
    if (rc)
        return rc;
    start_ready(c);
    /* how long to wait: the caller's timeout, cut by our own timers (curl cuts by its own) */
    long wait = timeout_ms < 0 ? 3600 * 1000L : timeout_ms;
    if (c->next_wake) {
        int64_t d = c->next_wake - http_now_ms();
        if (d < 0)
            d = 0;
        if (d < wait)
            wait = (long)d;
    }
    if (c->q_head && c->in_flight < c->cfg.max_in_flight && !c->next_wake)
        wait = 0; /* something can start right away (a callback queued it) */
    if (nextra > c->wfds_cap) {
        struct curl_waitfd *w = realloc(c->wfds, nextra * sizeof *w);
        if (!w)
            return ERR_NOMEM;
        c->wfds = w;
        c->wfds_cap = nextra;
    }
    for (size_t i = 0; i < nextra; i++) {
        c->wfds[i].fd = extra[i].fd;
        c->wfds[i].events = (short)(((extra[i].events & POLLIN) ? CURL_WAIT_POLLIN : 0) |
                                    ((extra[i].events & POLLPRI) ? CURL_WAIT_POLLPRI : 0) |
                                    ((extra[i].events & POLLOUT) ? CURL_WAIT_POLLOUT : 0));
        c->wfds[i].revents = 0;
    }
    if (wait > 0 || nextra) {
        CURLMcode mc =
            curl_multi_poll(c->multi, nextra ? c->wfds : NULL, (unsigned)nextra, (int)wait, NULL);
        if (mc != CURLM_OK) {
            log_error("curl_multi_poll: %s", curl_multi_strerror(mc));
            return ERR_IO;
        }
    }
    for (size_t i = 0; i < nextra; i++)
        extra[i].revents = (short)(((c->wfds[i].revents & CURL_WAIT_POLLIN) ? POLLIN : 0) |
                                   ((c->wfds[i].revents & CURL_WAIT_POLLPRI) ? POLLPRI : 0) |
                                   ((c->wfds[i].revents & CURL_WAIT_POLLOUT) ? POLLOUT : 0));
    rc = perform(c);
    if (rc)
        return rc;
    start_ready(c);
    return ERR_OK;
}

size_t http_client_pollfds(http_client_t *c, struct pollfd *fds, size_t cap)
{
    fd_set r, w, x;
    int maxfd = -1;
    FD_ZERO(&r);
    FD_ZERO(&w);
    FD_ZERO(&x);
    if (curl_multi_fdset(c->multi, &r, &w, &x, &maxfd) != CURLM_OK)
        return 0;
    size_t n = 0;
    for (int fd = 0; fd <= maxfd; fd++) {
        short ev = (short)((FD_ISSET(fd, &r) ? POLLIN : 0) | (FD_ISSET(fd, &w) ? POLLOUT : 0) |
                           (FD_ISSET(fd, &x) ? POLLPRI : 0));
        if (!ev)
            continue;
        if (n < cap) {
            fds[n].fd = fd;
            fds[n].events = ev;
            fds[n].revents = 0;
        }
        n++;
    }
    return n;
}

void http_client_stats(const http_client_t *c, struct http_stats *out)
{
    *out = c->st;
    out->in_flight = c->in_flight;
    out->queued = c->queued;
}

size_t http_client_pending(const http_client_t *c)
{
    return c->queued + c->in_flight;
}
