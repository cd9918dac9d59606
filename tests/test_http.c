/* test_http.c - the curl multi client against the fake judge (a real process on 127.0.0.1). */
#include <setjmp.h> /* cmocka 1.1 needs these four first; keep <cmocka.h> */
#include <stdarg.h> /* in its own block, or clang-format sorts it above them */
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <curl/curl.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cfg.h"
#include "err.h"
#include "fake_judge_run.h"
#include "http.h"
#include "httpopts.h"
#include "log.h"

static struct fake_judge fj;
static const char *const SECRET = "sk-test-SECRET-0123456789abcdef";

/* One finished request, copied out of the callback. */
struct result {
    int done;
    int rc;
    long status;
    unsigned attempts;
    double latency_ms;
    bool permanent;
    char error[700];
    char body[4096];
};

static void on_done(void *user, const struct http_response *resp)
{
    struct result *r = user;
    r->done++;
    r->rc = resp->rc;
    r->status = resp->status;
    r->attempts = resp->attempts;
    r->latency_ms = resp->latency_ms;
    r->permanent = resp->permanent;
    snprintf(r->error, sizeof r->error, "%s", resp->error ? resp->error : "");
    snprintf(r->body, sizeof r->body, "%s", resp->body);
    assert_true(resp->rc == ERR_OK ? resp->error == NULL : resp->error != NULL);
}

static struct http_config fast_config(void)
{
    struct http_config cfg = http_config_default();
    cfg.backoff_base_ms = 10;
    cfg.backoff_max_ms = 40;
    cfg.max_attempts = 3;
    cfg.connect_timeout_ms = 2000;
    cfg.total_timeout_ms = 5000;
    cfg.seed = 42;
    return cfg;
}

static void run_until_done(http_client_t *c, int timeout_ms)
{
    int64_t end = http_now_ms() + timeout_ms;
    while (http_client_pending(c) && http_now_ms() < end)
        assert_int_equal(http_client_poll(c, 50, NULL, 0), ERR_OK);
    assert_int_equal(http_client_pending(c), 0);
}

static char url_chat[128];

/* Submits one POST to the chat endpoint with the given extra headers (NULL-terminated). */
static void submit(http_client_t *c, struct result *r, const char *const *hdrs)
{
    const char *headers[16] = {"Content-Type: application/json"};
    size_t n = 1;
    for (size_t i = 0; hdrs && hdrs[i] && n < 16; i++)
        headers[n++] = hdrs[i];
    const char *body =
        "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"GOOD BAD\"}]}";
    struct http_request req = {
        .url = url_chat,
        .headers = headers,
        .nheaders = n,
        .body = body,
        .body_len = strlen(body),
        .tokens = 10,
    };
    memset(r, 0, sizeof *r);
    assert_int_equal(http_client_submit(c, &req, on_done, r), ERR_OK);
}

/* Two counters from one /stats call. "connections" counts the /stats connection itself too. */
static void stats2(const char *n1, json_int_t *v1, const char *n2, json_int_t *v2)
{
    json_t *s = fake_judge_stats(&fj);
    assert_non_null(s);
    *v1 = json_integer_value(json_object_get(s, n1));
    if (n2)
        *v2 = json_integer_value(json_object_get(s, n2));
    json_decref(s);
}

static json_int_t stat_int(const char *name)
{
    json_int_t v;
    stats2(name, &v, NULL, NULL);
    return v;
}

static int group_setup(void **state)
{
    (void)state;
    if (fake_judge_start(&fj, NULL))
        return -1;
    snprintf(url_chat, sizeof url_chat, "%s/chat/completions", fj.base_url);
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    fake_judge_stop(&fj);
    return 0;
}

static void test_post_gets_the_2xx_body(void **state)
{
    (void)state;
    http_client_t *c = NULL;
    struct http_config cfg = fast_config();
    assert_int_equal(http_client_new(&c, &cfg), ERR_OK);
    struct result r;
    submit(c, &r, NULL);
    run_until_done(c, 5000);
    assert_int_equal(r.done, 1);
    assert_int_equal(r.rc, ERR_OK);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.attempts, 1);
    assert_non_null(strstr(r.body, "chat.completion"));
    http_client_destroy(&c);
    assert_null(c);
    http_client_destroy(&c); /* NULL-safe */
}

static void test_in_flight_is_capped_at_k(void **state)
{
    (void)state;
    assert_int_equal(fake_judge_reset(&fj), 0);
    http_client_t *c = NULL;
    struct http_config cfg = fast_config();
    cfg.max_in_flight = 4;
    assert_int_equal(http_client_new(&c, &cfg), ERR_OK);
    struct result r[12];
    const char *h[] = {"X-Fake-Latency: 150", NULL};
    int64_t t0 = http_now_ms();
    for (int i = 0; i < 12; i++)
        submit(c, &r[i], h);
    run_until_done(c, 10000);
    int64_t elapsed = http_now_ms() - t0;
    for (int i = 0; i < 12; i++)
        assert_int_equal(r[i].rc, ERR_OK);
    /* 12 requests, 4 at a time, 150 ms each: three waves */
    assert_true(elapsed >= 440);
    assert_true(elapsed < 3000);
    json_int_t mx, conns;
    stats2("max_in_flight", &mx, "connections", &conns);
    assert_int_equal(mx, 4);
    assert_true(conns - 1 <= 4);
    http_client_destroy(&c);
}

static void test_connections_are_reused(void **state)
{
    (void)state;
    assert_int_equal(fake_judge_reset(&fj), 0);
    http_client_t *c = NULL;
    struct http_config cfg = fast_config();
    cfg.max_in_flight = 1;
    assert_int_equal(http_client_new(&c, &cfg), ERR_OK);
    for (int i = 0; i < 10; i++) {
        struct result r;
        submit(c, &r, NULL);
        run_until_done(c, 5000);
        assert_int_equal(r.rc, ERR_OK);
    }
    json_int_t reqs, conns;
    stats2("requests", &reqs, "connections", &conns);
    assert_int_equal(reqs, 10);
    assert_int_equal(conns - 1, 1); /* one for the ten, one for this /stats */
    http_client_destroy(&c);
}

static void test_500_twice_then_ok_is_retried(void **state)
{
    (void)state;
    http_client_t *c = NULL;
    struct http_config cfg = fast_config();
    assert_int_equal(http_client_new(&c, &cfg), ERR_OK);
    struct result r;
    const char *h[] = {"X-Fake-Fail: 2", "X-Fake-Key: t500ok", NULL};
    submit(c, &r, h);
    run_until_done(c, 5000);
    assert_int_equal(r.rc, ERR_OK);
    assert_int_equal(r.attempts, 3);
    struct http_stats st;
    http_client_stats(c, &st);
    assert_int_equal(st.retries, 2);
    assert_int_equal(st.succeeded, 1);
    http_client_destroy(&c);
}

static void test_retryable_statuses_are_retried(void **state)
{
    (void)state;
    static const char *const statuses[] = {"408", "409", "429", "502", "503", "529"};
    http_client_t *c = NULL;
    struct http_config cfg = fast_config();
    assert_int_equal(http_client_new(&c, &cfg), ERR_OK);
    for (size_t i = 0; i < sizeof statuses / sizeof *statuses; i++) {
        char st[64], key[64];
        snprintf(st, sizeof st, "X-Fake-Fail-Status: %s", statuses[i]);
        snprintf(key, sizeof key, "X-Fake-Key: retryable-%s", statuses[i]);
        const char *h[] = {"X-Fake-Fail: 1", st, key, NULL};
        struct result r;
        submit(c, &r, h);
        run_until_done(c, 5000);
        assert_int_equal(r.rc, ERR_OK);
        assert_int_equal(r.attempts, 2);
    }
    http_client_destroy(&c);
}

static void test_retries_stop_at_max_attempts(void **state)
{
    (void)state;
    http_client_t *c = NULL;
    struct http_config cfg = fast_config();
    assert_int_equal(http_client_new(&c, &cfg), ERR_OK);
    struct result r;
    const char *h[] = {"X-Fake-Fail: 100", "X-Fake-Key: always500", NULL};
    submit(c, &r, h);
    run_until_done(c, 5000);
    assert_int_equal(r.rc, ERR_AGAIN);
    assert_int_equal(r.status, 500);
    assert_int_equal(r.attempts, 3);
    assert_false(r.permanent);
    assert_non_null(strstr(r.error, "HTTP 500"));
    assert_non_null(strstr(r.error, "after 3 attempts"));
    http_client_destroy(&c);
}

static void test_400_is_not_retried(void **state)
{
    (void)state;
    http_client_t *c = NULL;
    struct http_config cfg = fast_config();
    assert_int_equal(http_client_new(&c, &cfg), ERR_OK);
    struct result r;
    const char *h[] = {"X-Fake-Fail: 5", "X-Fake-Fail-Status: 400", "X-Fake-Key: t400", NULL};
    submit(c, &r, h);
    run_until_done(c, 5000);
    assert_int_equal(r.rc, ERR_REMOTE);
    assert_int_equal(r.status, 400);
    assert_int_equal(r.attempts, 1);
    assert_true(r.permanent);
    http_client_destroy(&c);
}

static void test_retry_after_seconds_is_honoured(void **state)
{
    (void)state;
    http_client_t *c = NULL;
    struct http_config cfg = fast_config();
    assert_int_equal(http_client_new(&c, &cfg), ERR_OK);
    struct result r;
    const char *h[] = {"X-Fake-Fail: 1", "X-Fake-Fail-Status: 429", "X-Fake-Retry-After: 1",
                       "X-Fake-Key: ra1", NULL};
    submit(c, &r, h);
    run_until_done(c, 5000);
    assert_int_equal(r.rc, ERR_OK);
    assert_int_equal(r.attempts, 2);
    /* back-off alone would be 5..10 ms */
    assert_true(r.latency_ms >= 990);
    assert_true(r.latency_ms < 3000);
    http_client_destroy(&c);
}

static void test_retry_after_http_date_is_honoured(void **state)
{
    (void)state;
    http_client_t *c = NULL;
    struct http_config cfg = fast_config();
    assert_int_equal(http_client_new(&c, &cfg), ERR_OK);
    /* two seconds from now, as an IMF-fixdate (whole seconds: at least 1 s of waiting) */
    time_t t = time(NULL) + 2;
    struct tm tm;
    gmtime_r(&t, &tm);
    char date[64], hdr[96];
    strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    snprintf(hdr, sizeof hdr, "X-Fake-Retry-After: %s", date);
    const char *h[] = {"X-Fake-Fail: 1", "X-Fake-Fail-Status: 503", hdr, "X-Fake-Key: radate",
                       NULL};
    struct result r;
    submit(c, &r, h);
    run_until_done(c, 6000);
    assert_int_equal(r.rc, ERR_OK);
    assert_int_equal(r.attempts, 2);
    assert_true(r.latency_ms >= 900);
    http_client_destroy(&c);
}

static void test_retry_after_over_the_limit_fails_at_once(void **state)
{
    (void)state;
    http_client_t *c = NULL;
    struct http_config cfg = fast_config();
    cfg.retry_after_max_ms = 2000;
    assert_int_equal(http_client_new(&c, &cfg), ERR_OK);
    struct result r;
    const char *h[] = {"X-Fake-Fail: 1", "X-Fake-Fail-Status: 429", "X-Fake-Retry-After: 3600",
                       "X-Fake-Key: ralong", NULL};
    submit(c, &r, h);
    run_until_done(c, 5000);
    assert_int_equal(r.rc, ERR_AGAIN);
    assert_int_equal(r.status, 429);
    assert_int_equal(r.attempts, 1);
    assert_non_null(strstr(r.error, "Retry-After"));
    http_client_destroy(&c);
}

static void test_parse_retry_after(void **state)
{
    (void)state;
    assert_int_equal(http_parse_retry_after("120", 0), 120000);
    assert_int_equal(http_parse_retry_after("  7 \r\n", 0), 7000);
    assert_int_equal(http_parse_retry_after("0", 0), 0);
    /* Wed, 21 Oct 2015 07:28:00 GMT is 1445412480 */
    assert_int_equal(http_parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", 1445412470), 10000);
    assert_int_equal(http_parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", 1445412490), 0);
    assert_int_equal(http_parse_retry_after("soon", 0), -1);
    assert_int_equal(http_parse_retry_after("-3", 0), -1);
    assert_int_equal(http_parse_retry_after("", 0), -1);
    assert_int_equal(http_parse_retry_after(NULL, 0), -1);
}

static void test_closed_connection_is_retried_then_an_error(void **state)
{
    (void)state;
    assert_int_equal(fake_judge_reset(&fj), 0);
    http_client_t *c = NULL;
    struct http_config cfg = fast_config();
    assert_int_equal(http_client_new(&c, &cfg), ERR_OK);
    struct result r;
    const char *h[] = {"X-Fake-Mode: close", NULL};
    submit(c, &r, h);
    run_until_done(c, 5000);
    assert_int_equal(r.rc, ERR_IO);
    assert_int_equal(r.status, 0);
    assert_int_equal(r.attempts, 3);
    assert_non_null(strstr(r.error, "transport"));
    assert_int_equal(stat_int("requests"), 3);
    http_client_destroy(&c);
}

static void test_slow_answer_times_out(void **state)
{
    (void)state;
    http_client_t *c = NULL;
    struct http_config cfg = fast_config();
    cfg.total_timeout_ms = 100;
    cfg.max_attempts = 2;
    assert_int_equal(http_client_new(&c, &cfg), ERR_OK);
    struct result r;
    const char *h[] = {"X-Fake-Latency: 1000", NULL};
    submit(c, &r, h);
    run_until_done(c, 5000);
    assert_int_equal(r.rc, ERR_TIMEOUT);
    assert_int_equal(r.attempts, 2);
    assert_true(r.latency_ms < 900);
    http_client_destroy(&c);
}

static void test_connect_refused_is_a_transport_error(void **state)
{
    (void)state;
    http_client_t *c = NULL;
    struct http_config cfg = fast_config();
    cfg.max_attempts = 2;
    assert_int_equal(http_client_new(&c, &cfg), ERR_OK);
    struct http_request req = {
        .url = "http://127.0.0.1:1/v1/chat/completions", .body = "{}", .body_len = 2};
    struct result r = {0};
    assert_int_equal(http_client_submit(c, &req, on_done, &r), ERR_OK);
    run_until_done(c, 5000);
    assert_int_equal(r.rc, ERR_IO);
    assert_int_equal(r.attempts, 2);
    http_client_destroy(&c);
}

static void test_deadline_stops_retries(void **state)
{
    (void)state;
    http_client_t *c = NULL;
    struct http_config cfg = fast_config();
    cfg.backoff_base_ms = 400;
    cfg.backoff_max_ms = 400;
    cfg.max_attempts = 10;
    assert_int_equal(http_client_new(&c, &cfg), ERR_OK);
    const char *headers[] = {"X-Fake-Fail: 100", "X-Fake-Key: deadline"};
    struct http_request req = {.url = url_chat,
                               .headers = headers,
                               .nheaders = 2,
                               .body = "{}",
                               .body_len = 2,
                               .deadline_ms = http_now_ms() + 150};
    struct result r = {0};
    assert_int_equal(http_client_submit(c, &req, on_done, &r), ERR_OK);
    run_until_done(c, 5000);
    assert_int_equal(r.rc, ERR_TIMEOUT);
    assert_int_equal(r.attempts, 1);
    assert_true(r.latency_ms < 300);
    http_client_destroy(&c);
}

static void test_body_over_the_cap_is_toobig(void **state)
{
    (void)state;
    http_client_t *c = NULL;
    struct http_config cfg = fast_config();
    cfg.max_response_bytes = 64;
    assert_int_equal(http_client_new(&c, &cfg), ERR_OK);
    struct result r;
    submit(c, &r, NULL);
    run_until_done(c, 5000);
    assert_int_equal(r.rc, ERR_TOOBIG);
    assert_int_equal(r.attempts, 1);
    assert_true(r.permanent);
    http_client_destroy(&c);
}

static void test_requests_per_minute_are_limited(void **state)
{
    (void)state;
    http_client_t *c = NULL;
    struct http_config cfg = fast_config();
    cfg.max_in_flight = 8;
    cfg.requests_per_minute = 600; /* 10 a second */
    cfg.burst_seconds = 0.1;       /* bucket of one */
    assert_int_equal(http_client_new(&c, &cfg), ERR_OK);
    struct result r[6];
    int64_t t0 = http_now_ms();
    for (int i = 0; i < 6; i++)
        submit(c, &r[i], NULL);
    run_until_done(c, 5000);
    int64_t elapsed = http_now_ms() - t0;
    for (int i = 0; i < 6; i++)
        assert_int_equal(r[i].rc, ERR_OK);
    /* the first at once, then one every 100 ms */
    assert_true(elapsed >= 480);
    assert_true(elapsed < 1500);
    struct http_stats st;
    http_client_stats(c, &st);
    assert_true(st.rate_waits >= 4);
    http_client_destroy(&c);
}

static void test_tokens_per_minute_are_limited(void **state)
{
    (void)state;
    http_client_t *c = NULL;
    struct http_config cfg = fast_config();
    cfg.max_in_flight = 8;
    cfg.tokens_per_minute = 6000; /* 100 a second; each request is 10 tokens */
    cfg.burst_seconds = 0.1;      /* bucket of 10 tokens */
    assert_int_equal(http_client_new(&c, &cfg), ERR_OK);
    struct result r[5];
    int64_t t0 = http_now_ms();
    for (int i = 0; i < 5; i++)
        submit(c, &r[i], NULL);
    run_until_done(c, 5000);
    int64_t elapsed = http_now_ms() - t0;
    assert_true(elapsed >= 380);
    /* a refund (the true size was smaller) lets the next one go at once */
    http_client_charge_tokens(c, -1000);
    t0 = http_now_ms();
    submit(c, &r[0], NULL);
    run_until_done(c, 5000);
    assert_true(http_now_ms() - t0 < 80);
    /* a surcharge (it was larger) holds the next one back: 20 + 10 tokens at 100/s */
    http_client_charge_tokens(c, 20);
    t0 = http_now_ms();
    submit(c, &r[0], NULL);
    run_until_done(c, 5000);
    assert_true(http_now_ms() - t0 >= 250);
    http_client_destroy(&c);
}

/* Runs fn with stderr redirected to a file; returns what was written (malloc'd). */
static char *capture_stderr(void (*fn)(void))
{
    char path[] = "/tmp/oaif-test-http-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    fflush(stderr);
    int saved = dup(2);
    dup2(fd, 2);
    fn();
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    off_t n = lseek(fd, 0, SEEK_END);
    char *s = calloc(1, (size_t)n + 1);
    assert_non_null(s);
    assert_int_equal(pread(fd, s, (size_t)n, 0), n);
    close(fd);
    unlink(path);
    return s;
}

static struct result secret_results[3];

static void secret_scenario(void)
{
    log_set_level(LOG_LVL_DEBUG);
    http_client_t *c = NULL;
    struct http_config cfg = fast_config();
    assert_int_equal(http_client_new(&c, &cfg), ERR_OK);
    char auth[128], url[200];
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", SECRET);
    snprintf(url, sizeof url, "%s?key=%s", url_chat, SECRET);
    const char *secrets[] = {SECRET};
    /* 1: the server echoes the key in its error body, every time (retried, then failed) */
    const char *h1[] = {auth, "X-Fake-Fail: 100", "X-Fake-Key: echo", "X-Fake-Echo-Auth: 1"};
    /* 2: the key in the URL's query, connection closed */
    const char *h2[] = {auth, "X-Fake-Mode: close"};
    /* 3: success */
    const char *h3[] = {auth};
    struct http_request reqs[3] = {
        {.url = url_chat,
         .headers = h1,
         .nheaders = 4,
         .body = "{}",
         .body_len = 2,
         .secrets = secrets,
         .nsecrets = 1},
        {.url = url,
         .headers = h2,
         .nheaders = 2,
         .body = "{}",
         .body_len = 2,
         .secrets = secrets,
         .nsecrets = 1},
        {.url = url_chat,
         .headers = h3,
         .nheaders = 1,
         .body = "{}",
         .body_len = 2,
         .secrets = secrets,
         .nsecrets = 1},
    };
    for (int i = 0; i < 3; i++) {
        memset(&secret_results[i], 0, sizeof secret_results[i]);
        assert_int_equal(http_client_submit(c, &reqs[i], on_done, &secret_results[i]), ERR_OK);
    }
    run_until_done(c, 5000);
    http_client_destroy(&c);
    log_set_level(LOG_LVL_INFO);
}

static void test_key_never_in_errors_or_logs(void **state)
{
    (void)state;
    char *logs = capture_stderr(secret_scenario);
    /* retries were logged (so the check below looked at real output) ... */
    assert_non_null(strstr(logs, "attempt 2/3"));
    /* ... without the key */
    assert_null(strstr(logs, SECRET));
    assert_int_equal(secret_results[0].rc, ERR_AGAIN);
    assert_int_equal(secret_results[1].rc, ERR_IO);
    assert_int_equal(secret_results[2].rc, ERR_OK);
    for (int i = 0; i < 2; i++) {
        assert_true(secret_results[i].error[0]);
        assert_null(strstr(secret_results[i].error, SECRET));
    }
    assert_non_null(strstr(secret_results[0].error, "[REDACTED]"));
    /* the key was sent */
    json_t *s = fake_judge_stats(&fj);
    char want[128];
    snprintf(want, sizeof want, "Bearer %s", SECRET);
    assert_string_equal(json_string_value(json_object_get(s, "last_authorization")), want);
    json_decref(s);
    free(logs);
}

static void test_redact(void **state)
{
    (void)state;
    const char *secrets[] = {"sk-abcdefghijkl", "tiny", ""};
    char s[] = "a sk-abcdefghijkl b tiny c sk-abcdefghijklsk-abcdefghijkl";
    http_redact(s, secrets, 3);
    assert_string_equal(s, "a [REDACTED] b **** c [REDACTED][REDACTED]");
}

static void test_extra_fds_and_pollfds(void **state)
{
    (void)state;
    http_client_t *c = NULL;
    struct http_config cfg = fast_config();
    assert_int_equal(http_client_new(&c, &cfg), ERR_OK);
    int p[2];
    assert_int_equal(pipe(p), 0);
    struct pollfd extra = {.fd = p[0], .events = POLLIN};
    /* idle: waits out the timeout, nothing ready */
    int64_t t0 = http_now_ms();
    assert_int_equal(http_client_poll(c, 50, &extra, 1), ERR_OK);
    assert_true(http_now_ms() - t0 >= 45);
    assert_int_equal(extra.revents, 0);
    assert_int_equal(http_client_timeout_ms(c), -1);
    /* the caller's fd wakes it */
    assert_int_equal(write(p[1], "x", 1), 1);
    t0 = http_now_ms();
    assert_int_equal(http_client_poll(c, 2000, &extra, 1), ERR_OK);
    assert_true(http_now_ms() - t0 < 500);
    assert_true(extra.revents & POLLIN);
    /* a slow request in flight shows up as a socket to poll */
    struct result r;
    const char *h[] = {"X-Fake-Latency: 200", NULL};
    submit(c, &r, h);
    for (int i = 0; i < 5; i++)
        http_client_poll(c, 10, NULL, 0);
    struct pollfd fds[8];
    size_t n = http_client_pollfds(c, fds, 8);
    assert_true(n >= 1);
    assert_true(n <= 8);
    /* drive it with our own poll() as an outer loop would */
    int64_t end = http_now_ms() + 3000;
    while (!r.done && http_now_ms() < end) {
        n = http_client_pollfds(c, fds, 8);
        int t = http_client_timeout_ms(c);
        poll(fds, n, t < 0 || t > 100 ? 100 : t);
        http_client_poll(c, 0, NULL, 0);
    }
    assert_int_equal(r.rc, ERR_OK);
    close(p[0]);
    close(p[1]);
    http_client_destroy(&c);
}

static void never_called(void *user, const struct http_response *resp)
{
    (void)user;
    (void)resp;
    fail_msg("a destroyed client called back");
}

static void test_destroy_drops_requests_without_callbacks(void **state)
{
    (void)state;
    http_client_t *c = NULL;
    struct http_config cfg = fast_config();
    cfg.max_in_flight = 2;
    assert_int_equal(http_client_new(&c, &cfg), ERR_OK);
    const char *headers[] = {"X-Fake-Latency: 300"};
    struct http_request req = {
        .url = url_chat, .headers = headers, .nheaders = 1, .body = "{}", .body_len = 2};
    for (int i = 0; i < 5; i++)
        assert_int_equal(http_client_submit(c, &req, never_called, NULL), ERR_OK);
    http_client_poll(c, 20, NULL, 0);
    struct http_stats st;
    http_client_stats(c, &st);
    assert_int_equal(st.in_flight, 2);
    assert_int_equal(st.queued, 3);
    http_client_destroy(&c);
}

/* ---- the option rows (httpopts.h) ------------------------------------------------------- */

/* A service's config with the HTTP rows at a nested member, as the annotator and sampler have. */
struct opts_holder {
    int other;
    struct {
        struct http_opts http;
    } svc;
};

#define H struct opts_holder
static const struct cfg_option holder_options[] = {
    HTTP_OPTS(H, svc.http, "t.http", "T", "t"),
};
#undef H
static const char *const holder_sections[] = {"t", NULL};
static const struct cfg_spec holder_spec = {
    .name = "t",
    .sections = holder_sections,
    .options = holder_options,
    .n_options = sizeof holder_options / sizeof holder_options[0],
    .conf_size = sizeof(struct opts_holder),
};

static void test_option_defaults_are_http_config_default(void **state)
{
    (void)state;
    struct opts_holder h;
    memset(&h, 0, sizeof h);
    assert_int_equal(cfg_defaults(&holder_spec, &h), ERR_OK);
    const struct http_opts *o = &h.svc.http;
    const struct http_config d = http_config_default();
    /* every row's default, field by field: the two can never drift apart */
    assert_int_equal(o->max_in_flight, d.max_in_flight);
    assert_int_equal(o->connect_timeout_ms, d.connect_timeout_ms);
    assert_int_equal(o->timeout_ms, d.total_timeout_ms);
    assert_int_equal(o->max_attempts, d.max_attempts);
    assert_int_equal(o->backoff_base_ms, d.backoff_base_ms);
    assert_int_equal(o->backoff_max_ms, d.backoff_max_ms);
    assert_int_equal(o->retry_after_max_ms, d.retry_after_max_ms);
    assert_true(o->requests_per_minute == d.requests_per_minute);
    assert_true(o->tokens_per_minute == d.tokens_per_minute);
    assert_int_equal(o->max_response_bytes, d.max_response_bytes);
    /* and converted back: the client's defaults, whole */
    struct http_config c = http_opts_config(o);
    assert_int_equal(c.max_in_flight, d.max_in_flight);
    assert_int_equal(c.connect_timeout_ms, d.connect_timeout_ms);
    assert_int_equal(c.total_timeout_ms, d.total_timeout_ms);
    assert_int_equal(c.max_attempts, d.max_attempts);
    assert_int_equal(c.backoff_base_ms, d.backoff_base_ms);
    assert_int_equal(c.backoff_max_ms, d.backoff_max_ms);
    assert_int_equal(c.retry_after_max_ms, d.retry_after_max_ms);
    assert_true(c.requests_per_minute == d.requests_per_minute);
    assert_true(c.tokens_per_minute == d.tokens_per_minute);
    assert_true(c.burst_seconds == d.burst_seconds);
    assert_int_equal(c.max_response_bytes, d.max_response_bytes);
    assert_int_equal(c.seed, d.seed);
    /* http.h's documented values */
    assert_int_equal(d.max_in_flight, 16);
    assert_int_equal(d.connect_timeout_ms, 10000);
    assert_int_equal(d.total_timeout_ms, 120000);
    assert_int_equal(d.max_attempts, 5);
    assert_int_equal(d.backoff_base_ms, 500);
    assert_int_equal(d.backoff_max_ms, 30000);
    assert_int_equal(d.retry_after_max_ms, 120000);
    assert_true(d.burst_seconds == 1.0);
    assert_int_equal(d.max_response_bytes, 8u << 20);
    cfg_release(&holder_spec, &h);
}

static void test_option_rows_names_and_conversion(void **state)
{
    (void)state;
    struct opts_holder h;
    memset(&h, 0, sizeof h);
    setenv("T_MAX_IN_FLIGHT", "3", 1);
    setenv("T_REQUESTS_PER_MINUTE", "60", 1);
    char *argv[] = {"t",         "--timeout", "2s",   "--backoff-base",      "7ms",
                    "--rpm=120", "--tpm",     "1000", "--max-response-size", "64KiB",
                    NULL};
    buf_t errs;
    buf_init(&errs, 0);
    int rc = cfg_load(&holder_spec, &h, 10, argv, &errs);
    unsetenv("T_MAX_IN_FLIGHT");
    unsetenv("T_REQUESTS_PER_MINUTE");
    assert_int_equal(rc, ERR_OK);
    buf_free(&errs);
    const struct http_opts *o = &h.svc.http;
    assert_int_equal(o->max_in_flight, 3);
    assert_int_equal(o->timeout_ms, 2000);
    assert_int_equal(o->backoff_base_ms, 7);
    assert_true(o->requests_per_minute == 120); /* the flag beats the variable */
    assert_true(o->tokens_per_minute == 1000);
    assert_int_equal(o->max_response_bytes, 64 * 1024);
    struct http_opts pinned = *o;
    pinned.burst_seconds = 0.5;
    pinned.seed = 9;
    struct http_config c = http_opts_config(&pinned);
    assert_int_equal(c.max_in_flight, 3);
    assert_int_equal(c.total_timeout_ms, 2000);
    assert_int_equal(c.connect_timeout_ms, 10000);
    assert_int_equal(c.backoff_base_ms, 7);
    assert_true(c.requests_per_minute == 120);
    assert_true(c.tokens_per_minute == 1000);
    assert_int_equal(c.max_response_bytes, 64 * 1024);
    assert_true(c.burst_seconds == 0.5);
    assert_int_equal(c.seed, 9);
    char why[160];
    assert_int_equal(http_config_validate(&c, why, sizeof why), ERR_OK);
    /* a zeroed struct is no configuration: validate names the field */
    struct http_opts zero = {0};
    c = http_opts_config(&zero);
    assert_int_equal(http_config_validate(&c, why, sizeof why), ERR_INVAL);
    assert_non_null(strstr(why, "max_in_flight"));
    cfg_release(&holder_spec, &h);
}

static void test_bad_config_and_arguments(void **state)
{
    (void)state;
    char why[160];
    struct http_config cfg = http_config_default();
    cfg.max_in_flight = 0;
    assert_int_equal(http_config_validate(&cfg, why, sizeof why), ERR_INVAL);
    assert_non_null(strstr(why, "max_in_flight"));
    http_client_t *c = NULL;
    assert_int_equal(http_client_new(&c, &cfg), ERR_INVAL);
    assert_null(c);
    cfg = fast_config();
    assert_int_equal(http_client_new(&c, &cfg), ERR_OK);
    struct http_request req = {.url = NULL};
    struct result r = {0};
    assert_int_equal(http_client_submit(c, &req, on_done, &r), ERR_INVAL);
    req.url = "gopher://127.0.0.1/x";
    assert_int_equal(http_client_submit(c, &req, on_done, &r), ERR_OK);
    run_until_done(c, 2000);
    assert_int_equal(r.rc, ERR_INVAL);
    assert_true(r.permanent);
    assert_int_equal(r.attempts, 1);
    http_client_destroy(&c);
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_post_gets_the_2xx_body),
        cmocka_unit_test(test_in_flight_is_capped_at_k),
        cmocka_unit_test(test_connections_are_reused),
        cmocka_unit_test(test_500_twice_then_ok_is_retried),
        cmocka_unit_test(test_retryable_statuses_are_retried),
        cmocka_unit_test(test_retries_stop_at_max_attempts),
        cmocka_unit_test(test_400_is_not_retried),
        cmocka_unit_test(test_retry_after_seconds_is_honoured),
        cmocka_unit_test(test_retry_after_http_date_is_honoured),
        cmocka_unit_test(test_retry_after_over_the_limit_fails_at_once),
        cmocka_unit_test(test_parse_retry_after),
        cmocka_unit_test(test_closed_connection_is_retried_then_an_error),
        cmocka_unit_test(test_slow_answer_times_out),
        cmocka_unit_test(test_connect_refused_is_a_transport_error),
        cmocka_unit_test(test_deadline_stops_retries),
        cmocka_unit_test(test_body_over_the_cap_is_toobig),
        cmocka_unit_test(test_requests_per_minute_are_limited),
        cmocka_unit_test(test_tokens_per_minute_are_limited),
        cmocka_unit_test(test_key_never_in_errors_or_logs),
        cmocka_unit_test(test_redact),
        cmocka_unit_test(test_extra_fds_and_pollfds),
        cmocka_unit_test(test_destroy_drops_requests_without_callbacks),
        cmocka_unit_test(test_bad_config_and_arguments),
        cmocka_unit_test(test_option_defaults_are_http_config_default),
        cmocka_unit_test(test_option_rows_names_and_conversion),
    };
    int rc = cmocka_run_group_tests_name("http", tests, group_setup, group_teardown);
    curl_global_cleanup();
    return rc;
}
