/* test_ledger_procs - faults with real processes: the ledger binary, echo workers, and
 * clients over loopback TCP. Workers and the ledger are SIGKILLed under load; CURVE refuses
 * keys off the allow-list and plaintext peers; oversized frames do not stop the ledger. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

#include <curl/curl.h>

#include "buf.h"
#include "busclient.h"
#include "err.h"
#include "testproc.h"

struct fx {
    char dir[256];
    char log[300];
    char ep_file[300];
    char cep[256], wep[256], mport[16];
    pid_t ledger, workers[4];
    int nworkers;
    void *zctx;
    bus_client_t *c[3];
    int nc;
};

static void start_ledger(struct fx *f, const char *clients, const char *workers,
                         const char *const *extra)
{
    char db[300];
    snprintf(db, sizeof db, "%s/db", f->dir);
    unlink(f->ep_file);
    char *argv[32] = {(char *)tp_bin("services/ledger/ledger"), "--db", db, "--clients",
                      (char *)clients, "--workers", (char *)workers, "--events", "",
                      "--heartbeat", "200ms", "--lease", "3s", "--endpoints-file",
                      f->ep_file, "--metrics-port", "0"};
    int n = 17;
    for (int i = 0; extra && extra[i]; i++)
        argv[n++] = (char *)extra[i];
    argv[n] = NULL;
    f->ledger = tp_spawn(argv, f->log);
    assert_true(f->ledger > 0);
    assert_true(tp_read_kv(f->ep_file, "clients", f->cep, sizeof f->cep, 10000));
    assert_true(tp_read_kv(f->ep_file, "workers", f->wep, sizeof f->wep, 1000));
    assert_true(tp_read_kv(f->ep_file, "metrics_port", f->mport, sizeof f->mport, 1000));
}

static size_t collect(char *ptr, size_t size, size_t nmemb, void *ud)
{
    buf_t *b = ud;
    return buf_append(b, ptr, size * nmemb) ? 0 : size * nmemb;
}

/* GET http://127.0.0.1:PORT/path into b; returns the HTTP status. */
static long http_get(struct fx *f, const char *path, buf_t *b)
{
    char url[300];
    snprintf(url, sizeof url, "http://127.0.0.1:%s%s", f->mport, path);
    CURL *h = curl_easy_init();
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, b);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 5000L);
    long code = 0;
    if (curl_easy_perform(h) == CURLE_OK)
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
    curl_easy_cleanup(h);
    return code;
}

static pid_t start_worker(struct fx *f, const char *credit, const char *delay,
                          const char *const *extra)
{
    char *argv[24] = {(char *)tp_bin("tests/echo_worker"), "--endpoint", f->wep, "--credit",
                      (char *)credit, "--delay-ms", (char *)delay};
    int n = 7;
    for (int i = 0; extra && extra[i]; i++)
        argv[n++] = (char *)extra[i];
    argv[n] = NULL;
    pid_t p = tp_spawn(argv, f->log);
    assert_true(p > 0);
    f->workers[f->nworkers++] = p;
    return p;
}

static bus_client_t *client(struct fx *f, const struct bus_curve *curve)
{
    struct bus_client_opts o = {.endpoint = f->cep, .curve = curve, .resend_ms = 300,
                                .reannounce_ms = 500};
    bus_client_t *c = NULL;
    assert_int_equal(bus_client_new(&c, f->zctx, &o), ERR_OK);
    f->c[f->nc++] = c;
    bus_client_poll(c, 150, NULL, NULL);
    return c;
}

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/oaif-test-procs-XXXXXX");
    if (!mkdtemp(f->dir))
        return -1;
    snprintf(f->log, sizeof f->log, "%s/log", f->dir);
    snprintf(f->ep_file, sizeof f->ep_file, "%s/endpoints", f->dir);
    f->zctx = zmq_ctx_new();
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    for (int i = 0; i < f->nc; i++)
        bus_client_destroy(&f->c[i]);
    for (int i = 0; i < f->nworkers; i++)
        if (f->workers[i] > 0)
            tp_stop(f->workers[i], SIGTERM);
    if (f->ledger > 0)
        tp_stop(f->ledger, SIGTERM);
    zmq_ctx_term(f->zctx);
    if (getenv("KEEP_LOGS") == NULL) {
        char cmd[300];
        snprintf(cmd, sizeof cmd, "rm -rf %s", f->dir);
        if (system(cmd) != 0)
            return -1;
    } else {
        fprintf(stderr, "logs kept in %s\n", f->dir);
    }
    free(f);
    return 0;
}

#define NREQ 300

struct tally {
    int ok, failed, dup;
    unsigned char seen[NREQ];
    int bad_payload;
};

static void on_reply(void *ctx, const Oaif__V1__Reply *r)
{
    struct tally *t = ctx;
    int i = atoi(r->id + 2);
    if (i < 0 || i >= NREQ)
        return;
    if (t->seen[i]++) {
        t->dup++;
        return;
    }
    if (r->outcome != OAIF__V1__OUTCOME__OUTCOME_OK) {
        t->failed++;
        return;
    }
    char want[32];
    snprintf(want, sizeof want, "payload-%d", i);
    if (r->payload.len != strlen(want) || memcmp(r->payload.data, want, r->payload.len))
        t->bad_payload++;
    t->ok++;
}

static void submit_all(bus_client_t *c, int n)
{
    for (int i = 0; i < n; i++) {
        char id[32], p[32];
        snprintf(id, sizeof id, "r-%d", i);
        snprintf(p, sizeof p, "payload-%d", i);
        assert_int_equal(bus_client_submit(c, "echo", id, p, strlen(p), 0, 10), ERR_OK);
    }
}

static void wait_all(bus_client_t *c, struct tally *t, int n, int timeout_ms)
{
    for (int waited = 0; t->ok + t->failed < n && waited < timeout_ms; waited += 100)
        bus_client_poll(c, 100, on_reply, t);
}

static uint64_t redelivered(bus_client_t *c)
{
    Oaif__V1__Envelope *env = NULL;
    uint64_t n = 0;
    assert_int_equal(bus_client_status(c, 5000, &env), ERR_OK);
    for (size_t i = 0; i < env->status->n_services; i++)
        if (!strcmp(env->status->services[i]->name, "echo"))
            n = env->status->services[i]->redelivered;
    oaif__v1__envelope__free_unpacked(env, NULL);
    return n;
}

static void test_worker_killed_mid_request_loses_nothing(void **state)
{
    struct fx *f = *state;
    start_ledger(f, "tcp://127.0.0.1:*", "tcp://127.0.0.1:*", NULL);
    pid_t victim = start_worker(f, "4", "20", NULL);
    start_worker(f, "4", "20", NULL);
    bus_client_t *c = client(f, NULL);
    submit_all(c, NREQ);
    struct tally t = {0};
    while (t.ok < 40)
        bus_client_poll(c, 100, on_reply, &t);
    tp_stop(victim, SIGKILL); /* it holds leases right now */
    f->workers[0] = -1;
    wait_all(c, &t, NREQ, 30000);
    assert_int_equal(t.ok, NREQ);
    assert_int_equal(t.failed, 0);
    assert_int_equal(t.bad_payload, 0);
    assert_true(redelivered(c) >= 1);
    /* The same numbers over HTTP, in Prometheus text (refreshed every 500 ms). */
    usleep(700000);
    buf_t b;
    buf_init(&b, 1 << 20);
    assert_int_equal(http_get(f, "/metrics", &b), 200);
    assert_non_null(strstr(b.data, "oaif_ledger_completed_total{service=\"echo\"} 300"));
    assert_non_null(strstr(b.data, "# TYPE oaif_ledger_redelivered_total counter"));
    buf_reset(&b);
    assert_int_equal(http_get(f, "/healthz", &b), 200);
    buf_free(&b);
}

static void test_ledger_killed_under_load_loses_nothing(void **state)
{
    struct fx *f = *state;
    start_ledger(f, "tcp://127.0.0.1:*", "tcp://127.0.0.1:*", NULL);
    pid_t worker = start_worker(f, "4", "5", NULL);
    bus_client_t *c = client(f, NULL);
    submit_all(c, NREQ);
    struct tally t = {0};
    while (t.ok < 50)
        bus_client_poll(c, 50, on_reply, &t);
    tp_stop(f->ledger, SIGKILL);
    /* Same ports, same store: clients and workers find it again by themselves. */
    char cep[256], wep[256];
    snprintf(cep, sizeof cep, "%s", f->cep);
    snprintf(wep, sizeof wep, "%s", f->wep);
    start_ledger(f, cep, wep, NULL);
    wait_all(c, &t, NREQ, 40000);
    assert_int_equal(t.ok, NREQ);
    assert_int_equal(t.failed, 0);
    assert_int_equal(t.bad_payload, 0);
    assert_int_equal(kill(worker, 0), 0); /* the same worker process did the rest */
}

static void test_curve_refuses_unknown_keys_and_plaintext(void **state)
{
    struct fx *f = *state;
    struct bus_curve server, allowed, stranger;
    char path[400], err[256], allowdir[300];
    assert_int_equal(bus_curve_generate(&server), ERR_OK);
    assert_int_equal(bus_curve_generate(&allowed), ERR_OK);
    assert_int_equal(bus_curve_generate(&stranger), ERR_OK);
    snprintf(allowdir, sizeof allowdir, "%s/allow", f->dir);
    assert_int_equal(mkdir(allowdir, 0700), 0);
    snprintf(path, sizeof path, "%s/server.key", f->dir);
    assert_int_equal(bus_curve_save(&server, path, err, sizeof err), ERR_OK);
    char server_key[400];
    snprintf(server_key, sizeof server_key, "%s", path);
    snprintf(path, sizeof path, "%s/client.key", allowdir);
    assert_int_equal(bus_curve_save(&allowed, path, err, sizeof err), ERR_OK);
    char client_key[400], server_pub[420];
    snprintf(client_key, sizeof client_key, "%s", path);
    snprintf(server_pub, sizeof server_pub, "%s.pub", server_key);
    /* The secret file of the allowed key sits in the allow dir too: only *.pub count. */
    const char *extra[] = {"--curve-secret", server_key, "--curve-allow", allowdir, NULL};
    start_ledger(f, "tcp://127.0.0.1:*", "tcp://127.0.0.1:*", extra);
    const char *wextra[] = {"--curve-secret", client_key, "--server-key", server_pub, NULL};
    start_worker(f, "1", "0", wextra);
    memcpy(allowed.server_key, server.public_key, 41);
    memcpy(stranger.server_key, server.public_key, 41);
    bus_client_t *good = client(f, &allowed);
    Oaif__V1__Envelope *env = NULL;
    assert_int_equal(bus_client_call(good, "echo", "c-1", "hi", 2, 10000, &env), ERR_OK);
    assert_int_equal(env->reply->outcome, OAIF__V1__OUTCOME__OUTCOME_OK);
    oaif__v1__envelope__free_unpacked(env, NULL);
    bus_client_t *bad = client(f, &stranger);
    assert_int_equal(bus_client_status(bad, 1500, &env), ERR_TIMEOUT);
    bus_client_t *plain = client(f, NULL);
    assert_int_equal(bus_client_status(plain, 1500, &env), ERR_TIMEOUT);
    /* The refusals were the ZAP handler's doing, and the ledger logged them. */
    FILE *lf = fopen(f->log, "r");
    assert_non_null(lf);
    char line[1024];
    int refused = 0;
    while (fgets(line, sizeof line, lf))
        refused += strstr(line, "not on the allow-list") != NULL;
    fclose(lf);
    assert_true(refused >= 1);
}

static void test_oversized_frame_drops_only_its_sender(void **state)
{
    struct fx *f = *state;
    const char *extra[] = {"--max-msg", "1048576", "--max-request", "65536", NULL};
    start_ledger(f, "tcp://127.0.0.1:*", "tcp://127.0.0.1:*", extra);
    start_worker(f, "1", "0", NULL);
    void *s = zmq_socket(f->zctx, ZMQ_DEALER);
    int zero = 0;
    zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof zero);
    zmq_connect(s, f->cep);
    size_t big = 2u << 20;
    char *p = calloc(1, big);
    zmq_send(s, p, big, 0);
    free(p);
    usleep(300000);
    zmq_close(s);
    /* A payload between max-request and max-msg gets an error reply naming the limit. */
    bus_client_t *c = client(f, NULL);
    Oaif__V1__Envelope *env = NULL;
    char *mid = calloc(1, 100000);
    assert_int_equal(bus_client_call(c, "echo", "mid", mid, 100000, 5000, &env), ERR_REMOTE);
    assert_non_null(strstr(bus_client_last_error(c), "over the limit"));
    free(mid);
    assert_int_equal(bus_client_call(c, "echo", "after", "ok", 2, 5000, &env), ERR_OK);
    assert_int_equal(env->reply->outcome, OAIF__V1__OUTCOME__OUTCOME_OK);
    oaif__v1__envelope__free_unpacked(env, NULL);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_worker_killed_mid_request_loses_nothing, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_ledger_killed_under_load_loses_nothing, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_curve_refuses_unknown_keys_and_plaintext, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_oversized_frame_drops_only_its_sender, setup,
                                        teardown),
    };
    return cmocka_run_group_tests_name("ledger_procs", tests, NULL, NULL);
}
