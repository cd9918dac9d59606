/* bench_judge.c - judge throughput: N annotators ("replicas", one thread each, each its own curl
 * multi handle) x K calls in flight against the fake judge answering after a fixed latency L.
 * The ideal is N*K/L calls per second (labels: half that when both orders are judged).
 *
 * Usage: bench_judge [L_ms=200] [seconds_per_row=2] [orders=both|one]
 * Prints a table: N, K, N*K, calls/s, ideal calls/s, labels/s, ideal labels/s, ratio (measured
 * calls / ideal), peak (most calls in flight at the fake judge, /stats), failed judgements. */
#include <curl/curl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../fake_judge_run.h"
#include "annotator.h"
#include "annotator_opts.h"
#include "err.h"
#include "log.h"

struct replica {
    pthread_t thread;
    struct annotator_config cfg;
    annotator_t *a;
    int64_t t_start, t_end; /* the measured window */
    uint64_t labels, calls, failed;
    int rc;
};

static const char *const HEADERS[] = {"X-Fake-Logprobs: 1"};
static char template_path[512];
static struct annotator_opts defaults; /* the option table's; the replicas borrow its strings */
static atomic_int go;

static void submit_one(struct replica *r);

static void on_done(void *user, const struct annotator_outcome *o)
{
    struct replica *r = user;
    int64_t now = http_now_ms();
    if (now >= r->t_start && now < r->t_end) {
        if (o->rc == ERR_OK)
            r->labels++;
        else
            r->failed++;
        r->calls += o->norders;
    }
    if (now < r->t_end)
        submit_one(r); /* keep the pipeline full */
}

static void submit_one(struct replica *r)
{
    struct annotator_request req = {
        .pair_id = "bench",
        .prompt = "What is the capital of France? Answer in one word.",
        .responses = {"Paris. GOOD", "Lyon. BAD"},
    };
    int rc = annotator_submit(r->a, &req, on_done, r);
    if (rc && !r->rc)
        r->rc = rc;
}

static void *replica_main(void *arg)
{
    struct replica *r = arg;
    while (!atomic_load(&go))
        ;
    /* enough judgements queued that K calls are always in flight */
    unsigned per = r->cfg.orders == ANNOTATOR_ORDERS_BOTH ? 2 : 1;
    unsigned depth = (r->cfg.http.max_in_flight + per - 1) / per * 2 + 2;
    for (unsigned i = 0; i < depth; i++)
        submit_one(r);
    /* run the window, then drain (so the next row starts with an idle judge) */
    while ((http_now_ms() < r->t_end || annotator_pending(r->a)) && !r->rc)
        r->rc = annotator_poll(r->a, 20, NULL, 0);
    return NULL;
}

/* One row of the table; returns the ratio measured/ideal. */
static double run_row(const struct fake_judge *fj, unsigned n, unsigned k, double latency_ms,
                      double seconds, enum annotator_orders orders)
{
    struct replica *rs = calloc(n, sizeof *rs);
    if (!rs)
        return 0;
    fake_judge_reset(fj);
    int64_t t0 = http_now_ms() + 100;
    for (unsigned i = 0; i < n; i++) {
        struct replica *r = &rs[i];
        r->cfg = defaults.judge;
        r->cfg.backend = ANNOTATOR_BACKEND_OPENAI;
        r->cfg.base_url = (char *)fj->base_url;
        r->cfg.model = "bench";
        r->cfg.template_name = template_path;
        r->cfg.orders = orders;
        r->cfg.extra_headers.items = (char **)HEADERS;
        r->cfg.extra_headers.n = 1;
        r->cfg.http.max_in_flight = (int)k;
        r->cfg.http.seed = i + 1;
        char why[256];
        if (annotator_new(&r->a, &r->cfg, why, sizeof why)) {
            fprintf(stderr, "annotator_new: %s\n", why);
            exit(1);
        }
        /* warm-up of two latencies (connections opened), then the window */
        r->t_start = t0 + (int64_t)(2 * latency_ms);
        r->t_end = r->t_start + (int64_t)(seconds * 1000);
    }
    atomic_store(&go, 0);
    for (unsigned i = 0; i < n; i++)
        pthread_create(&rs[i].thread, NULL, replica_main, &rs[i]);
    atomic_store(&go, 1);
    uint64_t labels = 0, calls = 0, failed = 0;
    for (unsigned i = 0; i < n; i++) {
        pthread_join(rs[i].thread, NULL);
        labels += rs[i].labels;
        calls += rs[i].calls;
        failed += rs[i].failed;
        if (rs[i].rc)
            fprintf(stderr, "replica %u: %s\n", i, err_str(rs[i].rc));
        annotator_destroy(&rs[i].a);
    }
    json_t *st = fake_judge_stats(fj);
    long long max_in_flight =
        st ? (long long)json_integer_value(json_object_get(st, "max_in_flight")) : -1;
    json_decref(st);
    double ideal_calls = n * k / (latency_ms / 1000.0);
    double calls_s = (double)calls / seconds, labels_s = (double)labels / seconds;
    double ratio = calls_s / ideal_calls;
    printf("%4u %5u %6u %10.1f %10.1f %10.1f %10.1f %7.3f %8lld %6llu\n", n, k, n * k, calls_s,
           ideal_calls, labels_s, ideal_calls / (orders == ANNOTATOR_ORDERS_BOTH ? 2 : 1), ratio,
           max_in_flight, (unsigned long long)failed);
    fflush(stdout);
    free(rs);
    return ratio;
}

int main(int argc, char **argv)
{
    double latency_ms = argc > 1 ? atof(argv[1]) : 200;
    double seconds = argc > 2 ? atof(argv[2]) : 2;
    enum annotator_orders orders = argc > 3 && strcmp(argv[3], "one") == 0
                                       ? ANNOTATOR_ORDERS_RANDOM_ONE
                                       : ANNOTATOR_ORDERS_BOTH;
    if (!(latency_ms >= 1) || !(seconds > 0)) {
        fprintf(stderr, "usage: bench_judge [L_ms=200] [seconds_per_row=2] [orders=both|one]\n");
        return 2;
    }
    /* calls complete in waves one latency apart: a window of a whole number of latencies
     * counts the same number of waves whatever its phase */
    double waves = seconds * 1000 / latency_ms;
    waves = waves < 1 ? 1 : (double)(long)(waves + 0.5);
    seconds = waves * latency_ms / 1000;
    log_set_level(LOG_LVL_WARN);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    snprintf(template_path, sizeof template_path, "%s/helpful.txt", JUDGE_TEMPLATES);
    if (annotator_opts_defaults(&defaults)) {
        fprintf(stderr, "the option table's defaults: bad table\n");
        return 1;
    }
    char lat[32];
    snprintf(lat, sizeof lat, "%.0f", latency_ms);
    const char *flags[] = {"--latency", lat, "--threads", "2", NULL};
    struct fake_judge fj;
    if (fake_judge_start(&fj, flags)) {
        fprintf(stderr, "cannot start the fake judge (%s)\n", FAKE_JUDGE_BIN);
        annotator_opts_release(&defaults);
        return 1;
    }
    printf("judge throughput against the fake judge: latency %.0f ms, %s, %.1f s a row, "
           "%ld cores online\n",
           latency_ms,
           orders == ANNOTATOR_ORDERS_BOTH ? "both orders (2 calls a label)"
                                           : "one order (1 call a label)",
           seconds, sysconf(_SC_NPROCESSORS_ONLN));
    printf("%4s %5s %6s %10s %10s %10s %10s %7s %8s %6s\n", "N", "K", "N*K", "calls/s", "ideal",
           "labels/s", "ideal", "ratio", "peak", "failed");
    static const unsigned rows[][2] = {{1, 1},   {1, 8},  {1, 32},  {1, 64}, {1, 128},
                                       {1, 256}, {2, 64}, {2, 128}, {4, 64}, {8, 32}};
    double worst = 1e9;
    for (size_t i = 0; i < sizeof rows / sizeof *rows; i++) {
        double r = run_row(&fj, rows[i][0], rows[i][1], latency_ms, seconds, orders);
        if (r < worst)
            worst = r;
    }
    printf("worst ratio %.3f (target >= 0.90)\n", worst);
    fake_judge_stop(&fj);
    annotator_opts_release(&defaults);
    curl_global_cleanup();
    return 0;
}
