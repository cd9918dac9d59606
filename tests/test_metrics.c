/* test_metrics.c - the registry, the text format (golden), concurrency, and the HTTP server
 * queried with libcurl on 127.0.0.1 with an ephemeral port. */
#include <setjmp.h> /* cmocka 1.1 needs these four first; keep <cmocka.h> */
#include <stdarg.h> /* in its own block, or clang-format sorts it above them */
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "buf.h"
#include "err.h"
#include "metrics.h"

static char *render(metrics_t *m)
{
    buf_t b;
    buf_init(&b, 0);
    assert_int_equal(metrics_render(m, &b), ERR_OK);
    char *s = buf_steal(&b);
    assert_non_null(s);
    return s;
}

static void test_render_golden(void **state)
{
    (void)state;
    metrics_t *m = metrics_new();
    assert_non_null(m);
    metrics_counter_t *ok, *fail;
    metrics_gauge_t *depth;
    metrics_histogram_t *lat;
    assert_int_equal(metrics_counter_register(m, &ok, "oaif_requests_total", "Requests handled.",
                                              "service", "annotate", "result", "ok", NULL),
                     ERR_OK);
    assert_int_equal(metrics_counter_register(m, &fail, "oaif_requests_total", "Requests handled.",
                                              "service", "annotate", "result", "error", NULL),
                     ERR_OK);
    assert_int_equal(
        metrics_gauge_register(m, &depth, "oaif_queue_depth", "Queued requests.", NULL), ERR_OK);
    static const double bounds[] = {0.005, 0.1, 1, 10};
    assert_int_equal(metrics_histogram_register(m, &lat, "oaif_latency_seconds",
                                                "Round trip, in seconds.", bounds, 4, "service",
                                                "sample", NULL),
                     ERR_OK);
    metrics_counter_inc(ok);
    metrics_counter_inc(ok);
    metrics_counter_add(ok, 1);
    metrics_counter_add(fail, 0.25);
    metrics_gauge_set(depth, 12);
    metrics_gauge_add(depth, -2.5);
    metrics_histogram_observe(lat, 0.001);
    metrics_histogram_observe(lat, 0.1); /* on the bound: counted in le="0.1" */
    metrics_histogram_observe(lat, 0.5);
    metrics_histogram_observe(lat, 99);
    char *text = render(m);
    assert_string_equal(text, "# HELP oaif_requests_total Requests handled.\n"
                              "# TYPE oaif_requests_total counter\n"
                              "oaif_requests_total{service=\"annotate\",result=\"ok\"} 3\n"
                              "oaif_requests_total{service=\"annotate\",result=\"error\"} 0.25\n"
                              "# HELP oaif_queue_depth Queued requests.\n"
                              "# TYPE oaif_queue_depth gauge\n"
                              "oaif_queue_depth 9.5\n"
                              "# HELP oaif_latency_seconds Round trip, in seconds.\n"
                              "# TYPE oaif_latency_seconds histogram\n"
                              "oaif_latency_seconds_bucket{service=\"sample\",le=\"0.005\"} 1\n"
                              "oaif_latency_seconds_bucket{service=\"sample\",le=\"0.1\"} 2\n"
                              "oaif_latency_seconds_bucket{service=\"sample\",le=\"1\"} 3\n"
                              "oaif_latency_seconds_bucket{service=\"sample\",le=\"10\"} 3\n"
                              "oaif_latency_seconds_bucket{service=\"sample\",le=\"+Inf\"} 4\n"
                              "oaif_latency_seconds_sum{service=\"sample\"} 99.601\n"
                              "oaif_latency_seconds_count{service=\"sample\"} 4\n");
    free(text);
    assert_true(metrics_counter_value(ok) == 3);
    assert_true(metrics_gauge_value(depth) == 9.5);
    assert_int_equal(metrics_histogram_count(lat), 4);
    metrics_destroy(&m);
    assert_null(m);
    metrics_destroy(&m);
    metrics_destroy(NULL);
}

static void test_empty_registry_renders_nothing(void **state)
{
    (void)state;
    metrics_t *m = metrics_new();
    char *text = render(m);
    assert_string_equal(text, "");
    free(text);
    metrics_destroy(&m);
}

static void test_label_and_help_escaping(void **state)
{
    (void)state;
    metrics_t *m = metrics_new();
    metrics_gauge_t *g;
    assert_int_equal(metrics_gauge_register(m, &g, "x", "Back\\slash and \"quotes\".", "path",
                                            "C:\\dir\\\"a\"\nb", "empty", "", NULL),
                     ERR_OK);
    metrics_gauge_set(g, -1);
    metrics_histogram_t *h;
    static const double b[] = {1};
    assert_int_equal(metrics_histogram_register(m, &h, "h", "H.", b, 1, NULL), ERR_OK);
    char *text = render(m);
    assert_string_equal(text, "# HELP x Back\\\\slash and \"quotes\".\n"
                              "# TYPE x gauge\n"
                              "x{path=\"C:\\\\dir\\\\\\\"a\\\"\\nb\",empty=\"\"} -1\n"
                              "# HELP h H.\n"
                              "# TYPE h histogram\n"
                              "h_bucket{le=\"1\"} 0\n"
                              "h_bucket{le=\"+Inf\"} 0\n"
                              "h_sum 0\n"
                              "h_count 0\n");
    free(text);
    metrics_destroy(&m);
}

static void test_special_values(void **state)
{
    (void)state;
    metrics_t *m = metrics_new();
    metrics_gauge_t *a, *b, *c, *d;
    metrics_counter_t *k;
    assert_int_equal(metrics_gauge_register(m, &a, "g", "G.", "v", "a", NULL), ERR_OK);
    assert_int_equal(metrics_gauge_register(m, &b, "g", "G.", "v", "b", NULL), ERR_OK);
    assert_int_equal(metrics_gauge_register(m, &c, "g", "G.", "v", "c", NULL), ERR_OK);
    assert_int_equal(metrics_gauge_register(m, &d, "g", "G.", "v", "d", NULL), ERR_OK);
    assert_int_equal(metrics_counter_register(m, &k, "k_total", "K.", NULL), ERR_OK);
    metrics_gauge_set(a, INFINITY);
    metrics_gauge_set(b, -INFINITY);
    metrics_gauge_set(c, NAN);
    metrics_gauge_set(d, 0.1 + 0.2); /* needs 17 digits to read back */
    metrics_counter_add(k, 1e21);
    metrics_counter_add(k, -5);  /* ignored */
    metrics_counter_add(k, NAN); /* ignored */
    char *text = render(m);
    assert_string_equal(text, "# HELP g G.\n"
                              "# TYPE g gauge\n"
                              "g{v=\"a\"} +Inf\n"
                              "g{v=\"b\"} -Inf\n"
                              "g{v=\"c\"} NaN\n"
                              "g{v=\"d\"} 0.30000000000000004\n"
                              "# HELP k_total K.\n"
                              "# TYPE k_total counter\n"
                              "k_total 1e+21\n");
    free(text);
    metrics_destroy(&m);
}

static void test_histogram_buckets_are_cumulative_and_le_inclusive(void **state)
{
    (void)state;
    metrics_t *m = metrics_new();
    metrics_histogram_t *h;
    static const double b[] = {-1, 0, 2.5};
    assert_int_equal(metrics_histogram_register(m, &h, "v", "V.", b, 3, NULL), ERR_OK);
    const double obs[] = {-5, -1, -0.5, 0, 0, 2.5, 2.5000001, INFINITY, NAN};
    for (size_t i = 0; i < sizeof obs / sizeof obs[0]; i++)
        metrics_histogram_observe(h, obs[i]);
    assert_int_equal(metrics_histogram_count(h), 8); /* NaN is not counted */
    char *text = render(m);
    assert_string_equal(text, "# HELP v V.\n"
                              "# TYPE v histogram\n"
                              "v_bucket{le=\"-1\"} 2\n"
                              "v_bucket{le=\"0\"} 5\n"
                              "v_bucket{le=\"2.5\"} 6\n"
                              "v_bucket{le=\"+Inf\"} 8\n"
                              "v_sum +Inf\n"
                              "v_count 8\n");
    free(text);
    metrics_destroy(&m);
}

static void test_registration_rules(void **state)
{
    (void)state;
    metrics_t *m = metrics_new();
    metrics_counter_t *c1, *c2, *c3;
    metrics_gauge_t *g;
    metrics_histogram_t *h;
    static const double b[] = {1, 2}, b2[] = {1, 3}, bad_b[] = {2, 1}, inf_b[] = {1, INFINITY};
    assert_int_equal(metrics_counter_register(m, &c1, "a_total", "A.", "x", "1", NULL), ERR_OK);
    assert_int_equal(metrics_counter_register(m, &c2, "a_total", "A.", "x", "1", NULL), ERR_OK);
    assert_ptr_equal(c1, c2); /* same series */
    assert_int_equal(metrics_counter_register(m, &c3, "a_total", "A.", "x", "2", NULL), ERR_OK);
    assert_ptr_not_equal(c1, c3);
    /* conflicts */
    assert_int_equal(metrics_gauge_register(m, &g, "a_total", "A.", NULL), ERR_INVAL);
    assert_null(g);
    assert_int_equal(metrics_counter_register(m, &c2, "a_total", "Other help.", NULL), ERR_INVAL);
    assert_null(c2);
    assert_int_equal(metrics_histogram_register(m, &h, "hh", "H.", b, 2, NULL), ERR_OK);
    assert_int_equal(metrics_histogram_register(m, &h, "hh", "H.", b2, 2, NULL), ERR_INVAL);
    /* bad names, labels, bounds */
    assert_int_equal(metrics_counter_register(m, &c2, "1abc", "A.", NULL), ERR_INVAL);
    assert_int_equal(metrics_counter_register(m, &c2, "a-b", "A.", NULL), ERR_INVAL);
    assert_int_equal(metrics_counter_register(m, &c2, "", "A.", NULL), ERR_INVAL);
    assert_int_equal(metrics_counter_register(m, &c2, "ok:name_1", "Two\nlines.", NULL), ERR_INVAL);
    assert_int_equal(metrics_counter_register(m, &c2, "b", "B.", "bad-label", "v", NULL),
                     ERR_INVAL);
    assert_int_equal(metrics_counter_register(m, &c2, "b", "B.", "__reserved", "v", NULL),
                     ERR_INVAL);
    assert_int_equal(metrics_counter_register(m, &c2, "b", "B.", "x", "1", "x", "2", NULL),
                     ERR_INVAL);
    assert_int_equal(metrics_counter_register(m, &c2, "b", "B.", "odd", (char *)NULL), ERR_INVAL);
    assert_int_equal(metrics_histogram_register(m, &h, "h2", "H.", b, 2, "le", "1", NULL),
                     ERR_INVAL);
    assert_int_equal(metrics_histogram_register(m, &h, "h2", "H.", bad_b, 2, NULL), ERR_INVAL);
    assert_int_equal(metrics_histogram_register(m, &h, "h2", "H.", inf_b, 2, NULL), ERR_INVAL);
    assert_int_equal(metrics_histogram_register(m, &h, "h2", "H.", b, 0, NULL), ERR_INVAL);
    assert_null(h);
    /* "le" is an ordinary label outside histograms; "ok:name_1" is a valid name */
    assert_int_equal(metrics_counter_register(m, &c2, "ok:name_1", "A.", "le", "x", NULL), ERR_OK);
    /* failed registrations left nothing behind */
    char *text = render(m);
    assert_null(strstr(text, "b{"));
    assert_null(strstr(text, "h2"));
    free(text);
    /* NULL handles are ignored */
    metrics_counter_inc(NULL);
    metrics_gauge_set(NULL, 1);
    metrics_histogram_observe(NULL, 1);
    metrics_destroy(&m);
}

struct hook_state {
    metrics_gauge_t *g;
    int calls;
};

static void refresh(void *arg)
{
    struct hook_state *hs = arg;
    hs->calls++;
    metrics_gauge_set(hs->g, hs->calls * 10);
}

static void test_prerender_hook_refreshes_gauges(void **state)
{
    (void)state;
    metrics_t *m = metrics_new();
    struct hook_state hs = {0};
    assert_int_equal(metrics_gauge_register(m, &hs.g, "workers", "Workers alive.", NULL), ERR_OK);
    metrics_set_prerender(m, refresh, &hs);
    char *text = render(m);
    assert_non_null(strstr(text, "\nworkers 10\n"));
    free(text);
    text = render(m);
    assert_non_null(strstr(text, "\nworkers 20\n"));
    free(text);
    metrics_set_prerender(m, NULL, NULL);
    text = render(m);
    assert_non_null(strstr(text, "\nworkers 20\n"));
    free(text);
    assert_int_equal(hs.calls, 2);
    metrics_destroy(&m);
}

/* ------------------------------------------------------------------------------------------ */
/* Concurrency: updates from several threads while another renders                             */

#define THREADS 4
#define ROUNDS  20000

struct worker_arg {
    metrics_t *m;
    metrics_counter_t *c;
    metrics_gauge_t *g;
    metrics_histogram_t *h;
    int id;
};

static void *worker(void *p)
{
    struct worker_arg *a = p;
    for (int i = 0; i < ROUNDS; i++) {
        metrics_counter_inc(a->c);
        metrics_gauge_add(a->g, 0.5);
        metrics_histogram_observe(a->h, (double)(i % 4));
        if (i % 5000 == 0) { /* registration concurrent with rendering */
            char v[16];
            snprintf(v, sizeof v, "%d-%d", a->id, i);
            metrics_counter_t *c;
            if (metrics_counter_register(a->m, &c, "dyn_total", "Dyn.", "v", v, NULL) == ERR_OK)
                metrics_counter_inc(c);
        }
    }
    return NULL;
}

static void test_concurrent_updates_are_exact(void **state)
{
    (void)state;
    metrics_t *m = metrics_new();
    struct worker_arg args[THREADS];
    metrics_counter_t *c;
    metrics_gauge_t *g;
    metrics_histogram_t *h;
    static const double b[] = {0.5, 1.5, 2.5};
    assert_int_equal(metrics_counter_register(m, &c, "n_total", "N.", NULL), ERR_OK);
    assert_int_equal(metrics_gauge_register(m, &g, "g", "G.", NULL), ERR_OK);
    assert_int_equal(metrics_histogram_register(m, &h, "h", "H.", b, 3, NULL), ERR_OK);
    pthread_t t[THREADS];
    for (int i = 0; i < THREADS; i++) {
        args[i] = (struct worker_arg){m, c, g, h, i};
        assert_int_equal(pthread_create(&t[i], NULL, worker, &args[i]), 0);
    }
    for (int i = 0; i < 20; i++) {
        char *text = render(m);
        free(text);
    }
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    assert_true(metrics_counter_value(c) == THREADS * ROUNDS);
    assert_true(metrics_gauge_value(g) == THREADS * ROUNDS * 0.5);
    assert_int_equal(metrics_histogram_count(h), THREADS * ROUNDS);
    char *text = render(m);
    char want[256];
    snprintf(want, sizeof want,
             "h_bucket{le=\"0.5\"} %d\nh_bucket{le=\"1.5\"} %d\nh_bucket{le=\"2.5\"} %d\n"
             "h_bucket{le=\"+Inf\"} %d\nh_sum %d\nh_count %d\n",
             THREADS * ROUNDS / 4, THREADS * ROUNDS / 2, THREADS * ROUNDS * 3 / 4, THREADS * ROUNDS,
             THREADS * ROUNDS / 4 * 6, THREADS * ROUNDS);
    assert_non_null(strstr(text, want));
    size_t dyn = 0;
    for (const char *p = text; (p = strstr(p, "\ndyn_total{")); p++)
        dyn++;
    assert_int_equal(dyn, THREADS * (ROUNDS / 5000));
    free(text);
    metrics_destroy(&m);
}

/* ------------------------------------------------------------------------------------------ */
/* HTTP                                                                                        */

struct http_result {
    long status;
    buf_t body;
    char ctype[128];
    char allow[64];
};

static size_t on_body(char *data, size_t size, size_t n, void *arg)
{
    buf_t *b = arg;
    return buf_append(b, data, size * n) == ERR_OK ? size * n : 0;
}

static size_t on_header(char *data, size_t size, size_t n, void *arg)
{
    struct http_result *r = arg;
    size_t len = size * n;
    if (len > 7 && strncasecmp(data, "Allow: ", 7) == 0) {
        size_t v = len - 7;
        while (v && (data[7 + v - 1] == '\r' || data[7 + v - 1] == '\n'))
            v--;
        snprintf(r->allow, sizeof r->allow, "%.*s", (int)v, data + 7);
    }
    return len;
}

static void http(const char *method, int port, const char *path, struct http_result *r)
{
    memset(r, 0, sizeof *r);
    buf_init(&r->body, 1 << 20);
    CURL *c = curl_easy_init();
    assert_non_null(c);
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", port, path);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 5000L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &r->body);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, r);
    if (strcmp(method, "HEAD") == 0)
        curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
    else if (strcmp(method, "POST") == 0)
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, "some=body&more=data");
    else if (strcmp(method, "GET") != 0)
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    CURLcode cc = curl_easy_perform(c);
    if (cc != CURLE_OK)
        fail_msg("%s %s: %s", method, url, curl_easy_strerror(cc));
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
    char *ct = NULL;
    curl_easy_getinfo(c, CURLINFO_CONTENT_TYPE, &ct);
    if (ct)
        snprintf(r->ctype, sizeof r->ctype, "%s", ct);
    curl_easy_cleanup(c);
}

static atomic_bool healthy = true;

static bool is_healthy(void *arg)
{
    (void)arg;
    return atomic_load(&healthy);
}

static void test_http_routes(void **state)
{
    (void)state;
    metrics_t *m = metrics_new();
    metrics_counter_t *c;
    assert_int_equal(
        metrics_counter_register(m, &c, "hits_total", "Hits.", "service", "test", NULL), ERR_OK);
    metrics_counter_add(c, 7);
    metrics_server_t *s = NULL;
    assert_int_equal(metrics_server_start(&s, m, "127.0.0.1", 0, is_healthy, NULL), ERR_OK);
    int port = metrics_server_port(s);
    assert_true(port > 0 && port < 65536);

    struct http_result r;
    http("GET", port, "/metrics", &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.ctype, "text/plain; version=0.0.4; charset=utf-8");
    assert_string_equal(r.body.data, "# HELP hits_total Hits.\n"
                                     "# TYPE hits_total counter\n"
                                     "hits_total{service=\"test\"} 7\n");
    buf_free(&r.body);

    http("GET", port, "/metrics?x=1", &r); /* a query string does not change the route */
    assert_int_equal(r.status, 200);
    buf_free(&r.body);

    http("HEAD", port, "/metrics", &r);
    assert_int_equal(r.status, 200);
    assert_null(r.body.data);
    buf_free(&r.body);

    atomic_store(&healthy, true);
    http("GET", port, "/healthz", &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body.data, "ok\n");
    buf_free(&r.body);

    atomic_store(&healthy, false);
    http("GET", port, "/healthz", &r);
    assert_int_equal(r.status, 503);
    assert_string_equal(r.body.data, "unhealthy\n");
    buf_free(&r.body);
    atomic_store(&healthy, true);

    http("GET", port, "/", &r);
    assert_int_equal(r.status, 404);
    buf_free(&r.body);
    http("GET", port, "/metrics/", &r);
    assert_int_equal(r.status, 404);
    buf_free(&r.body);
    http("POST", port, "/nowhere", &r);
    assert_int_equal(r.status, 404);
    buf_free(&r.body);

    http("POST", port, "/metrics", &r);
    assert_int_equal(r.status, 405);
    assert_string_equal(r.allow, "GET, HEAD");
    buf_free(&r.body);
    http("DELETE", port, "/healthz", &r);
    assert_int_equal(r.status, 405);
    assert_string_equal(r.allow, "GET, HEAD");
    buf_free(&r.body);

    /* the server still serves after all that */
    http("GET", port, "/metrics", &r);
    assert_int_equal(r.status, 200);
    buf_free(&r.body);

    metrics_server_stop(&s);
    assert_null(s);
    metrics_server_stop(&s);
    metrics_destroy(&m);
}

static void test_http_without_health_callback_is_healthy(void **state)
{
    (void)state;
    metrics_t *m = metrics_new();
    metrics_server_t *s = NULL;
    assert_int_equal(metrics_server_start(&s, m, "127.0.0.1", 0, NULL, NULL), ERR_OK);
    struct http_result r;
    http("GET", metrics_server_port(s), "/healthz", &r);
    assert_int_equal(r.status, 200);
    buf_free(&r.body);
    http("GET", metrics_server_port(s), "/metrics", &r);
    assert_int_equal(r.status, 200);
    assert_null(r.body.data); /* nothing registered: an empty body */
    buf_free(&r.body);
    metrics_server_stop(&s);
    metrics_destroy(&m);
}

static atomic_bool alive = true;

static bool is_alive(void *arg)
{
    (void)arg;
    return atomic_load(&alive);
}

/* /livez follows /healthz until a liveness test is set; then each answers by its own test, so
 * an unhealthy but live service (the ledger on a full disk) is not restarted by its probe. */
static void test_http_liveness(void **state)
{
    (void)state;
    metrics_t *m = metrics_new();
    metrics_server_t *s = NULL;
    assert_int_equal(metrics_server_start(&s, m, "127.0.0.1", 0, is_healthy, NULL), ERR_OK);
    int port = metrics_server_port(s);
    struct http_result r;
    atomic_store(&healthy, false);
    http("GET", port, "/livez", &r);
    assert_int_equal(r.status, 503);
    buf_free(&r.body);
    metrics_server_set_liveness(s, is_alive);
    http("GET", port, "/livez", &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body.data, "ok\n");
    buf_free(&r.body);
    http("GET", port, "/healthz", &r);
    assert_int_equal(r.status, 503);
    buf_free(&r.body);
    atomic_store(&alive, false);
    http("GET", port, "/livez", &r);
    assert_int_equal(r.status, 503);
    assert_string_equal(r.body.data, "not live\n");
    buf_free(&r.body);
    http("DELETE", port, "/livez", &r);
    assert_int_equal(r.status, 405);
    buf_free(&r.body);
    atomic_store(&alive, true);
    atomic_store(&healthy, true);
    metrics_server_stop(&s);
    metrics_destroy(&m);
}

static void test_http_bad_address_and_busy_port(void **state)
{
    (void)state;
    metrics_t *m = metrics_new();
    metrics_server_t *s = NULL, *s2 = NULL;
    assert_int_equal(metrics_server_start(&s, m, "not an address", 0, NULL, NULL), ERR_INVAL);
    assert_null(s);
    assert_int_equal(metrics_server_start(&s, m, "127.0.0.1", 70000, NULL, NULL), ERR_INVAL);
    assert_int_equal(metrics_server_start(&s, m, "localhost", 0, NULL, NULL), ERR_OK);
    struct http_result r;
    http("GET", metrics_server_port(s), "/healthz", &r);
    assert_int_equal(r.status, 200);
    buf_free(&r.body);
    metrics_server_stop(&s);
    assert_int_equal(metrics_server_start(&s, m, "127.0.0.1", 0, NULL, NULL), ERR_OK);
    assert_int_equal(metrics_server_start(&s2, m, "127.0.0.1", metrics_server_port(s), NULL, NULL),
                     ERR_IO);
    assert_null(s2);
    metrics_server_stop(&s);
    metrics_destroy(&m);
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_render_golden),
        cmocka_unit_test(test_empty_registry_renders_nothing),
        cmocka_unit_test(test_label_and_help_escaping),
        cmocka_unit_test(test_special_values),
        cmocka_unit_test(test_histogram_buckets_are_cumulative_and_le_inclusive),
        cmocka_unit_test(test_registration_rules),
        cmocka_unit_test(test_prerender_hook_refreshes_gauges),
        cmocka_unit_test(test_concurrent_updates_are_exact),
        cmocka_unit_test(test_http_routes),
        cmocka_unit_test(test_http_without_health_callback_is_healthy),
        cmocka_unit_test(test_http_liveness),
        cmocka_unit_test(test_http_bad_address_and_busy_port),
    };
    int rc = cmocka_run_group_tests_name("metrics", tests, NULL, NULL);
    curl_global_cleanup();
    return rc;
}
